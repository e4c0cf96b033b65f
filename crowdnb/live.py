"""The live DataFrame of a run or a task: one row per submitted unit, refreshed incrementally.

Each refresh reads only the submissions whose revision is newer than the last one seen (new rows and
review decisions), so the database work grows with what changed, not with the size of the frame.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from . import reports
from .store import Row, Store
from .uploads import frame_columns

# fixed columns first, in this order; then the input columns, then the answers
META_COLUMNS = [
    "run_id",
    "unit_id",
    "assignment_id",
    "unit_index",
    "row_index",
    "worker",
    "status",
    "started_at",
    "submitted_at",
    "duration_s",
    "reward",
]
FEEDBACK_COLUMN = "_feedback"
_ID_COLUMNS = ("run_id", "unit_id", "assignment_id")
_TIME_COLUMNS = ("started_at", "submitted_at")


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts become dotted columns; lists stay as values."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def record(row: Row) -> dict[str, Any]:
    """One frame row from a store row: ids, timing, inputs, answers (uploaded files: their paths and names),
    then the worker's feedback when the page asked for it."""
    out = {k: row[k] for k in META_COLUMNS if k in row}
    inputs: dict[str, Any] = {}
    flatten("", json.loads(row["input"]), inputs)
    answers: dict[str, Any] = {}
    flatten("", json.loads(row["answers"]), answers)
    answers.update(frame_columns(json.loads(row["files"])))
    for name, value in inputs.items():
        out[f"input_{name}" if name in answers or name in out else name] = value
    for name, value in answers.items():
        out[name if name not in out else f"answer_{name}"] = value
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    if "feedback" in meta:  # submission metadata, kept out of the answers
        out[FEEDBACK_COLUMN] = meta["feedback"]
    return out


class LiveFrame:
    """A DataFrame kept in step with the store for one run (``scope="run"``) or task (``"task"``).

    ``fetch`` replaces the store as the source of changed rows (an attached notebook's mirror).
    """

    def __init__(
        self,
        store: Store | None,
        scope: str = "run",
        scope_id: int = 0,
        kind: str = "data",
        *,
        fetch: Callable[[int], Sequence[Row]] | None = None,
    ) -> None:
        if fetch is None:
            if store is None:
                raise TypeError("LiveFrame needs a store or a fetch function")
            source = store

            def fetch(rev: int) -> Sequence[Row]:
                return reports.submissions_since(source, scope, scope_id, rev, kind)

        self._fetch = fetch
        self._lock = threading.Lock()
        self._rev = 0
        self._frame = _empty()
        self._positions: dict[int, int] = {}  # unit_id -> row position
        self._status_column = META_COLUMNS.index("status")

    def refresh(self) -> pd.DataFrame:
        """Fold in what changed since the last refresh and return the frame."""
        with self._lock:
            changed = self._fetch(self._rev)
            if changed:
                self._rev = int(changed[-1]["rev"])
                self._apply(changed)
            return self._frame.copy(deep=False)

    def _apply(self, changed: Sequence[Row]) -> None:
        latest: dict[int, Row] = {}
        for row in changed:
            if row["unit_id"] in self._positions:
                self._frame.iat[self._positions[row["unit_id"]], self._status_column] = row["status"]
            else:
                latest[row["unit_id"]] = row  # a later revision of the same unit wins
        if not latest:
            return
        # rows in submission order, not revision order: a unit reviewed before this frame first saw it
        # must not move to the end, so a frame loaded cold equals one refreshed all along
        fresh = {u: record(r) for u, r in sorted(latest.items(), key=lambda item: item[1]["submission_id"])}
        start = len(self._frame)
        # object columns, not pandas 3's Arrow strings: each concat would add a chunk to every string
        # column and later concats would grow with the number of refreshes
        new = pd.DataFrame(list(fresh.values()))
        new = _typed(new.astype({c: object for c, dtype in new.dtypes.items() if isinstance(dtype, pd.StringDtype)}))
        self._frame = new if start == 0 else pd.concat([self._frame, new], ignore_index=True)
        for offset, unit_id in enumerate(fresh):
            self._positions[unit_id] = start + offset


def _empty() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: [] for c in META_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _ID_COLUMNS:
        frame[column] = frame[column].astype("int64")
    for column in ("unit_index", "row_index"):
        frame[column] = frame[column].astype("int64")
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["duration_s"] = (frame["submitted_at"] - frame["started_at"]).dt.total_seconds()
    frame["reward"] = frame["reward"].astype("float64")
    rest = [c for c in frame.columns if c not in META_COLUMNS]
    return frame[META_COLUMNS + rest]
