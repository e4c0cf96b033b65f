"""Load benchmark of crowdnb's router, in the kernel and under ``crowdnb serve``, beside a bare Flask baseline
and the framework-free ceiling of Python on this machine.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/router_load.py                 # 10, 100 and 200 workers, 1500 units each
    .venv/bin/python benchmarks/router_load.py --quick         # smoke run: 300 units per scenario
    .venv/bin/python benchmarks/router_load.py --targets serve,baseline --workers 400
    .venv/bin/python benchmarks/router_load.py --workers 50,400 --units 5000 --no-heartbeats --poll-ms 200
    .venv/bin/python benchmarks/router_load.py --workers 1000 --units 6000 --think 20    # a crowd at work
    .venv/bin/python benchmarks/router_load.py --targets crowdnb,process --workers 30 --think 0.5 --busy-kernel

For each worker count N, up to five targets are served in turn (``--targets``; all five by default):

* baseline: a bare Flask app served from *this* process the way a notebook kernel serves a run (werkzeug
  ``make_server(threaded=True)`` in a background thread); GET / hands out a small JSON unit, POST /submit
  does one durable SQLite insert (WAL, synchronous=FULL, one connection behind a lock), WS /ws answers
  each heartbeat;
* crowdnb: a real run on the mock crowd in a fresh temporary project (``Task(...).launch()``), served by
  the local architect from this process, as in a kernel;
* process: the same task launched with ``architect="process"``, as a notebook would: ``crowdnb serve`` in a
  child process on the run's own folder, ``run.df`` read here through the notebook's mirror (served.py);
* serve: the same task in another fresh project, launched here and stopped at once, then served by
  ``python -m crowdnb serve PROJECT`` (gunicorn + gevent, one worker) in a process of its own;
* ceiling: the baseline's three endpoints as a raw ASGI app (no framework) on uvicorn + uvloop +
  httptools in a thread of this process (ceiling.py; needs the ``bench`` extra): no router written in
  Python gets above it here, whatever its server.

``--busy-kernel`` serves each target twice, the second time while this process (the "kernel") runs a
pure-Python loop in a thread, as a researcher's cell would (busy.py), and prints idle against busy per
target: an in-kernel router shares the GIL with that loop; ``process`` does not (only its mirror does).

A separate, spawned load process runs N simulated workers, by default with no think time (the targets are
set for that). Each loops: GET the unit (JSON) → open that unit's websocket, send one heartbeat, wait for
the status reply → POST the answers → close the websocket in the background (as a browser leaving the page
would), until refused with no work. ``--no-heartbeats`` drops the websocket. ``--think S`` has each worker
spend S seconds on average (exponential, at most 3 S) with the page open — heartbeating every 5 s and
answering pings — before submitting, workers arriving spread over the first S seconds: a crowd at work,
whose latencies are what a worker feels at that offered load (N ÷ S units/s). The load process is stdlib
asyncio speaking HTTP/1.1 keep-alive (a request on a connection the server closed while idle is sent again
once, as browsers do) and RFC 6455 frames over raw sockets, so it stays far cheaper than the router (its
CPU is reported).

Figures per scenario:

* completed submissions/s over the load's wall time (first request to last answer);
* p50/p99 of the GET (dispatch), of the heartbeat (websocket handshake + one round trip) and of the POST;
* errors (non-200 answers, dropped connections, timeouts) and the kernel's count of connections that
  overflowed a listen backlog meanwhile (each costs the client a SYN retry of 1 s or more, so it shows
  in p99, not in errors);
* the router process's peak RSS (VmHWM, reset through /proc/<pid>/clear_refs before each scenario) and its
  growth during the scenario. The router process is this one for crowdnb and the baseline, and the
  gunicorn worker for serve and process;
* router-process CPU per unit and, of it, the serving part (for the in-process targets the ``run.df``
  poller runs in the router process and is taken off; for serve it runs here, outside the router), the
  poller's own cost, and the load process's CPU (a busy kernel's loop is never counted as the router's);
* the CPU that other processes of the machine used meanwhile (all cores busy, from /proc/stat, minus this
  process, the router and the load process): on a shared machine, the noise in the other figures;
* submit→frame lag: a thread of this process polls ``run.df`` every ~20 ms and notes when each unit first
  appears; lag = that moment minus the ``time.time()`` at which the load process got the 200 for it (same
  machine, same clock, so it can be ≤ 0). For serve, ``run.df`` is that of the stored run read from the
  SQLite file the server writes, as a notebook attached to the project sees it; for process, the
  notebook's mirror. For the baseline the thread polls the table instead.

The table goes to stdout, everything to benchmarks/results/router_load.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from busy import BusyKernel
from ceiling import CeilingTarget
from loadgen import LoadConfig, load_process
from machine import (
    Pid,
    alive,
    cpu_seconds,
    durable_insert_ms,
    environment,
    listen_overflows,
    machine_busy_seconds,
    reset_peak_rss,
    status_kb,
)
from report import KINDS, PRIOR_ART, TARGETS, report, spread
from served import ProcessTarget, ServeTarget
from targets import BaselineTarget, CrowdnbTarget, Target

RESULTS = Path(__file__).resolve().parent / "results" / "router_load.json"
DEFAULT_WORKERS = (10, 100, 200)
DEFAULT_UNITS, QUICK_UNITS = 1500, 300
DEFAULT_POLL_MS = 20.0  # how often the kernel-side thread reads run.df
LAG_GRACE_SECONDS = 5.0  # how long to wait for acknowledged units to show up in the frame
SCENARIO_TIMEOUT = 600.0
RUN_ORDER = ("baseline", "crowdnb", "process", "serve", "ceiling")  # per worker count


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
    """One measurement: a target kind, driven by ``workers`` simulated workers."""

    kind: str  # one of report.KINDS
    workers: int
    units: int
    heartbeats: bool
    poll_s: float
    think_s: float = 0.0
    busy_kernel: bool = False  # a pure-Python loop runs in a thread of this process meanwhile


class RouterProbe:
    """CPU and memory of the process that routes: this one, or another (``crowdnb serve``'s worker)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.here = pid == os.getpid()
        self._proc: Pid = "self" if self.here else pid

    def cpu_s(self) -> float:
        """CPU seconds of the router process so far."""
        return time.process_time() if self.here else cpu_seconds(self.pid)

    def kb(self, name: str) -> int:
        """A ``VmXXX`` figure of the router process."""
        return status_kb(name, self._proc)

    def reset_peak(self) -> bool:
        """Reset the router process's VmHWM to its current RSS."""
        return reset_peak_rss(self._proc)


def drive_from_another_process(target: Target, scenario: Scenario) -> dict[str, Any]:
    """Spawn the load process against ``target`` and measure the router process while it runs."""
    ctx = mp.get_context("spawn")  # never fork a process that is serving from threads
    ours, theirs = ctx.Pipe()
    config = LoadConfig(target.url, scenario.workers, scenario.heartbeats, scenario.think_s)
    process = ctx.Process(target=load_process, args=(config, theirs), name="router-load-generator")
    process.start()
    watcher = FrameWatcher(target.new_keys, scenario.poll_s)
    probe = RouterProbe(target.pid)
    kernel: BusyKernel | None = None
    finished = False
    try:
        if not ours.poll(60):
            raise RuntimeError("the load process did not start within 60 s")
        ours.recv()
        peak_reset = probe.reset_peak()
        start_kb, overflows = probe.kb("VmRSS"), listen_overflows()
        watcher.start()
        kernel = BusyKernel().start() if scenario.busy_kernel else None
        cpu, here, busy = probe.cpu_s(), time.process_time(), machine_busy_seconds()
        ours.send("go")
        if not ours.poll(SCENARIO_TIMEOUT):
            raise RuntimeError(f"the load did not finish within {SCENARIO_TIMEOUT:.0f} s")
        try:
            load: dict[str, Any] = ours.recv()
        except EOFError as exc:
            raise RuntimeError("the load process died (its traceback is above)") from exc
        finished = True
        busy, here, router_cpu = machine_busy_seconds() - busy, time.process_time() - here, probe.cpu_s() - cpu
        if kernel is not None:
            kernel.stop()
            router_cpu -= kernel.cpu_s if probe.here else 0.0  # the cell's work is not the router's
        router = {
            "pid": probe.pid,
            "in_this_process": probe.here,
            "peak_reset": peak_reset,
            "cpu_s": router_cpu,
            "peak_kb": probe.kb("VmHWM"),
            "start_kb": start_kb,
            "overflows": listen_overflows() - overflows,
            "machine_busy_s": busy,
            "benchmark_cpu_s": here,
            "problems": [] if alive(probe.pid) else [f"the router process {probe.pid} is gone"],
            "kernel": kernel.figures() if kernel is not None else {},
        }
        watcher.wait_for(load["acked"].keys(), LAG_GRACE_SECONDS)
    finally:
        if kernel is not None:
            kernel.stop()
        watcher.stop()
        process.join(timeout=10 if finished else 0)  # after a failure there is no result to wait for
        if process.is_alive():
            process.kill()
            process.join(timeout=5)
    return figures(scenario, load, watcher, router)


def figures(scenario: Scenario, load: dict[str, Any], watcher: FrameWatcher, router: dict[str, Any]) -> dict[str, Any]:
    """The per-scenario summary that is printed and written to JSON."""
    seen = watcher.seen()
    acked: dict[int, float] = load["acked"]
    lags = [(seen[item] - at) * 1000 for item, at in acked.items() if item in seen]
    wall, done = load["wall_s"], load["submitted"]
    per_unit = 1000 / done if done else None
    serving_s = router["cpu_s"] - (watcher.cpu_s if router["in_this_process"] else 0.0)
    problems = load["errors"] + watcher.errors + router["problems"]
    ours = router["benchmark_cpu_s"] + load["cpu_s"] + (0.0 if router["in_this_process"] else router["cpu_s"])
    return {
        **asdict(scenario),
        "target": scenario.kind,
        "router_pid": router["pid"],
        "router_in_benchmark_process": router["in_this_process"],
        "peak_rss_reset": router["peak_reset"],
        "submitted": done,
        "wall_s": wall,
        "throughput": done / wall if wall else 0.0,
        "get_ms": spread(load["get_ms"]),
        "heartbeat_ms": spread(load["heartbeat_ms"]),
        "submit_ms": spread(load["submit_ms"]),
        "lag_ms": spread(lags),
        "lag_missing": len(acked) - len(lags),
        "errors": len(problems),
        "error_samples": sorted(set(problems))[:5],
        "listen_overflows": router["overflows"],
        "peak_rss_mb": router["peak_kb"] / 1024,
        "rss_growth_mb": (router["peak_kb"] - router["start_kb"]) / 1024,
        "router_cpu_ms_per_unit": router["cpu_s"] * per_unit if per_unit else None,
        "serving_cpu_ms_per_unit": serving_s * per_unit if per_unit else None,
        "router_cpu_percent": 100 * router["cpu_s"] / wall if wall else None,
        "poll_cpu_percent": 100 * watcher.cpu_s / wall if wall else None,
        "poll_ms": 1000 * watcher.poll_s / watcher.polls if watcher.polls else None,
        "load_cpu_percent": 100 * load["cpu_s"] / wall if wall else None,
        "machine_busy_percent": 100 * router["machine_busy_s"] / wall if wall else None,
        "others_cpu_percent": 100 * max(0.0, router["machine_busy_s"] - ours) / wall if wall else None,
        **router["kernel"],
    }


def make_target(scenario: Scenario, folder: Path) -> Target:
    """Start serving one target in ``folder``."""
    if scenario.kind == "crowdnb":
        return CrowdnbTarget(folder, scenario.units, scenario.workers)
    if scenario.kind == "serve":
        return ServeTarget(folder, scenario.units, scenario.workers)
    if scenario.kind == "process":
        return ProcessTarget(folder, scenario.units, scenario.workers)
    if scenario.kind == "ceiling":
        return CeilingTarget(folder, scenario.units)
    return BaselineTarget(folder, scenario.units)


def run_scenario(scenario: Scenario, folder: Path) -> dict[str, Any]:
    """Serve one target, drive it to the end, stop it; returns its figures."""
    target = make_target(scenario, folder)
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
    parser.add_argument(
        "--targets", default=",".join(KINDS), help=f"comma-separated, among {', '.join(KINDS)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--no-heartbeats", dest="heartbeats", action="store_false", help="skip the websocket per unit")
    parser.add_argument("--poll-ms", type=float, default=DEFAULT_POLL_MS, help="how often the kernel reads run.df")
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="mean seconds each worker spends on a unit, page open, before submitting (default 0: none)",
    )
    parser.add_argument(
        "--busy-kernel",
        action="store_true",
        help="serve each target twice: idle, then while this process runs a pure-Python loop in a thread",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in str(args.workers).split(",") if n.strip()]
    args.units = args.units or (QUICK_UNITS if args.quick else DEFAULT_UNITS)
    if not args.workers or min(args.workers) < 1 or args.units < 1 or args.poll_ms <= 0 or args.think < 0:
        parser.error("--workers, --units and --poll-ms must be positive, --think not negative")
    chosen = {name.strip() for name in str(args.targets).split(",") if name.strip()}
    if not chosen or chosen - set(KINDS):
        parser.error(f"--targets takes a comma-separated subset of {', '.join(KINDS)}; got {args.targets!r}")
    args.targets = [kind for kind in RUN_ORDER if kind in chosen]
    return args


