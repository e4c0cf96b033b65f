"""Copies of a project's database: an online backup, and a run's rows brought home from another copy.

A router that runs elsewhere (``architect="process"``, EC2, Heroku) keeps the database of record beside it;
when the run stops, its rows come home into the local project so ``cn.open()`` sees the run like any
other. Ids are time-ordered random 63-bit numbers (``db.new_id``), so rows made on two machines do not
collide; workers and qualifications are matched by their natural keys (a worker first seen on both sides
has two ids, and the local one wins). Bringing the same copy home twice changes nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .db import Store
from .lifecycle import next_rev

# the run's own rows, in the order their references need; worker ids in them are mapped to local ones
_RUN_TABLES = ("assignments", "units", "agents", "calls", "messages")


def backup(store: Store, dest: Path) -> Path:
    """A consistent copy of the project's database at ``dest``, made while writers keep writing."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(store.path)
    target = sqlite3.connect(dest)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()
    return dest


def keep_only(path: Path, run_id: int) -> None:
    """Leave only run ``run_id`` (its task, units, answers and audit rows) in the database file ``path``.

    Workers and qualifications stay: a router needs them to enforce requirements and blocks.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN IMMEDIATE")
        for table in ("messages", "calls", "submissions", "agents", "units", "assignments", "reviews", "provider_calls",
                      "provider_objects"):  # fmt: skip
            conn.execute(f"DELETE FROM {table} WHERE task_run_id IS NOT ?", (run_id,))
        conn.execute("DELETE FROM task_runs WHERE id != ?", (run_id,))
        conn.execute("DELETE FROM tasks WHERE id NOT IN (SELECT task_id FROM task_runs)")
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    finally:
        conn.close()


def bring_home(store: Store, copy: Path, run_id: int) -> dict[str, int]:
    """Merge run ``run_id``'s rows from the database file ``copy`` into ``store``; returns rows written per table."""
    remote = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    remote.row_factory = sqlite3.Row
    written: dict[str, int] = {}
    try:
        with store.write() as conn:
            workers = _match(conn, remote, "workers", ("provider", "name"))
            qualifications = _match(conn, remote, "qualifications", ("name",))
            written["task_runs"] = _replace(conn, _rows(remote, "task_runs", "id = ?", run_id), "task_runs")
            for name in _RUN_TABLES:
                rows = [_mapped(r, workers) for r in _rows(remote, name, "task_run_id = ?", run_id)]
                written[name] = _replace(conn, rows, name)
            written["submissions"] = _submissions(conn, remote, run_id, workers)
            written["granted_qualifications"] = _grants(conn, remote, workers, qualifications)
            for name, key in (("reviews", "id"), ("provider_calls", "id")):
                rows = [
                    _mapped(r, workers) for r in _rows(remote, name, "task_run_id = ? OR task_run_id IS NULL", run_id)
                ]
                written[name] = _insert_new(conn, rows, name, key)
            objects = _rows(remote, "provider_objects", "task_run_id = ?", run_id)
            written["provider_objects"] = _replace(conn, objects, "provider_objects")
    finally:
        remote.close()
    return {name: n for name, n in written.items() if n}


def _rows(db: sqlite3.Connection, table: str, where: str, *params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(f"SELECT * FROM {table} WHERE {where}", params)]


def _match(conn: sqlite3.Connection, remote: sqlite3.Connection, table: str, key: tuple[str, ...]) -> dict[int, int]:
    """Remote id → local id for rows matched by ``key``; remote rows unknown here are added with their ids."""
    mapping: dict[int, int] = {}
    where = " AND ".join(f"{k} = ?" for k in key)
    for row in _rows(remote, table, "1"):
        local = conn.execute(f"SELECT id FROM {table} WHERE {where}", [row[k] for k in key]).fetchone()
        if local is None:
            _replace(conn, [row], table)
            mapping[row["id"]] = row["id"]
        else:
            mapping[row["id"]] = local[0]
    return mapping


def _mapped(row: dict[str, Any], workers: dict[int, int]) -> dict[str, Any]:
    if row.get("worker_id") is not None:
        row["worker_id"] = workers.get(row["worker_id"], row["worker_id"])
    return row


def _replace(conn: sqlite3.Connection, rows: list[dict[str, Any]], table: str) -> int:
    """Insert or update ``rows`` by primary key; returns how many differed from what was here."""
    key = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[5]]
    changed = 0
    for row in rows:
        columns = list(row)
        where = " AND ".join(f"{c} IS ?" for c in columns)
        if conn.execute(f"SELECT 1 FROM {table} WHERE {where}", list(row.values())).fetchone():
            continue  # already here, unchanged: a second import writes nothing
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        conn.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}",
            list(row.values()),
        )
        changed += 1
    return changed


def _insert_new(conn: sqlite3.Connection, rows: list[dict[str, Any]], table: str, key: str) -> int:
    """Insert the rows whose ``key`` is not here yet (an audit row never changes once written)."""
    added = 0
    for row in rows:
        if conn.execute(f"SELECT 1 FROM {table} WHERE {key} = ?", (row[key],)).fetchone():
            continue
        columns = list(row)
        marks = ", ".join("?" * len(columns))
        cursor = conn.execute(
            f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})", list(row.values())
        )
        added += cursor.rowcount
    return added


def _submissions(conn: sqlite3.Connection, remote: sqlite3.Connection, run_id: int, workers: dict[int, int]) -> int:
    """Submissions by their id; a new or changed one gets a revision of this database, so frames see it."""
    changed = 0
    for row in _rows(remote, "submissions", "task_run_id = ?", run_id):
        row = _mapped(row, workers)
        del row["seq"], row["rev"]
        here = conn.execute("SELECT * FROM submissions WHERE id = ?", (row["id"],)).fetchone()
        if here is not None and all(here[k] == v for k, v in row.items()):
            continue
        row["rev"] = next_rev(conn)
        columns = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
        conn.execute(
            f"INSERT INTO submissions ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            list(row.values()),
        )
        changed += 1
    return changed


def _grants(
    conn: sqlite3.Connection, remote: sqlite3.Connection, workers: dict[int, int], qualifications: dict[int, int]
) -> int:
    """Qualification values: the one changed last wins (a value revoked there is revoked here)."""
    changed = 0
    for row in _rows(remote, "granted_qualifications", "1"):
        worker, qualification = workers.get(row["worker_id"]), qualifications.get(row["qualification_id"])
        if worker is None or qualification is None:
            continue
        here = conn.execute(
            "SELECT value, updated_at FROM granted_qualifications WHERE worker_id = ? AND qualification_id = ?",
            (worker, qualification),
        ).fetchone()
        if here is not None and (here[0] == row["value"] or here[1] >= row["updated_at"]):
            continue
        conn.execute(
            "INSERT INTO granted_qualifications (id, worker_id, qualification_id, value, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id, qualification_id) DO UPDATE SET "
            "value = excluded.value, updated_at = excluded.updated_at",
            (row["id"], worker, qualification, row["value"], row["created_at"], row["updated_at"]),
        )
        changed += 1
    return changed
