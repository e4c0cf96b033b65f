"""Procedure calls of live tasks: each call a worker's page made, once per client-made id, and its result.

A call is written (status ``running``) before the procedure runs and finished (``ok``, ``error`` or
``timeout``) when it returns, so a retry of the same id after a dropped socket finds the stored answer
instead of calling the function again, and every call is part of the run's data (``run.calls_df``).
"""

from __future__ import annotations

import sqlite3

from .db import Row, Store, insert, new_id, now

RUNNING, OK, ERROR, TIMEOUT = "running", "ok", "error", "timeout"
ENDED = (OK, ERROR, TIMEOUT)

# the columns of run.calls_df, in order
COLUMNS = [
    "call_id",
    "run_id",
    "unit_id",
    "assignment_id",
    "agent_id",
    "worker",
    "name",
    "args",
    "status",
    "result",
    "message",
    "traceback",
    "started_at",
    "ended_at",
    "duration_ms",
]


def begin(store: Store, agent: Row, call_id: str, name: str, args: str) -> tuple[Row, bool]:
    """Record a call of ``agent`` (status running) unless its id was seen; returns ``(row, new)``.

    ``args`` is the call's arguments as JSON text. A call id seen before returns the stored row and
    ``False``: the caller replays its answer (or waits for it) and never runs the procedure again.
    """
    with store.write() as conn:
        row = _find(conn, int(agent["id"]), call_id)
        if row is not None:
            return row, False
        fresh = {
            "id": new_id(),
            "call_id": call_id,
            "agent_id": int(agent["id"]),
            "unit_id": int(agent["unit_id"]),
            "assignment_id": int(agent["assignment_id"]),
            "worker_id": int(agent["worker_id"]),
            "task_run_id": int(agent["task_run_id"]),
            "task_id": int(agent["task_id"]),
            "name": name,
            "args": args,
            "status": RUNNING,
            "started_at": now(),
        }
        insert(conn, "calls", fresh)
        return fresh, True


def finish(
    store: Store,
    row_id: int,
    status: str,
    *,
    result: str | None = None,
    message: str | None = None,
    traceback: str | None = None,
    duration_ms: float | None = None,
) -> bool:
    """Store how a running call ended; False when it had ended already (a late answer after a timeout)."""
    if status not in ENDED:
        raise ValueError(f"a call ends as one of {', '.join(ENDED)}, not {status!r}")
    with store.write() as conn:
        return bool(
            conn.execute(
                "UPDATE calls SET status = ?, result = ?, message = ?, traceback = ?, ended_at = ?, duration_ms = ? "
                "WHERE id = ? AND status = ?",
                (status, result, message, traceback, now(), duration_ms, row_id, RUNNING),
            ).rowcount
        )


def get(store: Store, agent_id: int, call_id: str) -> Row | None:
    """The stored call of an agent with this client-made id, or None."""
    return store.query_one("SELECT * FROM calls WHERE agent_id = ? AND call_id = ?", (agent_id, call_id))


def of_run(store: Store, run_id: int) -> list[Row]:
    """Every call of a run in the order they were made, with the worker's name (``run.calls_df``)."""
    return store.query(
        "SELECT c.call_id, c.task_run_id AS run_id, c.unit_id, c.assignment_id, c.agent_id, w.name AS worker, "
        "c.name, c.args, c.status, c.result, c.message, c.traceback, c.started_at, c.ended_at, c.duration_ms "
        "FROM calls c JOIN workers w ON w.id = c.worker_id WHERE c.task_run_id = ? ORDER BY c.id",
        (run_id,),
    )


def per_unit(store: Store, run_id: int) -> dict[int, int]:
    """How many calls the agent that submitted each unit made (the ``calls`` column of ``run.df``)."""
    rows = store.query(
        "SELECT s.unit_id, count(c.id) AS n FROM submissions s JOIN calls c ON c.agent_id = s.agent_id "
        "WHERE s.task_run_id = ? GROUP BY s.unit_id",
        (run_id,),
    )
    return {int(r["unit_id"]): int(r["n"]) for r in rows}


def _find(conn: sqlite3.Connection, agent_id: int, call_id: str) -> Row | None:
    row = conn.execute("SELECT * FROM calls WHERE agent_id = ? AND call_id = ?", (agent_id, call_id)).fetchone()
    return dict(row) if row else None
