"""What the live-task benchmarks share: servers in spawned 'kernel' processes, paced socket clients, figures.

A target runs in a freshly spawned Python process, as a notebook kernel would: crowdnb's in-kernel router
(the local architect: werkzeug ``make_server(threaded=True)`` in a thread, flask-sock), or the floor, a
bare Flask + flask-sock app on the same server whose socket echoes what it receives, and nothing else.
The load runs here, on asyncio with the ``websockets`` client (the ``bench`` extra), so both targets meet
the same clients.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import resource
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def percentiles(samples: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of latencies in ms (None without samples)."""
    if not samples:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(samples)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 2)

    return {"p50": at(0.50), "p99": at(0.99), "max": round(ordered[-1], 2)}


def echo_app() -> Any:
    """The floor: Flask + flask-sock; ``/`` hands out a token, ``/ws`` answers each message with itself
    as a result (a call) or sends it to every other socket of the same room (a chat message)."""
    from flask import Flask, jsonify, request
    from flask_sock import Sock

    app = Flask("live_load.floor")
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
    sock = Sock(app)
    rooms: dict[str, set[Any]] = {}
    lock = threading.Lock()

    @app.get("/")
    def enter() -> Any:
        worker = request.args.get("worker_id", "")
        return jsonify({"status": "assigned", "token": worker, "input": {}, "fields": []})

    @app.before_request
    def plain_websocket() -> None:
        if request.endpoint == "socket":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

    @sock.route("/ws")
    def socket(ws: Any) -> None:
        room = request.args.get("token", "").rsplit("-", 1)[0]
        with lock:
            rooms.setdefault(room, set()).add(ws)
        try:
            while (raw := ws.receive()) is not None:
                body = json.loads(raw)
                if body.get("type") == "call":
                    ws.send(json.dumps({"type": "result", "id": body["id"], "ok": True, "result": body["args"]}))
                elif body.get("type") == "say":
                    with lock:
                        others = [other for other in rooms[room] if other is not ws]
                    text = json.dumps({"type": "message", "id": body["id"], "text": body["text"]})
                    for other in [ws, *others]:
                        other.send(text)
                else:
                    ws.send(json.dumps({"type": "status", "status": "in_task"}))
        finally:
            with lock:
                rooms[room].discard(ws)

    return app


def serve_floor(conn: Connection) -> None:
    """Child process: the floor on werkzeug's threaded server in a thread, as the local architect serves."""
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", 0, echo_app(), threaded=True)
    server.socket.listen(4096)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(f"http://127.0.0.1:{server.server_port}/")
    conn.recv()  # stop
    server.shutdown()


def start(target: Callable[..., None], *args: Any) -> tuple[mp.Process, Connection, str]:
    """Spawn ``target(conn, *args)`` in a fresh process; returns it, the pipe and the URL it serves."""
    context = mp.get_context("spawn")
    here, there = context.Pipe()
    process = context.Process(target=target, args=(there, *args), daemon=True)
    process.start()
    if not here.poll(120):
        process.kill()
        raise RuntimeError(f"{target.__name__} did not start within 120 s")
    return process, here, str(here.recv())


def stop(process: mp.Process, conn: Connection) -> float:
    """Ask a target to stop; returns its CPU seconds (children's, as the OS counts them after it exits)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    conn.send("stop")
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def enter(url: str, worker: str) -> dict[str, Any]:
    """A worker's unit as JSON (the mock crowd's ``?worker_id=``)."""
    import urllib.request

    request = urllib.request.Request(f"{url}?worker_id={worker}", headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return dict(json.loads(answer.read()))


def socket_url(url: str, token: str) -> str:
    """The page socket of a token."""
    return url.replace("http://", "ws://") + "ws?token=" + token


def write(figures: dict[str, Any], output: str | None, default: str) -> Path:
    """Write the figures as JSON (``--output``, else benchmarks/results/<default>)."""
    path = Path(output) if output else RESULTS / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2))
    return path


def environment() -> dict[str, Any]:
    """The machine the figures were measured on."""
    return {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "python": sys.version.split()[0]}
