"""Live procedure calls: the in-kernel router answering ``crowd.call`` beside a bare flask-sock echo.

Run it from the repository root (a measurement, not a test: nothing fails on a slow machine)::

    .venv/bin/python benchmarks/procedures.py                     # 50 pages, 200 calls/s, 15 s
    .venv/bin/python benchmarks/procedures.py --pages 100 --rate 400 --seconds 10

Each target runs in a freshly spawned process, as a notebook kernel: ``crowdnb`` launches a task with one
trivial procedure (``echo``: returns its args) on the mock crowd and the local architect; ``floor`` is a
bare Flask + flask-sock app on the same threaded werkzeug server whose socket answers a call with its args
(live_load.py). Here, ``--pages`` pages each open their socket (crowdnb: after GETting a unit as JSON),
then call at an even share of ``--rate`` calls/s for ``--seconds``, one call in flight per page as
crowd.js does; a call that is late starts when the previous one is answered. Latency is from sending a
call to reading its result. crowdnb stores every call twice (before it runs, and its outcome) with the
project's durable commits; the floor stores nothing. Figures: calls/s achieved, latency p50/p99/max,
errors, the target's CPU per call. Target: p99 < 50 ms at 200 calls/s in-kernel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from typing import TYPE_CHECKING, Any

from live_load import enter, environment, percentiles, serve_floor, socket_url, start, stop, write

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


def serve_crowdnb(conn: Connection, pages: int, home: str) -> None:
    """Child process: a run with one trivial procedure, served in-kernel."""
    import crowdnb as cn

    task = cn.Task(
        "procedure-bench",
        title="Calls",
        reward=0.01,
        html='<input name="x">',
        data=[{}] * pages,
        project=home,
        assignment_duration=3600,
    )

    @task.procedure(concurrency=8)
    def echo(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return args

    run = task.launch()
    conn.send(run.url)
    conn.recv()
    calls = run.calls_df
    run.stop()
    conn.send({"stored": len(calls), "ok": int((calls["status"] == "ok").sum()) if len(calls) else 0})


async def page(url: str, token: str, interval: float, until: float, out: dict[str, Any]) -> None:
    import websockets

    async with websockets.connect(socket_url(url, token), compression=None, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "heartbeat"}))
        await ws.recv()
        due = time.perf_counter() + interval * (hash(token) % 1000) / 1000  # spread the pages' phases
        while due < until:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            call_id = uuid.uuid4().hex
            sent = time.perf_counter()
            await ws.send(json.dumps({"type": "call", "id": call_id, "name": "echo", "args": {"n": 1}}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("type") == "result":
                    break
            out["latency"].append((time.perf_counter() - sent) * 1000)
            if not (reply.get("ok") and reply.get("id") == call_id):
                out["errors"] += 1
            due += interval


async def load(url: str, tokens: list[str], rate: float, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": [], "errors": 0}
    interval = len(tokens) / rate
    began = time.perf_counter()
    results = await asyncio.gather(
        *(page(url, t, interval, began + seconds, out) for t in tokens), return_exceptions=True
    )
    elapsed = time.perf_counter() - began
    failures = [repr(r) for r in results if isinstance(r, BaseException)]
    return {
        "calls": len(out["latency"]),
        "calls_per_s": round(len(out["latency"]) / elapsed, 1),
        "latency_ms": percentiles(out["latency"]),
        "errors": out["errors"] + len(failures),
        "failures": failures[:5],
    }


def measure(name: str, pages: int, rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as home:
        if name == "crowdnb":
            process, conn, url = start(serve_crowdnb, pages, home)
            tokens = [enter(url, f"page-{i}")["token"] for i in range(pages)]
        else:
            process, conn, url = start(serve_floor)
            tokens = [f"page-{i}" for i in range(pages)]
        figures = asyncio.run(load(url, tokens, rate, seconds))
        if name == "crowdnb":
            conn.send("stop")
            figures["stored"] = conn.recv()
            cpu = stop(process, conn)
        else:
            cpu = stop(process, conn)
    figures["target"] = name
    figures["cpu_ms_per_call"] = round(cpu * 1000 / max(figures["calls"], 1), 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=50, help="worker pages with a socket open (default 50)")
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second, all pages together")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the calls go on")
    parser.add_argument("--targets", default="crowdnb,floor", help="crowdnb, floor or both (comma-separated)")
    parser.add_argument("--output", help="JSON file for the figures (default benchmarks/results/procedures.json)")
    options = parser.parse_args()
    scenarios = [measure(t, options.pages, options.rate, options.seconds) for t in options.targets.split(",")]
    settings = {"pages": options.pages, "rate": options.rate, "seconds": options.seconds}
    path = write(
        {"settings": settings, "environment": environment(), "scenarios": scenarios}, options.output, "procedures.json"
    )
    print(
        f"{options.pages} pages, {options.rate:g} calls/s offered for {options.seconds:g} s (target: p99 < 50 ms in-kernel)"
    )
    print(f"{'target':<10}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}{'CPU ms/call':>13}")
    for s in scenarios:
        lat = s["latency_ms"]
        cells = [s["calls_per_s"], lat["p50"], lat["p99"], lat["max"]]
        print(
            f"{s['target']:<10}"
            + "".join(f"{c if c is not None else '-':>10}" for c in cells)
            + f"{s['errors']:>8}{s['cpu_ms_per_call']:>13}"
        )
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
