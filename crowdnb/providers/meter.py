"""Where a provider reports each call it makes to its platform: the run's metrics listen here.

A provider with a ``meter`` attribute (every built-in one) tells its listeners about every call: the
platform, the call's name, how long it took and how it failed, if it did ("transient": worth retrying,
"refused": the platform said no, "error": anything else). A call retried three times is three calls. The mock provider reports
the calls a real platform would have received.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..errors import ProviderError

log = logging.getLogger(__name__)

Listener = Callable[[str, str, float, "str | None"], None]  # (platform, call, seconds, failure kind or None)


class Meter:
    """Listeners to a provider's platform calls (a run's metrics); a listener that fails is logged, not raised."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Hear about every call from now on."""
        self.listeners.append(listener)

    def report(self, platform: str, call: str, seconds: float, failure: str | None = None) -> None:
        """Tell every listener about one call."""
        for listener in self.listeners:
            try:
                listener(platform, call, seconds, failure)
            except Exception:  # counting must never break a platform call
                log.exception("a listener of %s calls failed", platform)

    @contextmanager
    def timed(self, platform: str, call: str) -> Iterator[None]:
        """Report the call made inside the ``with`` block, and how it failed if it raised."""
        started = time.perf_counter()
        failure: str | None = None
        try:
            yield
        except ProviderError as exc:
            failure = "transient" if exc.transient else "refused"
            # the caller decides what follows (a retry, a check, a failed tick); the log keeps every failure
            log.warning("%s (%s)", exc, failure)
            raise
        except Exception:  # no answer to read (no keys, a bug): counted as failed all the same
            failure = "error"
            raise
        finally:
            self.report(platform, call, time.perf_counter() - started, failure)
