"""One AWS account and region as the EC2 architect sees it: a boto3 session, its clients, tags and errors.

Credentials come from boto3's chain (``AWS_PROFILE``, ``~/.aws``, an instance role …); ``profile_name``
picks a profile and ``endpoint_url`` points every client at another endpoint (moto's server in tests).
Every resource the architect makes carries the tag ``crowdnb:setup=<domain>``; per-run ones also
``crowdnb:run=<run id>``, which is how ``teardown``, ``list_resources`` and ``cleanup`` find them again
after a crash.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..errors import ArchitectError, ConfigError

if TYPE_CHECKING:
    from boto3 import Session

TAG_SETUP = "crowdnb:setup"
TAG_RUN = "crowdnb:run"
RUN_PREFIX = "runs/"  # S3 keys of a run: runs/<run id>/bundle.tar.gz, runs/<run id>/snapshot/…

P = ParamSpec("P")
R = TypeVar("R")


class Cloud:
    """A boto3 session with its clients (one per service, made on first use)."""

    def __init__(
        self,
        profile_name: str | None = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        session: Session | None = None,
    ) -> None:
        try:
            import boto3
            from botocore import exceptions as bx
        except ImportError as exc:
            raise ConfigError("the ec2 architect needs boto3: pip install 'crowdnb[aws]'") from exc
        try:
            self.session = session or boto3.Session(profile_name=profile_name, region_name=region)
        except bx.ProfileNotFound as exc:
            raise ConfigError(
                f"AWS profile {profile_name!r} not found in ~/.aws/config; create it with "
                f"`aws configure --profile {profile_name}` or pass another profile_name"
            ) from exc
        self.region: str = region or self.session.region_name or "us-east-1"
        self.endpoint_url = endpoint_url
        self.profile_name = profile_name
        self._clients: dict[str, Any] = {}
        self._account: str | None = None

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` ("ec2", "elbv2", "route53" …) in this region."""
        if service not in self._clients:
            # Route53 is global; its client still wants a region for signing
            self._clients[service] = self.session.client(
                service, region_name=self.region, endpoint_url=self.endpoint_url
            )
        return self._clients[service]

    @property
    def account(self) -> str:
        """The AWS account id of the credentials."""
        if self._account is None:
            self._account = str(self.client("sts").get_caller_identity()["Account"])
        return self._account

    def __repr__(self) -> str:
        return f"Cloud(profile_name={self.profile_name!r}, region={self.region!r}, endpoint_url={self.endpoint_url!r})"


def aws_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Wrap botocore's errors at the boundary: an ``ArchitectError`` naming the call, the cause kept."""

    @functools.wraps(fn)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        with translated(fn.__name__):
            return fn(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Botocore's errors inside the block become crowdnb errors saying what was being done."""
    from botocore import exceptions as bx

    try:
        yield
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
        raise ConfigError(
            f"ec2 {what}: no AWS credentials found; run `aws configure` (or `aws sso login`), "
            "set AWS_PROFILE, or pass profile_name"
        ) from exc
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        operation = getattr(exc, "operation_name", "?")
        raise ArchitectError(
            f"ec2 {what}: AWS refused {operation}: {error.get('Code')}: {error.get('Message') or exc}"
        ) from exc
    except bx.BotoCoreError as exc:
        raise ArchitectError(f"ec2 {what}: {exc}") from exc


def tags(setup: str, run_id: int | None = None, name: str | None = None) -> list[dict[str, str]]:
    """The tags of a resource (EC2/ELB/IAM/ACM style: ``[{"Key", "Value"}]``)."""
    found = [{"Key": TAG_SETUP, "Value": setup}]
    if run_id is not None:
        found.append({"Key": TAG_RUN, "Value": str(run_id)})
    if name:
        found.append({"Key": "Name", "Value": name})
    return found


def tag_map(items: Iterable[dict[str, str]] | None) -> dict[str, str]:
    """``[{"Key", "Value"}]`` as a dict."""
    return {item["Key"]: item["Value"] for item in items or ()}


def slug(domain: str, size: int = 8) -> str:
    """A short stable name part for ``domain`` (AWS names are short: 32 characters for an ALB)."""
    return hashlib.sha256(domain.lower().encode()).hexdigest()[:size]


def elb_tags(cloud: Cloud, arns: list[str]) -> dict[str, dict[str, str]]:
    """ARN → tags of load balancers, target groups, listeners or rules (20 at a time, ELB's limit)."""
    found: dict[str, dict[str, str]] = {}
    for start in range(0, len(arns), 20):
        reply = cloud.client("elbv2").describe_tags(ResourceArns=arns[start : start + 20])
        for item in reply["TagDescriptions"]:
            found[item["ResourceArn"]] = tag_map(item.get("Tags"))
    return found


def pages(client: Any, operation: str, key: str, **params: Any) -> list[Any]:
    """Every item of a paginated listing."""
    return [item for page in client.get_paginator(operation).paginate(**params) for item in page.get(key, [])]
