"""Read-only summaries of a project for people: tables, widgets and the review app.

SQL lives in ``store`` (rows and plain queries), ``lifecycle`` (transitions) and here (reports).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from . import states as S
from .db import Row, Store

log = logging.getLogger(__name__)

# the columns of a submission that are not answers, as frames and exports name them
META_COLUMNS = [
    "run_id",
    "unit_id",
    "assignment_id",
    "unit_index",
    "row_index",
    "worker",
    "status",
    "started_at",
    "submitted_at",
    "duration_s",
    "reward",
]
FEEDBACK_COLUMN = "_feedback"


def task_summary(store: Store) -> list[Row]:
    """One row per task: name, number of runs, number of submissions, creation time."""
    return store.query(
        "SELECT t.name, count(DISTINCT r.id) AS runs, "
        "(SELECT count(*) FROM submissions s WHERE s.task_id = t.id) AS submissions, t.created_at "
        "FROM tasks t LEFT JOIN task_runs r ON r.task_id = t.id GROUP BY t.id ORDER BY t.name"
    )


def spend(store: Store, scope: str, scope_id: int, fee_rate: float = 0.0) -> dict[str, float]:
    """Dollars of a run (``scope="run"``) or task: rewards paid, rewards awaiting review, bonuses, the provider's
    ``fee_rate`` on rewards and bonuses paid, and the total so far. The one place spend is computed.

    Summed in whole cents (the fee rounded to the cent, half up), so 3 × $0.05 is 0.15, not
    0.15000000000000002; each figure is a number of cents over 100."""
    column = {"run": "task_run_id", "task": "task_id"}[scope]
    row = store.query_one(
        f"SELECT coalesce(sum(CASE WHEN status IN {S.sql_in(S.UNIT_PAYABLE)} THEN CAST(round(pay_amount * 100) "
        "AS INTEGER) END), 0) AS paid, "
        f"coalesce(sum(CASE WHEN status = {S.sql(S.COMPLETED)} THEN CAST(round(pay_amount * 100) AS INTEGER) END), 0) "
        f"AS pending FROM units WHERE {column} = ?",
        (scope_id,),
    )
    bonuses = int(
        store.scalar(
            "SELECT coalesce(sum(CAST(round(amount * 100) AS INTEGER)), 0) FROM reviews "
            f"WHERE {column} = ? AND action = 'bonus'",
            (scope_id,),
        )
    )
    paid, pending = (int(row["paid"]), int(row["pending"])) if row else (0, 0)
    fees = int((Decimal(paid + bonuses) * Decimal(str(fee_rate))).quantize(Decimal(1), ROUND_HALF_UP))
    cents = {"rewards": paid, "pending": pending, "bonuses": bonuses, "fees": fees, "total": paid + bonuses + fees}
    return {name: value / 100 for name, value in cents.items()}


def added(spends: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Several ``spend`` figures added up in whole cents (a task's runs, each with its own provider's fees)."""
    cents = dict.fromkeys(("rewards", "pending", "bonuses", "fees", "total"), 0)
    for one in spends:
        for name, value in one.items():
            cents[name] += round(value * 100)
    return {name: value / 100 for name, value in cents.items()}


def worker_stats(store: Store, names: list[str] | None, provider: str) -> dict[str, dict[str, int]]:
    """Per worker name (of ``names``, or every worker of ``provider`` with a unit): their units by status
    across the whole project (for review decisions)."""
    if names is not None and not names:
        return {}
    stats: dict[str, dict[str, int]] = {name: {} for name in names or []}
    # one pass over the units (CROSS JOIN keeps them the outer loop; each finds its worker by primary key):
    # units have no index by worker alone, and a loop over workers would scan every unit once per worker
    sql = (
        "SELECT w.name, u.status, count(*) AS n FROM units u CROSS JOIN workers w ON w.id = u.worker_id "
        "WHERE w.provider = ? GROUP BY u.worker_id, u.status"
    )
    for row in store.query(sql, (provider,)):
        if names is None or row["name"] in stats:
            stats.setdefault(row["name"], {})[row["status"]] = row["n"]
    return stats


