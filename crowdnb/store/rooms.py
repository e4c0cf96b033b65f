"""Rooms of live tasks several workers share: one per assignment, its seats, messages and events.

Every message a worker sends and every event of the room (joined, started, away, back, left, released,
submitted, ended) is a row of ``messages``, numbered in order per assignment (``seq``), so a page that
reconnects is replayed the history from here and the transcript is part of the run's data. A message is
stored once per client-made id. The two moves of a room's agents that ``lifecycle`` has no word for are
here too: a partner gone for good leaves an expired unit (a conversation is not offered to someone
new), and a worker nobody joined in time goes back to the queue of offered units.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..errors import NotFound, StateError
from . import states as S
from .db import Row, Store, insert, new_id, now

MESSAGE, EVENT = "message", "event"

# the columns of run.messages_df, in order
COLUMNS = ["run_id", "assignment_id", "seq", "at", "kind", "role", "worker", "unit_id", "text", "data"]


def post(
    store: Store,
    assignment: Row,
    kind: str,
    text: str,
    *,
    role: str | None = None,
    agent: Row | None = None,
    client_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[Row, bool]:
    """Store a message or event of an assignment's room; returns ``(row, new)``.

    ``assignment`` needs ``id``, ``task_run_id`` and ``task_id``. A ``client_id`` the agent used before
    returns the stored row and ``False`` (a message resent after a dropped socket).
    """
    with store.write() as conn:
        if agent is not None and client_id is not None:
            same = conn.execute(
                "SELECT * FROM messages WHERE agent_id = ? AND client_id = ?", (agent["id"], client_id)
            ).fetchone()
            if same is not None:
                return dict(same), False
        seq = conn.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE assignment_id = ?", (assignment["id"],)
        ).fetchone()[0]
        row = {
            "id": new_id(),
            "assignment_id": int(assignment["id"]),
            "task_run_id": int(assignment["task_run_id"]),
            "task_id": int(assignment["task_id"]),
            "seq": int(seq),
            "kind": kind,
            "role": role,
            "agent_id": int(agent["id"]) if agent is not None else None,
            "worker_id": int(agent["worker_id"]) if agent is not None else None,
            "client_id": client_id,
            "text": text,
            "data": json.dumps(data or {}),
            "at": now(),
        }
        insert(conn, "messages", row)
        return row, True


def history(store: Store, assignment_id: int) -> list[Row]:
    """Every message and event of a room, in order."""
    return store.query("SELECT * FROM messages WHERE assignment_id = ? ORDER BY seq", (assignment_id,))


def events(store: Store, assignment_id: int, *names: str) -> list[Row]:
    """A room's events named ``names`` (the ``event`` of their data), in order."""
    marks = ",".join("?" * len(names))
    return store.query(
        f"SELECT * FROM messages WHERE assignment_id = ? AND kind = 'event' AND json_extract(data, '$.event') IN ({marks}) "
        "ORDER BY seq",
        (assignment_id, *names),
    )


def seats(store: Store, assignment_id: int) -> list[Row]:
    """The units of an assignment with the agent holding each (``agent_id`` None when free), by seat."""
    return store.query(
        "SELECT u.id AS unit_id, u.unit_index, u.status AS unit_status, u.agent_id, a.status AS agent_status, "
        "a.worker_id, w.name AS worker FROM units u LEFT JOIN agents a ON a.id = u.agent_id "
        "LEFT JOIN workers w ON w.id = a.worker_id WHERE u.assignment_id = ? ORDER BY u.unit_index",
        (assignment_id,),
    )


def assignment(store: Store, assignment_id: int) -> Row:
    """An assignment's ids (for ``post``)."""
    row = store.query_one("SELECT id, task_run_id, task_id FROM assignments WHERE id = ?", (assignment_id,))
    if row is None:
        raise NotFound(f"no assignment {assignment_id}")
    return row


def leave(store: Store, agent_id: int) -> bool:
    """A partner gone for good: their agent disconnects and their unit expires (never offered again: the
    conversation it belonged to has ended). False when the agent no longer held the unit."""
    with store.write() as conn:
        return _move(conn, agent_id, S.DISCONNECT, S.EXPIRED)


def release(store: Store, agent_id: int) -> bool:
    """A worker nobody joined in time: their agent times out and the seat is offered again."""
    with store.write() as conn:
        return _move(conn, agent_id, S.TIMEOUT, S.LAUNCHED)


def of_run(store: Store, run_id: int) -> list[Row]:
    """Every message and event of a run, room by room in order, with the worker's name (``run.messages_df``)."""
    return store.query(
        "SELECT m.task_run_id AS run_id, m.assignment_id, m.seq, m.at, m.kind, m.role, w.name AS worker, "
        "a.unit_id, m.text, m.data FROM messages m LEFT JOIN workers w ON w.id = m.worker_id "
        "LEFT JOIN agents a ON a.id = m.agent_id WHERE m.task_run_id = ? ORDER BY m.assignment_id, m.seq",
        (run_id,),
    )


def per_unit(store: Store, run_id: int) -> dict[int, int]:
    """How many messages the agent that submitted each unit sent (the ``messages`` column of ``run.df``)."""
    rows = store.query(
        "SELECT s.unit_id, count(m.id) AS n FROM submissions s JOIN messages m ON m.agent_id = s.agent_id "
        "AND m.kind = 'message' WHERE s.task_run_id = ? GROUP BY s.unit_id",
        (run_id,),
    )
    return {int(r["unit_id"]): int(r["n"]) for r in rows}


def _move(conn: sqlite3.Connection, agent_id: int, agent_status: str, unit_status: str) -> bool:
    row = conn.execute("SELECT status, unit_id FROM agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None or row["status"] not in S.AGENT_LIVE:
        return False
    S.check_agent(row["status"], agent_status)
    S.check_unit(S.ASSIGNED, unit_status)
    conn.execute(
        "UPDATE agents SET status = ?, ended_at = ?, last_seen_at = ? WHERE id = ?",
        (agent_status, now(), now(), agent_id),
    )
    moved = conn.execute(
        "UPDATE units SET status = ?, worker_id = NULL, agent_id = NULL, updated_at = ? "
        "WHERE id = ? AND status = ? AND agent_id = ?",
        (unit_status, now(), row["unit_id"], S.ASSIGNED, agent_id),
    ).rowcount
    if not moved:  # rolled back with the agent's move: the two never disagree
        raise StateError(f"agent {agent_id} was live but its unit {row['unit_id']} was not assigned to it")
    return True
