"""Load benchmark of the in-kernel router, side by side with a bare Flask + SQLite baseline.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/router_load.py                 # 10, 100 and 200 workers, 1500 units each
    .venv/bin/python benchmarks/router_load.py --quick         # smoke run: 300 units per scenario
    .venv/bin/python benchmarks/router_load.py --workers 50,400 --units 5000 --no-heartbeats --poll-ms 200

For each worker count N, two targets are served in turn from *this* process, the way a notebook kernel
serves a run (werkzeug ``make_server(threaded=True)`` in a background thread):

* baseline: a bare Flask app; GET / hands out a small JSON unit, POST /submit does one durable SQLite
  insert (WAL, synchronous=FULL, one connection behind a lock), WS /ws answers each heartbeat;
* crowdnb: a real run on the mock crowd in a fresh temporary project (``Task(...).launch()``).

A separate, spawned load process runs N simulated workers with no think time. Each loops: GET the unit
(JSON) → open that unit's websocket, send one heartbeat, wait for the status reply → POST the answers →
close the websocket in the background (as a browser leaving the page would), until refused with no work.
``--no-heartbeats`` drops the websocket. The load process is stdlib asyncio speaking HTTP/1.1 keep-alive
and RFC 6455 frames over raw sockets, so it stays far cheaper than the router (its CPU is reported).

Figures per scenario:

* completed submissions/s over the load's wall time (first request to last answer);
* p50/p99 of the GET (dispatch), of the heartbeat (websocket handshake + one round trip) and of the POST;
* errors (non-200 answers, dropped connections, timeouts) and the kernel's count of connections that
  overflowed a listen backlog meanwhile (each costs the client a SYN retry of 1 s or more, so it shows
  in p99, not in errors);
* the router process's peak RSS (VmHWM, reset through /proc/self/clear_refs before each scenario) and its
  growth during the scenario;
* router-process CPU per unit, split into serving and the ``run.df`` poller, and the load process's CPU;
* submit→frame lag: a thread of this process polls ``run.df`` every ~20 ms and notes when each unit first
  appears; lag = that moment minus the ``time.time()`` at which the load process got the 200 for it (same
  machine, same clock, so it can be ≤ 0). For the baseline the thread polls the table instead.

The table goes to stdout, everything to benchmarks/results/router_load.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from loadgen import LoadConfig, load_process
from machine import durable_insert_ms, environment, listen_overflows, reset_peak_rss, status_kb
from report import PRIOR_ART, TARGETS, report, spread

if TYPE_CHECKING:
    from flask import Flask

# Flask and crowdnb are imported inside the router-side code only: the load process is spawned and
# re-imports this module, and it should not pay for pandas or Flask.

RESULTS = Path(__file__).resolve().parent / "results" / "router_load.json"
DEFAULT_WORKERS = (10, 100, 200)
DEFAULT_UNITS, QUICK_UNITS = 1500, 300
DEFAULT_POLL_MS = 20.0  # how often the kernel-side thread reads run.df
LAG_GRACE_SECONDS = 5.0  # how long to wait for acknowledged units to show up in the frame
SCENARIO_TIMEOUT = 600.0

FORM = """
<p>{{ text }}</p>
<label><input type="radio" name="label" value="pos"> positive</label>
<label><input type="radio" name="label" value="neg"> negative</label>
<input type="text" name="why">
"""
BARE_FIELDS = [
    {"name": "label", "kind": "radio", "options": ["pos", "neg"], "required": False, "multiple": False},
    {"name": "why", "kind": "text", "options": [], "required": False, "multiple": False},
]


# The router process: targets, the frame watcher, memory.
# =============================================================================================


class Target(Protocol):
    """Something served from this process that the load generator can work on."""

    name: str
    url: str

    def new_keys(self) -> list[int]:
        """Items that became visible to the kernel since the last call."""
        ...

    def stop(self) -> None:
        """Stop serving and release the port."""
        ...


def input_rows(units: int) -> list[dict[str, Any]]:
    """The units' input data; ``item`` identifies a unit on both sides of the process boundary."""
    return [{"item": i, "text": f"sentence number {i}"} for i in range(units)]


class CrowdnbTarget:
    """A crowdnb run on the mock crowd, served by the local architect, in its own project folder."""

    name = "crowdnb"

    def __init__(self, folder: Path, units: int, workers: int) -> None:
        import crowdnb as cn

        self.project = cn.open(folder)
        task = cn.Task(
            f"router-load-{workers}",
            title="Router load",
            reward=0.0,
            html=FORM,
            data=input_rows(units),
            project=self.project,
        )
        self.run = task.launch(provider="mock", architect="local")
        self.url = self.run.url
        self._seen = 0

    def new_keys(self) -> list[int]:
        """New rows of ``run.df`` (rows are only ever appended, so the tail is what is new)."""
        frame = self.run.df
        if len(frame) <= self._seen:
            return []
        fresh = [int(item) for item in frame["item"].iloc[self._seen :]]
        self._seen = len(frame)
        return fresh

    def stop(self) -> None:
        """Stop the run cleanly and close the project's database."""
        self.run.stop()
        self.project.store.close()


