"""The in-process targets of the router benchmark: a crowdnb run served by the kernel, and the baseline.

Both serve from *this* process, the way a notebook kernel serves a run (werkzeug ``make_server(threaded=
True)`` in a background thread). ``crowdnb serve``, which runs in a process of its own, is in served.py.
Flask and crowdnb are imported inside the classes: the load process is spawned and re-imports the
benchmark's modules, and it should not pay for pandas or Flask.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd
    from flask import Flask

    import crowdnb as cn

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


class Target(Protocol):
    """Something serving a run that the load generator can work on."""

    name: str
    url: str
    pid: int  # the process that does the routing: its CPU and memory are the router's

    def new_keys(self) -> list[int]:
        """Items that became visible to the notebook since the last call."""
        ...

    def stop(self) -> None:
        """Stop serving and release the port."""
        ...


def input_rows(units: int) -> list[dict[str, Any]]:
    """The units' input data; ``item`` identifies a unit on both sides of the process boundary."""
    return [{"item": i, "text": f"sentence number {i}"} for i in range(units)]


def new_task(project: cn.Project, units: int, workers: int) -> cn.Task:
    """The benchmark's task in ``project``: the same form and input rows for every crowdnb target."""
    import crowdnb as cn

    return cn.Task(
        f"router-load-{workers}",
        title="Router load",
        reward=0.0,
        html=FORM,
        data=input_rows(units),
        project=project,
    )


class FrameTail:
    """The items of the rows a run's frame gained since the last look (rows are only ever appended)."""

    def __init__(self) -> None:
        self._seen = 0

    def __call__(self, frame: pd.DataFrame) -> list[int]:
        """The ``item`` of every row past the ones already seen."""
        if len(frame) <= self._seen:
            return []
        fresh = [int(item) for item in frame["item"].iloc[self._seen :]]
        self._seen = len(frame)
        return fresh


class CrowdnbTarget:
    """A crowdnb run on the mock crowd, served by the local architect in this process, in its own project."""

    name = "crowdnb"

    def __init__(self, folder: Path, units: int, workers: int) -> None:
        import crowdnb as cn

        self.project = cn.open(folder, create=True)
        self.run = new_task(self.project, units, workers).launch(provider="mock", architect="local")
        self.url = self.run.url
        self.pid = os.getpid()
        self._tail = FrameTail()

    def new_keys(self) -> list[int]:
        """New rows of ``run.df``."""
        return self._tail(self.run.df)

    def stop(self) -> None:
        """Stop the run cleanly and close the project's database."""
        self.run.stop()
        self.project.store.close()


NO_WORK = {"status": "refused", "reason": "no_work", "message": "No work left."}


def bare_unit(item: int) -> dict[str, Any]:
    """What the bare targets (baseline, ceiling) answer a GET with: unit ``item`` and its fields."""
    unit = {"item": item, "text": f"sentence number {item}"}
    return {
        "status": "assigned",
        "token": str(item),
        "submission_id": uuid.uuid4().hex,
        "input": unit,
        "fields": BARE_FIELDS,
    }


class DurableLog:
    """The bare targets' storage: one durable SQLite insert per submission (WAL, synchronous=FULL, one
    connection behind a lock), and the rows a poller has not seen yet (read on a connection of its own)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE submissions (id INTEGER PRIMARY KEY, client_id TEXT, item INTEGER, answers TEXT, at REAL)"
        )
        self._lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None
        self._last_id = 0

    def insert(self, body: dict[str, Any]) -> None:
        """Store a submission's JSON body durably (autocommit: one fsync per row)."""
        row = (str(body["submission_id"]), int(body["token"]), json.dumps(body["answers"]), time.time())
        with self._lock:
            self._db.execute("INSERT INTO submissions (client_id, item, answers, at) VALUES (?, ?, ?, ?)", row)

    def new_keys(self) -> list[int]:
        """Items of the rows inserted since the last call."""
        if self._reader is None:
            self._reader = sqlite3.connect(self._path, check_same_thread=False)
        rows = self._reader.execute(
            "SELECT id, item FROM submissions WHERE id > ? ORDER BY id", (self._last_id,)
        ).fetchall()
        if rows:
            self._last_id = rows[-1][0]
        return [item for _, item in rows]

    def close(self) -> None:
        """Close both connections."""
        if self._reader is not None:
            self._reader.close()
        self._db.close()


class BaselineTarget:
    """A bare Flask app with the same server set-up: small JSON GET, one durable insert per POST."""

    name = "baseline"

    def __init__(self, folder: Path, units: int) -> None:
        from werkzeug.serving import make_server

        self.log = DurableLog(folder / "baseline.db")
        self._items_lock = threading.Lock()
        self._items: Iterator[int] = iter(range(units))
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/"
        self.pid = os.getpid()

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
            return (jsonify(NO_WORK), 410) if item is None else jsonify(bare_unit(item))

        @app.post("/submit")
        def submit() -> Any:
            self.log.insert(request.get_json())
            return jsonify({"status": "saved"})

        @sock.route("/ws")
        def heartbeat(ws: Any) -> None:
            while ws.receive() is not None:
                ws.send(json.dumps({"type": "status", "status": "in_task"}))

        return app

    def new_keys(self) -> list[int]:
        """Rows inserted since the last call."""
        return self.log.new_keys()

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self.log.close()
