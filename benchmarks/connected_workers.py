"""Memory and heartbeats of N connected workers: the in-kernel router and ``crowdnb serve``, beside their floors.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/connected_workers.py                     # 100, 500, 1000, 2000 workers; 30 s hold
    .venv/bin/python benchmarks/connected_workers.py --workers 1000 --targets crowdnb --hold 10
    .venv/bin/python benchmarks/connected_workers.py --no-floor --no-deflate

Per worker count N and per target, a spawned load process (holding.py: stdlib asyncio on raw sockets,
reusing loadgen.py's clients) opens N workers. Each GETs a unit as JSON (``?worker_id=…``, the mock
crowd) on a connection it then closes, opens the unit's websocket offering permessage-deflate exactly as
Chromium and Firefox do on every ``new WebSocket(url)`` (``--no-deflate`` stops offering it), gets its first
status reply, and from then on sends a heartbeat every 5 s as crowd.js does (the first at a random point
of the period). At most ``--arriving`` workers are between their GET and first reply at once. Once all N
are connected, they are held for ``--hold`` seconds, then close their sockets.

Targets (``--targets``):

* crowdnb: a run launched on the mock crowd with the local architect (werkzeug ``make_server(threaded=
  True)``, a thread per connection, flask-sock) in a freshly spawned Python process that imported crowdnb,
  as a notebook kernel does. Not in this process: a process that has held 2,000 threads keeps part of that
  memory in its allocator afterwards, so every scenario after the first would start from a false floor;
* serve: the same task, launched here and stopped, served by ``python -m crowdnb serve`` (gunicorn +
  gevent, one worker); the router process is the gunicorn worker.

The floor of each (``--no-floor`` skips it) is a bare Flask + flask-sock app on the same server, set up the
same way (same ``ping_interval``, permessage-deflate declined, same backlog, same gunicorn settings;
hold_targets.py), whose GET hands out a token and whose websocket answers each heartbeat with a status,
and nothing else: no store, no dispatcher, no crowdnb import. Both it and the crowdnb router are also
measured before any worker connects, so each target's figures read three ways: the RSS the process needs
to exist (before: for the in-kernel router, a kernel with crowdnb and pandas imported), the RSS the
connections add over it (per connection), and how far that is above what the server and flask-sock
themselves cost (the floor's per connection). The floor, not a theoretical minimum, is the right bar:
crowdnb chose these servers, and the question is what crowdnb adds on top of them.

Figures per scenario: time to connect all N (and per worker p50/p99: GET + handshake + first reply);
the router process's RSS before, with all N connected (at the end of the hold), its peak (VmHWM, reset
at the start) and per connection; heartbeat round trip p50/p99 with all N connected; errors; the router's
CPU during the hold (connected, idle but for the heartbeats and the server's pings); its threads and open
files; how long its per-connection threads took to end after the workers left (at most 60 s are waited)
and its RSS then; how many sockets agreed to permessage-deflate; the load process's CPU; and the CPU the
other processes of the machine used meanwhile (all cores busy minus this process, the router and the
load process): on a shared machine, the noise in the other figures (the heartbeat p99 follows it).

File descriptors: the threaded server holds two per websocket (the socket and simple-websocket's
selector) and the load process one, so this script raises its soft ``RLIMIT_NOFILE`` to the hard limit
(children inherit it) and says so. The table goes to stdout, everything to
benchmarks/results/connected_workers.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hold_targets import HERE, make_target
from holding import HoldConfig, hold_process
from machine import (
    cpu_seconds,
    environment,
    machine_busy_seconds,
    open_files,
    reset_peak_rss,
    status_kb,
    thread_count,
)
from report import Getter, spread

RESULTS = HERE / "results" / "connected_workers.json"
DEFAULT_WORKERS = (100, 500, 1000, 2000)
KINDS = ("crowdnb", "serve")
FLOOR = {"crowdnb": "floor-kernel", "serve": "floor-serve"}
TARGET_MB, TARGET_WORKERS = 300.0, 1000  # issue 6: 1,000 connected workers under 300 MB
SETTLE_SECONDS = 2.0  # after the server started, before reading its RSS
RELEASE_TIMEOUT = 60.0  # seconds to wait, after the workers left, for the router's threads to end
SPARE_THREADS = 5  # pools a router may have started meanwhile (gevent's commit threads): not per connection
SAMPLE_SECONDS = 0.5


class Sampler:
    """A thread that reads the router's RSS and thread count every 0.5 s."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss_kb: list[int] = []
        self.threads: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="connected-workers-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.rss_kb.append(status_kb("VmRSS", self.pid))
            self.threads.append(thread_count(self.pid))

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)


