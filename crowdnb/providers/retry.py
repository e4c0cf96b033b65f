"""Retrying a platform call: transient failures (timeouts, 5xx, throttling) back off and try again.

Only calls that are safe to repeat go through ``retried``: reads, and writes the platform makes
idempotent (MTurk's ``UniqueRequestToken``, a transition to a state the object is already in). A
call that moves money without such a key is never retried blindly; its provider records the intent
first and checks the platform before trying again — or re-sends it when the platform refused it before
processing it (Prolific's 429), after ``backoff``, which honours the platform's ``Retry-After``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..errors import ProviderError

log = logging.getLogger(__name__)
T = TypeVar("T")

ATTEMPTS = 4
BASE_DELAY = 0.5  # seconds; doubled each attempt, with jitter
MAX_DELAY = 8.0


def backoff(attempt: int, base_delay: float = BASE_DELAY, exc: ProviderError | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1, 2 …): doubled each time, with jitter, and never
    less than the ``Retry-After`` the platform sent with ``exc``."""
    wait = min(MAX_DELAY, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
    return max(wait, exc.retry_after or 0.0) if exc is not None else wait


def retried(
    call: Callable[[], T],
    *,
    attempts: int = ATTEMPTS,
    base_delay: float = BASE_DELAY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, tried up to ``attempts`` times while it raises a transient ``ProviderError``.

    A platform asking to wait longer than ``MAX_DELAY`` (Retry-After) is not kept waiting on: the error is
    raised, and the caller's recorded intent is sent again later.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except ProviderError as exc:
            if not exc.transient or attempt == attempts or (exc.retry_after or 0.0) > MAX_DELAY:
                raise
            delay = backoff(attempt, base_delay, exc)
            log.info(
                "%s %s failed (%s); retry %d/%d in %.1f s",
                exc.platform,
                exc.call,
                exc.message,
                attempt,
                attempts - 1,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
