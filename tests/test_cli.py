"""The command line: the demo end to end, export, and one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests


def crowdnb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "crowdnb", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_demo_runs_a_whole_study(tmp_path: Path) -> None:
    done = crowdnb("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "(closed when the demo ends, in seconds; crowdnb demo --keep-open waits for you): http://127.0.0.1:"
        in done.stdout
    )
    assert "36 submissions from 4 workers" in done.stdout
    assert "Approved every unit (mock payments recorded)." in done.stdout
    exported = list((tmp_path / "crowdnb_data" / "exports").glob("demo-sentiment-run*.csv"))
    frame = pd.read_csv(exported[0])
    assert len(frame) == 36 and set(frame["status"]) == {"accepted"}
    listed = crowdnb("runs", cwd=tmp_path)
    assert listed.stdout.splitlines()[1].split()[1:7] == ["demo-sentiment", "stopped", "mock", "36", "36", "36"]


def test_export_command_by_task_and_by_run(tmp_path: Path) -> None:
    crowdnb("demo", "--workers", "2", "--replicas", "1", "--home", "proj", cwd=tmp_path)
    by_task = crowdnb("export", "demo-sentiment", "all.jsonl", "--home", "proj", cwd=tmp_path)
    assert by_task.returncode == 0 and "12 rows written" in by_task.stdout
    run_id = crowdnb("runs", "--home", "proj", cwd=tmp_path).stdout.splitlines()[1].split()[0]
    by_run = crowdnb("export", run_id, "run.parquet", "--home", "proj", cwd=tmp_path)
    assert by_run.returncode == 0 and len(pd.read_parquet(tmp_path / "run.parquet")) == 12


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    crowdnb("demo", "--workers", "1", "--replicas", "1", cwd=tmp_path)
    done = crowdnb("export", "no-such-task", "x.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no task 'no-such-task'")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command",
    [
        ["runs", "--home", "typo"],
        ["export", "demo-sentiment", "x.csv", "--home", "typo"],
        ["review", "--home", "typo", "--port", "0"],
        ["mturk", "cleanup", "--sandbox", "--home", "typo"],
        ["serve", "typo", "--port", "0"],
        ["db", "export", "x.tar.gz", "--home", "typo"],
        ["db", "backup", "x.tar.gz", "--home", "typo"],
        ["logs", "--home", "typo"],
        ["workers", "--home", "typo"],
        ["qualifications", "list", "--home", "typo"],
        ["qualifications", "grant", "alice", "english", "--home", "typo"],
    ],
)
def test_a_typo_in_the_project_folder_is_an_error_not_a_new_project(tmp_path: Path, command: list[str]) -> None:
    done = crowdnb(*command, cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert done.stderr == (
        f"error: no crowdnb project at {tmp_path / 'typo'} (no crowdnb.db there); check the path, "
        "or launch a task there first (crowdnb demo --home DIR makes a demo project)\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing was made


def test_demo_validates_its_options_before_anything_is_written(tmp_path: Path) -> None:
    for option in ("--workers", "--replicas"):
        done = crowdnb("demo", option, "0", cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr == f"error: {option} 0 must be a whole number ≥ 1\n" and done.stdout == ""
        assert list(tmp_path.iterdir()) == []  # no project, no run


def test_demo_with_more_replicas_than_workers_says_what_was_left(tmp_path: Path) -> None:
    done = crowdnb("demo", "--workers", "2", "--replicas", "3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Note: each sentence needs 3 different workers and 2 bots will work, so 12 of 36 units" in done.stdout
    assert "24 submissions from 2 workers" in done.stdout
    assert "Approved every unit" not in done.stdout
    assert (
        "Approved the 24 submitted units (mock payments recorded); 12 units were never done "
        "(each sentence needs 3 different workers) and expired when the run stopped." in done.stdout
    )
    listed = crowdnb("runs", cwd=tmp_path)
    assert listed.stdout.splitlines()[1].split()[1:7] == ["demo-sentiment", "stopped", "mock", "36", "24", "24"]


def test_sigterm_stops_the_run_of_a_demo_kept_open(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    demo = subprocess.Popen(
        [sys.executable, "-m", "crowdnb", "demo", "--keep-open"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("Waiting for you"):
                break
        url = next(line.split(": ", 1)[1].strip() for line in lines if line.startswith("Open it as a worker"))
        assert requests.get(url, timeout=10).status_code == 200  # live while it waits
        demo.send_signal(signal.SIGTERM)
        out, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(timeout=10)
    assert demo.returncode == 128 + signal.SIGTERM, err
    assert "stopped." in out and "Traceback" not in err
    listed = crowdnb("runs", cwd=tmp_path)
    assert listed.stdout.splitlines()[1].split()[1:7] == ["demo-sentiment", "stopped", "mock", "36", "0", "0"]
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)  # the port is free


def test_review_on_a_busy_port_is_one_line_with_the_port_0_hint(tmp_path: Path) -> None:
    crowdnb("demo", "--workers", "1", "--replicas", "1", cwd=tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = crowdnb("review", "--port", str(port), cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use; choose another --port (--port 0 takes a free one)\n"
    )
