"""A simulated worker's page while it holds a unit: its input, its socket, its calls and its conversation.

``cn.simulate(run, play=fn)`` hands each bot's unit to ``fn(bot)``, which returns the answers to submit.
The bot speaks the page protocol crowd.js speaks, over a real websocket: a call is ``{"type": "call",
"id", "name", "args"}`` answered by a ``result`` with the same id; in a shared task the room tells the page
``lobby``, then ``room`` (started, with the history), and every ``message`` and ``event``; a message is
``{"type": "say", "id", "text"}``, kept once per id and echoed to its sender with the others.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import simple_websocket

from .errors import ProcedureError

_SOCKET_ERRORS = (simple_websocket.ConnectionError, simple_websocket.ConnectionClosed, OSError)


class Bot:
    """One simulated page: ``input`` (the unit's row), ``name`` (the worker), ``call(name, args)``, and in a
    shared task ``join()``, ``say(text)``, ``wait_for(n)``, ``role``, ``turn`` and ``messages``."""

    def __init__(self, name: str, run_url: str, unit: dict[str, Any]) -> None:
        self.name = name
        self.input: dict[str, Any] = dict(unit.get("input") or {})
        self.token = str(unit["token"])
        self.url = run_url.replace("http://", "ws://").replace("https://", "wss://") + "ws?token=" + self.token
        self.role: str | None = None
        self.roles: list[str] = []
        self.turn: str | None = None
        self.state = "none"  # lobby, started, ended, released
        self.messages: list[dict[str, Any]] = []  # the room's messages so far, in order
        self.events: list[dict[str, Any]] = []  # the room's events (joined, started, away, back, left …)
        self._replies: dict[str, dict[str, Any]] = {}  # answers to calls and says, by id
        self._ws: simple_websocket.Client | None = None

    # --- procedures ----------------------------------------------------------------------------
    def call(self, name: str, args: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """Call a procedure of the task as the page would; its result, or ``ProcedureError`` with the message
        the worker would read."""
        call_id = uuid.uuid4().hex
        self._send({"type": "call", "id": call_id, "name": name, "args": args or {}})
        reply = self._until(lambda: self._replies.pop(call_id, None), timeout, f"an answer to {name!r}")
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        raise ProcedureError(str(reply.get("message") or "the call failed"))

    # --- a shared task's room ------------------------------------------------------------------
    def join(self, timeout: float = 60.0) -> str:
        """Wait until the room starts (every partner is here); returns this bot's role."""
        self._socket()
        self._until(lambda: self.state in ("started", "ended") or None, timeout, "the conversation to start")
        return str(self.role)

    def say(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        """Send a message (waiting for this bot's turn when the roles take turns); the room's copy of it."""
        self.join(timeout)
        self._until(lambda: self.turn in (None, self.role) or None, timeout, f"{self.role}'s turn")
        message_id = uuid.uuid4().hex
        self._send({"type": "say", "id": message_id, "text": text})
        reply = self._until(lambda: self._replies.pop(message_id, None), timeout, "the room to take the message")
        if reply.get("type") == "refused":
            raise ProcedureError(str(reply.get("message")))
        return reply

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until the room holds at least ``count`` messages (or has ended); the messages."""
        self._until(lambda: len(self.messages) >= count or self.state == "ended" or None, timeout, f"{count} messages")
        return self.messages

    # --- the socket ----------------------------------------------------------------------------
    def _socket(self) -> simple_websocket.Client:
        if self._ws is None:
            try:
                self._ws = simple_websocket.Client.connect(self.url)
            except _SOCKET_ERRORS as exc:
                raise ProcedureError(f"the page's socket could not open: {exc}") from exc
        return self._ws

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self._socket().send(json.dumps(message))
        except _SOCKET_ERRORS as exc:
            raise ProcedureError(f"the page's socket closed: {exc}") from exc

    def _until(self, ready: Any, timeout: float, what: str) -> Any:
        """Read the socket until ``ready()`` gives something; ``ProcedureError`` naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while (found := ready()) is None:
            if self.state == "released":
                raise ProcedureError("released from the lobby: no partner arrived in time")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProcedureError(f"{self.name} waited {timeout:g} s for {what} in vain")
            try:
                raw = self._socket().receive(timeout=left)
            except _SOCKET_ERRORS as exc:
                raise ProcedureError(f"the page's socket closed: {exc}") from exc
            if raw is not None:
                body = json.loads(raw)
                self._heard(body if isinstance(body, dict) else {})
        return found

    def _heard(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind in ("lobby", "room"):
            self.role, self.roles = msg.get("role"), list(msg.get("roles") or [])
        if kind == "lobby":
            self.state = "lobby"
        elif kind == "room":
            self.state, self.turn = str(msg["state"]), msg.get("turn")
            self.messages = [m for m in msg.get("history", []) if m.get("type") == "message"]
            self.events = [m for m in msg.get("history", []) if m.get("type") == "event"]
        elif kind in ("message", "event"):
            if "turn" in msg:
                self.turn = msg["turn"]
            (self.messages if kind == "message" else self.events).append(msg)
            if kind == "message" and msg.get("id"):
                self._replies[str(msg["id"])] = msg
        elif kind in ("result", "refused"):
            self._replies[str(msg.get("id"))] = msg
        elif kind == "ended":
            self.state, self.turn = "ended", None
        elif kind == "released":
            self.state = "released"

    def close(self) -> None:
        """Close the page's socket (the unit is submitted, or given up)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None
