"""The command line: the demo end to end, export, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd


def crowdnb(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "crowdnb", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_demo_runs_a_whole_study(tmp_path: Path) -> None:
    done = crowdnb("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Open it as a worker yourself: http://127.0.0.1:" in done.stdout
    assert "36 submissions from 4 workers" in done.stdout
    exported = list((tmp_path / "crowdnb_data" / "exports").glob("demo-sentiment-run*.csv"))
    frame = pd.read_csv(exported[0])
    assert len(frame) == 36 and set(frame["status"]) == {"accepted"}
    listed = crowdnb("runs", cwd=tmp_path)
    assert "demo-sentiment\tstopped\t36 units\t36 done" in listed.stdout


def test_export_command_by_task_and_by_run(tmp_path: Path) -> None:
    crowdnb("demo", "--workers", "2", "--replicas", "1", "--home", "proj", cwd=tmp_path)
    by_task = crowdnb("export", "demo-sentiment", "all.jsonl", "--home", "proj", cwd=tmp_path)
    assert by_task.returncode == 0 and "12 rows written" in by_task.stdout
    run_id = crowdnb("runs", "--home", "proj", cwd=tmp_path).stdout.split("\t")[0]
    by_run = crowdnb("export", run_id, "run.parquet", "--home", "proj", cwd=tmp_path)
    assert by_run.returncode == 0 and len(pd.read_parquet(tmp_path / "run.parquet")) == 12


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    done = crowdnb("export", "no-such-task", "x.csv", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no task 'no-such-task'")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
