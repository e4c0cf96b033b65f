"""Reading and exporting 1,000,000 submissions: ``cn.open``, ``run.df`` and ``run.export`` at scale.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/export_scale.py                  # 1,000,000 submissions of 10,000 workers
    .venv/bin/python benchmarks/export_scale.py --quick          # smoke run: 100,000 submissions
    .venv/bin/python benchmarks/export_scale.py --rows 300000 --dir /var/tmp

Set-up (timed, but not a crowdnb figure): a project with one stopped run of the mock crowd whose every unit
is submitted. The task and run are made through the store (``upsert_task``, ``requester``, ``create_run``,
as ``Task.launch`` does, without serving), then the rows are bulk-inserted with sqlite-utils ``insert_all``
straight into the store's tables, in the shape ``lifecycle.reserve`` + ``lifecycle.submit`` write them (an
assignment with its JSON input, a completed unit, a completed agent, a submission with JSON answers and its
revision; the workers; the revision counter), instead of 1,000,000 submissions through HTTP.

Then, in a fresh subprocess each, as a new kernel would:

* crowdnb: ``import crowdnb``; ``cn.open(path)`` (time and RSS); ``run.df`` the first time (a full load,
  split into the bulk build of ``bulk_frame.FrameBuilder`` (JSON parsed, columns made and typed), timed
  from outside, and the rest: SQL fetch, a batch of rows at a time), then again with nothing new; ``run.export("x.parquet")`` and ``run.export("x.csv")``
  (time, file size); then 1,000 more submissions inserted the same way through the store's writer and the
  incremental ``run.df`` refresh; the peak RSS.
* baseline: a plain SQLite table holding exactly the frame's columns (same values), ``pd.read_sql`` of it
  (timestamps parsed as UTC), ``to_parquet`` and ``to_csv`` of that frame, then 1,000 more rows and a
  ``read_sql`` of the new rows + ``pd.concat``.

The table goes to stdout, everything to benchmarks/results/export_scale.json. The temporary folder (up to ≈ 2.5 kB
per submission) is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dispatch_scale import clocked
from machine import environment, status_kb

if TYPE_CHECKING:
    import sqlite_utils

# sqlite-utils imports pandas: it is imported where it is used, so that the children time their own imports

RESULTS = Path(__file__).resolve().parent / "results" / "export_scale.json"
TARGET_PARQUET_S = 10.0
FORM = '<p>{{ text }}</p><input type="radio" name="label" value="pos"><input type="text" name="why">'
FLAT = (  # the columns of run.df for this task, in its order
    *("run_id", "unit_id", "assignment_id", "unit_index", "row_index", "worker", "status", "started_at"),
    *("submitted_at", "duration_s", "reward", "item", "text", "label", "why"),
)
BYTES_PER_ROW = 2500  # disk needed per submission, project + baseline + exports, with a margin


def stamp(seconds: float) -> str:
    """A time in the store's format (``store.now``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Plan:
    """The ids and times of generated row ``i``: a pure function of ``i``, so the child adds more alike."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.run, self.task, self.base, self.t0 = raw["run_id"], raw["task_id"], raw["base"], raw["t0"]
        self.workers, self.reward = raw["workers"], raw["reward"]

    def ids(self, i: int) -> tuple[int, int, int, int]:
        """Assignment, unit, agent and submission ids (time-ordered like ``store.new_id``)."""
        return self.base + 4 * i, self.base + 4 * i + 1, self.base + 4 * i + 2, self.base + 4 * i + 3

    def worker(self, i: int) -> tuple[int, str]:
        """The id and name of the worker of row ``i``."""
        k = i % self.workers
        return self.base - 1 - k, f"worker-{k:05d}"

    def times(self, i: int) -> tuple[float, float]:
        """When row ``i`` was started and submitted (epoch seconds)."""
        started = self.t0 + i * 0.01
        return started, started + 5 + i % 60

    @staticmethod
    def inputs(i: int) -> dict[str, Any]:
        return {"item": i, "text": f"sentence number {i}"}

    @staticmethod
    def answers(i: int) -> dict[str, Any]:
        return {"label": ("pos", "neg")[i % 2], "why": f"reason {i % 97}"}


def insert_submissions(db: sqlite_utils.Database, plan: Plan, start: int, stop: int) -> None:
    """Rows ``start``…``stop - 1`` as reserve + submit store them, then the revision counter (no transaction)."""

    def rows(table: str) -> Iterator[dict[str, Any]]:
        for i in range(start, stop):
            aid, uid, gid, sid = plan.ids(i)
            wid, _ = plan.worker(i)
            began, ended = plan.times(i)
            done = stamp(ended)
            ours = {"task_run_id": plan.run, "task_id": plan.task}
            if table == "assignments":
                row = {
                    "id": aid,
                    "row_index": i,
                    "data": json.dumps(plan.inputs(i)),
                    "created_at": done,
                    "kind": "data",
                }
            elif table == "units":
                row = {
                    "id": uid,
                    "assignment_id": aid,
                    "unit_index": 0,
                    "status": "completed",
                    "pay_amount": plan.reward,
                }
                row.update(worker_id=wid, agent_id=gid, created_at=done, updated_at=done)
            elif table == "agents":
                row = {"id": gid, "unit_id": uid, "worker_id": wid, "assignment_id": aid, "status": "completed"}
                row.update(external="{}", started_at=stamp(began), last_seen_at=done, ended_at=done)
            else:
                row = {"id": sid, "client_id": f"bulk-{i:010d}", "unit_id": uid, "agent_id": gid, "worker_id": wid}
                row.update(answers=json.dumps(plan.answers(i)), files="{}", meta="{}", submitted_at=done, rev=i + 1)
            yield {**row, **ours}

    for table in ("assignments", "units", "agents", "submissions"):
        db.table(table).insert_all(rows(table), batch_size=1000)
    db.execute("UPDATE meta SET value = ? WHERE key = 'rev'", (str(stop),))
    db.execute("UPDATE task_runs SET rows_loaded = ? WHERE id = ?", (stop, plan.run))


def flat_rows(plan: Plan, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """The same rows as ``run.df`` shows them, ``seq`` first, for the baseline's plain table."""
    for i in range(start, stop):
        (aid, uid, _, _), (began, ended) = plan.ids(i), plan.times(i)
        inputs, answers, worker = plan.inputs(i), plan.answers(i), plan.worker(i)[1]
        meta = (i + 1, plan.run, uid, aid, 0, i, worker, "completed", stamp(began), stamp(ended), ended - began)
        yield (*meta, plan.reward, inputs["item"], inputs["text"], answers["label"], answers["why"])


