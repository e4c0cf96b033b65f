"""The demo study (``crowdnb demo``): a whole run on the embedded default, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .pages.page import available_templates
from .project import open_project
from .run import Run
from .simulate import simulate
from .store import states as S
from .task import Task


def run_demo(
    home: str | None = None,
    workers: int = 4,
    replicas: int = 3,
    keep_open: bool = False,
    say: Callable[[str], None] = print,
) -> Path:
    """Launch the demo task, let bots do it, print a summary; returns the export path.

    Whatever ends it (an error, Ctrl-C during the bots, SIGTERM turned into ``SystemExit``), the run is
    stopped: its units expire and its port is freed.
    """
    for option, value in (("--workers", workers), ("--replicas", replicas)):  # before anything is written
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{option} {value!r} must be a whole number ≥ 1")
    project = open_project(home, create=True)
    example = available_templates()["text_classification"] / "example.csv"
    task = Task(
        "demo-sentiment",
        title="Is this sentence positive, neutral or negative?",
        description="Read one short sentence and pick the label that fits best.",
        reward=0.05,
        template="text_classification",
        data=example,
        units_per_assignment=replicas,
        project=project,
    )
    run = task.launch(provider="mock", architect="local")
    try:
        return _work(run, task, workers, replicas, keep_open, say)
    finally:
        if run.serving:  # an error, Ctrl-C or SIGTERM before the end
            run.stop()
            say(f"Run {run.id} stopped.")


def _work(run: Run, task: Task, workers: int, replicas: int, keep_open: bool, say: Callable[[str], None]) -> Path:
    project = run.project
    say(f"Run {run.id} of task {task.name!r} is live.")
    if keep_open:
        say(f"Open it as a worker yourself: {run.worker_url('you')}")
    else:
        link = run.worker_url("you")
        say(f"Worker link (closed when the demo ends, in seconds; crowdnb demo --keep-open waits for you): {link}")
    say(f"Project folder: {project.root}")
    rows = task.row_count()
    if replicas > workers:
        say(
            f"Note: each sentence needs {replicas} different workers and {workers} bots will work, so "
            f"{rows * (replicas - workers)} of {rows * replicas} units cannot be done by the bots; "
            f"--workers {replicas} does them all."
        )
    if keep_open:
        say("Waiting for you: press Ctrl-C to let the bots finish the rest.")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            say("")
    started = time.monotonic()
    sim = simulate(run, workers=workers, progress=True, seed=7)
    elapsed = time.monotonic() - started
    frame = run.df
    say(f"{len(frame)} submissions from {frame['worker'].nunique()} workers in {elapsed:.1f} s")
    if len(frame):
        say("Label counts: " + ", ".join(f"{k}={v}" for k, v in frame["label"].value_counts().sort_index().items()))
        majority = frame.groupby("row_index")["label"].agg(lambda s: s.mode().iloc[0])
        say(f"Majority labels for {len(majority)} sentences.")
    counts = run.counts
    say("Unit states: " + ", ".join(f"{k}={v}" for k, v in counts.items() if v))
    if sim.errors:
        say(f"{len(sim.errors)} bot errors, first: {sim.errors[0]}")
    run.approve(frame["unit_id"])
    undone = sum(counts[s] for s in S.UNIT_INCOMPLETE)
    target = run.export(project.root / "exports" / f"{task.name}-run{run.id}.csv")
    run.stop()
    if undone:
        say(
            f"Approved the {len(frame)} submitted units (mock payments recorded); {undone} units were never done "
            f"(each sentence needs {replicas} different workers) and expired when the run stopped."
        )
    else:
        say("Approved every unit (mock payments recorded).")
    say(f"Export written to {target}")
    return target
