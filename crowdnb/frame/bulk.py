"""Frame rows from submissions in bulk: built column by column, each JSON column parsed in one pass.

A dict per row and a ``json.loads`` per cell took 30 s and 2.2 GB for a million submissions. Here the
answers (and inputs) of all rows are parsed by one ``json.loads`` of their concatenation, rows sharing
the same fields are read out a column at a time, and only irregular rows (nested answers, uploaded files,
feedback) go through ``record``, the row-by-row definition that the result must equal.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..router.uploads import frame_columns
from ..store.db import Row
from ..store.reports import FEEDBACK_COLUMN, META_COLUMNS

# fixed columns first, in this order; then the input columns, then the answers
# what a batch of submissions holds, by column (``reports.submission_columns``, or ``columns_of`` rows)
FIELDS = (
    *("rev", "submission_id", "unit_id", "run_id", "assignment_id", "unit_index", "row_index", "worker"),
    *("status", "reward", "started_at", "submitted_at", "input", "answers", "files", "meta"),
)
_INT_COLUMNS = ("run_id", "unit_id", "assignment_id", "unit_index", "row_index")
_TIME_COLUMNS = ("started_at", "submitted_at")
_META = frozenset(META_COLUMNS)

Batch = dict[str, Sequence[Any]]


def columns_of(rows: Sequence[Row]) -> Batch:
    """A batch by column from row dicts (``reports.submissions_since``, an attached notebook's mirror)."""
    return {name: [row.get(name) for row in rows] for name in FIELDS}


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a bulk load makes millions of objects: its passes over
    them (none of which is garbage) doubled the time of a load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Nested dicts become dotted columns; lists stay as values."""
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


def names(inputs: Sequence[str], answers: Sequence[str]) -> tuple[list[str], list[str]]:
    """The columns of a row's input and answer fields: an input named like an answer or a fixed column
    is ``input_<name>``; an answer named like a fixed column or a (renamed) input is ``answer_<name>``."""
    taken = set(answers)
    input_names = [f"input_{n}" if n in taken or n in _META else n for n in inputs]
    used = _META.union(input_names)
    return input_names, [f"answer_{n}" if n in used else n for n in answers]


def record(row: Row, inputs: Any = None, answers: Any = None) -> dict[str, Any]:
    """One frame row (without ``duration_s``) from a store row, whose JSON may be given already parsed:
    ids, timing, inputs, answers (uploaded files: their paths and names), the worker's feedback if any."""
    out = {k: row[k] for k in META_COLUMNS if k in row}
    flat_inputs = _flat(json.loads(row["input"]) if inputs is None else inputs)
    flat_answers = _flat(json.loads(row["answers"]) if answers is None else answers)
    flat_answers.update(frame_columns(json.loads(row.get("files") or "{}")))
    input_names, answer_names = names(list(flat_inputs), list(flat_answers))
    out.update(zip(input_names, flat_inputs.values(), strict=True))
    out.update(zip(answer_names, flat_answers.values(), strict=True))
    meta = json.loads(row["meta"]) if row.get("meta") else {}
    if "feedback" in meta:  # submission metadata, kept out of the answers
        out[FEEDBACK_COLUMN] = meta["feedback"]
    return out


def _flat(value: Any) -> dict[str, Any]:
    # a row's fields, flattened (no fields: no columns, where flatten would keep the empty dict in a "")
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, inner in value.items():
            flatten(str(key), inner, out)
    else:
        flatten("", value, out)
    return out


class FrameBuilder:
    """Frame rows added a batch at a time (a bounded number of rows' Python objects alive at once); ``frame``
    types each column once, over all rows, as a DataFrame of records would."""

    def __init__(self) -> None:
        self.count = 0
        self._meta: dict[str, list[Any]] = {name: [] for name in META_COLUMNS if name != "duration_s"}
        self._fields: dict[str, list[Any]] = {}  # input and answer columns, in the order rows first show them
        self._shared: dict[str, str] = {}  # status values: one string object each, not one per row
        self._submissions: list[np.ndarray] = []

    def add(self, batch: Batch) -> None:
        """Append the rows of ``batch``, in its order."""
        count = len(batch["unit_id"])
        if not count:
            return
        with collector_paused():
            parsed = _parse(batch["input"]), _parse(batch["answers"])
            (inputs, _), (answers, _) = parsed
            fields = _fields(batch, inputs, answers, _irregular(batch, parsed), count)
            del parsed, inputs, answers
            for name, values in fields.items():
                # rows of earlier batches lack a field that first shows here: NaN, as in a DataFrame of records
                self._fields.setdefault(name, [np.nan] * self.count).extend(values)
            for name, column in self._fields.items():
                if name not in fields:
                    column.extend([np.nan] * count)
            self._add_meta(batch, count)
        self._submissions.append(np.fromiter(batch["submission_id"], dtype=np.int64, count=count))
        self.count += count

    @property
    def submission_ids(self) -> np.ndarray:
        """The submission id of each row added, in order."""
        return np.concatenate(self._submissions) if self._submissions else np.empty(0, dtype=np.int64)

    def _add_meta(self, batch: Batch, count: int) -> None:
        for name, pieces in self._meta.items():
            if name in _INT_COLUMNS:
                pieces.append(np.fromiter(batch[name], dtype=np.int64, count=count))
            elif name in _TIME_COLUMNS:
                pieces.append(
                    pd.to_datetime(np.fromiter(batch[name], dtype=object, count=count), utc=True, format="ISO8601")
                )
            elif name == "reward":
                pieces.append(np.fromiter(batch[name], dtype=np.float64, count=count))
            elif name == "status":
                shared = self._shared
                pieces.extend(map(shared.setdefault, batch[name], batch[name]))
            else:  # worker: names from the store are shared already
                pieces.extend(batch[name])

    def frame(self) -> pd.DataFrame:
        """The frame of every row added: META_COLUMNS, then the inputs and answers."""
        if not self.count:
            return typed_empty()
        columns: dict[str, Any] = {}
        for name, pieces in self._meta.items():
            if name in _TIME_COLUMNS:
                columns[name] = pd.concat([pd.Series(p) for p in pieces], ignore_index=True)
            elif name in ("worker", "status"):
                columns[name] = pd.Series(np.fromiter(pieces, dtype=object, count=self.count), dtype=object, copy=False)
            else:
                columns[name] = np.concatenate(pieces)
        columns["duration_s"] = (columns["submitted_at"] - columns["started_at"]).dt.total_seconds()
        columns.update((name, _inferred(values)) for name, values in self._fields.items())
        self._meta, self._fields = {}, {}  # built once
        order = META_COLUMNS + [name for name in columns if name not in _META]
        return pd.DataFrame({name: columns[name] for name in order}, copy=False)


def build(batch: Batch) -> pd.DataFrame:
    """The frame of a batch of submissions, row for row in the batch's order: META_COLUMNS, then the
    inputs and answers in the order rows first show them."""
    builder = FrameBuilder()
    builder.add(batch)
    return builder.frame()


def typed_empty() -> pd.DataFrame:
    """A frame with no rows: the fixed columns, typed as a frame with rows types them (but the text columns,
    which have no type without a value)."""
    frame = pd.DataFrame({name: [] for name in META_COLUMNS})
    for name in _INT_COLUMNS:
        frame[name] = frame[name].astype("int64")
    for name in _TIME_COLUMNS:
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    frame["duration_s"] = (frame["submitted_at"] - frame["started_at"]).dt.total_seconds()
    frame["reward"] = frame["reward"].astype("float64")
    return frame


def declared_columns(row: dict[str, Any], answers: Sequence[tuple[str, str]], feedback: bool) -> list[str]:
    """The input and answer columns a task declares, named as its frame names them: the (flattened) fields
    of an input ``row`` and ``answers`` as (name, kind) pairs (a file answer adds ``<name>_name``)."""
    names_ = list(dict.fromkeys(n for name, kind in answers for n in (name, f"{name}_name")[: 1 + (kind == "file")]))
    input_names, answer_names = names(list(_flat(row)), names_)
    return [*input_names, *answer_names, *([FEEDBACK_COLUMN] if feedback else [])]


def with_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with every one of ``columns`` (those it lacks added at the end, empty: NaN)."""
    missing = [name for name in columns if name not in frame.columns]
    if not missing:
        return frame
    added = pd.DataFrame({name: pd.Series(np.nan, index=frame.index, dtype=object) for name in missing})
    return pd.concat([frame, added], axis=1)


def _parse(texts: Sequence[str]) -> tuple[list[Any], bool]:
    """The values of a JSON column, and whether each text holds exactly one "{" (no nested dict)."""
    if not texts:
        return [], True
    joined = ",".join(texts)
    # one parse of the whole column: a json.loads per cell costs three times as much
    return list(json.loads(f"[{joined}]")), joined.count("{") == len(texts)


def _irregular(batch: Batch, parsed: Sequence[tuple[list[Any], bool]]) -> list[int]:
    """Rows that ``record`` must build: JSON that is not a flat dict, uploaded files, feedback."""
    rows: set[int] = set()
    for texts, (values, flat) in zip((batch["input"], batch["answers"]), parsed, strict=True):
        # one "{" per row and all dicts means no nested dict (a "{" inside a string is only a false alarm)
        if not flat or list(map(type, values)).count(dict) != len(values):
            rows.update(
                i
                for i, (text, value) in enumerate(zip(texts, values, strict=True))
                if text.count("{") != 1 or type(value) is not dict
            )
    files, meta = batch["files"], batch["meta"]
    if files.count(None) + files.count("{}") != len(files):
        rows.update(i for i, cell in enumerate(files) if cell and cell != "{}")
    if meta.count(None) != len(meta):
        rows.update(i for i, cell in enumerate(meta) if cell and "feedback" in cell)
    return sorted(rows)


def _alike(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[list[Any]] | None:
    """The values of ``keys`` a column at a time, if every row has exactly these keys (else None)."""
    if set(map(len, rows)) != {len(keys)}:
        return None
    try:
        return [[row[key] for row in rows] for key in keys]
    except KeyError:
        return None


def _fields(
    batch: Batch, inputs: list[Any], answers: list[Any], irregular: list[int], count: int
) -> dict[str, list[Any]]:
    """The input and answer columns: rows grouped by their fields, each group read a column at a time."""
    if not irregular:  # the common case: every row has the same fields
        input_keys, answer_keys = tuple(inputs[0]), tuple(answers[0])
        input_values, answer_values = _alike(inputs, input_keys), _alike(answers, answer_keys)
        if input_values is not None and answer_values is not None:
            input_names, answer_names = names(input_keys, answer_keys)
            return dict(zip(input_names + answer_names, input_values + answer_values, strict=True))
    skip = set(irregular)
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], list[int]] = {}
    signatures = list(zip(map(tuple, inputs), map(tuple, answers), strict=True))
    if not skip and len(set(signatures)) == 1:
        groups[signatures[0]] = []  # every row: no index list needed
    else:
        for i, signature in enumerate(signatures):
            if i not in skip:
                groups.setdefault(signature, []).append(i)
    # the column order of a DataFrame of records: each name where a row first shows it
    firsts: list[tuple[int, list[str]]] = []
    for (input_keys, answer_keys), rows in groups.items():
        input_names, answer_names = names(input_keys, answer_keys)
        firsts.append((rows[0] if rows else 0, input_names + answer_names))
    records = {i: record({k: batch[k][i] for k in FIELDS}, inputs[i], answers[i]) for i in irregular}
    firsts += [(i, [k for k in r if k not in _META]) for i, r in records.items()]
    order = list(dict.fromkeys(name for _, group in sorted(firsts, key=lambda f: f[0]) for name in group))
    columns: dict[str, Any] = {}
    for (input_keys, answer_keys), rows in groups.items():
        input_names, answer_names = names(input_keys, answer_keys)
        for source, keys, column_names in ((inputs, input_keys, input_names), (answers, answer_keys, answer_names)):
            picked = source if not rows else [source[i] for i in rows]
            for key, name in zip(keys, column_names, strict=True):
                values = [d[key] for d in picked]
                if not rows:
                    columns[name] = values
                else:
                    _place(columns, name, count, rows, values)
    for i, r in records.items():
        for name, value in r.items():
            if name not in _META:
                _place(columns, name, count, [i], [value])
    return {name: columns[name].tolist() if isinstance(columns[name], np.ndarray) else columns[name] for name in order}


def _place(columns: dict[str, Any], name: str, count: int, rows: list[int], values: list[Any]) -> None:
    # rows without the field hold NaN, as a DataFrame of records fills them
    if name not in columns:
        columns[name] = np.full(count, np.nan, dtype=object)
    column = columns[name]
    if isinstance(column, list):
        column = columns[name] = np.fromiter(column, dtype=object, count=count)
    column[rows] = np.fromiter(values, dtype=object, count=len(values))  # fromiter: a list stays one cell


def _inferred(values: list[Any]) -> pd.Series:
    """A column typed as a DataFrame of records types it, text as Python strings (``object``): pandas'
    Arrow strings would gain a chunk per incremental refresh."""
    cells = np.fromiter(values, dtype=object, count=len(values))  # fromiter: a list stays one cell
    if pd.api.types.infer_dtype(cells, skipna=True) != "string":
        return pd.Series(values)
    if list(map(type, values)).count(str) != len(values):  # what pandas' string inference then
        cells[pd.isna(cells)] = np.nan  # astype(object) leaves: None read as NaN
    return pd.Series(_shared(cells), dtype=object, copy=False)


def _shared(cells: np.ndarray) -> np.ndarray:
    """Repeated strings as one object each: a million labels hold two strings, not a million (40 MB)."""
    sample = cells[:1000].tolist()
    if len(set(sample)) > len(sample) // 2:  # mostly distinct (free text): nothing to share
        return cells
    first: dict[Any, Any] = {}
    return np.fromiter(map(first.setdefault, cells, cells), dtype=object, count=len(cells))