def runs_overview(store: Store) -> list[Row]:
    """Every run with its task, state, address and units by outcome."""
    return store.query(
        "SELECT r.id AS run_id, t.name AS task, r.status AS state, r.provider, r.url, r.created_at, "
        f"count(u.id) AS units, sum(u.status IN {S.sql_in(S.UNIT_SUBMITTED)}) AS submitted, "
        f"sum(u.status = {S.sql(S.ACCEPTED)}) AS accepted FROM task_runs r JOIN tasks t ON t.id = r.task_id "
        "LEFT JOIN units u ON u.task_run_id = r.id GROUP BY r.id ORDER BY r.id"
    )


def units_to_do(store: Store) -> dict[int, int]:
    """Run id → units that can still be worked on: on offer, held, or expired (a resume offers them again)."""
    rows = store.query(
        f"SELECT task_run_id, count(*) AS n FROM units WHERE status IN {S.sql_in(S.UNIT_TO_DO)} GROUP BY task_run_id"
    )
    return {r["task_run_id"]: r["n"] for r in rows}


def workers_overview(store: Store) -> list[Row]:
    """Every worker with their units by status and their qualifications."""
    return store.query(
        "SELECT w.provider, w.name AS worker, "
        f"(SELECT count(*) FROM units u WHERE u.worker_id = w.id AND u.status IN {S.sql_in(S.UNIT_SUBMITTED)}) AS submitted, "
        f"(SELECT count(*) FROM units u WHERE u.worker_id = w.id AND u.status = {S.sql(S.ACCEPTED)}) AS accepted, "
        f"(SELECT count(*) FROM units u WHERE u.worker_id = w.id AND u.status = {S.sql(S.REJECTED)}) AS rejected, "
        "(SELECT group_concat(q.name || '=' || g.value, ', ') FROM granted_qualifications g "
        " JOIN qualifications q ON q.id = g.qualification_id WHERE g.worker_id = w.id) AS qualifications "
        "FROM workers w ORDER BY w.provider, w.name"
    )


def worker_qualifications(store: Store, provider: str, worker: str) -> dict[str, int]:
    """A worker's qualifications: name → value."""
    rows = store.query(
        "SELECT q.name, g.value FROM granted_qualifications g JOIN qualifications q ON q.id = g.qualification_id "
        "JOIN workers w ON w.id = g.worker_id WHERE w.provider = ? AND w.name = ? ORDER BY q.name",
        (provider, worker),
    )
    return {r["name"]: r["value"] for r in rows}


def qualification_holders(store: Store, name: str | None = None) -> list[Row]:
    """Every qualification (or the one ``name``d) with each worker holding it, by name then worker.

    Rows: qualification, description, provider, worker, value, updated_at; a qualification nobody
    holds has one row whose worker is None.
    """
    return store.query(
        "SELECT q.name AS qualification, q.description, w.provider, w.name AS worker, g.value, g.updated_at "
        "FROM qualifications q LEFT JOIN granted_qualifications g ON g.qualification_id = q.id "
        "LEFT JOIN workers w ON w.id = g.worker_id WHERE ?1 IS NULL OR q.name = ?1 "
        "ORDER BY q.name, w.provider, w.name",
        (name,),
    )


def worker_reviews(store: Store, provider: str, worker: str, limit: int = 100) -> list[Row]:
    """The latest review actions on a worker (decisions, bonuses, grants, blocks, messages), newest first."""
    return store.query(
        "SELECT r.at, r.actor, r.action, r.unit_id, t.name AS task, r.amount, r.note, r.details "
        "FROM reviews r JOIN workers w ON w.id = r.worker_id LEFT JOIN tasks t ON t.id = r.task_id "
        "WHERE w.provider = ? AND w.name = ? ORDER BY r.at DESC, r.id DESC LIMIT ?",
        (provider, worker, limit),
    )


def agent_counts(store: Store, run_id: int) -> dict[str, int]:
    """Agents (workers' attempts) of a run by status, every status present (zero when none)."""
    found = {r["status"]: int(r["n"]) for r in store.query(
        "SELECT status, count(*) AS n FROM agents WHERE task_run_id = ? GROUP BY status", (run_id,))}  # fmt: skip
    return {status: found.get(status, 0) for status in S.AGENT_STATES}


def live_agents(store: Store, run_id: int) -> list[int]:
    """Agents of a run holding a unit right now (accepted or in the task)."""
    rows = store.query(f"SELECT id FROM agents WHERE task_run_id = ? AND status IN {S.sql_in(S.AGENT_LIVE)}", (run_id,))
    return [int(r["id"]) for r in rows]


