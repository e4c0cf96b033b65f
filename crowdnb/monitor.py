"""A served run's monitor thread: a tick of upkeep every half second, and the work requests left behind.

The upkeep (``Run`` gives it: feed and launch units, sync with the platform, release abandoned units,
notice completion) runs every ``TICK_SECONDS``. Work a worker's request queued in the run's backlog
(``on_submit`` callbacks, qualifications pushed to a platform) is done as soon as it arrives. A tick that
fails does not stop the thread: the pause before the next try doubles up to ``BACKOFF_SECONDS``, the error
is logged, and ``failing`` says since when and why until a tick succeeds again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .router.backlog import Backlog

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
BACKOFF_SECONDS = 30.0  # the longest pause between the tries of a tick that keeps failing
STOP_SECONDS = 30.0  # how long ``stop`` waits for a tick in flight (a slow platform call) to end


@dataclass(frozen=True)
class Failing:
    """Since when the monitor's ticks fail, the last error, and how many failed in a row."""

    since: float  # time.time()
    error: str
    ticks: int = 1

    def describe(self) -> str:
        """``monitor failing since 12:03:05 (4 ticks): ProviderError: …``"""
        at = time.strftime("%H:%M:%S", time.localtime(self.since))
        return f"monitor failing since {at} ({self.ticks} ticks): {self.error}"


class Monitor:
    """The thread that keeps one served run going: ``start``, ``tick`` (also from another thread), ``stop``."""

    def __init__(
        self, run_id: int, upkeep: Callable[[], None], backlog: Backlog, prepare: Callable[[], object] = lambda: None
    ) -> None:
        """``prepare`` runs first in the thread (binding what it logs to its run)."""
        self.name, self.upkeep, self.backlog, self.prepare = f"monitor of run {run_id}", upkeep, backlog, prepare
        self.failing: Failing | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one tick at a time: the thread's and one called from elsewhere
        self._thread = threading.Thread(target=self._loop, name=f"crowdnb-monitor-{run_id}", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def tick(self) -> None:
        """Do the queued work and the upkeep now, in the calling thread; raises what the upkeep raises.

        A failure is kept in ``failing`` (and counted) until a tick succeeds, whoever called it."""
        self.backlog.drain()
        with self._lock:
            try:
                self.upkeep()
            except Exception as exc:
                first = str(exc).splitlines()[0] if str(exc) else ""
                error = f"{type(exc).__name__}: {first}"[:300]
                since, ticks = (self.failing.since, self.failing.ticks + 1) if self.failing else (time.time(), 1)
                self.failing = Failing(since, error, ticks)
                raise
            if self.failing is not None:
                log.info("%s works again after %d failed ticks", self.name, self.failing.ticks)
                self.failing = None

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop the thread and join it (a tick in flight finishes first); False if it is still busy after
        ``timeout`` seconds. Work still queued is left for ``backlog.drain``."""
        self._stopping.set()
        self.backlog.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("%s still busy after %g s; going on without it", self.name, timeout)
                return False
        return True

    def _loop(self) -> None:
        self.prepare()
        pause = TICK_SECONDS
        due = time.monotonic() + pause
        while not self._stopping.is_set():
            if self.backlog.wait(max(due - time.monotonic(), 0.0)):  # work left by a request, or stop()
                self.backlog.drain()
                if time.monotonic() < due or self._stopping.is_set():
                    continue
            pause = self._guarded(pause)
            due = time.monotonic() + pause

    def _guarded(self, pause: float) -> float:
        """A tick that keeps the thread alive when it fails; returns the pause before the next one."""
        try:
            self.tick()
        except Exception:
            pause = min(pause * 2, BACKOFF_SECONDS)
            failing = self.failing  # read once: a tick called from elsewhere may clear it meanwhile
            if failing is None or failing.ticks == 1:
                log.exception("%s failed a tick; trying again in %g s", self.name, pause)
            else:
                log.warning("%s: %s; trying again in %g s", self.name, failing.describe(), pause)
            return pause
        return TICK_SECONDS
