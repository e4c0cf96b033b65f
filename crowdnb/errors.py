"""Every error crowdnb raises on purpose.

::

    CrowdError                   base: catch this to catch them all
    ├── ConfigError              a bad argument to Task, launch, a provider or an architect
    │   └── FormError            a form config with problems, each named by its JSON path
    ├── DataError                bad task data: names the file, row and column
    ├── StateError               an illegal state transition: names both states
    ├── NotFound                 no such task, run, unit or worker
    ├── ProviderError            a crowd platform refused or failed a call
    ├── ArchitectError           the router could not be deployed or stopped
    ├── ProcedureError           a live procedure could not answer a page; the message is for the worker
    └── WorkerRefused            a worker cannot get (or submit) a unit; carries a reason code
        ├── AuthError            a forged, expired or foreign worker token
        └── InvalidAnswers       answers that break the page's field rules; carries one message per field

Messages name the bad value and the next step. ``http_status`` maps the tree to HTTP statuses for the
worker router and the review app alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class CrowdError(Exception):
    """Base class of every error crowdnb raises on purpose."""


class ConfigError(CrowdError, ValueError):
    """A bad argument to ``Task``, ``launch``, a provider or an architect."""


@dataclass(frozen=True)
class Problem:
    """One problem of a form config: where (a JSON path such as ``form.sections[0].title``) and what."""

    path: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FormError(ConfigError):
    """A form config with errors; ``problems`` holds every one (``warnings`` the harmless ones)."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None, origin: str = "") -> None:
        self.problems, self.warnings, self.origin = list(problems), list(warnings or []), origin
        where = f"{origin}: " if origin else ""
        if len(self.problems) == 1:
            text = f"{where}{self.problems[0]}"
        else:
            text = f"{where}{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)

    def located(self, origin: str) -> FormError:
        """The same problems, said to come from ``origin`` (a file name)."""
        return FormError(self.problems, self.warnings, origin)


class DataError(CrowdError, ValueError):
    """Bad task data; the message names the source, row and column."""


class StateError(CrowdError):
    """An illegal state transition; the message names both states."""


class NotFound(CrowdError, LookupError):
    """No such task, run, unit or worker."""


class ProviderError(CrowdError):
    """A crowd platform refused or failed a call; the message names the platform, the call and its reply.

    ``transient`` marks failures worth retrying (timeouts, 5xx, throttling); ``status`` is the
    platform's HTTP status when there was one; ``retry_after`` the seconds it asked to wait (Retry-After).
    """

    def __init__(
        self,
        platform: str,
        call: str,
        message: str,
        *,
        transient: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{platform} {call} failed: {message}")
        self.platform = platform
        self.call = call
        self.message = message
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


class ArchitectError(CrowdError):
    """The router could not be deployed or stopped."""


class ProcedureError(CrowdError):
    """A live procedure could not answer a worker's page; the message is what the worker reads.

    Raise it in a procedure to tell the worker what to do ("The model is not available; try again in a
    minute."). ``detail`` (a traceback, say) goes to the requester's log and ``run.calls_df``, never to the
    worker; ``timed_out`` marks a call that ran out of time.
    """

    def __init__(self, message: str, *, detail: str | None = None, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.timed_out = timed_out


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
        "invalid": 422,
        "waiting": 503,  # the requester's notebook is away and this needs its Python: try again soon
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


class InvalidAnswers(WorkerRefused):
    """Answers that break the page's field rules; ``errors`` maps each bad field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        count = "one field" if len(errors) == 1 else f"{len(errors)} fields"
        super().__init__("invalid", f"Please correct {count} and submit again.")
        self.errors = dict(errors)


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
