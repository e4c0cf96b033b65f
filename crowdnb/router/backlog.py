"""Work a worker's request leaves for later: ``on_submit`` listeners and calls to a platform.

A submit answers as soon as the store holds the answers; what follows from them (a user's listeners, a
qualification pushed to MTurk after a failed gold unit) is put here and done by the run's monitor thread
(``drain``), so a slow platform or a slow listener never slows a worker's page.

The queue is bounded (``size`` jobs). When it is full, the monitor is thousands of jobs behind (a
platform that answers in seconds for minutes on end, a listener slower than the crowd): the job then runs
in the request that brought it, so that worker waits but nothing is dropped, and a warning says so.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class Backlog:
    """A bounded first-in first-out queue of jobs, drained by one thread."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._jobs: queue.Queue[tuple[str, Job]] = queue.Queue(maxsize=size)
        self._ready = threading.Event()  # set when a job is queued (or ``wake`` is called)
        self._full_warned = False

    def later(self, what: str, job: Job) -> None:
        """Queue ``job`` (``what`` names it in logs); when the queue is full, run it now instead.

        This is the ``later`` callable the quality checks are given (``quality.qualifications.Later``)."""
        try:
            self._jobs.put_nowait((what, job))
        except queue.Full:
            if not self._full_warned:
                self._full_warned = True
                log.warning("backlog full (%d jobs): %s runs in the worker's request", self.size, what)
            _run(what, job)
        else:
            self._ready.set()

    def drain(self) -> int:
        """Run every queued job, oldest first (a failing one is logged and dropped); returns how many ran."""
        self._ready.clear()
        done = 0
        while True:
            try:
                what, job = self._jobs.get_nowait()
            except queue.Empty:
                if done:
                    self._full_warned = False
                return done
            _run(what, job)
            done += 1

    def wait(self, timeout: float) -> bool:
        """Block until a job is queued or ``wake`` is called, at most ``timeout`` seconds; True if woken."""
        return self._ready.wait(timeout)

    def wake(self) -> None:
        """Release a ``wait`` at once (the run is stopping)."""
        self._ready.set()

    def __len__(self) -> int:
        return self._jobs.qsize()


def _run(what: str, job: Job) -> None:
    try:
        job()
    except Exception:  # the submission is saved; what follows from it must not undo that or stop the queue
        log.exception("%s failed", what)
