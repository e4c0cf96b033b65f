"""The SQLite schema: an ordered list of forward migrations, and ``migrate``, which applies them."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import NamedTuple

from ..errors import ConfigError

log = logging.getLogger(__name__)


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta (key, value) VALUES ('rev', '0');
CREATE TABLE requesters (
    id INTEGER PRIMARY KEY, provider TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (provider, name));
CREATE TABLE tasks (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, config TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE task_runs (
    id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL REFERENCES tasks(id),
    requester_id INTEGER REFERENCES requesters(id), provider TEXT NOT NULL, architect TEXT NOT NULL,
    status TEXT NOT NULL, config TEXT NOT NULL, url TEXT, secret TEXT NOT NULL,
    data_exhausted INTEGER NOT NULL DEFAULT 0, rows_loaded INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL, stopped_at TEXT);
CREATE TABLE assignments (
    id INTEGER PRIMARY KEY, task_run_id INTEGER NOT NULL REFERENCES task_runs(id),
    task_id INTEGER NOT NULL REFERENCES tasks(id), row_index INTEGER NOT NULL, data TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE workers (
    id INTEGER PRIMARY KEY, provider TEXT NOT NULL, name TEXT NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (provider, name));
CREATE TABLE units (
    id INTEGER PRIMARY KEY, assignment_id INTEGER NOT NULL REFERENCES assignments(id),
    task_run_id INTEGER NOT NULL REFERENCES task_runs(id), task_id INTEGER NOT NULL REFERENCES tasks(id),
    unit_index INTEGER NOT NULL, status TEXT NOT NULL, pay_amount REAL NOT NULL,
    worker_id INTEGER REFERENCES workers(id), agent_id INTEGER,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (assignment_id, unit_index));
CREATE INDEX units_dispatch ON units (task_run_id, status, id);
CREATE INDEX units_task_worker ON units (task_id, worker_id, status);
CREATE TABLE agents (
    id INTEGER PRIMARY KEY, unit_id INTEGER NOT NULL REFERENCES units(id),
    worker_id INTEGER NOT NULL REFERENCES workers(id), assignment_id INTEGER NOT NULL,
    task_run_id INTEGER NOT NULL, task_id INTEGER NOT NULL, status TEXT NOT NULL,
    external TEXT NOT NULL DEFAULT '{}', started_at TEXT NOT NULL, last_seen_at TEXT,
    ended_at TEXT);
CREATE INDEX agents_run_worker ON agents (task_run_id, worker_id, status);
CREATE INDEX agents_assignment_worker ON agents (assignment_id, worker_id);
CREATE INDEX agents_run_status ON agents (task_run_id, status, started_at);
CREATE TABLE submissions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL UNIQUE, client_id TEXT NOT NULL UNIQUE,
    unit_id INTEGER NOT NULL UNIQUE REFERENCES units(id), agent_id INTEGER NOT NULL REFERENCES agents(id),
    worker_id INTEGER NOT NULL, task_run_id INTEGER NOT NULL, task_id INTEGER NOT NULL,
    answers TEXT NOT NULL, files TEXT NOT NULL DEFAULT '{}', meta TEXT NOT NULL DEFAULT '{}',
    submitted_at TEXT NOT NULL, rev INTEGER NOT NULL);
CREATE INDEX submissions_run_rev ON submissions (task_run_id, rev);
CREATE INDEX submissions_task_rev ON submissions (task_id, rev);
CREATE TABLE qualifications (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL);
CREATE TABLE granted_qualifications (
    id INTEGER PRIMARY KEY, worker_id INTEGER NOT NULL REFERENCES workers(id),
    qualification_id INTEGER NOT NULL REFERENCES qualifications(id), value INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (worker_id, qualification_id));
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    unit_id INTEGER, worker_id INTEGER, task_id INTEGER, task_run_id INTEGER,
    amount REAL, note TEXT, details TEXT NOT NULL DEFAULT '{}');
CREATE INDEX reviews_unit ON reviews (unit_id);
CREATE TABLE provider_calls (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, provider TEXT NOT NULL, call TEXT NOT NULL,
    task_run_id INTEGER, unit_id INTEGER, worker_id INTEGER, amount REAL,
    idempotency_key TEXT UNIQUE, args TEXT NOT NULL DEFAULT '{}');
"""

# a review action with a key (a bonus) happens at most once: money moves once per decision
_V2 = """
ALTER TABLE reviews ADD COLUMN key TEXT;
CREATE UNIQUE INDEX reviews_key ON reviews (key) WHERE key IS NOT NULL;
CREATE INDEX reviews_run_action ON reviews (task_run_id, action);
"""

# gold (and later screening) units are assignments of their own kind, made for one worker on demand
_V3 = """
ALTER TABLE assignments ADD COLUMN kind TEXT NOT NULL DEFAULT 'data';
"""

# what a real platform created for a run (HIT type, HITs, study, participant groups, bonus set-ups), by a
# key crowdnb chooses, so a crash never creates a second one and a clean-up finds every one
_V4 = """
CREATE TABLE provider_objects (
    provider TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, remote_id TEXT NOT NULL,
    task_run_id INTEGER, unit_id INTEGER, state TEXT NOT NULL DEFAULT 'active',
    data TEXT NOT NULL DEFAULT '{}', created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (provider, kind, key));
CREATE INDEX provider_objects_run ON provider_objects (provider, task_run_id, kind, state);
CREATE INDEX provider_objects_remote ON provider_objects (provider, remote_id);
"""

# live tasks: every call a worker's page made to a procedure of the notebook, with its result, once per
# client-made id (a retry after a dropped socket is answered from here, the function not called again)
_V5 = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY, call_id TEXT NOT NULL, agent_id INTEGER NOT NULL REFERENCES agents(id),
    unit_id INTEGER NOT NULL, assignment_id INTEGER NOT NULL, worker_id INTEGER NOT NULL,
    task_run_id INTEGER NOT NULL, task_id INTEGER NOT NULL, name TEXT NOT NULL, args TEXT NOT NULL,
    status TEXT NOT NULL, result TEXT, message TEXT, traceback TEXT,
    started_at TEXT NOT NULL, ended_at TEXT, duration_ms REAL,
    UNIQUE (agent_id, call_id));
CREATE INDEX calls_run ON calls (task_run_id, id);
"""

# live tasks several workers share: their messages and the room's events (joined, started, away, back, left,
# released, submitted, ended), in order per assignment; a message is stored once per client-made id
_V6 = """
CREATE TABLE messages (
    id INTEGER PRIMARY KEY, assignment_id INTEGER NOT NULL REFERENCES assignments(id),
    task_run_id INTEGER NOT NULL, task_id INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    role TEXT, agent_id INTEGER, worker_id INTEGER, client_id TEXT, text TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}', at TEXT NOT NULL,
    UNIQUE (assignment_id, seq));
CREATE UNIQUE INDEX messages_client ON messages (agent_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX messages_run ON messages (task_run_id, id);
"""

# what an architect set up once for the project (the ec2 architect: a domain's hosted zone, certificate, load
# balancer …), by architect and name, so a launch finds it without asking the cloud or a file beside the database
_V7 = """
CREATE TABLE architect_setups (
    architect TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (architect, name));
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _V1),
    Migration(2, "review keys", _V2),
    Migration(3, "assignment kinds", _V3),
    Migration(4, "provider objects", _V4),
    Migration(5, "procedure calls", _V5),
    Migration(6, "messages", _V6),
    Migration(7, "architect setups", _V7),
]


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
