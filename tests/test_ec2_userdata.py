"""The instance's user data under test: shellcheck, the quoting of its values, its systemd units, and a real run.

The real run is the EC2 path with the instance emulated: ``provision`` against moto, then the user data
moto stored is run locally in a throwaway folder (in a network namespace of its own when ``ip netns add``
works, so the "instance" has an address of its own; else bound to 127.0.0.2). It fetches the bundle (a real
project and a real crowdnb wheel) from moto's S3 through the presigned link, serves it with
``crowdnb serve``, answers the health check, takes a submission and snapshots it to S3; teardown then
leaves nothing billable.
"""

from __future__ import annotations

import base64
import getpass
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.architects.ec2 import pack
from crowdnb.architects.ec2_run import fetch_snapshot, provision, teardown
from crowdnb.architects.ec2_setup import setup
from crowdnb.architects.ec2_snapshot import backup
from crowdnb.architects.ec2_userdata import SCRIPT, render

from .clouds import DOMAIN, Moto, billable
from .conftest import wait_until
from .instances import namespace, script_env
from .serving import free_port

ASSET = Path(cn.__file__).parent / "architects" / SCRIPT
ROOT = Path(__file__).parent.parent
JSON = {"Accept": "application/json"}


@dataclass
class Remote:
    """Where the emulated instance lives: the test reaches it at ``address:port``, and it reaches the test's
    servers at ``host`` (moto binds there)."""

    host: str
    address: str
    port: int
    prefix: list[str]  # the command prefix that runs a process on the instance


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    """A network namespace joined by a veth pair, all inside 127.0.0.0/8; 127.0.0.2 when namespaces fail."""
    with namespace(os.getpid() % 100_000) as where:
        yield Remote(where.host, where.address, 8000 if where.isolated else free_port(), where.prefix)


@pytest.fixture(scope="module")
def moto_server(remote: Remote) -> Iterator[Moto]:
    """moto where the instance can reach it (the namespace's way out, or 127.0.0.1)."""
    server = Moto(remote.host)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crowdnb wheel of this tree, as the notebook's bundle carries it (hatchling from the dev extra: offline)."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (found,) = folder.glob("crowdnb-*.whl")
    return found


@pytest.fixture
def stopped(tmp_path: Path) -> cn.Run:
    """A real run of a real project, launched and stopped in this process, as the notebook leaves it."""
    project = cn.open(tmp_path / "notebook", create=True)
    task = cn.Task("ec2", title="T", reward=0.1, html='<p>{{ text }}</p><input name="answer">',
                   data=[{"text": f"row {i}"} for i in range(3)], project=project)  # fmt: skip
    run = task.launch()
    run.stop()
    return run


@pytest.fixture
def bundle(stopped: cn.Run, wheel: Path, tmp_path: Path) -> Path:
    """The run's bundle: its project folder (a consistent copy of the database) and the crowdnb wheel."""
    staging = tmp_path / "staging"
    (staging / "project").mkdir(parents=True)
    backup(stopped.store.path, staging / "project" / "crowdnb.db")
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(staging / "project", arcname="project")
        tar.add(wheel, arcname=wheel.name)
    return path