def submissions_since(
    store: Store, scope: str, scope_id: int, rev: int, kind: str = "data", limit: int = -1
) -> list[Row]:
    """Submissions of a run (scope "run") or task (scope "task") changed after ``rev``, oldest first.

    ``kind`` is "data" (the study's own units) or "gold"; ``limit`` caps the rows (-1: all).
    """
    column = {"run": "s.task_run_id", "task": "s.task_id"}[scope]
    return store.query(
        "SELECT s.rev, s.id AS submission_id, s.unit_id, s.agent_id, s.task_run_id AS run_id, "
        "u.assignment_id, u.unit_index, w.name AS worker, u.status, u.pay_amount AS reward, "
        "a.started_at, s.submitted_at, asg.row_index, asg.data AS input, s.answers, s.files, s.meta "
        "FROM submissions s JOIN units u ON u.id = s.unit_id JOIN agents a ON a.id = s.agent_id "
        "JOIN workers w ON w.id = s.worker_id JOIN assignments asg ON asg.id = u.assignment_id "
        f"WHERE {column} = ? AND s.rev > ? AND asg.kind = ? ORDER BY s.rev LIMIT ?",
        (scope_id, rev, kind, limit),
    )


BATCH_ROWS = 50_000  # rows of a bulk read held at once: a few tens of MB of Python objects


def submission_batches(
    store: Store, scope: str, scope_id: int, rev: int, kind: str = "data", size: int = BATCH_ROWS
) -> Iterator[dict[str, tuple[Any, ...]]]:
    """``submissions_since`` by column, a batch at a time, for building a frame in bulk: the worker as
    ``worker_id`` (names are few: ``worker_names``), ``files`` and ``meta`` None when empty; revision order."""
    column = {"run": "s.task_run_id", "task": "s.task_id"}[scope]
    return store.column_batches(
        "SELECT s.rev, s.id AS submission_id, s.unit_id, s.task_run_id AS run_id, u.assignment_id, u.unit_index, "
        "asg.row_index, s.worker_id, u.status, u.pay_amount AS reward, a.started_at, s.submitted_at, "
        "asg.data AS input, s.answers, NULLIF(s.files, '{}') AS files, NULLIF(s.meta, '{}') AS meta "
        "FROM submissions s JOIN units u ON u.id = s.unit_id JOIN agents a ON a.id = s.agent_id "
        "JOIN assignments asg ON asg.id = u.assignment_id "
        f"WHERE {column} = ? AND s.rev > ? AND asg.kind = ? ORDER BY s.rev",
        (scope_id, rev, kind),
        size,
    )


def worker_names(store: Store, worker_ids: Iterable[int]) -> dict[int, str]:
    """The names of these workers (ids not found are left out)."""
    ids = json.dumps(sorted({int(w) for w in worker_ids}))
    rows = store.query("SELECT w.id, w.name FROM json_each(?) j JOIN workers w ON w.id = j.value", (ids,))
    return {int(r["id"]): str(r["name"]) for r in rows}


def uploaded_files(store: Store, scope: str, scope_id: int) -> dict[int, list[Row]]:
    """The files each submitted unit of a run (``scope="run"``) or task uploaded, by unit id: one
    ``{field, path, name, type, size, sha256}`` per file, as the router stored them.

    Only these are files: an answer that reads like an upload path is text, whoever's upload it names.
    A path that does not resolve inside its run's upload folder (``files/<run id>/``) is left out.
    """
    column = {"run": "task_run_id", "task": "task_id"}[scope]
    found: dict[int, list[Row]] = {}
    folders: dict[int, Path] = {}
    rows = store.query(
        f"SELECT unit_id, task_run_id, files FROM submissions WHERE {column} = ? AND files != '{{}}'", (scope_id,)
    )
    for row in rows:
        run_id = int(row["task_run_id"])
        folder = folders.setdefault(run_id, (store.files_dir / str(run_id)).resolve())
        for field, value in json.loads(row["files"]).items():
            for entry in value if isinstance(value, list) else [value]:  # one dict per field in early rows
                path = str(entry.get("path", ""))
                if path and (store.root / path).resolve().is_relative_to(folder):
                    found.setdefault(int(row["unit_id"]), []).append({**entry, "field": field})
                else:
                    log.warning(
                        "unit %s: stored upload path %r is outside run %s's files; ignored",
                        row["unit_id"],
                        path,
                        run_id,
                    )
    return found


# --- review app ------------------------------------------------------------------------------
