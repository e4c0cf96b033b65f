"""Polling for something another process does (a dyno starting), with a named failure."""

from __future__ import annotations

import time
from typing import Any


def wait_until(condition: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.1)
    return value
