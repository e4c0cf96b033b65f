"""The ceiling target of the router benchmark: what Python can serve on this machine with no framework at all.

A raw ASGI app — no Flask, no routing, no validation, no crowdnb — on uvicorn with uvloop, httptools and
websockets' sans-I/O protocol (the fastest pure-Python-facing stack on PyPI), served from a background
thread of *this* process as a kernel would, speaking the same worker protocol as the other targets: GET
hands out a JSON unit, the websocket answers each heartbeat, POST does one durable SQLite insert (WAL,
synchronous=FULL). Nothing a real router must do fits under this figure, so it bounds what any router
written in Python could reach here, whatever its server.

Needs the ``bench`` extra (``pip install -e '.[bench]'``); ``make test`` does not.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

from targets import NO_WORK, DurableLog, bare_unit

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
START_TIMEOUT = 10.0


class CeilingTarget:
    """The raw ASGI app under uvicorn in a thread of this process, with the baseline's durable insert."""

    name = "ceiling"

    def __init__(self, folder: Path, units: int) -> None:
        try:
            import uvicorn
        except ImportError as exc:
            raise SystemExit(
                "the ceiling target needs uvicorn, uvloop, httptools and websockets: pip install -e '.[bench]' "
                "(or leave it out: --targets crowdnb,serve,baseline)"
            ) from exc
        self.log = DurableLog(folder / "ceiling.db")
        self._items: Iterator[int] = iter(range(units))  # one event loop thread: no lock needed
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            loop="uvloop",
            http="httptools",
            ws="websockets-sansio",
            interface="asgi3",
            lifespan="off",
            log_level="error",
            access_log=False,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="ceiling-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ceiling server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/"
        self.pid = os.getpid()

    async def _app(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._heartbeats(receive, send)
        elif scope["method"] == "GET":
            await self._enter(send)
        else:
            await self._submit(receive, send)

    async def _enter(self, send: Send) -> None:
        item = next(self._items, None)
        await (_json(send, 410, NO_WORK) if item is None else _json(send, 200, bare_unit(item)))

    async def _submit(self, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.log.insert(json.loads(b"".join(chunks)))  # on the loop, as the baseline does it in its thread
        await _json(send, 200, {"status": "saved"})

    @staticmethod
    async def _heartbeats(receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        status = json.dumps({"type": "status", "status": "in_task"})
        while (await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.send", "text": status})

    def new_keys(self) -> list[int]:
        """Rows inserted since the last call."""
        return self.log.new_keys()

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self.log.close()


async def _json(send: Send, status: int, value: dict[str, Any]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(value).encode()})
