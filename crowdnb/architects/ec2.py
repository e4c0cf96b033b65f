"""The ``ec2`` architect: a run's router on an EC2 instance of its own, at ``https://<subdomain>.<domain>/``.

``crowdnb ec2 setup DOMAIN`` makes (once per domain and region) the hosted zone, the certificate, the load
balancer, the security groups, the bucket and the instance role, and keeps their ids in the project's database.
A launch then packs the run's project folder with a wheel of the crowdnb running now, and ``ec2_run.provision``
starts an instance whose user data serves it (``crowdnb serve`` under systemd, snapshots to S3), routes the
subdomain to it and waits until ``/healthz`` answers through the public HTTPS address. ``teardown`` deletes
every per-run resource (found by its tags, so it works after a crash too).
"""

from __future__ import annotations

import logging
import re
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArchitectError, ConfigError
from ..store import setups
from .aws import Cloud
from .ec2_run import check_subdomain, http_ok, provision, teardown
from .ec2_setup import Ec2Setup, check_domain, find_setup
from .ec2_snapshot import DB_NAME, backup
from .wheel import crowdnb_wheel

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

KIND = "ec2"  # the architect's name in the project's architect_setups
SKIPPED = {"__pycache__", ".ipynb_checkpoints", "router.log", "metrics"}
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_ENV_UNSAFE = set('"\\$`\n\r')


def setup_name(region: str, domain: str) -> str:
    """The name a domain's setup is kept under in the project: ``<region>/<domain>``."""
    return f"{region}/{check_domain(domain)}"


class Ec2Architect:
    """Serve a run from an EC2 instance behind the setup's load balancer (``architect_options={...}``).

    Args:
        domain: the domain ``crowdnb ec2 setup`` set up (its hosted zone, certificate and load balancer)
        subdomain: the run's name under it; None: ``run-<run id>``
        instance_type: the instance's type (t3.small: 2 vCPUs, 2 GB, about $0.02 an hour)
        region: the AWS region; None: the profile's, else us-east-1
        profile_name: the AWS profile; None: boto3's chain (AWS_PROFILE, ~/.aws, an instance role)
        endpoint_url: another AWS endpoint for every call (moto's server, for dry runs and tests)
        snapshot_seconds: how often the instance copies the run's database and files to S3
        health_timeout: seconds the new router may take to answer through its public address
        wheel: a crowdnb wheel to ship instead of one built from the running crowdnb
        run_id: set by crowdnb: the run it serves, kept so that a new kernel tears its resources down
        url: set by crowdnb: the router's public address, kept so that a new kernel reattaches to it
        resume: set by run.resume()
    """

    name = "ec2"

    def __init__(
        self,
        domain: str | None = None,
        subdomain: str | None = None,
        instance_type: str = "t3.small",
        region: str | None = None,
        profile_name: str | None = None,
        endpoint_url: str | None = None,
        snapshot_seconds: int = 300,
        health_timeout: float = 900.0,
        wheel: str | Path | None = None,
        run_id: int | None = None,
        url: str | None = None,
        resume: bool = False,
    ) -> None:
        if not domain:
            raise ConfigError(
                "the ec2 architect needs the domain it serves under: architect_options={'domain': 'study.example.org'} "
                "(set it up once with `crowdnb ec2 setup study.example.org`)"
            )
        self.domain = check_domain(domain)
        self.subdomain = check_subdomain(subdomain) if subdomain is not None else None
        if isinstance(snapshot_seconds, bool) or not isinstance(snapshot_seconds, int) or snapshot_seconds < 1:
            raise ConfigError(f"snapshot_seconds={snapshot_seconds!r} must be a whole number of seconds, at least 1")
        if isinstance(health_timeout, bool) or not isinstance(health_timeout, (int, float)) or health_timeout <= 0:
            raise ConfigError(f"health_timeout={health_timeout!r} must be a number of seconds above 0")
        if wheel is not None and not Path(wheel).is_file():
            raise ConfigError(f"wheel {str(wheel)!r} is not a file; pass a crowdnb wheel, or None to build one")
        self.instance_type, self.region, self.profile_name = instance_type, region, profile_name
        self.endpoint_url, self.snapshot_seconds, self.health_timeout = endpoint_url, snapshot_seconds, health_timeout
        self.wheel = Path(wheel) if wheel is not None else None
        self.run_id, self.url = run_id, url
        self._store: Store | None = None
        self._cloud: Cloud | None = None

    def bind(self, store: Store) -> None:
        """The project whose database keeps the domain's setup (crowdnb calls this before deploying)."""
        self._store = store

    def cloud(self) -> Cloud:
        """The AWS account and region the run lives in."""
        if self._cloud is None:
            self._cloud = Cloud(profile_name=self.profile_name, region=self.region, endpoint_url=self.endpoint_url)
            self.region = self._cloud.region
        return self._cloud

    def setup(self) -> Ec2Setup:
        """The domain's setup: as the project keeps it, else found in AWS (and then kept)."""
        cloud = self.cloud()
        name = setup_name(cloud.region, self.domain)
        stored = setups.get(self._store, KIND, name) if self._store is not None else None
        if stored is not None:
            return Ec2Setup.from_dict(stored)
        found = find_setup(cloud, self.domain)  # a ConfigError that says to run `crowdnb ec2 setup` first
        if self._store is not None:
            setups.keep(self._store, KIND, name, found.as_dict())
        return found

    def deploy(self, app: object) -> str:
        """Not served in this process: the run is deployed as a project folder (``deploy_bundle``)."""
        raise ArchitectError("the ec2 architect serves a run's folder with deploy_bundle(), not an in-process app")

    def deploy_bundle(self, bundle: Path, run_id: str, env: dict[str, str]) -> str:
        """Start the run's instance on the folder ``bundle``; returns its HTTPS address once it answers there."""
        setup, number = self.setup(), int(run_id)
        subdomain = self.subdomain or f"run-{number}"
        with tempfile.TemporaryDirectory(prefix="crowdnb-ec2-") as scratch:
            wheel = self.wheel or crowdnb_wheel(Path(scratch) / "dist")
            tarball = pack(Path(bundle), Path(scratch) / "bundle.tar.gz", wheel, env)
            made = provision(self.cloud(), setup, number, tarball, subdomain, self.instance_type,
                             snapshot_seconds=self.snapshot_seconds, health_timeout=self.health_timeout)  # fmt: skip
        self.run_id, self.subdomain, self.url = number, subdomain, made.url
        return made.url

    def healthy(self) -> bool:
        """Whether the router answers ``/healthz`` through its public address."""
        return bool(self.url) and http_ok(str(self.url))

    def teardown(self) -> None:
        """Delete the run's instance, rule, target group, DNS records and S3 objects (nothing billable is left)."""
        if self.run_id is not None:
            teardown(self.cloud(), self.run_id)

    def shutdown(self) -> None:
        """The in-process contract's name for ``teardown``."""
        self.teardown()

    def options(self) -> dict[str, object]:
        """What a new kernel needs to reattach to the run's router, or to tear it down (never credentials)."""
        return {
            "domain": self.domain, "subdomain": self.subdomain, "instance_type": self.instance_type,
            "region": self.region, "profile_name": self.profile_name, "endpoint_url": self.endpoint_url,
            "snapshot_seconds": self.snapshot_seconds, "health_timeout": self.health_timeout,
            "run_id": self.run_id, "url": self.url,
        }  # fmt: skip


