"""This notebook as the operator of a run served elsewhere (see :mod:`crowdnb.router.operator`).

The kernel keeps one outbound websocket to the router: over it the router calls notebook Python (an
onboarding or screening ``validate``, a custom validator, a live procedure) and the notebook sends its
decisions, which are applied where the run's data lives. The connection comes back by itself after a
network hiccup or a router restart (backing off up to ``MAX_BACKOFF`` s). A decision re-sent after a
dropped socket carries the same id, and the router answers it once.
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import simple_websocket

from .errors import ArchitectError, ConfigError, CrowdError, NotFound, ProcedureError, ProviderError, StateError

log = logging.getLogger(__name__)

MAX_BACKOFF = 15.0
DECIDE_TIMEOUT = 60.0
_ERRORS: dict[str, type[CrowdError]] = {
    "ConfigError": ConfigError, "NotFound": NotFound, "StateError": StateError,
}  # fmt: skip


class Operator:
    """The notebook's end of a run's operator channel: answers calls, sends decisions."""

    def __init__(self, url: str, token: str, hooks: Mapping[str, Callable[..., Any]]) -> None:
        base = url.rstrip("/") + "/_crowd/operator"
        self.url = "ws" + base[4:] if base.startswith("http") else base
        self.hooks = hooks
        self._headers = {"Authorization": f"Bearer {token}"}
        self._ws: Any = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._waiting: dict[str, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="crowdnb-operator-call")
        self._thread = threading.Thread(target=self._run, name="crowdnb-operator", daemon=True)

    def start(self, timeout: float = 10.0) -> Operator:
        """Connect (and keep reconnecting) in a background thread; wait up to ``timeout`` s for the first time."""
        self._thread.start()
        if not self._connected.wait(timeout):
            raise ArchitectError(f"could not reach the operator channel at {self.url} within {timeout:g} s")
        return self

    @property
    def connected(self) -> bool:
        """Whether the channel is open now."""
        return self._connected.is_set()

    def decide(self, action: str, timeout: float = DECIDE_TIMEOUT, **args: Any) -> Any:
        """Apply ``action`` on the router (approve, reject, bonus, grant …) and return its result.

        Re-sent with the same id after a dropped socket, so it is applied once.
        """
        message_id, done = uuid.uuid4().hex, threading.Event()
        reply: list[dict[str, Any]] = []
        self._waiting[message_id] = (done, reply)
        try:
            waited = 0.0
            while not done.is_set():
                if not self._connected.wait(min(timeout - waited, 5.0)):
                    raise ArchitectError(f"the router at {self.url} is unreachable; {action} was not applied yet")
                self._send({"type": "decide", "id": message_id, "action": action, "args": args})
                if done.wait(5.0):
                    break
                waited += 5.0
                if waited >= timeout:
                    raise ArchitectError(f"the router at {self.url} did not answer {action} within {timeout:g} s")
        finally:
            self._waiting.pop(message_id, None)
        answer = reply[0]
        if not answer.get("ok"):
            text, kind = str(answer.get("error", f"{action} failed")), str(answer.get("kind", ""))
            if kind == "ProviderError":  # its message already names the platform and the call
                raise ProviderError("router", action, text)
            raise _ERRORS.get(kind, CrowdError)(text)
        return answer.get("value")

    def stop(self) -> None:
        """Close the channel and stop reconnecting."""
        self._stop.set()
        with self._lock:
            ws = self._ws
        if ws is not None:
            try:
                ws.close()
            except Exception:
                log.debug("operator socket already closed")
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False)

    # --- the connection ------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                ws = simple_websocket.Client.connect(self.url, headers=self._headers)
            except Exception as exc:  # the router is down or restarting: try again later
                log.debug("operator channel %s: %s", self.url, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            backoff = 0.5
            with self._lock:
                self._ws = ws
            self._connected.set()
            try:
                self._listen(ws)
            finally:
                self._connected.clear()
                with self._lock:
                    self._ws = None
        log.info("operator channel %s closed", self.url)

    def _listen(self, ws: Any) -> None:
        while not self._stop.is_set():
            try:
                raw = ws.receive(timeout=1.0)
            except simple_websocket.ConnectionClosed:
                return
            if raw is None:
                continue
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if message.get("type") == "call":
                self._pool.submit(self._answer, message)
            elif message.get("type") == "decided":
                waiting = self._waiting.get(str(message.get("id")))
                if waiting is not None:
                    waiting[1].append(message)
                    waiting[0].set()

    def _answer(self, message: dict[str, Any]) -> None:
        hook = self.hooks.get(str(message.get("hook")))
        try:
            if hook is None:
                raise ConfigError(f"this notebook has no function for {message.get('hook')!r}")
            reply = {"ok": True, "value": hook(*message.get("args", []))}
        except ProcedureError as exc:  # a message meant for the worker
            reply = {"ok": False, "error": exc.detail or exc.message, "message": exc.message}
        except Exception as exc:  # the worker reads a short message; the traceback stays here
            log.exception("notebook function %s failed for a worker", message.get("hook"))
            reply = {"ok": False, "error": "".join(traceback.format_exception(exc))}
        self._send({"type": "result", "id": message.get("id"), **reply})

    def _send(self, message: dict[str, Any]) -> None:
        with self._lock:
            ws = self._ws
            if ws is None:
                return  # not connected: a decision is re-sent on the next connection
            try:
                ws.send(json.dumps(message, default=str))
            except Exception:
                log.debug("operator channel dropped while sending")
