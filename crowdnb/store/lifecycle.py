"""The life of units and agents: every status change is one transaction of the store.

Dispatch, submission, release of abandoned units, expiry and review all go through here, and every
move is checked by ``states`` first, so a unit is never held by two workers and a submission is either
stored with its unit completed or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, StateError, WorkerRefused
from . import states as S
from .db import Row, Store, ago, insert, new_id, now, table
from .offers import LIVE_AGENT, Quota, offer
from .refusals import taken_since

if TYPE_CHECKING:
    from ..providers import Report


def add_assignments(
    store: Store,
    run_id: int,
    task_id: int,
    rows: Sequence[dict[str, Any]],
    first_index: int,
    units_per_assignment: int,
    pay: float,
) -> int:
    """Store input rows as assignments with their units (status created); returns the count."""
    stamp = now()
    assignments, units = [], []
    for offset, data in enumerate(rows):
        aid = new_id()
        assignments.append(
            {
                "id": aid,
                "task_run_id": run_id,
                "task_id": task_id,
                "row_index": first_index + offset,
                "data": json.dumps(data),
                "created_at": stamp,
            }
        )
        for index in range(units_per_assignment):
            units.append(
                {
                    "id": new_id(),
                    "assignment_id": aid,
                    "task_run_id": run_id,
                    "task_id": task_id,
                    "unit_index": index,
                    "status": S.CREATED,
                    "pay_amount": pay,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
            )
    with store.write() as conn:
        table(conn, "assignments").insert_all(assignments, batch_size=1000)
        table(conn, "units").insert_all(units, batch_size=1000)
        conn.execute("UPDATE task_runs SET rows_loaded = rows_loaded + ? WHERE id = ?", (len(assignments), run_id))
    return len(assignments)


@dataclass(frozen=True)
class Budget:
    """At most ``dollars`` for a task, rewards and bonuses with the provider's fee on top."""

    task_id: int
    dollars: float
    unit_cost: float  # one unit's reward with the fee
    fee_rate: float


def committed_spend(conn: sqlite3.Connection, task_id: int, fee_rate: float) -> float:
    """Dollars a task has paid or may still pay: rewards of units on offer, held or payable, and bonuses."""
    rewards = conn.execute(
        f"SELECT coalesce(sum(pay_amount), 0) FROM units WHERE task_id = ? AND status IN {S.sql_in(S.UNIT_COMMITTED)}",
        (task_id,),
    ).fetchone()[0]
    bonuses = conn.execute(
        "SELECT coalesce(sum(amount), 0) FROM reviews WHERE task_id = ? AND action = 'bonus'", (task_id,)
    ).fetchone()[0]
    return float(rewards + bonuses) * (1 + fee_rate)


def launch_units(store: Store, run_id: int, cap: int = 0, budget: Budget | None = None) -> list[int]:
    """Move created units to launched, keeping launched + assigned at most ``cap`` (0 = no cap) and the
    task's committed spend within ``budget``."""
    with store.write() as conn:
        limit = -1
        if cap:
            live = conn.execute(
                f"SELECT count(*) FROM units WHERE task_run_id = ? AND status IN {S.sql_in(S.UNIT_LIVE)}",
                (run_id,),
            ).fetchone()[0]
            limit = max(cap - live, 0)
        if budget is not None and budget.unit_cost > 0:
            room = budget.dollars - committed_spend(conn, budget.task_id, budget.fee_rate)
            affordable = max(int(room / budget.unit_cost + 1e-9), 0)
            limit = affordable if limit < 0 else min(limit, affordable)
        if limit == 0:
            return []
        ids = [
            r[0]
            for r in conn.execute(
                f"SELECT id FROM units WHERE task_run_id = ? AND status = {S.sql(S.CREATED)} ORDER BY id LIMIT ?",
                (run_id, limit),
            )
        ]
        _set_units(conn, ids, S.LAUNCHED, expect=(S.CREATED,))
        return ids


@dataclass(frozen=True)
class Special:
    """A unit made on demand for one worker instead of a data unit (a gold unit)."""

    kind: str  # "gold"
    row_index: int  # which gold row
    data: dict[str, Any]  # its input (never the known answer)
    unit_index: int = -2  # negative: never offered to anyone else


