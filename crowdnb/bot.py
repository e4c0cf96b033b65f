"""A simulated worker's page while it holds a unit: its input, its socket, and its calls to procedures.

``cn.simulate(run, play=fn)`` hands each bot's unit to ``fn(bot)``, which returns the answers to submit.
The bot speaks the page protocol crowd.js speaks, over a real websocket: a call is ``{"type": "call",
"id", "name", "args"}`` and its answer a ``result`` with the same id.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import simple_websocket

from .errors import ProcedureError


class Bot:
    """One simulated page: ``input`` (the unit's row), ``name`` (the worker), ``call(name, args)``."""

    def __init__(self, name: str, run_url: str, unit: dict[str, Any]) -> None:
        self.name = name
        self.input: dict[str, Any] = dict(unit.get("input") or {})
        self.token = str(unit["token"])
        self.url = run_url.replace("http://", "ws://").replace("https://", "wss://") + "ws?token=" + self.token
        self.received: list[dict[str, Any]] = []  # every socket message that was not an answer to a call
        self._ws: simple_websocket.Client | None = None

    def _socket(self) -> simple_websocket.Client:
        if self._ws is None:
            try:
                self._ws = simple_websocket.Client.connect(self.url)
            except (simple_websocket.SimpleWebsocketError, OSError) as exc:
                raise ProcedureError(f"the page's socket could not open: {exc}") from exc
        return self._ws

    def send(self, message: dict[str, Any]) -> None:
        """Send one message on the page's socket."""
        try:
            self._socket().send(json.dumps(message))
        except (simple_websocket.SimpleWebsocketError, OSError) as exc:
            raise ProcedureError(f"the page's socket closed: {exc}") from exc

    def call(self, name: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Call a procedure of the task as the page would; its result, or ``ProcedureError`` with the message
        the worker would read."""
        call_id = uuid.uuid4().hex
        self.send({"type": "call", "id": call_id, "name": name, "args": args or {}})
        deadline = time.monotonic() + timeout
        while True:
            reply = self._next(deadline)
            if reply.get("type") == "result" and reply.get("id") == call_id:
                if reply.get("ok"):
                    return dict(reply.get("result") or {})
                raise ProcedureError(str(reply.get("message") or "the call failed"))
            self.received.append(reply)

    def _next(self, deadline: float) -> dict[str, Any]:
        """The next message on the socket; ``ProcedureError`` when none comes before ``deadline``."""
        left = deadline - time.monotonic()
        try:
            raw = self._socket().receive(timeout=max(left, 0.001)) if left > 0 else None
        except (simple_websocket.SimpleWebsocketError, OSError) as exc:
            raise ProcedureError(f"the page's socket closed: {exc}") from exc
        if raw is None:
            raise ProcedureError("no answer from the task in time")
        body = json.loads(raw)
        return body if isinstance(body, dict) else {}

    def close(self) -> None:
        """Close the page's socket (the unit is submitted, or given up)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None
