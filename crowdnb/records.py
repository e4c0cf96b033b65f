"""What a run's rules read at one moment: its submissions with their age and flags, and a record per worker.

``run.worker_df`` is the same worker record, one row per worker who submitted in the run:

==================  ========================================================================
``worker``          the worker's name on the run's provider
``submitted``       data units submitted in this run; ``pending`` (awaiting review),
                    ``accepted``, ``rejected``, ``soft_rejected`` and ``flagged`` of them
``median_duration_s``  their median time per unit
``gold_answers``    gold units answered in this run; ``gold_correct``, ``gold_wrong`` and
                    ``gold_accuracy`` (NaN without gold answers)
``qualifications``  every qualification they hold, name → value (across the project)
``blocked``         whether they are blocked (``cn.block``)
==================  ========================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

import pandas as pd

from .errors import ConfigError
from .quality.gold import gold_scores
from .quality.requirements import BLOCKED
from .store import audit
from .store import states as S

if TYPE_CHECKING:
    from .run import Run

COUNTS = ["submitted", "pending", "accepted", "rejected", "soft_rejected", "flagged"]
GOLD = ["gold_answers", "gold_correct", "gold_wrong", "gold_accuracy"]
WORKER_COLUMNS = ["worker", *COUNTS, "median_duration_s", *GOLD, "qualifications", "blocked"]


class Frames:
    """A run's data as of ``when`` (default now), each frame built once and shared by a tick's rules."""

    blocked_name = BLOCKED

    def __init__(self, run: Run, when: datetime | str | None = None) -> None:
        self.run = run
        self.at = moment(when)
        self._held: dict[str, dict[str, int]] = {}

    @cached_property
    def submissions(self) -> pd.DataFrame:
        """``run.df`` with ``age_hours`` (since each was submitted) and ``flagged`` (held for a person)."""
        frame = self.run.df
        submitted = pd.to_datetime(frame["submitted_at"], utc=True)
        ages = (self.at - submitted).dt.total_seconds() / 3600.0
        flagged = frame["unit_id"].isin(audit.flagged_units(self.run.store, self.run.id))
        return frame.assign(age_hours=ages.astype(float), flagged=flagged.astype(bool))

    @cached_property
    def workers(self) -> pd.DataFrame:
        """One record per worker who submitted in the run (see the module docstring)."""
        data = self.submissions
        status, who = data["status"], data["worker"]
        counts = pd.DataFrame(
            {
                "submitted": who.value_counts(),
                "pending": who[status == S.COMPLETED].value_counts(),
                "accepted": who[status == S.ACCEPTED].value_counts(),
                "rejected": who[status == S.REJECTED].value_counts(),
                "soft_rejected": who[status == S.SOFT_REJECTED].value_counts(),
                "flagged": who[data["flagged"]].value_counts(),
                "median_duration_s": data.groupby("worker")["duration_s"].median(),
            }
        )
        gold = self.run.spec.gold
        scores = gold_scores(self.run.gold_df, gold["rows"]) if gold else pd.DataFrame(columns=GOLD)
        out = counts.join(scores, how="outer")
        out[COUNTS] = out[COUNTS].fillna(0).astype("int64")
        out[GOLD[:3]] = out[GOLD[:3]].fillna(0).astype("int64")
        out["median_duration_s"] = out["median_duration_s"].astype(float)
        out["gold_accuracy"] = out["gold_accuracy"].astype(float)
        held = self.qualifications(out.index)
        out["qualifications"] = pd.Series([held[w] for w in out.index], index=out.index, dtype=object)
        out["blocked"] = [BLOCKED in held[w] for w in out.index]
        out.index.name = "worker"
        return out.reset_index()[WORKER_COLUMNS]

    def qualifications(self, workers: Iterable[str]) -> dict[str, dict[str, int]]:
        """Each worker's qualifications (read once per frame set)."""
        names = {str(w) for w in workers}
        missing = names - set(self._held)
        if missing:
            self._held.update(audit.qualifications_by_worker(self.run.store, self.run.provider_name, missing))
        return {name: self._held[name] for name in names}


def moment(when: datetime | str | None) -> pd.Timestamp:
    """A point in time in UTC: now, a datetime (naive means local time) or ISO text."""
    if when is None:
        return pd.Timestamp.now(tz="UTC")
    try:
        stamp = pd.Timestamp(when)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"at={when!r} is not a time; give a datetime or ISO text such as '2026-12-01T09:00'") from exc
    if stamp.tzinfo is None:
        stamp = pd.Timestamp(stamp.to_pydatetime().astimezone())
    return stamp.tz_convert("UTC")
