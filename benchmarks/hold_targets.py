"""The servers connected_workers.py holds sockets open on: crowdnb's in-kernel router, ``crowdnb serve``, floors.

The in-kernel router and its floor each run in a freshly spawned process (a 'kernel'), serving from a
thread with werkzeug ``make_server(threaded=True)`` and the local architect's backlog; the floor of
``crowdnb serve`` is gunicorn + gevent with its settings. The floor app is Flask + flask-sock and nothing
else: its GET hands out a token, its websocket answers each heartbeat with a status.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from machine import children
from served import STARTUP_TIMEOUT, ServeTarget, free_port, group_alive, healthy, signal_group

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from flask import Flask

HERE = Path(__file__).resolve().parent
PING_INTERVAL = 25  # the router's SOCK_SERVER_OPTIONS
BACKLOG = 4096  # the local architect's listen backlog
SERVE_CONNECTIONS = 2000  # crowdnb serve's gevent worker_connections


def bare_app() -> Flask:
    """The floor: Flask + flask-sock, a GET that hands out a token, a websocket that answers heartbeats."""
    from flask import Flask, jsonify, request
    from flask_sock import Sock

    app = Flask("connected_workers.floor")
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": PING_INTERVAL}
    sock = Sock(app)
    tokens = itertools.count(1)

    @app.get("/")
    def enter() -> Any:
        return jsonify({"status": "assigned", "token": str(next(tokens)), "input": {}, "fields": []})

    @app.get("/healthz")
    def health() -> Any:
        return jsonify({"ok": True})

    @app.before_request
    def plain_websocket() -> None:
        if request.endpoint == "heartbeat":  # as crowdnb's router: no permessage-deflate (zlib state per socket)
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

    @sock.route("/ws")
    def heartbeat(ws: Any) -> None:
        while ws.receive() is not None:
            ws.send(json.dumps({"type": "status", "status": "in_task"}))

    return app


def kernel_process(kind: str, folder: str, workers: int, conn: Connection) -> None:
    """A fresh 'kernel': serve crowdnb's run (or the floor) from a thread, say where, stop when told."""
    if kind == "crowdnb":
        from targets import CrowdnbTarget

        target = CrowdnbTarget(Path(folder), workers, workers)
        url, stop = target.url, target.stop
    else:
        import logging

        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = make_server("127.0.0.1", 0, bare_app(), threaded=True)
        server.socket.listen(BACKLOG)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}/"

        def stop() -> None:
            server.shutdown()
            server.server_close()

    conn.send(url)
    conn.recv()  # "stop"
    stop()
    conn.send("stopped")


class KernelTarget:
    """crowdnb's run, or the bare floor, served from a thread of a spawned process, as in a kernel."""

    def __init__(self, kind: str, folder: Path, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self._conn, theirs = ctx.Pipe()
        self._process = ctx.Process(target=kernel_process, args=(kind, str(folder), workers, theirs), name=kind)
        self._process.start()
        if not self._conn.poll(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError(f"the {kind} kernel did not start serving within {STARTUP_TIMEOUT:.0f} s")
        self.url: str = self._conn.recv()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    def stop(self) -> None:
        """Stop serving (the run stops cleanly) and end the process."""
        if self._process.is_alive():
            try:
                self._conn.send("stop")
                self._conn.poll(30)
            except OSError:
                pass
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


class FloorServe:
    """The bare app under gunicorn + gevent with ``crowdnb serve``'s settings, in a process of its own."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        command = [sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "-b", f"127.0.0.1:{port}", "-w", "1"]
        command += ["-k", "gevent", "--worker-connections", str(SERVE_CONNECTIONS), "--keep-alive", "75"]
        command += ["--graceful-timeout", "10", "hold_targets:bare_app()"]
        with (folder / "gunicorn.log").open("ab") as out:
            self._server = subprocess.Popen(
                command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not healthy(self.url):
            if self._server.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn did not serve the floor; see {folder / 'gunicorn.log'}")
            time.sleep(0.1)
        workers = children(self._server.pid)
        if len(workers) != 1:
            self.stop()
            raise RuntimeError(f"expected one gunicorn worker under {self._server.pid}, found {workers}")
        self.pid = workers[0]

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL what is left after 30 s."""
        group = self._server.pid
        signal_group(group, signal.SIGTERM)
        try:
            self._server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            signal_group(group, signal.SIGKILL)
            self._server.wait(timeout=10)
        deadline = time.monotonic() + 5
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(group):
            signal_group(group, signal.SIGKILL)


def make_target(kind: str, folder: Path, workers: int) -> Any:
    """Start serving one target."""
    if kind == "serve":
        return ServeTarget(folder, workers, workers)
    if kind == "floor-serve":
        return FloorServe(folder)
    return KernelTarget("crowdnb" if kind == "crowdnb" else "floor", folder, workers)