def reserve(
    store: Store, run_id: int, worker_id: int, quota: Quota, external: dict[str, str], special: Special | None = None
) -> tuple[Row, bool]:
    """Give the worker a unit of the run, atomically: their live agent if they have one, else a new one.

    ``special`` replaces the data unit the worker would get (only while data units remain for them).
    Returns ``(agent, resumed)``. Raises ``WorkerRefused`` with the reason when nothing can be given.
    """
    with store.write() as conn:
        live = conn.execute(LIVE_AGENT, (run_id, worker_id)).fetchone()
        if live:
            if external and json.loads(live["external"]) != external:
                # the platform moved the worker to another assignment (MTurk: a HIT returned, another
                # accepted); completion and pay must name the one they hold now
                conn.execute("UPDATE agents SET external = ? WHERE id = ?", (json.dumps(external), live["id"]))
                return {**dict(live), "external": json.dumps(external)}, True
            return dict(live), True
        run, unit = offer(lambda sql, params: conn.execute(sql, params).fetchone(), run_id, worker_id, quota)
        if special is not None:
            unit = _special_unit(conn, run_id, run["task_id"], unit["pay_amount"], special)
        agent = {
            "id": new_id(),
            "unit_id": unit["id"],
            "worker_id": worker_id,
            "assignment_id": unit["assignment_id"],
            "task_run_id": run_id,
            "task_id": unit["task_id"],
            "status": S.A_ACCEPTED,
            "external": json.dumps(external),
            "started_at": now(),
            "last_seen_at": now(),
        }
        insert(conn, "agents", agent)
        _set_units(conn, [unit["id"]], S.ASSIGNED, expect=(S.LAUNCHED,), worker_id=worker_id, agent_id=agent["id"])
        return agent, False


def mark_in_task(store: Store, agent_ids: Iterable[int]) -> int:
    """Move accepted agents whose page is open to in_task (others have moved on); returns the count."""
    with store.write() as conn:
        return sum(_move_agent(conn, agent_id, S.IN_TASK) for agent_id in agent_ids)


def apply_reports(store: Store, run_id: int, provider: str, reports: Iterable[Report]) -> int:
    """Release the agents a platform reports as returned or abandoned; returns how many moved."""
    moved = 0
    with store.write() as conn:
        for report in reports:
            if report.status not in S.AGENT_RELEASED:
                raise StateError(
                    f"a provider reported status {report.status!r}; expected one of {', '.join(S.AGENT_RELEASED)}"
                )
            for agent in conn.execute(
                "SELECT a.id, a.external FROM agents a JOIN workers w ON w.id = a.worker_id "
                f"WHERE a.task_run_id = ? AND w.provider = ? AND w.name = ? AND a.status IN {S.sql_in(S.AGENT_LIVE)}",
                (run_id, provider, report.worker),
            ).fetchall():
                if report.external.items() <= json.loads(agent["external"]).items():
                    moved += _move_agent(conn, agent["id"], report.status)
    return moved


def release_stale(store: Store, run_id: int, duration: float, disconnected: Iterable[int] = ()) -> int:
    """Time out agents older than ``duration`` seconds and release disconnected ones; returns the count."""
    moved = 0
    with store.write() as conn:
        if duration:
            stale = conn.execute(
                f"SELECT id FROM agents WHERE task_run_id = ? AND status IN {S.sql_in(S.AGENT_LIVE)} AND started_at < ?",
                (run_id, ago(duration)),
            ).fetchall()
            moved += sum(_move_agent(conn, r[0], S.TIMEOUT) for r in stale)
        moved += sum(_move_agent(conn, agent_id, S.DISCONNECT) for agent_id in disconnected)
    return moved


