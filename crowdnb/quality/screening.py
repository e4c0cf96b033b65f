"""Screening: a new worker's first unit is judged by a function before they get more.

Screening units are made for the worker on demand from ``rows`` or, without rows, from a copy of one of
the task's own input rows; either way their answers are judged, not counted as data (see
``run.screening_df``). At most ``max_units`` screening units are given per task, so a flood of new
workers cannot eat the budget. Passing grants ``<task>-screened``;
failing grants ``<task>-screened-failed``, which every run of the task refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, WorkerRefused
from ..store.db import Store
from ..store.lifecycle import Special
from .qualifications import Later, apply_qualification
from .requirements import check_name

if TYPE_CHECKING:
    from ..providers import Provider

Judge = Callable[[dict[str, Any], dict[str, Any]], bool]  # (inputs, answers) -> passed


@dataclass(frozen=True)
class Screening:
    """How new workers are screened: ``validate(inputs, answers)`` on their first unit."""

    validate: Judge
    rows: Sequence[Mapping[str, Any]] | None = None
    max_units: int = 50
    qualification: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.validate):
            raise ConfigError(f"screening validate= must be a function of (inputs, answers); got {self.validate!r}")
        if isinstance(self.max_units, bool) or not isinstance(self.max_units, int) or self.max_units < 1:
            raise ConfigError(f"screening max_units={self.max_units!r} must be a whole number ≥ 1")
        if self.rows is not None and not self.rows:
            raise ConfigError("screening rows= is empty; give rows, or None to screen on the task's own data")
        if self.qualification is not None:
            check_name(self.qualification)

    def to_dict(self, task: str) -> dict[str, Any]:
        """JSON-ready, stored with the run (the function is not: resume takes it again)."""
        rows = [dict(r) for r in self.rows] if self.rows is not None else None
        return {"rows": rows, "max_units": self.max_units, "qualification": self.qualification or f"{task}-screened"}


class Screener:
    """Screening of one run's new workers."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        stored: dict[str, Any],
        validate: Judge | None,
        task_id: int,
        later: Later | None = None,
    ) -> None:
        if validate is None:
            raise ConfigError(
                "this task's screening is judged by a Python function, which is not stored; "
                "pass it again: run.resume(screening_validate=fn)"
            )
        self.store, self.provider, self.task_id, self.validate = store, provider, task_id, validate
        self.later = later  # platform calls leave the worker's request through it
        self.rows: list[dict[str, Any]] | None = stored["rows"]
        self.max_units = int(stored["max_units"])
        self.qualification = str(stored["qualification"])
        self.closed_by = f"{self.qualification}-failed"  # granted to workers who failed screening
        self.refusal = "Your first answers did not meet this task's standard. Thank you for trying!"

    def pick(self, run_id: int, held: Mapping[str, int]) -> Special | None:
        """A screening unit for a worker not screened yet (None for screened workers); refuses past the cap."""
        if self.qualification in held:
            return None
        given = self.store.special_units_given(self.task_id, "screening")
        if given >= self.max_units:
            raise WorkerRefused("not_qualified", "This task is not taking new workers at the moment. Thank you!")
        if self.rows is not None:
            index = given % len(self.rows)
            return Special("screening", index, dict(self.rows[index]), unit_index=-1)
        row = self.store.input_row(run_id, given)
        return Special("screening", given, row or {}, unit_index=-1)

    def judge(self, worker: str, inputs: dict[str, Any], answers: dict[str, Any]) -> bool:
        """Grant the passed or failed qualification from a screening submission."""
        passed = bool(self.validate(inputs, answers))
        self._qualify(worker, self.qualification, int(passed))
        if not passed:
            self._qualify(worker, self.closed_by, 1)
        return passed

    def _qualify(self, worker: str, name: str, value: int) -> None:
        apply_qualification(
            self.store, self.provider, worker, name, value, "crowdnb", best_effort=True, later=self.later
        )
