"""Calls from a worker's page to procedures that live elsewhere (the notebook): the router's side.

The router never runs notebook Python itself. The facade hands it a ``Procedures`` object, and the
router only ever calls ``procedures.call(name, args, worker, call_id)``. In-kernel that is a bounded
thread pool over the registered functions (``crowdnb.procedures``); for a router served away from the
kernel it will be the operator channel. Around that one call this module keeps what a page relies on:

* a call id is answered once: the call is stored before it runs, and a retry of the same id (a socket
  dropped mid-call) gets the stored answer, or waits for the running one, never a second run;
* arguments and results are JSON objects of bounded size;
* every call and its outcome is a row of the store (``run.calls_df``);
* a failure reaches the worker as a message they can act on; its detail goes to the requester's log.

A page's calls are answered in the order it made them: the page's socket handler answers one call at a
time (and crowd.js sends the next only when the previous one is answered).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ProcedureError, WorkerRefused
from ..store import calls as stored
from ..store import states as S
from ..store.db import Row, Store

log = logging.getLogger(__name__)

ARGS_BYTES = 64 * 1024  # a call's arguments, as JSON
RESULT_BYTES = 256 * 1024  # a procedure's result, as JSON
REPLAY_WAIT = 120.0  # seconds a retry waits for the first attempt of the same call to finish
_CALL_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Caller:
    """Who calls a procedure (its ``worker`` argument): the worker and the unit their page holds."""

    name: str  # the worker's name on their provider
    run_id: int
    unit_id: int
    assignment_id: int
    agent_id: int
    input: dict[str, Any]  # the unit's input row
    role: str | None = None  # their role, in a task several workers share


class Procedures(Protocol):
    """What the router needs of whoever runs procedures: one blocking call.

    ``call`` returns the procedure's result, a JSON-ready dict, or raises ``ProcedureError`` whose message
    the worker reads (``timed_out=True`` when the procedure ran out of time, ``detail`` for the requester's
    log). It returns within the procedure's own timeout. ``call_id`` is new for this agent: the router
    has made sure of that, and answers repeats itself.
    """

    def call(self, name: str, args: dict[str, Any], worker: Caller, call_id: str) -> dict[str, Any]: ...


class Calls:
    """The calls of one run's pages: checked, stored once, run through ``Procedures``, answered.

    ``role_of(agent)`` names the caller's role in a shared assignment (None otherwise).
    """

    def __init__(
        self, store: Store, procedures: Procedures | None, role_of: Callable[[Row], str | None] | None = None
    ) -> None:
        self.store = store
        self.procedures = procedures
        self.role_of = role_of
        self._lock = threading.Lock()
        self._running: dict[tuple[int, str], threading.Event] = {}

    def answer(self, agent: Row, body: Any) -> dict[str, Any]:
        """The reply to one call ``{id, name, args}`` from ``agent``'s page.

        ``{"type": "result", "id", "ok": True, "result"}``, or ``"ok": False`` with the ``message`` the
        worker reads. A call that is not well formed raises ``WorkerRefused`` (and is not stored).
        """
        call_id, name, args = _checked(body)
        if self.store.agent_status(int(agent["id"])) not in S.AGENT_LIVE:
            raise WorkerRefused("taken", "This unit is no longer yours, so the task cannot answer; reload the page.")
        key = (int(agent["id"]), call_id)
        with self._lock:
            first = key not in self._running  # else the same call is running now (a retry on a new socket)
            done = self._running.setdefault(key, threading.Event())
        if not first:
            done.wait(REPLAY_WAIT)
            return _reply(self._settled(key))
        try:
            row, new = stored.begin(self.store, agent, call_id, name, json.dumps(args))
            if not new:  # answered before: replay it
                return _reply(self._settled(key))
            return _reply(self._run(row, agent, call_id, name, args))
        finally:
            with self._lock:
                self._running.pop(key, None)
            done.set()

    def _run(self, row: Row, agent: Row, call_id: str, name: str, args: dict[str, Any]) -> Row:
        started = time.perf_counter()
        outcome: dict[str, Any]
        try:
            if self.procedures is None:
                raise ProcedureError("This task has no live procedures.", detail=f"no procedure {name!r}")
            worker = Caller(
                self.store.worker_name(int(agent["worker_id"])),
                int(agent["task_run_id"]),
                int(agent["unit_id"]),
                int(agent["assignment_id"]),
                int(agent["id"]),
                json.loads(agent.get("input") or "{}"),
                self.role_of(agent) if self.role_of else None,
            )
            result = self.procedures.call(name, args, worker, call_id)
            outcome = {"status": stored.OK, "result": _result_json(name, result)}
        except ProcedureError as exc:
            status = stored.TIMEOUT if exc.timed_out else stored.ERROR
            outcome = {"status": status, "message": exc.message, "traceback": exc.detail}
            if exc.detail:
                log.error("procedure %r failed for agent %s (call %s): %s", name, agent["id"], call_id, exc.detail)
            else:
                log.warning("procedure %r for agent %s (call %s): %s", name, agent["id"], call_id, exc.message)
        except Exception as exc:  # a broken Procedures implementation: the worker still gets an answer
            log.exception("procedures could not run %r for agent %s", name, agent["id"])
            outcome = {"status": stored.ERROR, "message": _SORRY.format(name=name), "traceback": repr(exc)}
        elapsed = (time.perf_counter() - started) * 1000
        stored.finish(self.store, int(row["id"]), duration_ms=round(elapsed, 3), **outcome)
        return {**row, **outcome, "call_id": call_id}

    def _settled(self, key: tuple[int, str]) -> Row:
        """The stored answer of a call whose first attempt has ended (or never can)."""
        current = stored.get(self.store, *key)
        if current is None:  # the first attempt was refused before it was stored
            return {"call_id": key[1], "status": stored.ERROR, "message": "This request was not accepted; try again."}
        if current["status"] == stored.RUNNING:
            # nothing here runs it (the router restarted mid-call, or it outlasted REPLAY_WAIT): it never ends
            message = "This request was interrupted; please try again."
            stored.finish(self.store, int(current["id"]), stored.ERROR, message=message, traceback="interrupted")
            current = {**current, "status": stored.ERROR, "message": message}
        return current


_SORRY = "Something went wrong while the task worked on your request ({name}); please try again."


def _checked(body: Any) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise WorkerRefused("bad_submission", "A call must be a JSON object with an id, a name and args.")
    call_id, name, args = body.get("id"), body.get("name"), body.get("args", {})
    if not isinstance(call_id, str) or not _CALL_ID.match(call_id):
        raise WorkerRefused("bad_submission", "The call's id is missing or malformed; reload the page.")
    if not isinstance(name, str) or not _NAME.match(name):
        raise WorkerRefused("bad_submission", f"{str(name)[:70]!r} is not a procedure name.")
    if not isinstance(args, dict):
        raise WorkerRefused("bad_submission", "A call's args must be a JSON object.")
    try:
        size = len(json.dumps(args, allow_nan=False).encode())
    except ValueError as exc:
        raise WorkerRefused("bad_submission", "The call's args contain a number that is not finite.") from exc
    if size > ARGS_BYTES:
        raise WorkerRefused("too_large", f"The request is too large ({size // 1024} kB; at most {ARGS_BYTES // 1024}).")
    return call_id, name, args


def _result_json(name: str, result: Any) -> str:
    """A procedure's result as stored JSON; a ``ProcedureError`` when it is not a small JSON object."""
    if not isinstance(result, dict):
        raise ProcedureError(
            _SORRY.format(name=name), detail=f"procedure {name!r} returned {type(result).__name__}; return a dict"
        )
    try:
        text = json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ProcedureError(
            _SORRY.format(name=name), detail=f"procedure {name!r} returned a dict that is not JSON: {exc}"
        ) from exc
    if len(text.encode()) > RESULT_BYTES:
        raise ProcedureError(
            _SORRY.format(name=name),
            detail=f"procedure {name!r} returned {len(text.encode()) // 1024} kB; at most {RESULT_BYTES // 1024} kB",
        )
    return text


def _reply(row: Row) -> dict[str, Any]:
    if row["status"] == stored.OK:
        return {"type": "result", "id": row["call_id"], "ok": True, "result": json.loads(row["result"])}
    return {"type": "result", "id": row["call_id"], "ok": False, "message": row.get("message") or ""}