class Clock:
    """CPU of the router, the load process, this process and the whole machine between two readings."""

    def __init__(self, router: int, load: int) -> None:
        self.router, self.load = router, load
        self._start = self._read()

    def _read(self) -> tuple[float, float, float, float, float]:
        return (
            cpu_seconds(self.router),
            cpu_seconds(self.load),
            time.process_time(),
            machine_busy_seconds(),
            time.perf_counter(),
        )

    def lap(self) -> dict[str, float]:
        """CPU shares (% of one core) since the start or the previous lap."""
        end = self._read()
        router, load, here, busy, wall = (b - a for a, b in zip(self._start, end, strict=True))
        self._start = end
        wall = wall or 1e-9
        others = max(0.0, busy - router - load - here)
        return {
            "wall_s": wall,
            "router_cpu_percent": 100 * router / wall,
            "load_cpu_percent": 100 * load / wall,
            "others_cpu_percent": 100 * others / wall,
        }


def run_scenario(kind: str, workers: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Serve a target, connect N workers, hold them, let them go; the figures."""
    target = make_target(kind, folder, workers)
    try:
        return measure(kind, target.url, target.pid, workers, args)
    finally:
        target.stop()


def measure(kind: str, url: str, pid: int, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Drive one served target through a spawned load process and read the router process meanwhile."""
    time.sleep(SETTLE_SECONDS)
    before = {"rss_kb": status_kb("VmRSS", pid), "threads": thread_count(pid), "fds": open_files(pid)}
    peak_reset = reset_peak_rss(pid)
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    config = HoldConfig(url, workers, args.arriving, args.deflate)
    load = ctx.Process(target=hold_process, args=(config, theirs), name="connected-workers-load")
    load.start()
    try:
        if not ours.poll(60):
            raise RuntimeError("the load process did not start within 60 s")
        ours.recv()
        assert load.pid is not None
        clock = Clock(pid, load.pid)
        ours.send("go")
        if not ours.poll(args.connect_timeout):
            raise RuntimeError(f"{workers} workers did not connect within {args.connect_timeout:.0f} s")
        arrival: dict[str, Any] = ours.recv()
        connecting = clock.lap()
        sampler = Sampler(pid)
        time.sleep(args.hold)
        sampler.stop()
        holding = clock.lap()
        connected = {
            "rss_kb": status_kb("VmRSS", pid),
            "threads": thread_count(pid),
            "fds": open_files(pid),
            "peak_kb": status_kb("VmHWM", pid),
        }
        ours.send("leave")
        if not ours.poll(120):
            raise RuntimeError("the load process did not report within 120 s of leaving")
        result: dict[str, Any] = ours.recv()
    finally:
        load.join(timeout=10)
        if load.is_alive():
            load.kill()
            load.join(timeout=5)
    after = released(pid, before["threads"])
    return figures(kind, workers, before, connected, after, arrival, result, connecting, holding, sampler, peak_reset)


def released(pid: int, threads: int) -> dict[str, Any]:
    """Wait (at most 60 s) until the router's per-connection threads have ended; its RSS then."""
    started = time.perf_counter()
    while thread_count(pid) > threads + SPARE_THREADS and time.perf_counter() - started < RELEASE_TIMEOUT:
        time.sleep(0.2)
    return {
        "rss_kb": status_kb("VmRSS", pid),
        "threads": thread_count(pid),
        "release_s": time.perf_counter() - started,
    }


def figures(
    kind: str,
    workers: int,
    before: dict[str, int],
    connected: dict[str, int],
    after: dict[str, int],
    arrival: dict[str, Any],
    result: dict[str, Any],
    connecting: dict[str, float],
    holding: dict[str, float],
    sampler: Sampler,
    peak_reset: bool,
) -> dict[str, Any]:
    """The per-scenario summary that is printed and written to JSON."""
    mb = 1 / 1024
    count = result["connected"]
    grown = connected["rss_kb"] - before["rss_kb"]
    return {
        "target": kind,
        "workers": workers,
        "connected": count,
        "connect_s": arrival["connect_s"],
        "connect_ms": spread(result["connect_ms"]),
        "deflate_agreed": result["deflate"],
        "rss_before_mb": before["rss_kb"] * mb,
        "rss_connected_mb": connected["rss_kb"] * mb,
        "rss_hold_max_mb": max(sampler.rss_kb, default=0) * mb,
        "peak_rss_mb": connected["peak_kb"] * mb,
        "peak_rss_reset": peak_reset,
        "per_connection_mb": grown * mb / count if count else None,
        "rss_after_mb": after["rss_kb"] * mb,
        "heartbeat_ms": spread(result["heartbeat_ms"]),
        "heartbeats": len(result["heartbeat_ms"]),
        "errors": len(result["errors"]),
        "dropped": result["dropped"],
        "error_samples": sorted(set(result["errors"]))[:5],
        "threads_before": before["threads"],
        "threads_connected": connected["threads"],
        "threads_hold_max": max(sampler.threads, default=0),
        "threads_after": after["threads"],
        "release_s": after["release_s"],
        "fds_before": before["fds"],
        "fds_connected": connected["fds"],
        "connect_phase": connecting,
        "hold_phase": holding,
        "router_cpu_idle_percent": holding["router_cpu_percent"],
        "load_cpu_percent": holding["load_cpu_percent"],
        "others_cpu_percent": holding["others_cpu_percent"],
        "others_cpu_connect_percent": connecting["others_cpu_percent"],
    }


ROWS: list[tuple[str, Getter, str]] = [
    ("connected", lambda s: s["connected"], "{:.0f}"),
    ("connect all (s)", lambda s: s["connect_s"], "{:.1f}"),
    ("connect p50 (ms)", lambda s: s["connect_ms"]["p50"], "{:.0f}"),
    ("connect p99 (ms)", lambda s: s["connect_ms"]["p99"], "{:.0f}"),
    ("RSS before (MB)", lambda s: s["rss_before_mb"], "{:.0f}"),
    ("RSS connected (MB)", lambda s: s["rss_connected_mb"], "{:.0f}"),
    ("peak RSS (MB)", lambda s: s["peak_rss_mb"], "{:.0f}"),
    ("per connection (MB)", lambda s: s["per_connection_mb"], "{:.3f}"),
    ("RSS when released (MB)", lambda s: s["rss_after_mb"], "{:.0f}"),
    ("heartbeat p50 (ms)", lambda s: s["heartbeat_ms"]["p50"], "{:.1f}"),
    ("heartbeat p99 (ms)", lambda s: s["heartbeat_ms"]["p99"], "{:.1f}"),
    ("heartbeats timed", lambda s: s["heartbeats"], "{:.0f}"),
    ("errors", lambda s: s["errors"], "{:.0f}"),
    ("router CPU idle (%)", lambda s: s["router_cpu_idle_percent"], "{:.1f}"),
    ("threads connected", lambda s: s["threads_connected"], "{:.0f}"),
    ("threads released (s)", lambda s: s["release_s"], "{:.1f}"),
    ("open files connected", lambda s: s["fds_connected"], "{:.0f}"),
    ("deflate agreed", lambda s: s["deflate_agreed"], "{:.0f}"),
    ("load-gen CPU (%)", lambda s: s["load_cpu_percent"], "{:.1f}"),
    ("others' CPU (%)", lambda s: s["others_cpu_percent"], "{:.0f}"),
]
WIDTH, LABEL = 7, 22


def table(kind: str, scenarios: list[dict[str, Any]]) -> str:
    """Metric rows; a column per worker count for the target, then for its floor."""
    mine = [s for s in scenarios if s["target"] == kind]
    floor = [s for s in scenarios if s["target"] == FLOOR[kind]]
    head = "".join(f" {s['workers']:>{WIDTH}}" for s in mine)
    if floor:
        head += " |" + "".join(f" {s['workers']:>{WIDTH}}" for s in floor)
    lines = [f"{'workers':<{LABEL}}{head}", "-" * (LABEL + len(head))]
    for label, get, fmt in ROWS:
        row = "".join(f" {cell(get(s), fmt):>{WIDTH}}" for s in mine)
        if floor:
            row += " |" + "".join(f" {cell(get(s), fmt):>{WIDTH}}" for s in floor)
        lines.append(f"{label:<{LABEL}}{row}")
    return "\n".join(lines)


def cell(value: float | None, fmt: str) -> str:
    """A formatted figure, or a dash."""
    return "—" if value is None else fmt.format(value)


TITLES = {
    "crowdnb": "in-kernel router (werkzeug threaded, spawned 'kernel' that imported crowdnb)"
    " | floor: bare Flask + flask-sock, same server",
    "serve": "crowdnb serve (gunicorn + gevent, 1 worker; the worker process)"
    " | floor: bare Flask + flask-sock, same gunicorn settings",
}


def report(scenarios: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """The whole printed report."""
    lines = [
        f"connected workers: hold {settings['hold_s']:g} s with a heartbeat every 5 s; at most "
        f"{settings['arriving']} arriving at once; permessage-deflate offered: {settings['deflate']}; "
        f"{settings['cpus']} CPUs; open-file limit {settings['nofile']}",
        "RSS and CPU are the router process's; per connection = (RSS connected - RSS before) / connected; "
        "CPU in % of one core during the hold",
    ]
    for kind in settings["targets"]:
        lines += ["", TITLES[kind], table(kind, scenarios)]
    lines += ["", f"target: {TARGET_WORKERS:,} connected workers under {TARGET_MB:.0f} MB (router process RSS)"]
    for kind in settings["targets"]:
        for s in scenarios:
            if s["target"] == kind and s["workers"] == TARGET_WORKERS:
                met = s["connected"] == TARGET_WORKERS and max(s["rss_connected_mb"], s["peak_rss_mb"]) < TARGET_MB
                lines.append(
                    f"  {kind:<8} connected {s['rss_connected_mb']:.0f} MB, peak {s['peak_rss_mb']:.0f} MB: "
                    f"{'met' if met else 'NOT met'}"
                )
    samples = [f"  {s['target']} {s['workers']}: {e}" for s in scenarios for e in s["error_samples"]]
    if samples:
        lines += ["", "error samples:", *samples]
    return "\n".join(lines)


def raise_open_files(workers: int) -> str:
    """Raise the soft open-file limit to the hard one (inherited by the servers and the load process)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 4 * workers + 1000)
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    note = f"soft {wanted} (was {soft}), hard {hard}" if wanted > soft else f"soft {soft}, hard {hard}"
    if wanted < 2 * workers + 200:
        print(f"warning: open-file limit {wanted} is too low for {workers} workers", file=sys.stderr)
    return note


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default=",".join(map(str, DEFAULT_WORKERS)), help="comma-separated counts")
    parser.add_argument("--targets", default=",".join(KINDS), help=f"comma-separated, among {', '.join(KINDS)}")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to hold all N connected (default 30)")
    parser.add_argument("--arriving", type=int, default=50, help="workers connecting at once (default 50)")
    parser.add_argument("--no-floor", dest="floor", action="store_false", help="skip the bare Flask floors")
    parser.add_argument("--no-deflate", dest="deflate", action="store_false", help="do not offer permessage-deflate")
    parser.add_argument("--connect-timeout", type=float, default=600.0, help="seconds for all N to connect")
    parser.add_argument("--output", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in str(args.workers).split(",") if n.strip()]
    chosen = {name.strip() for name in str(args.targets).split(",") if name.strip()}
    if not chosen or chosen - set(KINDS):
        parser.error(f"--targets takes a comma-separated subset of {', '.join(KINDS)}; got {args.targets!r}")
    if not args.workers or min(args.workers) < 1 or args.hold <= 0 or args.arriving < 1:
        parser.error("--workers, --hold and --arriving must be positive")
    args.targets = [kind for kind in KINDS if kind in chosen]
    return args


def leave(signum: int, frame: object) -> None:
    """A signal handler that exits through the ``finally`` blocks, so no server outlives the benchmark."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    """Every scenario (per worker count: each target's floor, then the target), the table, the JSON."""
    args = parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, leave)
    settings = {
        "hold_s": args.hold,
        "arriving": args.arriving,
        "deflate": args.deflate,
        "targets": args.targets,
        "cpus": os.cpu_count(),
        "nofile": raise_open_files(max(args.workers)),
        "heartbeat_s": 5.0,
    }
    scenarios = []
    with tempfile.TemporaryDirectory(prefix="crowdnb-connected-") as tmp:
        for workers in args.workers:
            for kind in args.targets:
                for each in ([FLOOR[kind]] if args.floor else []) + [kind]:
                    print(f"… {each}: {workers} workers", file=sys.stderr, flush=True)
                    scenarios.append(run_scenario(each, workers, args, Path(tmp) / f"{each}-{workers}"))
    print(report(scenarios, settings), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    document = {"environment": environment(), "settings": settings, "scenarios": scenarios}
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