def pack(folder: Path, out: Path, wheel: Path, env: dict[str, str] | None = None) -> Path:
    """The instance's bundle: ``project/`` (a consistent copy of the run's database, and its files), the crowdnb
    wheel, and ``environment`` (``env``, for the router's process) when there is any."""
    if not (folder / DB_NAME).is_file():
        raise ConfigError(f"{folder} is not a crowdnb project folder (no {DB_NAME}); pass the run's project folder")
    lines = []
    for key, value in (env or {}).items():
        if not _ENV_NAME.match(key) or _ENV_UNSAFE & set(value):
            raise ConfigError(
                f"environment variable {key}={value!r} cannot go to the instance: names are upper-case letters, digits "
                'and _, values hold no " \\ $ ` or line breaks'
            )
        lines.append(f'{key}="{value}"\n')
    with tempfile.TemporaryDirectory(prefix="crowdnb-pack-") as scratch:
        copy = Path(scratch) / DB_NAME
        backup(folder / DB_NAME, copy)  # SQLite's online backup: consistent while a router writes
        with tarfile.open(out, "w:gz") as tar:
            tar.add(copy, arcname=f"project/{DB_NAME}")
            for path in sorted(folder.rglob("*")):
                relative = path.relative_to(folder)
                if path.is_file() and not relative.name.startswith(DB_NAME) and not SKIPPED & set(relative.parts):
                    tar.add(path, arcname=f"project/{relative.as_posix()}")
            tar.add(wheel, arcname=wheel.name)
            if lines:
                (Path(scratch) / "environment").write_text("".join(lines))
                tar.add(Path(scratch) / "environment", arcname="environment")
    log.info("bundle of %s: %s (%.1f MB)", folder, out, out.stat().st_size / 1e6)
    return out
