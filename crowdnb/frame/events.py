"""What happened live on workers' pages, as DataFrames: procedure calls, and the messages of shared tasks.

A call's ``args`` and ``result`` are JSON objects; their fields become ``args.<name>`` and
``result.<name>`` columns (nested fields dotted, as the answers of ``run.df``), so a frame exports to
CSV or Parquet as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ..store.calls import COLUMNS as CALL_COLUMNS
from ..store.db import Row
from ..store.rooms import COLUMNS as MESSAGE_COLUMNS
from .bulk import flatten

_TIMES = ("started_at", "ended_at")


def calls_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """One row per call, in the order they were made: ``store.calls.of_run`` rows, JSON spread into columns."""
    fixed = [c for c in CALL_COLUMNS if c not in ("args", "result")]
    records = []
    for row in rows:
        out: dict[str, Any] = {c: row[c] for c in fixed}
        for column in ("args", "result"):
            value = _object(row[column])
            if value:  # an empty object leaves no column
                flatten(column, value, out)
        records.append(out)
    frame = pd.DataFrame.from_records(records)
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in fixed})
    for column in _TIMES:
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    return frame


def _object(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {"value": value}


def messages_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """One row per message or event of a shared assignment (``store.rooms.of_run`` rows): ``kind`` is
    "message" or "event", ``event`` names an event (joined, started, away, back, left, released, submitted,
    ended), ``worker`` is empty for the notebook's bot and the room's own events."""
    frame = pd.DataFrame.from_records(list(rows), columns=MESSAGE_COLUMNS)
    frame.insert(5, "event", [_object(d).get("event") for d in frame["data"]])
    frame["at"] = pd.to_datetime(frame["at"], utc=True, format="ISO8601")
    frame["unit_id"] = frame["unit_id"].astype("Int64")
    return frame.drop(columns="data")