def insert_flat(db: sqlite3.Connection, plan: Plan, start: int, stop: int) -> None:
    """Append rows to the baseline's table."""
    db.executemany(f"INSERT INTO flat VALUES ({', '.join('?' * (len(FLAT) + 1))})", flat_rows(plan, start, stop))


def generate(folder: Path, rows: int, workers: int) -> tuple[Plan, dict[str, float]]:
    """The project (one run, ``rows`` submitted units) and the baseline's table; set-up seconds."""
    import sqlite_utils

    import crowdnb as cn
    from crowdnb.store.db import new_id

    times: dict[str, float] = {}
    started = time.perf_counter()
    project = cn.open(folder / "project", create=True)
    task = cn.Task("export-scale", title="Export", reward=0.05, html=FORM, data=[Plan.inputs(0)], project=project)
    store, spec = project.store, task.spec
    task_id = store.upsert_task(spec.name, spec.to_dict())
    config = {
        "task": spec.to_dict(),
        "provider": {"name": "mock", "options": {}},
        "architect": {"name": "local", "options": {}},
    }
    run_id = store.create_run(task_id, store.requester("mock", "default"), "mock", "local", config, "secret")
    store.update_run(run_id, status="stopped", stopped_at=stamp(time.time()), data_exhausted=1)
    store.close()
    raw = {"run_id": run_id, "task_id": task_id, "base": new_id(), "t0": float(int(time.time()) - 86400)}
    plan = Plan({**raw, "workers": workers, "reward": spec.reward, "rows": rows})
    (folder / "plan.json").write_text(json.dumps(plan.raw))
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # set-up only: the store itself writes durably
    conn.execute("PRAGMA cache_size=-1000000")
    db = sqlite_utils.Database(conn)
    when = stamp(plan.t0)
    names = [plan.worker(k) for k in range(workers)]
    db.table("workers").insert_all({"id": w, "provider": "mock", "name": n, "created_at": when} for w, n in names)
    conn.execute("BEGIN")
    insert_submissions(db, plan, 0, rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    times["project_s"] = time.perf_counter() - started
    times["project_mb"] = sum(f.stat().st_size for f in (folder / "project").iterdir() if f.is_file()) / 1e6
    started = time.perf_counter()
    flat = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    flat.execute("PRAGMA journal_mode=WAL")
    flat.execute(f"CREATE TABLE flat (seq INTEGER PRIMARY KEY, {', '.join(FLAT)})")
    flat.execute("BEGIN")
    insert_flat(flat, plan, 0, rows)
    flat.execute("COMMIT")
    flat.close()
    times["baseline_s"] = time.perf_counter() - started
    times["baseline_mb"] = (folder / "baseline.db").stat().st_size / 1e6
    return plan, times


def rss_mb(name: str = "VmRSS") -> float:
    """This process's resident (or, with ``VmHWM``, peak) memory in MB."""
    return status_kb(name) / 1024


def since(started: float) -> float:
    """Seconds since a ``time.perf_counter()`` reading."""
    return time.perf_counter() - started


def child_crowdnb(folder: Path, plan: Plan, rows: int, extra: int) -> dict[str, Any]:
    """What a new kernel does with the project: open, frame, export, then a refresh after more submissions."""
    out: dict[str, Any] = {}
    started = time.perf_counter()
    import crowdnb as cn
    from crowdnb.frame.bulk import FrameBuilder

    out["import_s"], out["rss_import_mb"] = since(started), rss_mb()
    started = time.perf_counter()
    project = cn.open(folder / "project")
    out["open_s"], out["rss_open_mb"] = since(started), rss_mb()
    run = project.run(plan.run)
    build_ms: list[float] = []
    started = time.perf_counter()
    with clocked(FrameBuilder, "add", build_ms), clocked(FrameBuilder, "frame", build_ms):
        frame = run.df
    out["load_s"], out["rss_load_mb"], out["rows"] = since(started), rss_mb(), len(frame)
    out["load_build_s"] = sum(build_ms) / 1000
    out["load_query_s"] = out["load_s"] - out["load_build_s"]
    started = time.perf_counter()
    frame = run.df
    out["refresh_idle_s"] = since(started)
    for suffix in ("parquet", "csv"):
        started = time.perf_counter()
        path = run.export(folder / f"crowdnb.{suffix}")
        out[f"{suffix}_s"], out[f"{suffix}_mb"] = since(started), path.stat().st_size / 1e6
    out["cold_parquet_s"] = out["open_s"] + out["load_s"] + out["parquet_s"]
    import sqlite_utils

    started = time.perf_counter()
    with project.store.write() as conn:
        insert_submissions(sqlite_utils.Database(conn), plan, rows, rows + extra)
    out["insert_extra_s"] = since(started)
    started = time.perf_counter()
    frame = run.df
    out["refresh_s"], out["rows_after"] = since(started), len(frame)
    out["peak_rss_mb"] = rss_mb("VmHWM")
    project.store.close()
    return out


def child_baseline(folder: Path, plan: Plan, rows: int, extra: int) -> dict[str, Any]:
    """The same with plain pandas on the plain table."""
    out: dict[str, Any] = {}
    started = time.perf_counter()
    import pandas as pd

    out["import_s"], out["rss_import_mb"] = since(started), rss_mb()
    started = time.perf_counter()
    db = sqlite3.connect(folder / "baseline.db", isolation_level=None)
    out["open_s"], out["rss_open_mb"] = since(started), rss_mb()
    dates = {c: {"utc": True, "format": "ISO8601"} for c in ("started_at", "submitted_at")}
    columns = ", ".join(FLAT)
    started = time.perf_counter()
    frame = pd.read_sql(f"SELECT {columns} FROM flat ORDER BY seq", db, parse_dates=dates)
    out["load_s"], out["rss_load_mb"], out["rows"] = since(started), rss_mb(), len(frame)
    started = time.perf_counter()
    frame.to_parquet(folder / "baseline.parquet", index=False)
    out["parquet_s"], out["parquet_mb"] = since(started), (folder / "baseline.parquet").stat().st_size / 1e6
    started = time.perf_counter()
    frame.to_csv(folder / "baseline.csv", index=False)
    out["csv_s"], out["csv_mb"] = since(started), (folder / "baseline.csv").stat().st_size / 1e6
    out["cold_parquet_s"] = out["open_s"] + out["load_s"] + out["parquet_s"]
    started = time.perf_counter()
    db.execute("BEGIN IMMEDIATE")
    insert_flat(db, plan, rows, rows + extra)
    db.execute("COMMIT")
    out["insert_extra_s"] = since(started)
    started = time.perf_counter()
    fresh = pd.read_sql(f"SELECT {columns} FROM flat WHERE seq > ? ORDER BY seq", db, params=(rows,), parse_dates=dates)
    frame = pd.concat([frame, fresh], ignore_index=True)
    out["refresh_s"], out["rows_after"] = since(started), len(frame)
    out["peak_rss_mb"] = rss_mb("VmHWM")
    db.close()
    return out


def measure(kind: str, folder: Path, rows: int, extra: int) -> dict[str, Any]:
    """Run one child in a fresh interpreter; its figures."""
    # the set-up's gigabyte of dirty pages is written back first: billed to whichever side ran next, the
    # writeback made a 36 MB Parquet export wait 6-10 s behind it
    os.sync()
    command = [sys.executable, __file__, "--child", kind, "--dir", str(folder), "--rows", str(rows)]
    done = subprocess.run([*command, "--extra", str(extra)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} process failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


METRICS: list[tuple[str, str, float, str]] = [  # label, key, scale, format
    ("import (s)", "import_s", 1, "{:.2f}"),
    ("open (ms)", "open_s", 1000, "{:.1f}"),
    ("RSS after open (MB)", "rss_open_mb", 1, "{:,.0f}"),
    ("full load: run.df / read_sql (s)", "load_s", 1, "{:.2f}"),
    ("  of which SQL fetch (s)", "load_query_s", 1, "{:.2f}"),
    ("  of which JSON → columns (s)", "load_build_s", 1, "{:.2f}"),
    ("RSS after load (MB)", "rss_load_mb", 1, "{:,.0f}"),
    ("refresh, nothing new (ms)", "refresh_idle_s", 1000, "{:.1f}"),
    ("export Parquet (s)", "parquet_s", 1, "{:.2f}"),
    ("  Parquet size (MB)", "parquet_mb", 1, "{:.1f}"),
    ("export CSV (s)", "csv_s", 1, "{:.2f}"),
    ("  CSV size (MB)", "csv_mb", 1, "{:.1f}"),
    ("cold open→frame→Parquet (s)", "cold_parquet_s", 1, "{:.2f}"),
    ("insert more rows, writer (ms)", "insert_extra_s", 1000, "{:.0f}"),
    ("incremental refresh (ms)", "refresh_s", 1000, "{:.1f}"),
    ("rows after refresh", "rows_after", 1, "{:,.0f}"),
    ("peak RSS (MB)", "peak_rss_mb", 1, "{:,.0f}"),
]


def report(settings: dict[str, Any], ours: dict[str, Any], base: dict[str, Any]) -> str:
    """The printed table and the target."""
    setup = settings["setup"]
    lines = [
        f"export scale: {settings['rows']:,} submissions of {settings['workers']:,} workers, then {settings['extra']:,} "
        f"more; {settings['cpus']} CPUs, load average {settings['load_before']:.1f} → {settings['load_after']:.1f}",
        f"set-up (bulk insert, not a crowdnb figure): project {setup['project_s']:.1f} s, {setup['project_mb']:,.0f} MB; "
        f"baseline table {setup['baseline_s']:.1f} s, {setup['baseline_mb']:,.0f} MB",
        "each side in a fresh process; baseline = pd.read_sql of a plain table of the frame's columns + to_parquet/to_csv",
        "",
        f"{'metric':<34}{'crowdnb':>10}{'baseline':>10}{'ratio':>10}",
        "-" * 64,
    ]
    for label, key, scale, fmt in METRICS:
        label = label.replace("more rows", f"{settings['extra']:,} more")
        cells = [fmt.format(side[key] * scale) if key in side else "—" for side in (ours, base)]
        ratio = f"{ours[key] / base[key]:,.2f}×" if key in base and base[key] and "rows" not in key else "—"
        lines.append(f"{label:<34}{cells[0]:>10}{cells[1]:>10}{ratio:>10}")
    met = ours["cold_parquet_s"] < TARGET_PARQUET_S
    lines += [
        "",
        f"target: {settings['rows']:,} rows to Parquet < {TARGET_PARQUET_S:g} s — cold (cn.open → run.df → export) "
        f"{ours['cold_parquet_s']:.1f} s: {'met' if met else 'NOT met'}; export alone {ours['parquet_s']:.1f} s",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="submissions (default 1,000,000; 100,000 quick)")
    parser.add_argument("--workers", type=int, default=None, help="distinct workers (default 10,000; 1,000 quick)")
    parser.add_argument("--extra", type=int, default=1000, help="submissions added before the incremental refresh")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary folder goes (default: $TMPDIR)")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--child", choices=("crowdnb", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rows = args.rows or (100_000 if args.quick else 1_000_000)
    args.workers = args.workers or (1_000 if args.quick else 10_000)
    if args.rows < 1 or args.workers < 1 or args.extra < 1:
        parser.error("--rows, --workers and --extra must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    """Generate, measure both sides in fresh processes, print the table, write the JSON, delete the folder."""
    args = parse_args(argv)
    if args.child:  # inside a fresh interpreter: measure one side, print its figures as JSON
        plan = Plan(json.loads((args.dir / "plan.json").read_text()))
        child = child_crowdnb if args.child == "crowdnb" else child_baseline
        print(json.dumps(child(args.dir, plan, args.rows, args.extra)))
        return
    root = args.dir or Path(tempfile.gettempdir())
    free, need = shutil.disk_usage(root).free, args.rows * BYTES_PER_ROW
    if free < need:
        sys.exit(f"{root} has {free / 1e9:.1f} GB free; this run needs about {need / 1e9:.1f} GB (see --dir)")
    settings: dict[str, Any] = {"rows": args.rows, "workers": args.workers, "extra": args.extra}
    settings.update(cpus=os.cpu_count(), load_before=os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="crowdnb-export-scale-", dir=root) as tmp:
        print(f"… generating {args.rows:,} submissions in {tmp}", file=sys.stderr, flush=True)
        _, settings["setup"] = generate(Path(tmp), args.rows, args.workers)
        results = {}
        for kind in ("crowdnb", "baseline"):
            print(f"… {kind}", file=sys.stderr, flush=True)
            results[kind] = measure(kind, Path(tmp), args.rows, args.extra)
    settings["load_after"] = os.getloadavg()[0]
    print(report(settings, results["crowdnb"], results["baseline"]), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {"environment": environment(), "settings": settings, "target_parquet_s": TARGET_PARQUET_S, **results}
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
