"""The project database: connections, transactions, schema migrations and plain queries.

SQL lives here, in ``lifecycle`` (the unit and agent transitions, run inside ``Store.write``) and in
``reports`` (read-only summaries). One writer connection (``writer.Writer``: serialised, group-committed,
each write durable when it returns) and a pool of reader connections; WAL lets the notebook read while
the router writes, and a submission is either fully stored or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from ..errors import NotFound
from . import states as S
from .names import check_name
from .schema import MIGRATIONS, migrate
from .writer import Writer

log = logging.getLogger(__name__)

DB_NAME = "crowdnb.db"
Row = dict[str, Any]

_id_lock = threading.Lock()
_last_id = 0


def new_id() -> int:
    """A time-ordered 63-bit id: milliseconds (41 bits) then 22 random bits, unique in this process.

    Databases written on different machines merge without renumbering.
    """
    global _last_id
    with _id_lock:
        candidate = (int(time.time() * 1000) << 22) | random.getrandbits(22)
        _last_id = max(candidate, _last_id + 1)
        return _last_id


def now() -> str:
    """The current UTC time as a fixed-width ISO-8601 string (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ago(seconds: float) -> str:
    """The UTC time ``seconds`` ago, in the format of ``now``."""
    moment = datetime.fromtimestamp(time.time() - seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Store:
    """A project's SQLite database (``<root>/crowdnb.db``) and its files folder."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self.files_dir = self.root / "files"
        self._durable = durable
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        conn = self._connect()
        # WAL lets the notebook read the frame while the router thread writes.
        conn.execute("PRAGMA journal_mode=WAL")
        migrate(conn, MIGRATIONS)
        self._writer = Writer(conn)

    # --- connections -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        # FULL: a submission acknowledged to a worker survives power loss, not only a crash.
        conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
        return conn

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A reader connection from the pool (the router makes a thread per connection: no per-thread ones)."""
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            self._readers.put(conn)

    def write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One unit of work, durable when the block exits; serialised across threads and processes
        (``writer.Writer``: savepoints in a group-committed transaction)."""
        return self._writer.transaction()

    def commit_with(self, offload: Callable[[Callable[[], Any]], Any]) -> None:
        """Run every COMMIT through ``offload`` (``crowdnb serve``: gevent's pool of native threads)."""
        self._writer.offload = offload

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Rows of a read-only query, as dicts."""
        with self._reader() as conn:
            return [dict(r) for r in conn.execute(sql, params)]

    def column_batches(
        self, sql: str, params: Sequence[Any] = (), size: int = 50_000
    ) -> Iterator[dict[str, tuple[Any, ...]]]:
        """A read-only query's rows by column (name → values), ``size`` rows at a time, all from one snapshot:
        for bulk reads, with no dict per row and a bounded number of rows in memory."""
        with self._reader() as conn:
            cursor = conn.cursor()
            cursor.row_factory = None  # plain tuples: a million rows are not a million dicts
            try:
                cursor.execute(sql, params)
                names = [d[0] for d in cursor.description]
                while rows := cursor.fetchmany(size):
                    yield dict(zip(names, zip(*rows, strict=True), strict=True))
            finally:
                cursor.close()  # a batch not read to the end must not keep its snapshot open

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        """The first row of a read-only query, or None."""
        with self._reader() as conn:
            row = conn.execute(sql, params).fetchone()
        return dict(row) if row else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a read-only query."""
        with self._reader() as conn:
            row = conn.execute(sql, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the writer connection (reader connections close with their threads)."""
        self._writer.close()

    # --- tasks and runs --------------------------------------------------------------------------
    def upsert_task(self, name: str, config: dict[str, Any]) -> int:
        """Create the task ``name`` or update its stored definition; returns its id."""
        with self.write() as conn:
            row = conn.execute("SELECT id FROM tasks WHERE name = ?", (name,)).fetchone()
            if row:
                conn.execute(
                    "UPDATE tasks SET config = ?, updated_at = ? WHERE id = ?",
                    (json.dumps(config), now(), row["id"]),
                )
                return int(row["id"])
            task_id = new_id()
            insert(
                conn,
                "tasks",
                {"id": task_id, "name": name, "config": json.dumps(config), "created_at": now(), "updated_at": now()},
            )
            return task_id

    def requester(self, provider: str, name: str) -> int:
        """The id of requester ``name`` of ``provider``, created on first use."""
        with self.write() as conn:
            return _find_or_create(conn, "requesters", provider, name)

    def create_run(
        self, task_id: int, requester_id: int, provider: str, architect: str, config: dict[str, Any], secret: str
    ) -> int:
        """Record a new task run with its fully resolved configuration; returns its id."""
        run_id = new_id()
        with self.write() as conn:
            insert(
                conn,
                "task_runs",
                {
                    "id": run_id,
                    "task_id": task_id,
                    "requester_id": requester_id,
                    "provider": provider,
                    "architect": architect,
                    "status": "running",
                    "config": json.dumps(config),
                    "secret": secret,
                    "created_at": now(),
                },
            )
        return run_id

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set columns of a task run (status, url, data_exhausted, stopped_at …)."""
        with self.write() as conn:
            table(conn, "task_runs").update(run_id, fields)

    def get_run(self, run_id: int) -> Row:
        """A task run row with its task name; NotFound if there is none."""
        row = self.query_one(
            "SELECT r.*, t.name AS task_name FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE r.id = ?",
            (run_id,),
        )
        if row is None:
            raise NotFound(f"no task run {run_id} in {self.path}")
        return row

    def run_ids(self, task_id: int | None = None) -> list[int]:
        """Ids of every run (of one task when ``task_id`` is given), oldest first."""
        if task_id is None:
            return [r["id"] for r in self.query("SELECT id FROM task_runs ORDER BY id")]
        return [r["id"] for r in self.query("SELECT id FROM task_runs WHERE task_id = ? ORDER BY id", (task_id,))]

    def delete_run(self, run_id: int) -> None:
        """Remove a run that never started (a failed launch) with its units, and its task if it has no other run."""
        with self.write() as conn:
            task_id = conn.execute("SELECT task_id FROM task_runs WHERE id = ?", (run_id,)).fetchone()[0]
            for name in ("calls", "messages", "submissions", "agents", "units", "assignments"):  # children first
                conn.execute(f"DELETE FROM {name} WHERE task_run_id = ?", (run_id,))
            conn.execute("DELETE FROM task_runs WHERE id = ?", (run_id,))
            orphan = "DELETE FROM tasks WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM task_runs WHERE task_id = ?1)"
            conn.execute(orphan, (task_id,))

    def first_input(self, run_id: int) -> dict[str, Any] | None:
        """The input row of a run's first assignment (what the preview shows), or None."""
        row = self.query_one("SELECT data FROM assignments WHERE task_run_id = ? ORDER BY row_index LIMIT 1", (run_id,))
        return json.loads(row["data"]) if row else None

    def define_qualification(self, name: str, description: str | None, actor: str) -> bool:
        """Create a qualification or change its description; False if nothing changed."""
        with self.write() as conn:
            row = conn.execute("SELECT description FROM qualifications WHERE name = ?", (name,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO qualifications (id, name, description, created_at) VALUES (?, ?, ?, ?)",
                    (new_id(), name, description or "", now()),
                )
            elif description is not None and row[0] != description:
                conn.execute("UPDATE qualifications SET description = ? WHERE name = ?", (description, name))
            else:
                return False
            audit(
                conn,
                actor=actor,
                action="define_qualification",
                note=description,
                details=json.dumps({"qualification": name}),
            )
            return True

    def delete_qualification(self, name: str, actor: str) -> list[tuple[str, str]]:
        """Delete a qualification and every grant of it; returns the (provider, worker) pairs that held it."""
        with self.write() as conn:
            row = conn.execute("SELECT id FROM qualifications WHERE name = ?", (name,)).fetchone()
            if row is None:
                return []
            holders = [
                (r[0], r[1])
                for r in conn.execute(
                    "SELECT w.provider, w.name FROM granted_qualifications g JOIN workers w ON w.id = g.worker_id "
                    "WHERE g.qualification_id = ?",
                    (row[0],),
                )
            ]
            conn.execute("DELETE FROM granted_qualifications WHERE qualification_id = ?", (row[0],))
            conn.execute("DELETE FROM qualifications WHERE id = ?", (row[0],))
            audit(
                conn,
                actor=actor,
                action="delete_qualification",
                details=json.dumps({"qualification": name, "holders": len(holders)}),
            )
            return holders

    def set_qualification(
        self, provider: str, worker: str, name: str, value: int | None, actor: str, note: str | None = None
    ) -> bool:
        """Grant (``value``) or revoke (``None``) a qualification, with an audit row; False if nothing changed."""
        with self.write() as conn:
            worker_id = _find_or_create(conn, "workers", provider, worker)
            row = conn.execute("SELECT id FROM qualifications WHERE name = ?", (name,)).fetchone()
            qual_id = row[0] if row else new_id()
            if row is None:
                conn.execute(
                    "INSERT INTO qualifications (id, name, created_at) VALUES (?, ?, ?)", (qual_id, name, now())
                )
            if value is None:
                changed = conn.execute(
                    "DELETE FROM granted_qualifications WHERE worker_id = ? AND qualification_id = ?",
                    (worker_id, qual_id),
                ).rowcount
            else:
                changed = conn.execute(
                    "INSERT INTO granted_qualifications (id, worker_id, qualification_id, value, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (worker_id, qualification_id) DO UPDATE SET "
                    "value = excluded.value, updated_at = excluded.updated_at WHERE value != excluded.value",
                    (new_id(), worker_id, qual_id, value, now(), now()),
                ).rowcount
            if changed:
                audit(
                    conn,
                    actor=actor,
                    action="revoke" if value is None else "grant",
                    worker_id=worker_id,
                    amount=value,
                    note=note,
                    details=json.dumps({"qualification": name}),
                )
            return bool(changed)

    def log_action(
        self, provider: str, worker: str, action: str, actor: str, note: str | None = None, details: str = "{}"
    ) -> None:
        """An audit row for an action on a worker that changes nothing else (a message, an onboarding test)."""
        with self.write() as conn:
            worker_id = _find_or_create(conn, "workers", provider, worker)
            audit(conn, actor=actor, action=action, worker_id=worker_id, note=note, details=details)

    def qualifications_of(self, worker_id: int) -> dict[str, int]:
        """A worker's qualifications by worker id: name → value (checked at every dispatch)."""
        rows = self.query(
            "SELECT q.name, g.value FROM granted_qualifications g JOIN qualifications q ON q.id = g.qualification_id "
            "WHERE g.worker_id = ?",
            (worker_id,),
        )
        return {r["name"]: r["value"] for r in rows}

    def data_units_done(self, task_id: int, worker_id: int) -> int:
        """How many of a task's data units (not gold) a worker has submitted, across runs."""
        return int(
            self.scalar(
                "SELECT count(*) FROM units u JOIN assignments a ON a.id = u.assignment_id WHERE u.task_id = ? "
                f"AND u.worker_id = ? AND a.kind = 'data' AND u.status IN {S.sql_in(S.UNIT_SUBMITTED)}",
                (task_id, worker_id),
            )
        )

    def live_agent_count(self, run_id: int, worker_id: int) -> int:
        """How many units of a run a worker holds right now."""
        return int(
            self.scalar(
                f"SELECT count(*) FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN {S.sql_in(S.AGENT_LIVE)}",
                (run_id, worker_id),
            )
        )

    def special_units_given(self, task_id: int, kind: str) -> int:
        """How many units of a special kind (screening) a task has made, across runs."""
        return int(self.scalar("SELECT count(*) FROM assignments WHERE task_id = ? AND kind = ?", (task_id, kind)))

    def input_row(self, run_id: int, number: int) -> dict[str, Any] | None:
        """The input of a run's data row ``number`` (cycling through the rows), or None without rows."""
        count = self.scalar("SELECT count(*) FROM assignments WHERE task_run_id = ? AND kind = 'data'", (run_id,))
        if not count:
            return None
        row = self.query_one(
            "SELECT data FROM assignments WHERE task_run_id = ? AND kind = 'data' ORDER BY row_index LIMIT 1 OFFSET ?",
            (run_id, number % count),
        )
        return json.loads(row["data"]) if row else None

    def gold_rows_seen(self, task_id: int, worker_id: int) -> set[int]:
        """The gold rows a worker has been given in any run of a task."""
        rows = self.query(
            "SELECT DISTINCT s.row_index FROM agents a JOIN assignments s ON s.id = a.assignment_id "
            "WHERE a.task_id = ? AND a.worker_id = ? AND s.kind = 'gold'",
            (task_id, worker_id),
        )
        return {r["row_index"] for r in rows}

    def agent_status(self, agent_id: int) -> str:
        """An agent's status (cheaper than ``get_agent`` for heartbeats)."""
        return str(self.scalar("SELECT status FROM agents WHERE id = ?", (agent_id,)))

    def worker_name(self, worker_id: int) -> str:
        """A worker's name on their provider."""
        return str(self.scalar("SELECT name FROM workers WHERE id = ?", (worker_id,)))

    def find_task(self, name: str) -> Row | None:
        """A task row by name, or None."""
        return self.query_one("SELECT * FROM tasks WHERE name = ?", (name,))

    def get_task(self, name: str) -> Row:
        """A task row by name; NotFound lists the known names."""
        row = self.find_task(name)
        if row is None:
            known = [r["name"] for r in self.query("SELECT name FROM tasks ORDER BY name")]
            raise NotFound(f"no task {name!r} in {self.root}; known tasks: {', '.join(known) or 'none'}")
        return row

    # --- assignments and units -------------------------------------------------------------------
    def unit_counts(self, run_id: int) -> dict[str, int]:
        """Units of a run by status (every status present, zero when none)."""
        counts = dict.fromkeys(S.UNIT_STATES, 0)
        for row in self.query(
            "SELECT status, count(*) AS n FROM units WHERE task_run_id = ? GROUP BY status", (run_id,)
        ):
            counts[row["status"]] = row["n"]
        return counts

    def get_unit(self, unit_id: int) -> Row:
        """A unit row; NotFound if there is none."""
        row = self.query_one("SELECT * FROM units WHERE id = ?", (unit_id,))
        if row is None:
            raise NotFound(f"no unit {unit_id}")
        return row

    # --- workers, agents and dispatch ------------------------------------------------------------
    def worker(self, provider: str, name: str) -> int:
        """The id of worker ``name`` on ``provider``, created on first sight."""
        row = self.query_one("SELECT id FROM workers WHERE provider = ? AND name = ?", (provider, name))
        if row:
            return int(row["id"])
        with self.write() as conn:
            return _find_or_create(conn, "workers", provider, name)

    def get_agent(self, agent_id: int) -> Row:
        """An agent row joined with its unit status and the assignment's input data."""
        row = self.query_one(
            "SELECT a.*, u.status AS unit_status, u.agent_id AS unit_agent_id, u.unit_index, s.data AS input, s.kind, "
            "s.row_index "
            "FROM agents a JOIN units u ON u.id = a.unit_id JOIN assignments s ON s.id = a.assignment_id "
            "WHERE a.id = ?",
            (agent_id,),
        )
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        return row

    # --- provider calls --------------------------------------------------------------------------
    def record_provider_call(
        self, provider: str, call: str, *, idempotency_key: str | None = None, **fields: Any
    ) -> bool:
        """Log a call a provider made (or, for mock, would have made); False if the key was seen before."""
        args = {k: v for k, v in fields.items() if k not in ("task_run_id", "unit_id", "worker_id", "amount")}
        row = {
            "id": new_id(),
            "at": now(),
            "provider": provider,
            "call": call,
            "idempotency_key": idempotency_key,
            "task_run_id": fields.get("task_run_id"),
            "unit_id": fields.get("unit_id"),
            "worker_id": fields.get("worker_id"),
            "amount": fields.get("amount"),
            "args": json.dumps(args),
        }
        with self.write() as conn:
            try:
                insert(conn, "provider_calls", row)
            except sqlite3.IntegrityError:
                return False
        return True


# --- helpers ---------------------------------------------------------------------------------------
def table(conn: sqlite3.Connection, name: str) -> sqlite_utils.db.Table:
    """A sqlite-utils table on a connection (inside a ``Store.write`` transaction): for bulk inserts and
    updates; one row goes through ``insert``."""
    return sqlite_utils.Database(conn).table(name)


def insert(conn: sqlite3.Connection, name: str, row: Mapping[str, Any]) -> None:
    """Insert one row (inside a ``Store.write`` transaction). A plain statement: sqlite-utils' ``insert``
    reads the table's schema first (eight statements per row), which a submission should not pay for."""
    columns = ", ".join(row)
    conn.execute(f"INSERT INTO {name} ({columns}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


def audit(conn: sqlite3.Connection, **fields: Any) -> None:
    """An audit row (``reviews``: who, when, what, why) inside a ``Store.write`` transaction."""
    insert(conn, "reviews", {"id": new_id(), "at": now(), **fields})


def _find_or_create(conn: sqlite3.Connection, table: str, provider: str, name: str) -> int:
    row = conn.execute(f"SELECT id FROM {table} WHERE provider = ? AND name = ?", (provider, name)).fetchone()
    if row:
        return int(row[0])
    check_name(name, "worker id" if table == "workers" else "requester name")  # a name first seen: printable?
    insert(conn, table, {"id": (new := new_id()), "provider": provider, "name": name, "created_at": now()})
    return new


def project_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The project folder: ``path``, else ``$CROWDNB_HOME``, else ``./crowdnb_data``."""
    return Path(path or os.environ.get("CROWDNB_HOME") or "crowdnb_data").resolve()


def holds_project(root: Path) -> bool:
    """Whether the folder ``root`` holds a crowdnb project (its database)."""
    return (root / DB_NAME).is_file()
