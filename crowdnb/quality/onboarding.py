"""Onboarding: a short test a worker passes once before their first unit of a task.

Passing grants the qualification (``<task>-onboarded`` by default) with value 1; failing grants it with
value 0 plus ``<qualification>-failed``, which every run of the task refuses. Both live in the project,
so results are reused across runs; ``Task.reset_onboarding(worker)`` lets one worker try again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..errors import AuthError, ConfigError, WorkerRefused
from ..pages.page import TaskPage
from ..store.db import Store
from .qualifications import Later, apply_qualification
from .requirements import check_name

if TYPE_CHECKING:
    from ..providers import Provider

PREFIX = "onboarding."


@dataclass(frozen=True)
class Onboarding:
    """The onboarding page (Jinja HTML) and how to judge it: ``expected`` answers and/or a ``validate`` function."""

    html: str
    expected: Mapping[str, Any] | None = None
    validate: Callable[[dict[str, Any]], bool] | None = None
    qualification: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.expected is None and self.validate is None:
            raise ConfigError("onboarding needs expected= answers or a validate= function to judge the test")
        if self.validate is not None and not callable(self.validate):
            raise ConfigError(f"onboarding validate= must be a function; got {self.validate!r}")
        if self.qualification is not None:
            check_name(self.qualification)
        page = TaskPage(self.html, "onboarding html=")
        missing = [v for v in page.required if v not in self.data]
        if missing:
            raise ConfigError(f"the onboarding page uses {', '.join(missing)}; give them in onboarding data=")

    def to_dict(self, task: str) -> dict[str, Any]:
        """What a run stores (the function itself cannot be stored: resume takes it again)."""
        return {
            "html": self.html,
            "expected": dict(self.expected) if self.expected is not None else None,
            "qualification": self.qualification or f"{task}-onboarded",
            "data": dict(self.data),
            "has_validate": self.validate is not None,
        }

    def passes(self, answers: Mapping[str, Any]) -> bool:
        """Whether ``answers`` pass: every expected answer matches (as text) and ``validate`` agrees."""
        if self.expected is not None:
            for name, wanted in self.expected.items():
                given = answers.get(name)
                if isinstance(wanted, (list, tuple)):
                    if sorted(map(str, given or [])) != sorted(map(str, wanted)):
                        return False
                elif str(given) != str(wanted):
                    return False
        return bool(self.validate(dict(answers))) if self.validate is not None else True


def check_validate(stored: Mapping[str, Any], validate: Callable[[dict[str, Any]], bool] | None) -> None:
    """Refuse to serve an onboarding judged by a function when the function was not given again."""
    if stored["has_validate"] and validate is None:
        raise ConfigError(
            "this task's onboarding is judged by a Python function, which is not stored; "
            "pass it again: run.resume(onboarding_validate=fn)"
        )


class Onboarder:
    """Onboarding of one run's workers: who needs it, the page's token, judging a submission."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        stored: dict[str, Any],
        validate: Callable[[dict[str, Any]], bool] | None,
        secret: str,
        later: Later | None = None,
    ) -> None:
        check_validate(stored, validate)
        self.test = Onboarding(stored["html"], stored["expected"], validate, stored["qualification"], stored["data"])
        self.qualification = str(stored["qualification"])
        self.closed_by = f"{self.qualification}-failed"
        self.refusal = "You did not pass the qualification test for this task."
        self.page = TaskPage(stored["html"], "onboarding")
        self.store, self.provider, self.later = store, provider, later
        self._tokens = URLSafeTimedSerializer(secret, salt="crowdnb.quality.onboarding")

    def needed(self, held: Mapping[str, int]) -> bool:
        """Whether a worker holding ``held`` has not taken the test yet."""
        return self.qualification not in held

    def token(self, worker_id: int) -> str:
        """The signed token of a worker's onboarding page."""
        return PREFIX + self._tokens.dumps(worker_id)

    def submit(self, token: str, answers: dict[str, Any]) -> str:
        """Judge an onboarding submission; a pass returns what to tell the worker before the task reloads, a fail
        is refused with a clear page."""
        try:
            worker_id = int(self._tokens.loads(token.removeprefix(PREFIX), max_age=24 * 3600))
        except (BadSignature, ValueError, TypeError) as exc:
            raise AuthError("This qualification test page is not valid; reopen the task.") from exc
        name = self.store.worker_name(worker_id)
        held = self.store.qualifications_of(worker_id)
        if not self.needed(held):  # a second tab or a double click: the first judgement stands
            if held[self.qualification]:
                return "You already passed the qualification test."
            raise WorkerRefused("not_qualified", self.refusal)
        passed = self.test.passes(answers)
        details = json.dumps({"qualification": self.qualification, "answers": answers, "passed": passed})
        self.store.log_action(self.provider.name, name, "onboarding", "crowdnb", details=details)
        self._qualify(name, self.qualification, int(passed))
        if not passed:
            self._qualify(name, self.closed_by, 1)
            raise WorkerRefused(
                "not_qualified", "You did not pass the qualification test for this task. Thank you for trying!"
            )
        return "You passed the qualification test. Loading your first unit…"

    def _qualify(self, worker: str, name: str, value: int) -> None:
        apply_qualification(
            self.store, self.provider, worker, name, value, "crowdnb", best_effort=True, later=self.later
        )