def submit(
    store: Store, agent_id: int, client_id: str, answers: dict[str, Any], files: dict[str, Any], meta: dict[str, Any]
) -> tuple[int, bool]:
    """Store an agent's answers and complete its unit in one transaction.

    Returns ``(submission_id, duplicate)``: a retry with the same ``client_id`` is a duplicate and
    stores nothing; different answers for a unit already submitted are refused ("taken").
    """
    with store.write() as conn:
        same = conn.execute("SELECT id, agent_id FROM submissions WHERE client_id = ?", (client_id,)).fetchone()
        if same:
            if same["agent_id"] != agent_id:
                raise WorkerRefused("forbidden", "This submission id belongs to someone else.")
            return int(same["id"]), True
        agent = conn.execute(
            "SELECT a.*, u.status AS unit_status, u.agent_id AS unit_agent_id FROM agents a "
            "JOIN units u ON u.id = a.unit_id WHERE a.id = ?",
            (agent_id,),
        ).fetchone()
        if agent is None:
            raise NotFound(f"no agent {agent_id}")
        if conn.execute("SELECT 1 FROM submissions WHERE agent_id = ?", (agent_id,)).fetchone():
            # other answers for a unit already saved (a second tab): say so rather than "saved"
            raise WorkerRefused(
                "taken", "This unit was already submitted from another tab or window; those answers are kept."
            )
        _reclaim_or_refuse(conn, agent)
        _check_and_set_agent(conn, agent_id, agent["status"], S.A_COMPLETED)
        _set_units(conn, [agent["unit_id"]], S.COMPLETED, expect=(S.ASSIGNED,))
        submission_id = new_id()
        insert(
            conn,
            "submissions",
            {
                "id": submission_id,
                "client_id": client_id,
                "unit_id": agent["unit_id"],
                "agent_id": agent_id,
                "worker_id": agent["worker_id"],
                "task_run_id": agent["task_run_id"],
                "task_id": agent["task_id"],
                "answers": json.dumps(answers),
                "files": json.dumps(files),
                "meta": json.dumps(meta),
                "submitted_at": now(),
                "rev": next_rev(conn),
            },
        )
        return submission_id, False


def expire_run(store: Store, run_id: int) -> list[int]:
    """Expire every created, launched or assigned unit of a run (and its live agent); returns unit ids."""
    with store.write() as conn:
        rows = conn.execute(
            f"SELECT id, agent_id, status FROM units WHERE task_run_id = ? AND status IN {S.sql_in(S.UNIT_INCOMPLETE)}",
            (run_id,),
        ).fetchall()
        for row in rows:
            if row["status"] == S.ASSIGNED and row["agent_id"]:
                status = conn.execute("SELECT status FROM agents WHERE id = ?", (row["agent_id"],)).fetchone()[0]
                _check_and_set_agent(conn, row["agent_id"], status, S.A_EXPIRED)
        _set_units(conn, [r["id"] for r in rows], S.EXPIRED, expect=S.UNIT_INCOMPLETE, worker_id=None, agent_id=None)
        return [r["id"] for r in rows]


def relaunch_expired(store: Store, run_id: int) -> int:
    """Put a run's expired units back on offer (resume); returns the count."""
    with store.write() as conn:
        expired = conn.execute(f"SELECT id FROM units WHERE task_run_id = ? AND status = {S.sql(S.EXPIRED)}", (run_id,))
        ids = [r[0] for r in expired]
        _set_units(conn, ids, S.LAUNCHED, expect=(S.EXPIRED,))
        return len(ids)


def review(store: Store, unit_id: int, decision: str, actor: str, note: str | None) -> bool:
    """Record a review decision on a submitted unit; False when the unit already had it (idempotent)."""
    with store.write() as conn:
        unit = conn.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
        if unit is None:
            raise NotFound(f"no unit {unit_id}")
        if unit["status"] == decision:
            return False
        S.check_unit(unit["status"], decision)
        agent_status = conn.execute("SELECT status FROM agents WHERE id = ?", (unit["agent_id"],)).fetchone()[0]
        _check_and_set_agent(conn, unit["agent_id"], agent_status, S.REVIEW_TO_AGENT[decision])
        _set_units(conn, [unit_id], decision, expect=(unit["status"],))
        conn.execute("UPDATE submissions SET rev = ? WHERE unit_id = ?", (next_rev(conn), unit_id))
        insert(
            conn,
            "reviews",
            {
                "id": new_id(),
                "at": now(),
                "actor": actor,
                "action": decision,
                "unit_id": unit_id,
                "worker_id": unit["worker_id"],
                "task_id": unit["task_id"],
                "task_run_id": unit["task_run_id"],
                "amount": unit["pay_amount"],
                "note": note,
            },
        )
        return True


def record_bonus(
    store: Store, worker_id: int, amount: float, reason: str, key: str, actor: str, unit: Row | None = None
) -> bool:
    """Record a bonus (for a unit, or for a worker outside any unit) once per ``key``; False if seen before.

    The intent is written before the provider is called, so a crash between the two can never pay twice.
    """
    with store.write() as conn:
        try:
            insert(
                conn,
                "reviews",
                {
                    "id": new_id(),
                    "at": now(),
                    "actor": actor,
                    "action": "bonus",
                    "unit_id": unit["id"] if unit else None,
                    "worker_id": worker_id,
                    "task_id": unit["task_id"] if unit else None,
                    "task_run_id": unit["task_run_id"] if unit else None,
                    "amount": amount,
                    "note": reason,
                    "key": key,
                },
            )
        except sqlite3.IntegrityError:
            return False
    return True


