"""The audit log as rules read and write it: flags, keys already used, a rule's own history, recent changes.

Every decision is a row of ``reviews`` (who, when, what, why). Rules add two needs: a decision that only
applies while the unit still awaits review (a rule never overrides a person, even one who decided a
moment ago), and a cheap question per monitor tick: which of a run's submissions changed since the last.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from . import lifecycle
from . import states as S
from .db import Row, Store, insert, new_id, now


def review_pending(store: Store, unit_id: int, decision: str, actor: str, note: str | None) -> bool:
    """Apply ``decision`` only if the unit is still ``completed`` (awaiting review), in one transaction."""
    with store.write() as conn:
        row = conn.execute("SELECT status FROM units WHERE id = ?", (unit_id,)).fetchone()
        if row is None or row["status"] != S.COMPLETED:
            return False
        return lifecycle.review(store, unit_id, decision, actor, note)


def flag(store: Store, unit_id: int, actor: str, note: str | None) -> bool:
    """Hold a submitted unit for a person's review (rules see it as ``flagged``); once per actor and unit."""
    with store.write() as conn:
        unit = conn.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
        if unit is None or unit["status"] not in S.UNIT_SUBMITTED:
            return False
        row = {
            "id": new_id(),
            "at": now(),
            "actor": actor,
            "action": "flag",
            "unit_id": unit_id,
            "worker_id": unit["worker_id"],
            "task_id": unit["task_id"],
            "task_run_id": unit["task_run_id"],
            "note": note,
            "key": f"flag:{unit_id}:{actor}",
        }
        try:
            insert(conn, "reviews", row)
        except sqlite3.IntegrityError:
            return False
    return True


def flagged_units(store: Store, run_id: int) -> set[int]:
    """The units of a run someone (a person or a rule) flagged."""
    rows = store.query("SELECT DISTINCT unit_id FROM reviews WHERE task_run_id = ? AND action = 'flag'", (run_id,))
    return {int(r["unit_id"]) for r in rows}


def keys_used(store: Store, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` (bonus and flag keys) are already in the audit log."""
    wanted = json.dumps(sorted(set(keys)))
    rows = store.query("SELECT r.key FROM json_each(?) j JOIN reviews r ON r.key = j.value", (wanted,))
    return {str(r["key"]) for r in rows}


def changes_since(store: Store, run_id: int, rev: int) -> list[Row]:
    """Submissions of a run (any kind: data, gold, screening) changed after ``rev``: unit, worker, rev."""
    return store.query(
        "SELECT s.rev, s.unit_id, w.name AS worker, asg.kind FROM submissions s "
        "JOIN workers w ON w.id = s.worker_id JOIN units u ON u.id = s.unit_id "
        "JOIN assignments asg ON asg.id = u.assignment_id WHERE s.task_run_id = ? AND s.rev > ? ORDER BY s.rev",
        (run_id, rev),
    )


def history(store: Store, run_id: int, actor: str) -> list[Row]:
    """What ``actor`` did in a run, oldest first (its actions on workers, which belong to no run, too)."""
    return store.query(
        "SELECT r.at, r.action, r.unit_id, w.name AS worker, r.amount, r.note, r.details FROM reviews r "
        "LEFT JOIN workers w ON w.id = r.worker_id WHERE r.actor = ? AND (r.task_run_id = ? OR r.task_run_id IS NULL) "
        "ORDER BY r.at, r.id",
        (actor, run_id),
    )


def qualifications_by_worker(store: Store, provider: str, workers: Iterable[str]) -> dict[str, dict[str, int]]:
    """Each named worker's qualifications (name → value); a worker holding none maps to ``{}``."""
    names = sorted(set(workers))
    rows = store.query(
        "SELECT w.name AS worker, q.name, g.value FROM json_each(?) j JOIN workers w ON w.provider = ? AND w.name = j.value "
        "JOIN granted_qualifications g ON g.worker_id = w.id JOIN qualifications q ON q.id = g.qualification_id",
        (json.dumps(names), provider),
    )
    held: dict[str, dict[str, int]] = {name: {} for name in names}
    for row in rows:
        held[row["worker"]][row["name"]] = int(row["value"])
    return held


def latest_unit(store: Store, run_id: int, worker: str) -> Row | None:
    """The unit ``worker`` submitted last in a run (of any kind), where a bonus for their work there is booked."""
    return store.query_one(
        "SELECT u.* FROM units u JOIN workers w ON w.id = u.worker_id JOIN submissions s ON s.unit_id = u.id "
        "WHERE u.task_run_id = ? AND w.name = ? ORDER BY s.seq DESC LIMIT 1",
        (run_id, worker),
    )
