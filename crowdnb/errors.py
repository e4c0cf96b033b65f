"""Every error crowdnb raises on purpose.

::

    CrowdError                   base: catch this to catch them all
    ├── ConfigError              a bad argument to Task, launch, a provider or an architect
    ├── DataError                bad task data: names the file, row and column
    ├── StateError               an illegal state transition: names both states
    ├── NotFound                 no such task, run, unit or worker
    ├── ProviderError            a crowd platform refused or failed a call
    ├── ArchitectError           the router could not be deployed or stopped
    └── WorkerRefused            a worker cannot get (or submit) a unit; carries a reason code
        └── AuthError            a forged, expired or foreign worker token

Messages name the bad value and the next step. ``http_status`` maps the tree to HTTP statuses for the
worker router and the review app alike.
"""

from __future__ import annotations

from typing import ClassVar


class CrowdError(Exception):
    """Base class of every error crowdnb raises on purpose."""


class ConfigError(CrowdError, ValueError):
    """A bad argument to ``Task``, ``launch``, a provider or an architect."""


class DataError(CrowdError, ValueError):
    """Bad task data; the message names the source, row and column."""


class StateError(CrowdError):
    """An illegal state transition; the message names both states."""


class NotFound(CrowdError, LookupError):
    """No such task, run, unit or worker."""


class ProviderError(CrowdError):
    """A crowd platform refused or failed a call; the message names the platform, the call and its reply.

    ``transient`` marks failures worth retrying (timeouts, 5xx, throttling); ``status`` is the
    platform's HTTP status when there was one.
    """

    def __init__(
        self, platform: str, call: str, message: str, *, transient: bool = False, status: int | None = None
    ) -> None:
        super().__init__(f"{platform} {call} failed: {message}")
        self.platform = platform
        self.call = call
        self.message = message
        self.transient = transient
        self.status = status


class ArchitectError(CrowdError):
    """The router could not be deployed or stopped."""


class WorkerRefused(CrowdError):
    """A worker cannot get or submit a unit.

    ``reason`` is a stable code (see ``REASONS``); the message is what the worker reads.
    """

    REASONS: ClassVar[dict[str, int]] = {
        "not_qualified": 403,
        "no_work": 410,
        "too_many": 429,
        "max_reached": 403,
        "finished": 410,
        "taken": 409,
        "bad_submission": 400,
        "too_large": 413,
        "forbidden": 403,
    }

    def __init__(self, reason: str, message: str) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def http_status(self) -> int:
        """The HTTP status the router answers with."""
        return self.REASONS[self.reason]


class AuthError(WorkerRefused):
    """A forged, expired or foreign worker token."""

    def __init__(self, message: str) -> None:
        super().__init__("forbidden", message)


def http_status(exc: BaseException) -> int:
    """The HTTP status of an error: the one place crowdnb's error tree meets HTTP (500: not ours)."""
    if isinstance(exc, WorkerRefused):
        return exc.http_status
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, StateError):
        return 409
    if isinstance(exc, ProviderError):
        return 424  # the platform failed the call; the store already holds the decision
    if isinstance(exc, (ConfigError, DataError)):
        return 400
    return 400 if isinstance(exc, CrowdError) else 500
