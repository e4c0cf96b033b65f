"""Copies of a project's database: an online backup, and a run's rows brought home from another copy.

A router that runs elsewhere (``architect="process"``, EC2, Heroku) keeps the database of record beside it;
when the run stops, its rows come home into the local project so ``cn.open()`` sees the run like any
other. The same merge takes in another project's runs (``archive``: ``crowdnb db import``). Ids are
time-ordered random 63-bit numbers (``db.new_id``), so rows made on two machines do not collide; tasks,
requesters, workers and qualifications are matched by their natural keys (a worker first seen on both sides
has two ids, and the local one wins). Bringing the same copy home twice changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .db import Store, new_id
from .lifecycle import next_rev

# the run's own rows, in the order their references need; worker and task ids in them are mapped to local ones
_RUN_TABLES = ("assignments", "units", "agents", "calls", "messages")
# rows that belong to one run (or, where it is NULL, to none: a worker-level decision)
RUN_ROWS = ("messages", "calls", "submissions", "agents", "units", "assignments", "reviews", "provider_calls",
            "provider_objects")  # fmt: skip


@dataclass
class Merged:
    """What a merge wrote (rows per table) and what it found in conflict (one sentence each)."""

    written: dict[str, int] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


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
    keep_runs(path, [run_id])


def keep_runs(path: Path, run_ids: list[int]) -> None:
    """Leave only the runs ``run_ids``, their tasks and their rows in the database file ``path``.

    Workers, qualifications and grants stay; decisions about no run in particular (blocks) go, and so do the
    project's architect setups (cloud resource ids a router does not need).
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TEMP TABLE kept (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO kept (id) VALUES (?)", [(r,) for r in run_ids])
        for table in RUN_ROWS:
            conn.execute(f"DELETE FROM {table} WHERE task_run_id IS NULL OR task_run_id NOT IN (SELECT id FROM kept)")
        conn.execute("DELETE FROM task_runs WHERE id NOT IN (SELECT id FROM kept)")
        conn.execute("DELETE FROM tasks WHERE id NOT IN (SELECT task_id FROM task_runs)")
        conn.execute("DELETE FROM architect_setups")
        conn.execute("DROP TABLE kept")
        conn.execute("COMMIT")
        conn.execute("VACUUM")
    finally:
        conn.close()


def bring_home(store: Store, copy: Path, run_id: int) -> dict[str, int]:
    """Merge run ``run_id``'s rows from the database file ``copy`` into ``store``; returns rows written per table."""
    return merge(store, copy, [run_id]).written


def merge(store: Store, copy: Path, run_ids: list[int]) -> Merged:
    """Merge the runs ``run_ids`` of the database file ``copy`` (with every task, worker and qualification
    there) into ``store``, in one transaction; a second merge of the same copy writes nothing."""
    remote = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    remote.row_factory = sqlite3.Row
    merged = Merged()
    written = merged.written
    runs = ", ".join(str(int(r)) for r in run_ids) or "NULL"
    in_runs = f"task_run_id IN ({runs})"
    try:
        with store.write() as conn:
            maps = {
                "worker_id": _match(conn, remote, "workers", ("provider", "name"), merged),
                "task_id": _match(conn, remote, "tasks", ("name",), merged),
                "requester_id": _match(conn, remote, "requesters", ("provider", "name"), merged),
            }
            qualifications = _match(conn, remote, "qualifications", ("name",), merged)
            written["task_runs"] = _replace(
                conn, _each(_rows(remote, "task_runs", f"id IN ({runs})"), maps), "task_runs"
            )
            for name in _RUN_TABLES:
                written[name] = _replace(conn, _each(_rows(remote, name, in_runs), maps), name)
            written["submissions"] = _submissions(conn, remote, in_runs, maps)
            written["granted_qualifications"] = _grants(conn, remote, maps["worker_id"], qualifications)
            for name, key in (("reviews", "id"), ("provider_calls", "id")):
                rows = _each(_rows(remote, name, f"{in_runs} OR task_run_id IS NULL"), maps)
                written[name] = _insert_new(conn, rows, name, key)
            written["provider_objects"] = _replace(conn, _rows(remote, "provider_objects", in_runs), "provider_objects")
    finally:
        remote.close()
    merged.written = {name: n for name, n in written.items() if n}
    return merged


def _rows(db: sqlite3.Connection, table: str, where: str, *params: Any) -> list[dict[str, Any]]:
    return [dict(r) for r in db.execute(f"SELECT * FROM {table} WHERE {where}", params)]


def _match(
    conn: sqlite3.Connection, remote: sqlite3.Connection, table: str, key: tuple[str, ...], merged: Merged
) -> dict[int, int]:
    """Remote id → local id for rows matched by ``key``; remote rows unknown here are added with their ids
    (a new id when theirs is taken here by another row: a conflict, reported)."""
    mapping: dict[int, int] = {}
    where = " AND ".join(f"{k} = ?" for k in key)
    for row in _rows(remote, table, "1"):
        local = conn.execute(f"SELECT * FROM {table} WHERE {where}", [row[k] for k in key]).fetchone()
        if local is not None:
            mapping[row["id"]] = local["id"]
            if table == "tasks" and json.loads(local["config"]) != json.loads(row["config"]):
                merged.conflicts.append(
                    f"task {row['name']!r} has a different config here; its runs were added under the config here"
                )
            continue
        theirs_id = row["id"]
        taken = conn.execute(f"SELECT * FROM {table} WHERE id = ?", (theirs_id,)).fetchone()
        if taken is not None:
            theirs, ours = (" ".join(str(r[k]) for k in key) for r in (row, taken))
            merged.conflicts.append(
                f"{table[:-1]} id {row['id']} is {theirs!r} there but {ours!r} here; given a new id"
            )
            row["id"] = new_id()
        _replace(conn, [row], table)
        mapping[theirs_id] = row["id"]
    return mapping


def _each(rows: list[dict[str, Any]], maps: dict[str, dict[int, int]]) -> list[dict[str, Any]]:
    """``rows`` with their worker, task and requester ids mapped to local ones."""
    for row in rows:
        for column, mapping in maps.items():
            if row.get(column) is not None:
                row[column] = mapping.get(row[column], row[column])
    return rows


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


def _submissions(
    conn: sqlite3.Connection, remote: sqlite3.Connection, in_runs: str, maps: dict[str, dict[int, int]]
) -> int:
    """Submissions by their id; a new or changed one gets a revision of this database, so frames see it."""
    changed = 0
    for row in _each(_rows(remote, "submissions", in_runs), maps):
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
