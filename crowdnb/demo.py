"""The demo study (``crowdnb demo``): a whole run on the embedded default, end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from .pages.page import available_templates
from .project import open_project
from .simulate import simulate
from .task import Task


def run_demo(
    home: str | None = None,
    workers: int = 4,
    replicas: int = 3,
    keep_open: bool = False,
    say: Callable[[str], None] = print,
) -> Path:
    """Launch the demo task, let bots do it, print a summary; returns the export path."""
    project = open_project(home)
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
    say(f"Run {run.id} of task {task.name!r} is live.")
    say(f"Open it as a worker yourself: {run.worker_url('you')}")
    say(f"Project folder: {project.root}")
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
    say("Label counts: " + ", ".join(f"{k}={v}" for k, v in frame["label"].value_counts().sort_index().items()))
    majority = frame.groupby("row_index")["label"].agg(lambda s: s.mode().iloc[0])
    say(
        f"Majority labels for {len(majority)} sentences; unit states: "
        + ", ".join(f"{k}={v}" for k, v in run.counts.items() if v)
    )
    if sim.errors:
        say(f"{len(sim.errors)} bot errors, first: {sim.errors[0]}")
    run.approve(frame["unit_id"])
    target = run.export(project.root / "exports" / f"{task.name}-run{run.id}.csv")
    run.stop()
    say(f"Approved every unit (mock payments recorded). Export written to {target}")
    return target
