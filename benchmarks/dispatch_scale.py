"""Dispatch decision latency at scale: ``lifecycle.reserve`` on a run of 100,000 units with 10,000 workers.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/dispatch_scale.py                          # 100,000 units, 10,000 workers
    .venv/bin/python benchmarks/dispatch_scale.py --quick                  # smoke run: 10,000 units, 1,000 workers
    .venv/bin/python benchmarks/dispatch_scale.py --units 100002 --units-per-assignment 3   # 33,334 rows × 3

What happens, in one temporary project:

* launch: ``cn.Task(..., data=rows).launch()`` on the mock crowd and the local architect, timed as a whole
  and split into ``lifecycle.add_assignments`` (the insert) and ``lifecycle.launch_units`` (wrapped here
  for timing only). The run stays served, so its monitor thread ticks every 0.5 s during the measurement,
  as it would in a kernel.
* workers: ``store.worker("mock", name)`` for each (inside one outer write). Then at each fill level every
  worker calls ``lifecycle.reserve(store, run_id, worker_id, quota, {})`` once, from this thread, one call at
  a time; even workers without quotas, odd workers with
  ``allowed_concurrent=2, maximum_units_per_worker=2 × units/workers`` (checked, never reached). Levels:
  empty; half the units submitted; all but one pass's worth + 1 submitted (the pass takes all but one);
  exhausted (the last unit held by one more worker; every call refused: no work left, and with
  ``maximum_units_per_worker=1`` the quota refusal).
  Between passes the units taken are completed and more are assigned and completed, in bulk SQL in the
  shape ``reserve`` + ``submit`` write (agents, units, submissions, the revision counter): set-up, not timed.
* baseline: the floor of one dispatch on a plain SQLite table of as many units with the same settings
  (WAL, synchronous=FULL): ``BEGIN IMMEDIATE; SELECT … LIMIT 1; UPDATE …; INSERT …; COMMIT``, at the same
  fill levels. Its calls alternate with crowdnb's, one for one, so both see the same disk and CPU noise.

Figures: p50/p99/max wall ms per call; p50 of the calling thread's CPU ms; p50/p99 of the COMMIT alone (for
crowdnb ``Writer._commit_if_last``, timed from outside: the WAL fsync and now and then an automatic
checkpoint); own99 = p99 of (call − its commit). The plans of the reserve queries are printed. The table goes
to stdout, everything to benchmarks/results/dispatch_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from machine import durable_insert_ms, environment
from report import percentile, spread

RESULTS = Path(__file__).resolve().parent / "results" / "dispatch_scale.json"
TARGET_P99_MS = 5.0
FORM = '<p>{{ text }}</p><input type="radio" name="label" value="pos"><input type="radio" name="label" value="neg">'
LEVELS = ("empty", "half", "nearly exhausted", "exhausted")
PLANNED = {  # the queries of lifecycle.reserve, with (run id or task id, worker id) as parameters
    "live agent": "SELECT * FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN ('accepted', 'in_task') "
    "ORDER BY id LIMIT 1",
    "units done (maximum_units_per_worker)": "SELECT count(*) FROM units WHERE task_id = ? AND worker_id = ? "
    "AND status IN ('assigned', 'completed', 'accepted', 'rejected', 'soft_rejected')",
    "next unit": "SELECT u.* FROM units u WHERE u.task_run_id = ? AND u.status = 'launched' AND u.unit_index >= 0 "
    "AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.assignment_id = u.assignment_id "
    "AND a.worker_id = ? AND a.status NOT IN ('disconnect', 'timeout', 'returned', 'expired')) ORDER BY u.id LIMIT 1",
}


def fills(units: int, workers: int) -> dict[str, int]:
    """Units submitted before each pass."""
    return {"empty": 0, "half": units // 2, "nearly exhausted": units - workers - 1, "exhausted": units}


@contextmanager
def clocked(owner: Any, name: str, into: list[float]) -> Iterator[None]:
    """Append the milliseconds of every ``owner.<name>(…)`` call made by this thread to ``into`` meanwhile."""
    original, me = getattr(owner, name), threading.get_ident()

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            if threading.get_ident() == me:
                into.append((time.perf_counter() - started) * 1000)

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


@dataclass
class Samples:
    """Wall, CPU and commit milliseconds and outcomes of the calls of one table line."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    commit: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)

    def time(self, call: Callable[[], str]) -> None:
        """Run and time one call."""
        wall, cpu = time.perf_counter(), time.thread_time()
        outcome = call()
        self.wall.append((time.perf_counter() - wall) * 1000)
        self.cpu.append((time.thread_time() - cpu) * 1000)
        self.outcomes[outcome] += 1

    def figures(self) -> dict[str, Any]:
        """What goes in the table and the JSON."""
        figures = {"calls": len(self.wall), "wall_ms": spread(self.wall), "cpu_ms_p50": percentile(self.cpu, 50)}
        own = [w - c for w, c in zip(self.wall, self.commit, strict=True)] if len(self.commit) == len(self.wall) else []
        return {**figures, "commit_ms": spread(self.commit), "own_ms": spread(own), "outcomes": dict(self.outcomes)}