class BaselineTarget:
    """A bare Flask app with the same server set-up: small JSON GET, one durable insert per POST."""

    name = "baseline"

    def __init__(self, folder: Path, units: int) -> None:
        from werkzeug.serving import make_server

        folder.mkdir(parents=True, exist_ok=True)
        self._path = folder / "baseline.db"
        self._db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE submissions (id INTEGER PRIMARY KEY, client_id TEXT, item INTEGER, answers TEXT, at REAL)"
        )
        self._db_lock, self._items_lock = threading.Lock(), threading.Lock()
        self._items: Iterator[int] = iter(range(units))
        self._reader: sqlite3.Connection | None = None
        self._last_id = 0
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/"

    def _app(self) -> Flask:
        from flask import Flask, jsonify, request
        from flask_sock import Sock

        app = Flask("router_load.baseline")
        app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
        sock = Sock(app)

        @app.get("/")
        def enter() -> Any:
            with self._items_lock:
                item = next(self._items, None)
            if item is None:
                return jsonify({"status": "refused", "reason": "no_work", "message": "No work left."}), 410
            unit = {"item": item, "text": f"sentence number {item}"}
            return jsonify(
                {
                    "status": "assigned",
                    "token": str(item),
                    "submission_id": uuid.uuid4().hex,
                    "input": unit,
                    "fields": BARE_FIELDS,
                }
            )

        @app.post("/submit")
        def submit() -> Any:
            body = request.get_json()
            row = (str(body["submission_id"]), int(body["token"]), json.dumps(body["answers"]), time.time())
            with self._db_lock:
                self._db.execute("INSERT INTO submissions (client_id, item, answers, at) VALUES (?, ?, ?, ?)", row)
            return jsonify({"status": "saved"})

        @sock.route("/ws")
        def heartbeat(ws: Any) -> None:
            while ws.receive() is not None:
                ws.send(json.dumps({"type": "status", "status": "in_task"}))

        return app

    def new_keys(self) -> list[int]:
        """Rows inserted since the last call, read on a connection of the polling thread."""
        if self._reader is None:
            self._reader = sqlite3.connect(self._path, check_same_thread=False)
        rows = self._reader.execute(
            "SELECT id, item FROM submissions WHERE id > ? ORDER BY id", (self._last_id,)
        ).fetchall()
        if rows:
            self._last_id = rows[-1][0]
        return [item for _, item in rows]

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._reader is not None:
            self._reader.close()
        self._db.close()


