"""Gold units: items with known answers, mixed in among a worker's units to check their accuracy.

A worker gets ``first`` golds among their first units and one in every ``every`` units after that, in a
random order without repeats. Each gold answer moves the counters ``<base>-correct`` / ``<base>-wrong``
(local qualifications); more than ``max_wrong`` wrong answers grants ``<base>-disqualified``, which every
run of the task refuses. Gold units are paid like any other and never appear in ``run.df``
(see ``run.gold_df``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import ConfigError
from ..store.db import Store
from ..store.lifecycle import Special
from .qualifications import Later, apply_qualification
from .requirements import check_name

if TYPE_CHECKING:
    from ..providers import Provider


@dataclass(frozen=True)
class Gold:
    """Known-answer rows: each holds the page's inputs and, under ``answers``, the correct answers."""

    rows: Sequence[Mapping[str, Any]]
    first: int = 1
    every: int = 10
    max_wrong: int = 0
    qualification: str | None = None

    def __post_init__(self) -> None:
        if not self.rows:
            raise ConfigError("gold needs at least one row with known answers")
        for number, row in enumerate(self.rows, start=1):
            if not isinstance(row, Mapping) or not isinstance(row.get("answers"), Mapping) or not row["answers"]:
                raise ConfigError(f"gold row {number} needs an 'answers' dict of the correct answers")
        for label, value, low in (("first", self.first, 0), ("every", self.every, 1), ("max_wrong", self.max_wrong, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"gold {label}={value!r} must be a whole number ≥ {low}")
        if self.qualification is not None:
            check_name(self.qualification)

    def to_dict(self, task: str) -> dict[str, Any]:
        """JSON-ready, stored with the run."""
        return {
            "rows": [dict(r) for r in self.rows],
            "first": self.first,
            "every": self.every,
            "max_wrong": self.max_wrong,
            "qualification": self.qualification or f"{task}-gold",
        }


def inputs_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A gold row without its answers: what the worker's page receives."""
    return {k: v for k, v in row.items() if k != "answers"}


def matches(given: Any, wanted: Any) -> bool:
    """Whether an answer matches the known one (compared as text; lists in any order)."""
    if isinstance(wanted, (list, tuple)):
        return isinstance(given, (list, tuple)) and sorted(map(str, given)) == sorted(map(str, wanted))
    return str(given) == str(wanted)


class GoldKeeper:
    """Gold units of one run: when a worker gets one, which, and judging their answer."""

    def __init__(
        self, store: Store, provider: Provider, stored: dict[str, Any], task_id: int, later: Later | None = None
    ) -> None:
        self.store, self.provider, self.task_id, self.later = store, provider, task_id, later
        self.rows: list[dict[str, Any]] = stored["rows"]
        self.first, self.every, self.max_wrong = stored["first"], stored["every"], stored["max_wrong"]
        self.base = str(stored["qualification"])
        self.closed_by = f"{self.base}-disqualified"  # granted to workers with too many wrong golds
        self.refusal = "Your answers to our check questions were not accurate enough for this task."
        self._random = random.Random()

    def pick(self, worker_id: int, held: Mapping[str, int]) -> Special | None:
        """The gold unit this worker should get now, or None for a data unit."""
        golds = held.get(f"{self.base}-correct", 0) + held.get(f"{self.base}-wrong", 0)
        units = self.store.data_units_done(self.task_id, worker_id)
        due = golds < self.first or golds < self.first + units // self.every
        if not due:
            return None
        seen = self.store.gold_rows_seen(self.task_id, worker_id)
        fresh = [i for i in range(len(self.rows)) if i not in seen]
        if not fresh:
            return None
        index = self._random.choice(fresh)
        return Special("gold", index, inputs_of(self.rows[index]))

    def judge(self, worker: str, row_index: int, answers: Mapping[str, Any]) -> bool:
        """Count a gold answer; disqualify the worker past ``max_wrong``. Returns whether it was right."""
        wanted = self.rows[row_index]["answers"]
        right = all(matches(answers.get(name), value) for name, value in wanted.items())
        counter = f"{self.base}-{'correct' if right else 'wrong'}"
        held = self.store.qualifications_of(self.store.worker(self.provider.name, worker))
        # counters stay local (as in Mephisto); only a disqualification is pushed to the platform
        self.store.set_qualification(self.provider.name, worker, counter, held.get(counter, 0) + 1, "crowdnb")
        if not right and held.get(f"{self.base}-wrong", 0) + 1 > self.max_wrong:
            apply_qualification(
                self.store, self.provider, worker, self.closed_by, 1, "crowdnb", best_effort=True, later=self.later
            )
        return right


def gold_scores(frame: pd.DataFrame, rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per worker, from their gold submissions (``run.gold_df``): ``gold_answers``, ``gold_correct``,
    ``gold_wrong`` and ``gold_accuracy``, each answer judged as ``GoldKeeper`` judges it."""
    columns = ["gold_answers", "gold_correct", "gold_wrong", "gold_accuracy"]
    if frame.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="worker"))
    wanted = [dict(rows[int(i)]["answers"]) for i in frame["row_index"]]
    right = [
        all(matches(record.get(name), value) for name, value in want.items())
        for record, want in zip(frame.to_dict("records"), wanted, strict=True)
    ]
    judged = pd.DataFrame({"worker": frame["worker"].to_numpy(), "right": right})
    grouped = judged.groupby("worker")["right"]
    out = pd.DataFrame({"gold_answers": grouped.size(), "gold_correct": grouped.sum().astype(int)})
    out["gold_wrong"] = out["gold_answers"] - out["gold_correct"]
    out["gold_accuracy"] = out["gold_correct"] / out["gold_answers"]
    return out[columns]
