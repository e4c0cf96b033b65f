"""The store: ids, durability settings, schema versions and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crowdnb.errors import ConfigError
from crowdnb.store.db import Store, new_id
from crowdnb.store.schema import MIGRATIONS, Migration, migrate


def test_ids_are_unique_time_ordered_and_fit_63_bits() -> None:
    ids = [new_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(0 < i < 2**63 for i in ids)


def test_database_uses_wal_and_records_schema_version(tmp_path: Path) -> None:
    store = Store(tmp_path)
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == max(m.version for m in MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    expected = {"requesters", "tasks", "task_runs", "assignments", "units", "agents", "workers", "qualifications",
                "granted_qualifications", "reviews", "submissions"}  # fmt: skip
    assert expected <= tables


def test_no_json_files_beside_the_database(make_run, worker) -> None:
    run = make_run()
    alice = worker("alice", run)
    alice.enter()
    assert alice.submit({"label": "pos"}).status_code == 200
    assert not list(run.store.root.rglob("*.json"))


def test_forward_migration_applies_once(tmp_path: Path) -> None:
    Store(tmp_path).close()
    extra = Migration(len(MIGRATIONS) + 1, "add a note column", "ALTER TABLE tasks ADD COLUMN note TEXT")
    conn = sqlite3.connect(tmp_path / "crowdnb.db", isolation_level=None)
    assert migrate(conn, [*MIGRATIONS, extra]) == extra.version
    assert migrate(conn, [*MIGRATIONS, extra]) == extra.version  # second time: nothing to do
    assert "note" in {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    Store(tmp_path).close()
    broken = Migration(len(MIGRATIONS) + 1, "broken", "ALTER TABLE tasks ADD COLUMN x TEXT; SELECT * FROM nowhere")
    conn = sqlite3.connect(tmp_path / "crowdnb.db", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, [*MIGRATIONS, broken])
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert "x" not in {r[1] for r in conn.execute("PRAGMA table_info(tasks)")}


def test_database_from_a_newer_crowdnb_is_refused(tmp_path: Path) -> None:
    Store(tmp_path).close()
    conn = sqlite3.connect(tmp_path / "crowdnb.db")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(ConfigError, match=r"schema version 99.*upgrade crowdnb"):
        Store(tmp_path)