class FrameWatcher:
    """A thread of the kernel that polls a target every ~20 ms and notes when each item first appears."""

    def __init__(self, poll: Callable[[], list[int]], interval: float) -> None:
        self._poll, self._interval = poll, interval
        self._lock = threading.Lock()
        self._seen: dict[int, float] = {}
        self.polls, self.poll_s, self.cpu_s = 0, 0.0, 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="router-load-watcher", daemon=True)

    def start(self) -> None:
        """Start polling."""
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            started, cpu = time.perf_counter(), time.thread_time()
            try:
                keys = self._poll()
            except Exception as exc:  # report, keep watching: a failing poll is itself a finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            seen_at = time.time()
            self.polls += 1
            self.poll_s += time.perf_counter() - started
            self.cpu_s += time.thread_time() - cpu
            with self._lock:
                for key in keys:
                    self._seen.setdefault(key, seen_at)

    def seen(self) -> dict[int, float]:
        """A copy of item -> first time.time() it was visible."""
        with self._lock:
            return dict(self._seen)

    def wait_for(self, keys: Collection[int], timeout: float) -> None:
        """Block until every key was seen or ``timeout`` seconds passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if all(k in self._seen for k in keys):
                    return
            time.sleep(self._interval)

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass(frozen=True)
class Scenario:
    """One measurement: a target kind served here, driven by ``workers`` simulated workers."""

    kind: str  # "crowdnb" or "baseline"
    workers: int
    units: int
    heartbeats: bool
    poll_s: float


def drive_from_another_process(target: Target, scenario: Scenario) -> dict[str, Any]:
    """Spawn the load process against ``target`` and measure this process while it runs."""
    ctx = mp.get_context("spawn")  # never fork a process that is serving from threads
    ours, theirs = ctx.Pipe()
    config = LoadConfig(target.url, scenario.workers, scenario.heartbeats)
    process = ctx.Process(target=load_process, args=(config, theirs), name="router-load-generator")
    process.start()
    watcher = FrameWatcher(target.new_keys, scenario.poll_s)
    try:
        if not ours.poll(60):
            raise RuntimeError("the load process did not start within 60 s")
        ours.recv()
        reset_peak_rss()
        start_kb, overflows = status_kb("VmRSS"), listen_overflows()
        watcher.start()
        cpu = time.process_time()
        ours.send("go")
        if not ours.poll(SCENARIO_TIMEOUT):
            raise RuntimeError(f"the load did not finish within {SCENARIO_TIMEOUT:.0f} s")
        try:
            load: dict[str, Any] = ours.recv()
        except EOFError as exc:
            raise RuntimeError("the load process died (its traceback is above)") from exc
        router = {
            "cpu_s": time.process_time() - cpu,
            "peak_kb": status_kb("VmHWM"),
            "start_kb": start_kb,
            "overflows": listen_overflows() - overflows,
        }
        watcher.wait_for(load["acked"].keys(), LAG_GRACE_SECONDS)
    finally:
        watcher.stop()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    return figures(scenario, load, watcher, router)


def figures(
    scenario: Scenario, load: dict[str, Any], watcher: FrameWatcher, router: dict[str, float]
) -> dict[str, Any]:
    """The per-scenario summary that is printed and written to JSON."""
    seen = watcher.seen()
    acked: dict[int, float] = load["acked"]
    lags = [(seen[item] - at) * 1000 for item, at in acked.items() if item in seen]
    wall, done = load["wall_s"], load["submitted"]
    per_unit = 1000 / done if done else None
    return {
        **asdict(scenario),
        "target": scenario.kind,
        "submitted": done,
        "wall_s": wall,
        "throughput": done / wall if wall else 0.0,
        "get_ms": spread(load["get_ms"]),
        "heartbeat_ms": spread(load["heartbeat_ms"]),
        "submit_ms": spread(load["submit_ms"]),
        "lag_ms": spread(lags),
        "lag_missing": len(acked) - len(lags),
        "errors": len(load["errors"]) + len(watcher.errors),
        "error_samples": sorted(set(load["errors"] + watcher.errors))[:5],
        "listen_overflows": router["overflows"],
        "peak_rss_mb": router["peak_kb"] / 1024,
        "rss_growth_mb": (router["peak_kb"] - router["start_kb"]) / 1024,
        "router_cpu_ms_per_unit": router["cpu_s"] * per_unit if per_unit else None,
        "serving_cpu_ms_per_unit": (router["cpu_s"] - watcher.cpu_s) * per_unit if per_unit else None,
        "poll_cpu_percent": 100 * watcher.cpu_s / wall if wall else None,
        "poll_ms": 1000 * watcher.poll_s / watcher.polls if watcher.polls else None,
        "load_cpu_percent": 100 * load["cpu_s"] / wall if wall else None,
    }


def run_scenario(scenario: Scenario, folder: Path) -> dict[str, Any]:
    """Serve one target, drive it to the end, stop it; returns its figures."""
    if scenario.kind == "crowdnb":
        target: Target = CrowdnbTarget(folder, scenario.units, scenario.workers)
    else:
        target = BaselineTarget(folder, scenario.units)
    try:
        return drive_from_another_process(target, scenario)
    finally:
        target.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default=",".join(map(str, DEFAULT_WORKERS)), help="comma-separated worker counts")
    parser.add_argument(
        "--units",
        type=int,
        default=None,
        help=f"units per scenario (default {DEFAULT_UNITS}; {QUICK_UNITS} with --quick)",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--no-heartbeats", dest="heartbeats", action="store_false", help="skip the websocket per unit")
    parser.add_argument("--poll-ms", type=float, default=DEFAULT_POLL_MS, help="how often the kernel reads run.df")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in str(args.workers).split(",") if n.strip()]
    args.units = args.units or (QUICK_UNITS if args.quick else DEFAULT_UNITS)
    if not args.workers or min(args.workers) < 1 or args.units < 1 or args.poll_ms <= 0:
        parser.error("--workers, --units and --poll-ms must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run every scenario (baseline then crowdnb, per worker count), print the table, write the JSON."""
    args = parse_args(argv)
    import crowdnb  # noqa: F401  # imported up front, as in a kernel, so every scenario starts from the same RSS

    pairs = []
    with tempfile.TemporaryDirectory(prefix="crowdnb-router-load-") as tmp:
        settings = {
            "units": args.units,
            "heartbeats": args.heartbeats,
            "poll_ms": args.poll_ms,
            "cpus": os.cpu_count(),
            "durable_insert_ms": durable_insert_ms(Path(tmp)),
        }
        for workers in args.workers:
            print(f"… {workers} workers: baseline, then crowdnb", file=sys.stderr, flush=True)
            results = {}
            for kind in ("baseline", "crowdnb"):
                scenario = Scenario(kind, workers, args.units, args.heartbeats, args.poll_ms / 1000)
                results[kind] = run_scenario(scenario, Path(tmp) / f"{kind}-{workers}")
            pairs.append((results["crowdnb"], results["baseline"]))
    print(report(pairs, settings), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": environment(),
        "settings": settings,
        "targets": TARGETS,
        "prior_art": PRIOR_ART,
        "scenarios": [s for pair in pairs for s in pair],
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
