"""Task input data: lists, DataFrames, CSV/JSON/JSONL files and generators, read as rows of dicts.

Every problem is reported as a ``DataError`` naming the source, the row (1-based, as a person counts
them; header excluded for CSV) and the column.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import DataError

DataSource = Any  # list of dicts | DataFrame | path | iterable/generator of dicts

_FILE_KINDS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class Rows:
    """Rows of task data, read lazily; ``finite`` is False for generators (length unknown)."""

    def __init__(self, rows: Iterator[dict[str, Any]], source: str, finite: bool) -> None:
        self._rows = rows
        self.source = source
        self.finite = finite
        self.exhausted = False
        self.error: DataError | None = None

    def take(self, n: int | None = None) -> list[dict[str, Any]]:
        """The next ``n`` rows (all remaining rows when ``n`` is None).

        Finite data raises on a bad row. A generator is read while a run is live, so a bad row ends it
        instead: the good rows before it are returned and ``error`` says what was wrong.
        """
        batch: list[dict[str, Any]] = []
        try:
            batch.extend(self._rows if n is None else itertools.islice(self._rows, n))
        except DataError as exc:
            if self.finite:
                raise
            self.error, self.exhausted = exc, True
        if n is None or len(batch) < n:
            self.exhausted = True
        return batch


def load(data: DataSource, required: Iterable[str] = ()) -> Rows:
    """Read ``data`` as rows, checking each row holds every column in ``required``."""
    need = sorted(set(required))
    rows: Iterator[Any]
    if data is None:
        rows, source, finite = iter([{}]), "no data (one empty row)", True
    elif isinstance(data, (str, os.PathLike)):
        path = Path(data)
        rows, source, finite = _read_file(path), str(path), True
    elif _is_dataframe(data):
        rows, source, finite = iter(data.to_dict(orient="records")), "DataFrame", True
    elif isinstance(data, (list, tuple)):
        rows, source, finite = iter(data), "list", True
    elif isinstance(data, Mapping):
        raise DataError("data is a single dict; pass a list of dicts (one per unit of work)")
    elif isinstance(data, Iterable):
        rows, source, finite = iter(data), "generator", False
    else:
        raise DataError(
            f"data of type {type(data).__name__} is not supported; pass a list of dicts, a DataFrame, "
            "a CSV/JSON/JSONL path or a generator of dicts"
        )
    return Rows(_checked(rows, source, need), source, finite)


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "to_dict")


def _read_file(path: Path) -> Iterator[dict[str, Any]]:
    kind = _FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown data format {path.suffix!r}; use .csv, .json or .jsonl")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if kind == "csv":
        return _utf8(path, _read_csv(path))
    if kind == "jsonl":
        return _utf8(path, _read_jsonl(path))
    try:
        items = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); expected a list of objects") from exc
    if not isinstance(items, list):
        raise DataError(f"{path}: the JSON top level is a {type(items).__name__}; expected a list of objects")
    return iter(items)


def _utf8(path: Path, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Rows of a text file, with a clear error when it is not UTF-8."""
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from exc


def _read_csv(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: the file is empty; expected a header row naming the columns")
        blank = [i + 1 for i, name in enumerate(header) if not name.strip()]
        if blank:
            raise DataError(f"{path}: header column {blank[0]} has no name")
        dupes = sorted({n for n in header if header.count(n) > 1})
        if dupes:
            raise DataError(f"{path}: column {dupes[0]!r} appears twice in the header")
        for number, cells in enumerate(reader, start=1):
            if not cells:
                continue
            if len(cells) != len(header):
                raise DataError(
                    f"{path}, row {number}: {len(cells)} values for {len(header)} columns "
                    f"({', '.join(header)}); check quoting and commas"
                )
            yield dict(zip(header, cells, strict=True))


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, row {number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc


def _checked(rows: Iterator[Any], source: str, need: list[str]) -> Iterator[dict[str, Any]]:
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, Mapping):
            raise DataError(f"{source}, row {number}: a {type(row).__name__}, expected an object of column values")
        clean = {str(k): _plain(v) for k, v in row.items()}
        missing = [c for c in need if c not in clean]
        if missing:
            raise DataError(
                f"{source}, row {number}: column {missing[0]!r} is missing; the task page uses "
                f"{', '.join(need)} and this row has {', '.join(clean) or 'no columns'}"
            )
        try:
            json.dumps(clean, allow_nan=False)
        except (TypeError, ValueError) as exc:
            bad = next(k for k, v in clean.items() if not _jsonable(v))
            raise DataError(f"{source}, row {number}, column {bad!r}: value cannot be stored as JSON ({exc})") from exc
        yield clean


def _plain(value: Any) -> Any:
    """NaN (pandas' missing value) becomes None; numpy scalars become Python ones."""
    if isinstance(value, float) and math.isnan(value):
        return None
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return _plain(item())
    if type(value).__name__ == "Timestamp":
        return value.isoformat()
    return value


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def rows_of(data: list[dict[str, Any]] | Rows) -> Rows:
    """Wrap already-loaded rows so a run can consume lists and generators alike."""
    if isinstance(data, Rows):
        return data
    return Rows(iter(data), "list", True)
