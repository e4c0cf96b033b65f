"""The review grid at 10,000 submitted units: how long it takes to open, to turn a page, to sort, to filter
and to decide, and how much it sends to the browser per page.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/review_grid.py                 # 10,000 submissions of 500 workers
    .venv/bin/python benchmarks/review_grid.py --rows 2000 --workers 100

Set-up (not timed as a crowdnb figure): the project of benchmarks/export_scale.py (one stopped run whose
every unit is submitted, bulk-inserted through the store's tables). Then, in a fresh interpreter, as a new
kernel would: ``cn.open``, ``run.df`` (the frame the grid reads), ``ReviewGrid(run)``, then the grid's
operations, each the median of ``--repeat`` tries. Beside them, the baseline: the least any grid must do
for the same page with pandas alone (sort the frame by a column, slice 20 rows, turn them into dicts).

The table goes to stdout, everything to benchmarks/results/review_grid.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from export_scale import Plan, generate
from machine import environment

RESULTS = Path(__file__).resolve().parent / "results" / "review_grid.json"
TARGET_OPEN_S = 1.0  # issue 18: it opens in under a second and pages at once


def timed(action: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``action()`` over ``repeat`` tries."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def child(folder: Path, plan: Plan, repeat: int) -> dict[str, Any]:
    """What a new kernel does: open the project, read the frame, open the grid, use it."""
    import crowdnb as cn
    from crowdnb.notebook.review_grid import ReviewGrid

    out: dict[str, Any] = {}
    project = cn.open(folder / "project")
    run = project.run(plan.run)
    started = time.perf_counter()
    frame = run.df
    out["frame_s"], out["rows"] = time.perf_counter() - started, len(frame)
    started = time.perf_counter()
    grid = ReviewGrid(run)
    out["open_s"] = time.perf_counter() - started
    out["total"] = grid.total
    out["page_kb"] = len(json.dumps(grid.rows)) / 1000
    pages = iter(range(1, 10_000))
    out["page_ms"] = timed(lambda: setattr(grid, "page", next(pages) % grid.pages), repeat)
    columns = iter(["worker", "record", "duration_s", "checks", "status", "submitted_at", "row_index"] * repeat)
    out["sort_ms"] = timed(lambda: setattr(grid, "sort", next(columns)), repeat)
    grid.sort = "submitted_at"
    out["sort_answers_ms"] = timed(lambda: (setattr(grid, "sort", "answers"), setattr(grid, "sort", "submitted_at")), 1)
    names = iter(f"w{k}" for k in range(10_000))
    out["filter_worker_ms"] = timed(lambda: setattr(grid, "worker", next(names)), repeat)
    grid.worker = ""
    words = iter(f"{k}" for k in range(10_000))
    out["filter_answer_ms"] = timed(lambda: setattr(grid, "answer", next(words)), repeat)
    grid.answer = ""
    grid.opened = [row["id"] for row in grid.rows]
    out["open_all_kb"] = len(json.dumps(grid.details)) / 1000
    decide = iter(grid.rows)
    out["decide_ms"] = timed(lambda: grid.apply("approve", [int(next(decide)["id"])]), min(repeat, len(grid.rows)))
    # the baseline: pandas alone, for one page of the same frame
    out["base_page_ms"] = timed(lambda: frame.sort_values("worker").iloc[:20].to_dict("records"), repeat)
    out["base_filter_ms"] = timed(
        lambda: frame[frame["worker"].astype(str).str.contains("w1", regex=False)].iloc[:20].to_dict("records"), repeat
    )
    project.store.close()
    return out


ROWS = [  # label, crowdnb key, baseline key, format
    ("run.df, first read (s)", "frame_s", None, "{:.2f}"),
    ("open the grid (s)", "open_s", None, "{:.3f}"),
    ("one page sent to the browser (kB)", "page_kb", None, "{:.1f}"),
    ("every row of a page opened (kB)", "open_all_kb", None, "{:.1f}"),
    ("turn a page (ms)", "page_ms", "base_page_ms", "{:.0f}"),
    ("sort by a column (ms)", "sort_ms", "base_page_ms", "{:.0f}"),
    ("sort by the answers' text (ms)", "sort_answers_ms", None, "{:.0f}"),
    ("filter by worker (ms)", "filter_worker_ms", "base_filter_ms", "{:.0f}"),
    ("filter by answer text (ms)", "filter_answer_ms", None, "{:.0f}"),
    ("approve one unit, page redrawn (ms)", "decide_ms", None, "{:.0f}"),
]


def report(settings: dict[str, Any], ours: dict[str, Any]) -> str:
    """The printed table and the target."""
    lines = [
        f"review grid: {ours['rows']:,} submitted units of {settings['workers']:,} workers "
        f"({settings['cpus']} CPUs, load {settings['load_before']:.1f})",
        f"{'':38} {'crowdnb':>10} {'pandas alone':>13}",
    ]
    for label, key, base, form in ROWS:
        baseline = form.format(ours[base]) if base else "—"
        lines.append(f"{label:38} {form.format(ours[key]):>10} {baseline:>13}")
    verdict = "met" if ours["open_s"] < TARGET_OPEN_S else "MISSED"
    lines.append(f"target: the grid opens in under {TARGET_OPEN_S:g} s: {verdict}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="submitted units (default 10,000)")
    parser.add_argument("--workers", type=int, default=500, help="distinct workers (default 500)")
    parser.add_argument("--repeat", type=int, default=7, help="tries per operation (the median is shown)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Generate the project, measure in a fresh interpreter, print the table, write the JSON."""
    args = parse_args(argv)
    if args.child:  # inside a fresh interpreter: measure, print the figures as JSON
        plan = Plan(json.loads((args.child / "plan.json").read_text()))
        print(json.dumps(child(args.child, plan, args.repeat)))
        return
    import os

    settings: dict[str, Any] = {"rows": args.rows, "workers": args.workers, "repeat": args.repeat}
    settings.update(cpus=os.cpu_count(), load_before=os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="crowdnb-review-grid-") as tmp:
        print(f"… generating {args.rows:,} submissions in {tmp}", file=sys.stderr, flush=True)
        _, settings["setup"] = generate(Path(tmp), args.rows, args.workers)
        command = [sys.executable, __file__, "--child", tmp, "--repeat", str(args.repeat)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"the measuring process failed:\n{done.stderr}")
        ours = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    print(report(settings, ours), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {"environment": environment(), "settings": settings, "target_open_s": TARGET_OPEN_S, "crowdnb": ours}
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
