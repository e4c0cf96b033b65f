"""The source tarball: a crowdnb project that a dyno can start with its Procfile command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests
from crowdnb_heroku.source import build_source, procfile, sha256
from waiting import wait_until

import crowdnb as cn
from crowdnb.errors import ConfigError


def unpack(tarball: Path, where: Path) -> Path:
    with tarfile.open(tarball, "r:gz") as tar:
        tar.extractall(where, filter="data")
    return where


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_procfile_serves_the_run_on_herokus_port() -> None:
    assert procfile("42", "https://study-1a2b.herokuapp.com/") == (
        "web: crowdnb serve project --run 42 --host 0.0.0.0 --port $PORT "
        "--public-url https://study-1a2b.herokuapp.com/\n"
    )


def test_source_holds_the_project_a_wheel_and_the_buildpack_files(
    stopped_run: cn.Run, wheel: Path, tmp_path: Path
) -> None:
    root = stopped_run.store.root
    (root / "files" / "note.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "files" / "note.txt").write_text("an upload")
    tarball = build_source(root, str(stopped_run.id), tmp_path / "source.tar.gz", wheel=wheel)
    with tarfile.open(tarball, "r:gz") as tar:
        names = set(tar.getnames())
        owners = {(member.uname, member.uid) for member in tar.getmembers()}
    assert {
        "Procfile",
        "requirements.txt",
        ".python-version",
        f"wheels/{wheel.name}",
        "project/crowdnb.db",
        "project/files/note.txt",
    } <= names
    assert not any(name.endswith(("-wal", "-shm")) for name in names)
    assert owners == {("", 0)}  # the local user's name stays local
    app = unpack(tarball, tmp_path / "app")
    assert (app / "requirements.txt").read_text() == f"./wheels/{wheel.name}[serve]\n"
    assert (app / ".python-version").read_text() == f"{sys.version_info.major}.{sys.version_info.minor}\n"
    assert sha256(tarball).startswith("SHA256:") and len(sha256(tarball)) == 7 + 64


def test_requirements_resolve_to_the_shipped_wheel(stopped_run: cn.Run, wheel: Path, tmp_path: Path) -> None:
    app = unpack(
        build_source(stopped_run.store.root, str(stopped_run.id), tmp_path / "s.tar.gz", wheel=wheel), tmp_path / "app"
    )
    # what the Python buildpack runs, minus the network: the requirement line must name a real wheel
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "-r", "requirements.txt"],
        cwd=app,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Would install crowdnb-" in done.stdout


def test_unpacked_source_starts_with_its_procfile_command(stopped_run: cn.Run, wheel: Path, tmp_path: Path) -> None:
    app = unpack(
        build_source(stopped_run.store.root, str(stopped_run.id), tmp_path / "s.tar.gz", wheel=wheel), tmp_path / "app"
    )
    command = (app / "Procfile").read_text().removeprefix("web:").strip()
    port = free_port()
    # as a dyno would, but with this venv's crowdnb instead of one installed from requirements.txt
    env = {**os.environ, "PORT": str(port), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with (tmp_path / "dyno.log").open("wb") as log:
        dyno = subprocess.Popen(
            ["/bin/sh", "-c", command], cwd=app, env=env, stdout=log, stderr=log, start_new_session=True
        )
    try:

        def health() -> dict[str, object] | None:
            assert dyno.poll() is None, (tmp_path / "dyno.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).json()
            except requests.RequestException:
                return None

        answer = wait_until(health, "the unpacked project's router")
        assert answer["ok"] is True and answer["run"] == str(stopped_run.id)
        unit = requests.get(
            f"http://127.0.0.1:{port}/?worker_id=alice", headers={"Accept": "application/json"}, timeout=10
        ).json()
        assert unit["token"]  # a worker is served from the copied database
    finally:
        os.killpg(dyno.pid, signal.SIGTERM)
        dyno.wait(timeout=30)
    # the copy served; the notebook's project folder was not touched
    assert cn.open(stopped_run.store.root).run(stopped_run.id).df.empty


def test_a_folder_without_a_database_is_refused(tmp_path: Path, wheel: Path) -> None:
    with pytest.raises(ConfigError, match="not a crowdnb project folder"):
        build_source(tmp_path, "1", tmp_path / "s.tar.gz", wheel=wheel)


def test_run_id_must_be_a_number(stopped_run: cn.Run, wheel: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a run number"):
        build_source(stopped_run.store.root, "1; rm -rf /", tmp_path / "s.tar.gz", wheel=wheel)