def test_shellcheck_passes_on_the_script_and_a_rendered_one(tmp_path: Path) -> None:
    rendered = tmp_path / "user-data.sh"
    rendered.write_text(render(run_id=1, bundle_url="https://b/?a=1&b='2'", public_url="https://s.example.org/",
                               snapshot_uri="s3://b/runs/1/snapshot/", region="eu-west-1"))  # fmt: skip
    for path in (ASSET, rendered):
        done = subprocess.run(["shellcheck", "--shell=bash", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout


def test_render_quotes_every_value(tmp_path: Path) -> None:
    hostile = "https://x/?a=1&b='2' $(touch pwned) `touch pwned` ; touch pwned"
    script = render(run_id=7, bundle_url=hostile, public_url="https://a.example.org/",
                    snapshot_uri="s3://b/runs/7/snapshot/", region="eu-west-1", snapshot_seconds=60)  # fmt: skip
    head = script.split("\nsay()")[0]  # the settings, before any function runs
    shown = 'printf "%s\\n" "$RUN_ID" "$BUNDLE_URL" "$SNAPSHOT_SECONDS" "$AWS_DEFAULT_REGION"'
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CROWDNB_"))}
    done = subprocess.run(["bash", "-c", head + "\n" + shown], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stdout.splitlines() == ["7", hostile, "60", "eu-west-1"], done.stderr
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("environment", [False, True])
def test_systemd_units_start_the_router_and_the_snapshot_timer(
    bundle: Path, stopped: cn.Run, tmp_path: Path, wheel: Path, environment: bool
) -> None:
    if environment:  # the architect's own bundle, with variables for the router's process
        bundle = pack(stopped.store.root, tmp_path / "packed.tar.gz", wheel, {"CROWDNB_LOG_LEVEL": "DEBUG"})
    units, calls = tmp_path / "units", tmp_path / "systemctl.log"
    units.mkdir()
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    systemctl.chmod(0o755)
    script = tmp_path / "user-data.sh"
    script.write_text(render(run_id=stopped.id, bundle_url=bundle.as_uri(), public_url="https://s.example.org/",
                             snapshot_uri="s3://b/runs/1/snapshot/", region="eu-west-1", snapshot_seconds=120))  # fmt: skip
    env = script_env(tmp_path / "instance", CROWDNB_SYSTEMD_DIR=str(units), CROWDNB_SYSTEMCTL=str(systemctl),
                     CROWDNB_USER=getpass.getuser())  # fmt: skip
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert calls.read_text().splitlines() == ["daemon-reload", "enable --now crowdnb.service crowdnb-snapshot.timer"]
    service = (units / "crowdnb.service").read_text()
    project = tmp_path / "instance" / "bundle" / "project"
    assert (
        f"ExecStart={sys.executable} -m crowdnb serve {project} --run {stopped.id} --host 0.0.0.0 --port 8000"
        in service
    )
    assert "Restart=on-failure" in service and "ExecStopPost=" in service
    assert (f"EnvironmentFile={tmp_path / 'instance' / 'bundle' / 'environment'}" in service) is environment
    assert "OnUnitActiveSec=120s" in (units / "crowdnb-snapshot.timer").read_text()
    paths = [str(units / name) for name in ("crowdnb.service", "crowdnb-snapshot.service", "crowdnb-snapshot.timer")]
    verified = subprocess.run(["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60)
    assert (verified.returncode, verified.stderr) == (0, "")


class Instance:
    """The instance, emulated: the first health check runs the user data moto holds for it, locally."""

    def __init__(self, cloud: Any, remote: Remote, moto: Moto, folder: Path) -> None:
        self.cloud, self.remote, self.moto, self.folder = cloud, remote, moto, folder
        self.base = f"http://{remote.address}:{remote.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.asked: list[str] = []

    def healthy(self, url: str) -> bool:
        self.asked.append(url)
        if self.process is None:
            self.boot()
        assert self.process is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            try:
                if requests.get(self.base + "healthz", timeout=2).ok:
                    return True
            except requests.RequestException:
                time.sleep(0.2)
        return False

    def boot(self) -> None:
        ec2 = self.cloud.client("ec2")
        reservations = ec2.describe_instances(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
        (instance,) = [i for r in reservations["Reservations"] for i in r["Instances"]]
        data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
        script = self.folder / "user-data.sh"
        script.write_bytes(base64.b64decode(data["UserData"]["Value"]))
        env = script_env(self.folder / "instance", CROWDNB_FOREGROUND="1", CROWDNB_SNAPSHOT_SECONDS="1",
                         CROWDNB_HOST="0.0.0.0" if self.remote.prefix else self.remote.address,
                         CROWDNB_PORT=str(self.remote.port), **self.moto.env())  # fmt: skip
        with (self.folder / "instance.log").open("wb") as out:
            self.process = subprocess.Popen([*self.remote.prefix, "bash", str(script)], env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def log(self) -> str:
        return (self.folder / "instance.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def snapshot_rows(cloud: Any, made: Any, folder: Path, sql: str) -> list[tuple[Any, ...]]:
    fetch_snapshot(cloud, made, folder)
    if not (folder / "crowdnb.db").exists():
        return []
    with sqlite3.connect(folder / "crowdnb.db") as db:
        return db.execute(sql).fetchall()


def test_instance_serves_the_bundle_and_snapshots_to_s3(
    cloud: Any, moto_server: Moto, remote: Remote, stopped: cn.Run, bundle: Path, tmp_path: Path
) -> None:
    made_setup = setup(cloud, DOMAIN)
    instance = Instance(cloud, remote, moto_server, tmp_path)
    try:
        run = provision(cloud, made_setup, stopped.id, bundle, "sentiment", check=instance.healthy)
        assert instance.asked == [f"https://sentiment.{DOMAIN}/"]
        unit = requests.get(instance.base + "?worker_id=alice", headers=JSON, timeout=10).json()
        body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": "from afar"}}
        saved = requests.post(instance.base + "submit", json=body, headers=JSON, timeout=10)
        assert saved.json()["status"] == "saved"
        answers = "SELECT answers FROM submissions"
        wait_until(lambda: snapshot_rows(cloud, run, tmp_path / "snap", answers), "the submission in S3", timeout=30)
        assert "from afar" in snapshot_rows(cloud, run, tmp_path / "snap", answers)[0][0]
    finally:
        instance.stop()
    # SIGTERM stopped the run, and the snapshot after it says so
    states = snapshot_rows(cloud, run, tmp_path / "final", f"SELECT status FROM task_runs WHERE id = {stopped.id}")
    assert states == [("stopped",)], instance.log()
    teardown(cloud, stopped.id)
    assert billable(cloud) == []
