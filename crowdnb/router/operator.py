"""The operator channel: a notebook connected out to a router that runs elsewhere.

When the router runs away from the kernel (``architect="process"``, an EC2 instance, Heroku), the notebook
is its operator. It connects *out* (so a laptop behind NAT works) to ``/_crowd/operator``, a websocket
authenticated by a bearer token derived from the run's secret; one operator at a time (a new connection
replaces the old one). Messages are JSON objects:

- router → notebook ``{"type": "call", "id", "hook", "args"}``: run notebook Python (an onboarding or screening
  ``validate``, a custom validator, a live procedure); the notebook answers ``{"type": "result", "id",
  "ok", "value" | "error"}``.
- notebook → router ``{"type": "decide", "id", "action", "args"}``: a review decision or a worker decision,
  applied here where the run's data lives (money still moves once: the store write comes first and is
  idempotent); answered ``{"type": "decided", "id", "ok", "value" | "error"}``. An id already answered is
  answered again from memory, so a decision re-sent after a dropped socket is applied once.

Submissions reach the notebook through the feed (``/_crowd/feed``, a long poll from a cursor), and its
rows come home through ``GET /_crowd/operator/database`` (a consistent copy made with SQLite's online
backup). While no operator is connected, whatever needs notebook Python is held (``hold``): a worker is
told to come back shortly, and everything else keeps running.
"""

from __future__ import annotations

import hmac
import json
import logging
import tarfile
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from flask_sock import Sock
from itsdangerous import URLSafeSerializer

from ..errors import CrowdError, WorkerRefused
from ..store import copies
from ..store.db import Store

log = logging.getLogger(__name__)

SALT = "crowdnb.router.operator"
CALL_TIMEOUT = 30.0  # seconds a worker's request waits for notebook Python
MAX_MESSAGE = 1024 * 1024  # bytes of one operator message
REMEMBERED = 4096  # decision ids whose answers are kept for a re-send
Apply = Callable[[str, dict[str, Any]], Any]  # (action, args) -> JSON-ready result
AWAY = "The requester's notebook is away for a moment; nothing was saved yet. Please try again in a few minutes."


def token(secret: str, run_id: int) -> str:
    """The bearer token of a run's operator channel (stable for the run's lifetime)."""
    return str(URLSafeSerializer(secret, salt=SALT).dumps(run_id))


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


