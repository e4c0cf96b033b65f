"""The project database: the only module that touches SQLite.

One writer connection guarded by a lock (the router thread, the monitor and the notebook share it),
one reader connection per thread. WAL lets the notebook read while the router writes; every write is one
``BEGIN IMMEDIATE`` transaction, so a submission is either fully stored or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from . import states as S
from .errors import ConfigError, NotFound, StateError, WorkerRefused
from .schema import MIGRATIONS, Migration

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


@dataclass(frozen=True)
class Quota:
    """The per-worker limits checked while reserving a unit."""

    allowed_concurrent: int = 0  # live units of this run at once; 0 = unlimited
    maximum_units_per_worker: int = 0  # units of this task, all runs; 0 = unlimited


class Store:
    """A project's SQLite database (``<root>/crowdnb.db``) and its files folder."""

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / DB_NAME
        self.files_dir = self.root / "files"
        self._durable = durable
        self._lock = threading.RLock()
        self._local = threading.local()
        self._writer = self._connect()
        # WAL lets the notebook read the frame while the router thread writes.
        self._writer.execute("PRAGMA journal_mode=WAL")
        migrate(self._writer, MIGRATIONS)

    # --- connections -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        # FULL: a submission acknowledged to a worker survives power loss, not only a crash.
        conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), serialised across threads and processes."""
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """Rows of a read-only query, as dicts."""
        return [dict(r) for r in self._reader().execute(sql, params)]

    def query_one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        """The first row of a read-only query, or None."""
        row = self._reader().execute(sql, params).fetchone()
        return dict(row) if row else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a read-only query."""
        row = self._reader().execute(sql, params).fetchone()
        return row[0] if row else None

    def close(self) -> None:
        """Close the writer connection (reader connections close with their threads)."""
        with self._lock:
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
            _table(conn, "tasks").insert(
                {"id": task_id, "name": name, "config": json.dumps(config), "created_at": now(), "updated_at": now()}
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
            _table(conn, "task_runs").insert(
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
                }
            )
        return run_id

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Set columns of a task run (status, url, data_exhausted, stopped_at …)."""
        with self.write() as conn:
            _table(conn, "task_runs").update(run_id, fields)

    def get_run(self, run_id: int) -> Row:
        """A task run row with its task name; NotFound if there is none."""
        row = self.query_one(
            "SELECT r.*, t.name AS task_name FROM task_runs r JOIN tasks t ON t.id = r.task_id WHERE r.id = ?",
            (run_id,),
        )
        if row is None:
            raise NotFound(f"no task run {run_id} in {self.path}")
        return row

    def get_task(self, name: str) -> Row:
        """A task row by name; NotFound lists the known names."""
        row = self.query_one("SELECT * FROM tasks WHERE name = ?", (name,))
        if row is None:
            known = [r["name"] for r in self.query("SELECT name FROM tasks ORDER BY name")]
            raise NotFound(f"no task {name!r} in {self.root}; known tasks: {', '.join(known) or 'none'}")
        return row

    # --- assignments and units -------------------------------------------------------------------
    def add_assignments(
        self,
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
        with self.write() as conn:
            _table(conn, "assignments").insert_all(assignments, batch_size=1000)
            _table(conn, "units").insert_all(units, batch_size=1000)
            conn.execute("UPDATE task_runs SET rows_loaded = rows_loaded + ? WHERE id = ?", (len(assignments), run_id))
        return len(assignments)

    def launch_units(self, run_id: int, cap: int = 0) -> list[int]:
        """Move created units to launched, keeping launched + assigned at most ``cap`` (0 = no cap)."""
        with self.write() as conn:
            limit = -1
            if cap:
                live = conn.execute(
                    "SELECT count(*) FROM units WHERE task_run_id = ? AND status IN ('launched', 'assigned')",
                    (run_id,),
                ).fetchone()[0]
                limit = max(cap - live, 0)
                if limit == 0:
                    return []
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM units WHERE task_run_id = ? AND status = 'created' ORDER BY id LIMIT ?",
                    (run_id, limit),
                )
            ]
            _set_units(conn, ids, S.LAUNCHED, expect=(S.CREATED,))
            return ids

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

    def reserve(self, run_id: int, worker_id: int, quota: Quota, external: dict[str, str]) -> tuple[Row, bool]:
        """Give the worker a unit of the run, atomically: their live agent if they have one, else a new one.

        Returns ``(agent, resumed)``. Raises ``WorkerRefused`` with the reason when nothing can be given.
        """
        with self.write() as conn:
            live = conn.execute(
                "SELECT * FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN ('accepted', 'in_task') "
                "ORDER BY id LIMIT 1",
                (run_id, worker_id),
            ).fetchone()
            if live:
                return dict(live), True
            run = conn.execute("SELECT status, task_id FROM task_runs WHERE id = ?", (run_id,)).fetchone()
            if run is None or run["status"] != "running":
                raise WorkerRefused("finished", "This task is finished. Thank you for your interest!")
            if quota.maximum_units_per_worker:
                done = conn.execute(
                    "SELECT count(*) FROM units WHERE task_id = ? AND worker_id = ? "
                    "AND status IN ('assigned', 'completed', 'accepted', 'rejected', 'soft_rejected')",
                    (run["task_id"], worker_id),
                ).fetchone()[0]
                if done >= quota.maximum_units_per_worker:
                    raise WorkerRefused(
                        "max_reached",
                        f"You have done the maximum of {quota.maximum_units_per_worker} units of this task. Thank you!",
                    )
            unit = conn.execute(
                "SELECT u.* FROM units u WHERE u.task_run_id = ? AND u.status = 'launched' AND u.unit_index >= 0 "
                "AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.assignment_id = u.assignment_id "
                "AND a.worker_id = ? AND a.status NOT IN ('disconnect', 'timeout', 'returned', 'expired')) "
                "ORDER BY u.id LIMIT 1",
                (run_id, worker_id),
            ).fetchone()
            if unit is None:
                raise WorkerRefused("no_work", "There is no work left for you in this task right now. Thank you!")
            # allowed_concurrent is checked after a unit is found so "no work" wins over "too many"
            if quota.allowed_concurrent:
                held = conn.execute(
                    "SELECT count(*) FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN ('accepted', 'in_task')",
                    (run_id, worker_id),
                ).fetchone()[0]
                if held >= quota.allowed_concurrent:
                    raise WorkerRefused(
                        "too_many", "You have too many units of this task open at once; finish one first."
                    )
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
            _table(conn, "agents").insert(agent)
            _set_units(conn, [unit["id"]], S.ASSIGNED, expect=(S.LAUNCHED,), worker_id=worker_id, agent_id=agent["id"])
            return agent, False

    def get_agent(self, agent_id: int) -> Row:
        """An agent row joined with its unit status and the assignment's input data."""
        row = self.query_one(
            "SELECT a.*, u.status AS unit_status, u.agent_id AS unit_agent_id, s.data AS input "
            "FROM agents a JOIN units u ON u.id = a.unit_id JOIN assignments s ON s.id = a.assignment_id "
            "WHERE a.id = ?",
            (agent_id,),
        )
        if row is None:
            raise NotFound(f"no agent {agent_id}")
        return row

    def set_agent_status(self, agent_id: int, status: str) -> bool:
        """Move a live agent to in_task, or release it (disconnect/timeout/returned) and re-offer its unit.

        Returns False when the agent had already moved on (nothing changed).
        """
        with self.write() as conn:
            return _move_agent(conn, agent_id, status)

    def release_stale(self, run_id: int, duration: float, disconnected: Iterable[int] = ()) -> int:
        """Time out agents older than ``duration`` seconds and release disconnected ones; returns the count."""
        moved = 0
        with self.write() as conn:
            if duration:
                stale = conn.execute(
                    "SELECT id FROM agents WHERE task_run_id = ? AND status IN ('accepted', 'in_task') AND started_at < ?",
                    (run_id, ago(duration)),
                ).fetchall()
                moved += sum(_move_agent(conn, r[0], S.TIMEOUT) for r in stale)
            moved += sum(_move_agent(conn, agent_id, S.DISCONNECT) for agent_id in disconnected)
        return moved

    def submit(
        self, agent_id: int, client_id: str, answers: dict[str, Any], files: dict[str, Any], meta: dict[str, Any]
    ) -> tuple[int, bool]:
        """Store an agent's answers and complete its unit in one transaction.

        Returns ``(submission_id, duplicate)``; a retry with the same ``client_id``, or a second submit
        of a completed agent, is a duplicate and stores nothing.
        """
        with self.write() as conn:
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
            earlier = conn.execute("SELECT id FROM submissions WHERE agent_id = ?", (agent_id,)).fetchone()
            if earlier:
                return int(earlier["id"]), True
            _reclaim_or_refuse(conn, agent)
            _check_and_set_agent(conn, agent_id, agent["status"], S.A_COMPLETED)
            _set_units(conn, [agent["unit_id"]], S.COMPLETED, expect=(S.ASSIGNED,))
            submission_id = new_id()
            _table(conn, "submissions").insert(
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
                    "rev": _next_rev(conn),
                }
            )
            return submission_id, False

    def expire_run(self, run_id: int) -> list[int]:
        """Expire every created, launched or assigned unit of a run (and its live agent); returns unit ids."""
        with self.write() as conn:
            rows = conn.execute(
                "SELECT id, agent_id, status FROM units WHERE task_run_id = ? AND status IN ('created', 'launched', 'assigned')",
                (run_id,),
            ).fetchall()
            for row in rows:
                if row["status"] == S.ASSIGNED and row["agent_id"]:
                    status = conn.execute("SELECT status FROM agents WHERE id = ?", (row["agent_id"],)).fetchone()[0]
                    _check_and_set_agent(conn, row["agent_id"], status, S.A_EXPIRED)
            _set_units(
                conn, [r["id"] for r in rows], S.EXPIRED, expect=S.UNIT_INCOMPLETE, worker_id=None, agent_id=None
            )
            return [r["id"] for r in rows]

    def relaunch_expired(self, run_id: int) -> int:
        """Put a run's expired units back on offer (resume); returns the count."""
        with self.write() as conn:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM units WHERE task_run_id = ? AND status = 'expired'", (run_id,))
            ]
            _set_units(conn, ids, S.LAUNCHED, expect=(S.EXPIRED,))
            return len(ids)

    # --- review ----------------------------------------------------------------------------------
    def review(self, unit_id: int, decision: str, actor: str, note: str | None) -> bool:
        """Record a review decision on a submitted unit; False when the unit already had it (idempotent)."""
        with self.write() as conn:
            unit = conn.execute("SELECT * FROM units WHERE id = ?", (unit_id,)).fetchone()
            if unit is None:
                raise NotFound(f"no unit {unit_id}")
            if unit["status"] == decision:
                return False
            S.check_unit(unit["status"], decision)
            agent_status = conn.execute("SELECT status FROM agents WHERE id = ?", (unit["agent_id"],)).fetchone()[0]
            _check_and_set_agent(conn, unit["agent_id"], agent_status, S.REVIEW_TO_AGENT[decision])
            _set_units(conn, [unit_id], decision, expect=(unit["status"],))
            conn.execute("UPDATE submissions SET rev = ? WHERE unit_id = ?", (_next_rev(conn), unit_id))
            _table(conn, "reviews").insert(
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
                }
            )
            return True

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
                _table(conn, "provider_calls").insert(row)
            except sqlite3.IntegrityError:
                return False
        return True

    # --- reading submissions ---------------------------------------------------------------------
    def submissions_since(self, scope: str, scope_id: int, rev: int) -> list[Row]:
        """Submissions of a run (scope "run") or task (scope "task") changed after ``rev``, oldest first."""
        column = {"run": "s.task_run_id", "task": "s.task_id"}[scope]
        return self.query(
            "SELECT s.rev, s.id AS submission_id, s.unit_id, s.agent_id, s.task_run_id AS run_id, "
            "u.assignment_id, u.unit_index, w.name AS worker, u.status, u.pay_amount AS reward, "
            "a.started_at, s.submitted_at, asg.row_index, asg.data AS input, s.answers, s.files, s.meta "
            "FROM submissions s JOIN units u ON u.id = s.unit_id JOIN agents a ON a.id = s.agent_id "
            "JOIN workers w ON w.id = s.worker_id JOIN assignments asg ON asg.id = u.assignment_id "
            f"WHERE {column} = ? AND s.rev > ? ORDER BY s.rev",
            (scope_id, rev),
        )


