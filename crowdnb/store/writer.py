"""The one writer connection of a project database, with group commit.

Every write is a savepoint inside a shared ``BEGIN IMMEDIATE`` transaction. The writer that finds nobody
else waiting for the lock (or a full batch) commits, and every writer waits until the commit that holds
its work is done before it returns. So a worker is told "saved" only after a durable commit, as before,
but under load one fsync serves many submissions instead of one each.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any

MAX_BATCH = 64  # writes per commit at most, so a steady stream of writers cannot postpone commits forever


class Writer:
    """Serialised, durable, group-committed writes on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._lock = threading.RLock()
        self._state = threading.Condition()
        self._waiting = 0  # threads queued for the lock
        self._depth = 0  # nesting of transaction() in the lock holder
        self._pending = 0  # writes in the open transaction
        self._generation = 0  # commits done so far
        self._failures: dict[int, BaseException] = {}
        self._done: dict[int, threading.Event] = {}  # generation → set once it is committed
        # how COMMIT runs: inline, or (under gevent) on a native thread so its fsync does not stop the loop
        self.offload: Callable[[Callable[[], Any]], Any] = _inline

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A unit of work that is durable when the block exits (rolled back alone if the block raises)."""
        with self._state:
            self._waiting += 1
        self._lock.acquire()
        with self._state:
            self._waiting -= 1
        self._depth += 1
        outermost, ticket = self._depth == 1, -1
        try:
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            savepoint = f"w{self._depth}"
            self.conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute(f"ROLLBACK TO {savepoint}")
                self.conn.execute(f"RELEASE {savepoint}")
                raise
            self.conn.execute(f"RELEASE {savepoint}")
            if outermost:
                self._pending += 1
                ticket = self._generation
                done = self._done.setdefault(ticket, threading.Event())
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._commit_if_last()
            self._lock.release()
        if ticket >= 0:
            while not done.wait(1.0):  # only the writers of this batch wake up
                # liveness: should no later writer commit (a hole in the "last one commits" rule), do it here
                with self._lock:
                    if self._generation <= ticket:
                        self._commit_if_last(force=True)
            self._done.pop(ticket, None)
            failure = self._failures.pop(ticket, None) if ticket in self._failures else None
            if failure is not None:
                raise sqlite3.OperationalError(f"the commit of this write failed: {failure}") from failure

    def _commit_if_last(self, force: bool = False) -> None:
        """Commit when nobody else is queued to add to this transaction, or the batch is full (or ``force``)."""
        with self._state:
            last = force or self._waiting == 0 or self._pending >= MAX_BATCH
        if not last:
            return
        generation = self._generation
        if self.conn.in_transaction:
            try:
                self.offload(self._commit)
            except BaseException as exc:  # disk full, I/O error: every write of the batch must hear of it
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                self._failures[generation] = exc
        elif self._pending:  # SQLite rolled the transaction back by itself: nobody may be told "saved"
            self._failures[generation] = sqlite3.OperationalError("SQLite rolled the transaction back")
        else:
            return
        with self._state:
            self._generation, self._pending = generation + 1, 0
        event = self._done.get(generation)
        if event is not None:
            event.set()

    @property
    def commits(self) -> int:
        """How many commits (each one fsync) this writer has done: fewer than writes when commits are shared."""
        return self._generation

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def close(self) -> None:
        """Commit what is pending and close the connection (a second close does nothing)."""
        with self._lock:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")
            self.conn.close()


def _inline(call: Callable[[], Any]) -> Any:
    return call()