class OperatorHub:
    """The router's end of the channel: who is connected, calls waiting for notebook Python, decisions."""

    def __init__(self, run_id: int, secret: str, apply: Apply, needs: frozenset[str] = frozenset()) -> None:
        self.run_id, self.apply, self.needs = run_id, apply, needs
        self._expected = f"Bearer {token(secret, run_id)}"
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ws: Any = None
        self._pending: dict[str, _Pending] = {}
        self._answered: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._inflight: set[str] = set()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix=f"crowdnb-operator-{run_id}")

    # --- who is connected ----------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Whether a notebook is connected now."""
        return self._ws is not None

    def hold(self, kind: str) -> None:
        """Refuse work of ``kind`` ("unit", "onboarding", "screening") that needs notebook Python while it is away."""
        if kind in self.needs and not self.connected:
            raise WorkerRefused("waiting", AWAY)

    def authorized(self, header: str) -> bool:
        """Whether an ``Authorization`` header carries this run's operator token."""
        return hmac.compare_digest(header, self._expected)

    # --- calls into notebook Python -----------------------------------------------------------------------
    def call(self, hook: str, args: list[Any], timeout: float = CALL_TIMEOUT) -> Any:
        """Run ``hook(*args)`` in the notebook and return its value; ``WorkerRefused("waiting")`` if it is away."""
        reply = self.reply(hook, args, timeout)
        if not reply.get("ok"):
            log.warning("notebook hook %s failed: %s", hook, reply.get("error"))
            raise WorkerRefused("bad_submission", "This answer could not be checked; please try again.")
        return reply.get("value")

    def reply(self, hook: str, args: list[Any], timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """The notebook's whole answer to ``hook(*args)``: ``{"ok", "value" | "error", "message"?}``."""
        pending, call_id = _Pending(), uuid.uuid4().hex
        with self._lock:
            ws = self._ws
            if ws is None:
                raise WorkerRefused("waiting", AWAY)
            self._pending[call_id] = pending
        try:
            self._send(ws, {"type": "call", "id": call_id, "hook": hook, "args": args})
            if not pending.done.wait(timeout) or pending.reply is None:
                raise WorkerRefused("waiting", AWAY)
        finally:
            with self._lock:
                self._pending.pop(call_id, None)
        return pending.reply

    def remote(self, hook: str) -> Callable[..., Any]:
        """A stand-in for a notebook function: calling it runs ``hook`` in the notebook."""

        def call(*args: Any) -> Any:
            return self.call(hook, [_plain(a) for a in args])

        call.__name__ = f"notebook:{hook}"
        return call

    # --- the connection ------------------------------------------------------------------------------
    def serve(self, ws: Any) -> None:
        """Hold one operator connection until it closes (the websocket route's body)."""
        with self._lock:
            old, self._ws = self._ws, ws
        if old is not None:
            _close(old, "another notebook became the operator")
        log.info("operator connected to run %s", self.run_id)
        self._send(ws, {"type": "hello", "run": self.run_id, "needs": sorted(self.needs)})
        try:
            while True:
                raw = ws.receive()
                if raw is None:
                    break
                self._received(ws, raw)
        finally:
            with self._lock:
                if self._ws is ws:
                    self._ws = None
                    failed = list(self._pending.values())
                else:
                    failed = []
            for pending in failed:  # calls waiting on this connection fail at once, not at their timeout
                pending.done.set()
            log.info("operator of run %s disconnected", self.run_id)

    def _received(self, ws: Any, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            kind, message_id = message["type"], str(message["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("operator sent a malformed message; ignored")
            return
        if kind == "result":
            with self._lock:
                pending = self._pending.get(message_id)
            if pending is not None:
                pending.reply = message
                pending.done.set()
        elif kind == "decide":
            with self._lock:
                if message_id in self._inflight:  # re-sent while the first is still being applied: one answer comes
                    return
                self._inflight.add(message_id)
            self._pool.submit(self._decide, ws, message_id, str(message.get("action")), message.get("args") or {})

    def _decide(self, ws: Any, message_id: str, action: str, args: dict[str, Any]) -> None:
        with self._lock:
            reply = self._answered.get(message_id)
        if reply is None:
            try:
                reply = {"type": "decided", "id": message_id, "ok": True, "value": self.apply(action, args)}
            except CrowdError as exc:
                reply = {
                    "type": "decided",
                    "id": message_id,
                    "ok": False,
                    "error": str(exc),
                    "kind": type(exc).__name__,
                }
            except Exception as exc:  # reported to the notebook, logged here with its traceback
                log.exception("operator decision %s failed", action)
                reply = {"type": "decided", "id": message_id, "ok": False, "error": repr(exc), "kind": "Exception"}
            with self._lock:
                self._answered[message_id] = reply
                while len(self._answered) > REMEMBERED:
                    self._answered.popitem(last=False)
        with self._lock:
            self._inflight.discard(message_id)
            ws = self._ws or ws  # the operator may have reconnected meanwhile: answer on its socket
        self._send(ws, reply)

    def _send(self, ws: Any, message: dict[str, Any]) -> None:
        try:
            with self._send_lock:
                ws.send(json.dumps(message))
        except Exception:  # a socket closing under us: the notebook re-sends what it did not hear back
            log.debug("could not send to the operator of run %s", self.run_id)

    def close(self) -> None:
        """Say goodbye to the operator and stop the decision threads."""
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            _close(ws, "the run stopped")
        self._pool.shutdown(wait=False)


def blueprint(hub: OperatorHub, store: Store, stop: Callable[[], None]) -> Blueprint:
    """The operator's routes: the websocket, the database copy, the uploads, and stop."""
    bp = Blueprint("crowdnb_operator", __name__)
    sock = Sock()

    @bp.before_request
    def authorize() -> Any:
        if not hub.authorized(request.headers.get("Authorization", "")):
            return jsonify({"error": "the operator channel needs Authorization: Bearer <operator token>"}), 401
        return None

    @sock.route("/_crowd/operator", bp=bp)
    def channel(ws: Any) -> None:
        hub.serve(ws)

    @bp.get("/_crowd/operator/database")
    def database() -> Response:
        folder = Path(tempfile.mkdtemp(prefix="crowdnb-copy-"))
        copy = copies.backup(store, folder / "crowdnb.db")
        reply = send_file(copy, mimetype="application/vnd.sqlite3", as_attachment=True, download_name="crowdnb.db")
        reply.call_on_close(lambda: _remove(folder))
        return reply

    @bp.get("/_crowd/operator/files")
    def files() -> Response:
        """The run's uploads, as a tar of ``files/<run id>/…`` (what the rows' ``files`` name)."""
        folder = Path(tempfile.mkdtemp(prefix="crowdnb-files-"))
        archive, uploads = folder / "files.tar", store.files_dir / str(hub.run_id)
        with tarfile.open(archive, "w") as tar:
            if uploads.is_dir():
                tar.add(uploads, arcname=uploads.relative_to(store.root).as_posix())
        reply = send_file(archive, mimetype="application/x-tar", as_attachment=True, download_name="files.tar")
        reply.call_on_close(lambda: _remove(folder))
        return reply

    @bp.post("/_crowd/operator/stop")
    def stop_run() -> Any:
        threading.Thread(target=stop, name="crowdnb-operator-stop", daemon=True).start()
        return jsonify({"status": "stopping"})

    return bp


def _plain(value: Any) -> Any:
    """A value as JSON can carry it (a page's Field becomes its dict)."""
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    return value


def _close(ws: Any, why: str) -> None:
    try:
        ws.close(reason=1000, message=why)
    except Exception:
        log.debug("operator socket already closed")


def _remove(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink(missing_ok=True)
    folder.rmdir()
