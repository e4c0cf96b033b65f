"""The kernel at work: a researcher's cell running a pure-Python loop in a thread of the benchmark process.

While it runs, every other thread of the process (an in-kernel router's, the run.df poller's, the mirror's
follower) gets the GIL only when the loop's thread gives it up (every ``sys.getswitchinterval()``, 5 ms).
"""

from __future__ import annotations

import threading
import time

CHUNK = 20_000  # additions per round: about a millisecond of pure Python, then a look at the stop flag


class BusyKernel:
    """A thread that loops in pure Python until stopped; counts its rounds and its CPU."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="busy-kernel-cell", daemon=True)
        self.rounds, self.cpu_s, self.wall_s = 0, 0.0, 0.0

    def _loop(self) -> None:
        started, cpu = time.perf_counter(), time.thread_time()
        while not self._stop.is_set():
            total = 0
            for n in range(CHUNK):
                total += n * n % 7
            self.rounds += 1
        self.cpu_s = time.thread_time() - cpu
        self.wall_s = time.perf_counter() - started

    def start(self) -> BusyKernel:
        """Start looping."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop looping and wait for the thread (its CPU is known then)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def figures(self) -> dict[str, float]:
        """Rounds per second and the share of a core the loop got."""
        wall = self.wall_s or 1.0
        return {"kernel_rounds_per_s": self.rounds / wall, "kernel_cpu_percent": 100 * self.cpu_s / wall}