# --- inside a transaction ---------------------------------------------------------------------
def _special_unit(conn: sqlite3.Connection, run_id: int, task_id: int, pay: float, special: Special) -> Row:
    stamp = now()
    assignment = {
        "id": new_id(),
        "task_run_id": run_id,
        "task_id": task_id,
        "row_index": special.row_index,
        "data": json.dumps(special.data),
        "created_at": stamp,
        "kind": special.kind,
    }
    insert(conn, "assignments", assignment)
    unit = {
        "id": new_id(),
        "assignment_id": assignment["id"],
        "task_run_id": run_id,
        "task_id": task_id,
        "unit_index": special.unit_index,
        "status": S.LAUNCHED,
        "pay_amount": pay,
        "created_at": stamp,
        "updated_at": stamp,
    }
    insert(conn, "units", unit)
    return unit


def next_rev(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'rev' RETURNING value"
    ).fetchone()
    return int(row[0])


_KEEP = object()


def _set_units(
    conn: sqlite3.Connection,
    ids: Sequence[int],
    status: str,
    *,
    expect: Sequence[str],
    worker_id: Any = _KEEP,
    agent_id: Any = _KEEP,
) -> None:
    """Move units to ``status``; every unit must be in one of ``expect`` (checked by the state machine)."""
    if not ids:
        return
    for old in expect:
        S.check_unit(old, status)
    sets, params = ["status = ?", "updated_at = ?"], [status, now()]
    if worker_id is not _KEEP:
        sets.append("worker_id = ?")
        params.append(worker_id)
    if agent_id is not _KEEP:
        sets.append("agent_id = ?")
        params.append(agent_id)
    marks = ",".join("?" * len(expect))
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        done = conn.execute(
            f"UPDATE units SET {', '.join(sets)} WHERE status IN ({marks}) AND id IN ({','.join('?' * len(chunk))})",
            [*params, *expect, *chunk],
        ).rowcount
        if done != len(chunk):
            raise StateError(
                f"{len(chunk) - done} of {len(chunk)} units were not in {'/'.join(expect)}; nothing changed"
            )


def _check_and_set_agent(conn: sqlite3.Connection, agent_id: int, old: str, new: str) -> None:
    S.check_agent(old, new)
    ended = now() if new not in S.AGENT_LIVE else None
    conn.execute(
        "UPDATE agents SET status = ?, ended_at = coalesce(?, ended_at), last_seen_at = ? WHERE id = ? AND status = ?",
        (new, ended, now(), agent_id, old),
    )


def _move_agent(conn: sqlite3.Connection, agent_id: int, status: str) -> bool:
    row = conn.execute("SELECT status, unit_id FROM agents WHERE id = ?", (agent_id,)).fetchone()
    if row is None or row["status"] not in S.AGENT_LIVE or row["status"] == status:
        return False
    _check_and_set_agent(conn, agent_id, row["status"], status)
    if status in S.AGENT_RELEASED:
        special = conn.execute("SELECT unit_index < 0 FROM units WHERE id = ?", (row["unit_id"],)).fetchone()[0]
        # a unit made for one worker is withdrawn, not offered to others
        after = S.EXPIRED if special else S.LAUNCHED
        _set_units(conn, [row["unit_id"]], after, expect=(S.ASSIGNED,), worker_id=None, agent_id=None)
    return True


def _reclaim_or_refuse(conn: sqlite3.Connection, agent: sqlite3.Row) -> None:
    """Let a released agent submit late if its unit is still free; refuse if someone else has it."""
    if agent["status"] in S.AGENT_LIVE:
        return
    if agent["status"] in (S.DISCONNECT, S.TIMEOUT, S.A_EXPIRED) and agent["unit_status"] == S.LAUNCHED:
        _set_units(
            conn,
            [agent["unit_id"]],
            S.ASSIGNED,
            expect=(S.LAUNCHED,),
            worker_id=agent["worker_id"],
            agent_id=agent["id"],
        )
        return
    if agent["status"] == S.RETURNED:
        raise WorkerRefused("taken", "You returned this unit, so this answer could not be saved.")
    raise WorkerRefused("taken", taken_since(conn, agent))