def leave(signum: int, frame: object) -> None:
    """A signal handler that exits through the ``finally`` blocks, so no server outlives the benchmark."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Run every scenario (in RUN_ORDER, per worker count), print the tables, write the JSON."""
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):  # unwind through the finally blocks,
        signal.signal(signum, leave)  # which stop the servers (SIGINT too: a background job ignores it)
    import crowdnb  # noqa: F401  # imported up front, as in a kernel, so every scenario starts from the same RSS

    groups: list[dict[str, dict[str, Any]]] = []
    busy_groups: list[dict[str, dict[str, Any]]] = []  # the same scenarios with the kernel busy
    with tempfile.TemporaryDirectory(prefix="crowdnb-router-load-") as tmp:
        settings = {
            "units": args.units,
            "heartbeats": args.heartbeats,
            "poll_ms": args.poll_ms,
            "think_s": args.think,
            "targets": args.targets,
            "busy_kernel": args.busy_kernel,
            "cpus": os.cpu_count(),
            "durable_insert_ms": durable_insert_ms(Path(tmp)),
        }
        for workers in args.workers:
            print(f"… {workers} workers: {', then '.join(args.targets)}", file=sys.stderr, flush=True)
            results, busy = {}, {}
            for kind in args.targets:
                scenario = Scenario(kind, workers, args.units, args.heartbeats, args.poll_ms / 1000, args.think)
                results[kind] = run_scenario(scenario, Path(tmp) / f"{kind}-{workers}")
                if args.busy_kernel:
                    scenario = replace(scenario, busy_kernel=True)
                    busy[kind] = run_scenario(scenario, Path(tmp) / f"{kind}-{workers}-busy")
            groups.append(results)
            busy_groups.append(busy)
    print(report(groups, settings, busy_groups), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": environment(),
        "settings": settings,
        "targets": TARGETS,
        "prior_art": PRIOR_ART,
        "scenarios": [group[kind] for group in groups + busy_groups for kind in KINDS if kind in group],
    }
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