# --- helpers that run inside a write transaction ---------------------------------------------------
def _table(conn: sqlite3.Connection, name: str) -> sqlite_utils.db.Table:
    return sqlite_utils.Database(conn).table(name)


def _find_or_create(conn: sqlite3.Connection, table: str, provider: str, name: str) -> int:
    row = conn.execute(f"SELECT id FROM {table} WHERE provider = ? AND name = ?", (provider, name)).fetchone()
    if row:
        return int(row[0])
    new = new_id()
    conn.execute(
        f"INSERT INTO {table} (id, provider, name, created_at) VALUES (?, ?, ?, ?)", (new, provider, name, now())
    )
    return new


def _next_rev(conn: sqlite3.Connection) -> int:
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
        _set_units(conn, [row["unit_id"]], S.LAUNCHED, expect=(S.ASSIGNED,), worker_id=None, agent_id=None)
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
    raise WorkerRefused(
        "taken", "This unit timed out and was offered to another worker, so this answer could not be saved."
    )


# --- schema -----------------------------------------------------------------------------------------
def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> int:
    """Apply the migrations newer than the file's ``user_version``, each in its own transaction.

    Returns the resulting version. A file newer than this crowdnb raises ``ConfigError``.
    """
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = max(m.version for m in migrations)
    if current > latest:
        raise ConfigError(
            f"this database has schema version {current} but this crowdnb knows up to {latest}; upgrade crowdnb"
        )
    for step in sorted(migrations):
        if step.version <= current:
            continue
        log.info("migrating database to schema %d (%s)", step.version, step.name)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {int(step.version)}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        current = step.version
    return int(current)


def _statements(sql: str) -> list[str]:
    """Split a migration script on ';' (the schema has no semicolons inside statements)."""
    return [s.strip() for s in sql.split(";") if s.strip()]


def project_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The project folder: ``path``, else ``$CROWDNB_HOME``, else ``./crowdnb_data``."""
    return Path(path or os.environ.get("CROWDNB_HOME") or "crowdnb_data").resolve()
