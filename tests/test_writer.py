"""Group commit: every write is visible to other connections when it returns; a failing write is alone."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from crowdnb.store.writer import Writer


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@pytest.fixture
def writer(tmp_path: Path) -> Writer:
    conn = connect(tmp_path / "t.db")
    conn.execute("CREATE TABLE t (thread INTEGER, n INTEGER)")
    return Writer(conn)


def test_each_write_is_committed_when_it_returns(writer: Writer, tmp_path: Path) -> None:
    unseen: list[tuple[int, int]] = []

    def work(thread: int) -> None:
        reader = connect(tmp_path / "t.db")
        for n in range(40):
            with writer.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (?, ?)", (thread, n))
            if not reader.execute("SELECT 1 FROM t WHERE thread = ? AND n = ?", (thread, n)).fetchone():
                unseen.append((thread, n))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert unseen == []
    assert connect(tmp_path / "t.db").execute("SELECT count(*) FROM t").fetchone()[0] == 16 * 40
    assert writer.commits < 16 * 40  # commits were shared


def test_a_failing_write_rolls_back_alone(writer: Writer, tmp_path: Path) -> None:
    errors = []

    def good() -> None:
        for n in range(50):
            with writer.transaction() as conn:
                conn.execute("INSERT INTO t VALUES (1, ?)", (n,))

    def bad() -> None:
        for n in range(50):
            try:
                with writer.transaction() as conn:
                    conn.execute("INSERT INTO t VALUES (2, ?)", (n,))
                    raise ValueError("refused")
            except ValueError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=good), threading.Thread(target=bad)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    rows = connect(tmp_path / "t.db").execute("SELECT thread, count(*) FROM t GROUP BY thread").fetchall()
    assert rows == [(1, 50)] and len(errors) == 50


def test_nested_transactions_commit_with_the_outer_one(writer: Writer, tmp_path: Path) -> None:
    with writer.transaction() as conn:
        conn.execute("INSERT INTO t VALUES (1, 1)")
        with pytest.raises(ValueError), writer.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (1, 2)")
            raise ValueError
        with writer.transaction() as inner:
            inner.execute("INSERT INTO t VALUES (1, 3)")
    assert connect(tmp_path / "t.db").execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (3,)]


GEVENT_WRITERS = """
import sys
from gevent import monkey

monkey.patch_all()
import gevent
from gevent import get_hub

from crowdnb.store.db import Store

native = monkey.get_original("threading", "get_native_id")
loop_thread = native()
commit_threads = []
store = Store(sys.argv[1])
pool = get_hub().threadpool


def offload(call):
    def run():
        commit_threads.append(native())
        return call()

    return pool.apply(run)


store.commit_with(offload)
store.query("SELECT 1")


def write(n):
    with store.write() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"k{n}", str(n)))


gevent.joinall([gevent.spawn(write, n) for n in range(200)])
rows = store.scalar("SELECT count(*) FROM meta WHERE key LIKE 'k%'")
print(rows, len(commit_threads), loop_thread in commit_threads)
"""


def test_under_gevent_commits_run_on_a_native_thread_and_still_batch(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", GEVENT_WRITERS, str(tmp_path)], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    rows, commits, on_loop = int(out[0]), int(out[1]), out[2]
    assert rows == 200  # every write durable
    assert 1 <= commits < 200  # group commit: greenlets queued behind an fsync share the next one
    assert on_loop == "False"  # the event loop never waited on fsync