class Crowdnb:
    """A served run of ``units`` units in a fresh project, and its workers."""

    def __init__(self, folder: Path, units: int, per_assignment: int, workers: int) -> None:
        import crowdnb as cn
        from crowdnb.store import lifecycle

        self.project = cn.open(folder, create=True)
        self.store = self.project.store
        rows = [{"item": i, "text": f"sentence number {i}"} for i in range(units // per_assignment)]
        started = time.perf_counter()
        spec: dict[str, Any] = {
            "title": "Dispatch",
            "reward": 0.01,
            "html": FORM,
            "units_per_assignment": per_assignment,
        }
        task = cn.Task("dispatch-scale", data=rows, project=self.project, **spec)  # the data are checked here
        built = time.perf_counter()
        inserts: list[float] = []
        launches: list[float] = []
        with clocked(lifecycle, "add_assignments", inserts), clocked(lifecycle, "launch_units", launches):
            self.run = task.launch(provider="mock", architect="local")
        self.launch = {
            "rows": len(rows),
            "units": sum(self.store.unit_counts(self.run.id).values()),
            "task_s": built - started,
            "launch_s": time.perf_counter() - built,
            "add_assignments_s": sum(inserts) / 1000,
            "launch_units_s": sum(launches) / 1000,
        }
        started = time.perf_counter()
        with self.store.write():  # nested writes join this one: one commit for every worker
            self.workers = [self.store.worker("mock", f"worker-{n:05d}") for n in range(workers)]
        self.launch["workers_s"] = time.perf_counter() - started
        self._next = 0  # round-robin position of the bulk fill

    def reserve(self, worker_id: int, quota: Any) -> str:
        """One dispatch decision; its outcome ("assigned", "resumed" or the refusal reason)."""
        from crowdnb.errors import WorkerRefused
        from crowdnb.store import lifecycle

        try:
            _, resumed = lifecycle.reserve(self.store, self.run.id, worker_id, quota, {})
        except WorkerRefused as refused:
            return refused.reason
        return "resumed" if resumed else "assigned"

    def settle(self, target_done: int) -> None:
        """Complete the units held (as ``submit`` would), then assign and complete more up to ``target_done``."""
        from crowdnb.store.db import new_id, now

        run_id, stamp = self.run.id, now()
        with self.store.write() as conn:
            held = conn.execute(
                "SELECT id, unit_id, worker_id, task_id FROM agents WHERE task_run_id = ? AND status IN ('accepted', 'in_task')",
                (run_id,),
            ).fetchall()
            conn.executemany(
                "UPDATE agents SET status = 'completed', ended_at = ?, last_seen_at = ? WHERE id = ?",
                [(stamp, stamp, a["id"]) for a in held],
            )
            finished = [(a["id"], a["unit_id"], a["worker_id"], a["task_id"]) for a in held]
            done = conn.execute(
                "SELECT count(*) FROM units WHERE task_run_id = ? AND status IN ('assigned', 'completed')", (run_id,)
            ).fetchone()[0]
            fresh = conn.execute(
                "SELECT id, assignment_id, task_id FROM units WHERE task_run_id = ? AND status = 'launched' "
                "AND unit_index >= 0 ORDER BY id LIMIT ?",
                (run_id, max(target_done - done, 0)),
            ).fetchall()
            agents = [
                (new_id(), u["id"], self._worker(), u["assignment_id"], run_id, u["task_id"], stamp) for u in fresh
            ]
            finished += [(agent, unit, worker, task) for agent, unit, worker, _, _, task, _ in agents]
            conn.executemany(
                "INSERT INTO agents (id, unit_id, worker_id, assignment_id, task_run_id, task_id, status, external, "
                "started_at, last_seen_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, 'completed', '{}', ?7, ?7, ?7)",
                agents,
            )
            conn.executemany(
                "UPDATE units SET status = 'completed', worker_id = ?, agent_id = ?, updated_at = ? WHERE id = ?",
                [(worker, agent, stamp, unit) for agent, unit, worker, _ in finished],
            )
            rev = int(conn.execute("SELECT value FROM meta WHERE key = 'rev'").fetchone()[0])
            conn.executemany(
                "INSERT INTO submissions (id, client_id, unit_id, agent_id, worker_id, task_run_id, task_id, answers, "
                "files, meta, submitted_at, rev) VALUES (?, ?, ?, ?, ?, ?, ?, '{\"label\": \"pos\"}', '{}', '{}', ?, ?)",
                [
                    (new_id(), f"bulk-{agent}", unit, agent, worker, run_id, task, stamp, rev + n + 1)
                    for n, (agent, unit, worker, task) in enumerate(finished)
                ],
            )
            conn.execute("UPDATE meta SET value = ? WHERE key = 'rev'", (str(rev + len(finished)),))

    def _worker(self) -> int:
        """The next worker of the bulk fill, round robin (never twice in a row on one assignment)."""
        self._next += 1
        return self.workers[self._next % len(self.workers)]

    def plans(self, worker_id: int) -> dict[str, list[str]]:
        """EXPLAIN QUERY PLAN of the queries ``reserve`` runs (``PLANNED``, copied from crowdnb/lifecycle.py)."""
        plans = {}
        for name, sql in PLANNED.items():
            scope = self.run.task_id if sql.startswith("SELECT count") else self.run.id
            plans[name] = [str(r["detail"]) for r in self.store.query(f"EXPLAIN QUERY PLAN {sql}", (scope, worker_id))]
        return plans

    def stop(self) -> None:
        """Stop the run and close the database."""
        self.run.stop()
        self.store.close()


class Baseline:
    """The floor: one SELECT … LIMIT 1, UPDATE, INSERT per call in its own durable transaction."""

    def __init__(self, folder: Path, units: int) -> None:
        self.db = sqlite3.connect(folder / "baseline.db", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE units (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL, status TEXT NOT NULL, "
            "worker_id INTEGER, agent_id INTEGER, updated_at TEXT)"
        )
        self.db.execute("CREATE INDEX units_dispatch ON units (run_id, status, id)")
        self.db.execute("CREATE TABLE agents (id INTEGER PRIMARY KEY, unit_id INTEGER, worker_id INTEGER, at TEXT)")
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO units (run_id, status) VALUES (1, 'launched')", [()] * units)
        self.db.execute("COMMIT")
        self.commits: list[float] = []

    def settle(self, target_done: int) -> None:
        """Complete the units taken and the first ``target_done`` units."""
        self.db.execute("UPDATE units SET status = 'completed' WHERE status = 'assigned' OR id <= ?", (target_done,))

    def dispatch(self, worker: int) -> str:
        """One dispatch in one durable transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        found = self.db.execute("SELECT id FROM units WHERE run_id = 1 AND status = 'launched' ORDER BY id LIMIT 1")
        unit = found.fetchone()
        if unit is not None:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            agent = self.db.execute(
                "INSERT INTO agents (unit_id, worker_id, at) VALUES (?, ?, ?)", (unit[0], worker, stamp)
            ).lastrowid
            self.db.execute(
                "UPDATE units SET status = 'assigned', worker_id = ?, agent_id = ?, updated_at = ? WHERE id = ?",
                (worker, agent, stamp, unit[0]),
            )
        started = time.perf_counter()
        self.db.execute("COMMIT")
        self.commits.append((time.perf_counter() - started) * 1000)
        return "assigned" if unit else "no_work"


def passes(ours: Crowdnb, floor: Baseline, units: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """At each fill level, every worker calls reserve once, each call followed by one baseline dispatch."""
    from crowdnb.store.lifecycle import Quota

    workers, writer = len(ours.workers), ours.store._writer  # its commits are timed from outside
    checked = Quota(allowed_concurrent=2, maximum_units_per_worker=2 * max(units // workers, 1))
    lines, floors = [], []
    for level in LEVELS:
        print(f"… {level}", file=sys.stderr, flush=True)
        done = fills(units, workers)[level]
        ours.settle(done - (level == "exhausted"))
        floor.settle(done)
        quotas = {"none": Quota(), "concurrent=2, max=2×": checked}
        if level == "exhausted":  # one more worker holds the last unit, so the run is not completed
            ours.reserve(ours.store.worker("mock", "holder"), Quota())
            quotas = {"none": Quota(), "max=1 (refused)": Quota(maximum_units_per_worker=1)}
        samples = {name: Samples() for name in quotas}
        names, base = list(quotas), Samples()
        floor.commits = base.commit
        for n, worker in enumerate(ours.workers):
            name = names[n % len(names)]
            with clocked(writer, "_commit_if_last", samples[name].commit):
                samples[name].time(partial(ours.reserve, worker, quotas[name]))
            base.time(partial(floor.dispatch, n))
        common = {"level": level, "submitted_before": done}
        lines += [{"target": "crowdnb", **common, "quota": q, **s.figures()} for q, s in samples.items()]
        floors.append({"target": "baseline", **common, "quota": "—", **base.figures()})
    return lines, floors


def table(ours: list[dict[str, Any]], floor: list[dict[str, Any]]) -> str:
    """crowdnb per level and quota, with the baseline of the same level beside it."""
    by_level = {r["level"]: r for r in floor}
    sides = f"{'p50':>7}{'p99':>7}{'max':>7}{'cpu50':>7}{'commit50':>9}{'commit99':>9}{'own99':>7}"
    head = f"{'':<38}{'crowdnb':^53}  {'baseline':^53}"
    sub = f"{'fill level':<17}{'quotas':<21}{sides}  {sides}  {'p99 ratio':>9}  outcomes"
    lines = [head, sub, "-" * len(sub)]
    for r in ours:
        cells = []
        for side in (r, by_level[r["level"]]):
            ms, commit, own = side["wall_ms"], side["commit_ms"], side["own_ms"]["p99"]
            cells.append(
                f"{ms['p50']:>7.2f}{ms['p99']:>7.2f}{ms['max']:>7.1f}{side['cpu_ms_p50']:>7.2f}"
                f"{commit['p50']:>9.2f}{commit['p99']:>9.2f}{'—' if own is None else f'{own:.2f}':>7}"
            )
        ratio = r["wall_ms"]["p99"] / by_level[r["level"]]["wall_ms"]["p99"]
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
        lines.append(f"{r['level']:<17}{r['quota']:<21}{cells[0]}  {cells[1]}  {ratio:>8.1f}×  {outcomes}")
    return "\n".join(lines)


def report(settings: dict[str, Any], ours: list[dict[str, Any]], floor: list[dict[str, Any]]) -> str:
    """The whole printed report."""
    launch = settings["launch"]
    worst = max(ours, key=lambda r: r["wall_ms"]["p99"])
    met = worst["wall_ms"]["p99"] < TARGET_P99_MS
    lines = [
        f"dispatch scale: {launch['units']:,} units ({launch['rows']:,} rows × {settings['units_per_assignment']}), "
        f"{settings['workers']:,} workers, {settings['workers'] // 2:,} calls per line; {settings['cpus']} CPUs, "
        f"load average {settings['load_before']:.1f} → {settings['load_after']:.1f}; one durable SQLite insert "
        f"here takes {settings['durable_insert_ms']:.2f} ms (p50)",
        f"launch: Task(data=…) {launch['task_s']:.2f} s; launch() {launch['launch_s']:.2f} s, of which "
        f"add_assignments {launch['add_assignments_s']:.2f} s and launch_units {launch['launch_units_s']:.2f} s; "
        f"{settings['workers']:,} × store.worker() {launch['workers_s']:.2f} s",
        "ms per lifecycle.reserve call (cpu50 = the calling thread's CPU; commit = the COMMIT alone; own99 = p99 of "
        "call − commit); baseline = plain table, BEGIN IMMEDIATE/SELECT/INSERT/UPDATE/COMMIT, same pragmas, interleaved",
        "",
        table(ours, floor),
        "",
        f"target: dispatch p99 < {TARGET_P99_MS:g} ms — worst crowdnb p99 {worst['wall_ms']['p99']:.2f} ms "
        f"({worst['level']}, quotas {worst['quota']}): {'met' if met else 'NOT met'}",
        "",
        "query plans of reserve (at the end of the run):",
    ]
    for name, steps in settings["plans"].items():
        lines += [f"  {name}:", *(f"    {step}" for step in steps)]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=None, help="units in the run (default 100,000; 10,000 quick)")
    parser.add_argument("--workers", type=int, default=None, help="distinct workers (default 10,000; 1,000 quick)")
    parser.add_argument("--units-per-assignment", type=int, default=1, help="units per input row (1 or 3 …)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    args.units = args.units or (10_000 if args.quick else 100_000)
    args.workers = args.workers or (1_000 if args.quick else 10_000)
    if args.units_per_assignment < 1 or args.workers < 2 * args.units_per_assignment or args.units < 2 * args.workers:
        parser.error("need units ≥ 2 × workers and workers ≥ 2 × units-per-assignment ≥ 2")
    return args


def main(argv: list[str] | None = None) -> None:
    """Launch, run every pass on crowdnb and the baseline, print the table, write the JSON."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crowdnb-dispatch-scale-") as tmp:
        settings: dict[str, Any] = {
            "workers": args.workers,
            "units_per_assignment": args.units_per_assignment,
            "cpus": os.cpu_count(),
            "durable_insert_ms": durable_insert_ms(Path(tmp)),
            "load_before": os.getloadavg()[0],
        }
        print(f"… launching {args.units:,} units", file=sys.stderr, flush=True)
        ours = Crowdnb(Path(tmp) / "project", args.units, args.units_per_assignment, args.workers)
        try:
            settings["launch"] = ours.launch
            floor = Baseline(Path(tmp), ours.launch["units"])
            lines, floors = passes(ours, floor, ours.launch["units"])
            settings["plans"] = ours.plans(ours.workers[0])
            floor.db.close()
        finally:
            ours.stop()
        settings["load_after"] = os.getloadavg()[0]
    print(report(settings, lines, floors), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {"environment": environment(), "settings": settings, "target_p99_ms": TARGET_P99_MS}
    args.output.write_text(json.dumps({**document, "crowdnb": lines, "baseline": floors}, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
