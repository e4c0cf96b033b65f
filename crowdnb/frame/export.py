"""Writing a frame of submissions to CSV, Parquet or JSONL, with uploaded files copied alongside."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..router.uploads import FOLDER
from ..store.db import Row

FORMATS = (".csv", ".parquet", ".jsonl")
# Parquet schema metadata: the columns written as JSON text (values Arrow cannot hold as they are)
JSON_COLUMNS = "crowdnb.json_columns"
_UNITS: tuple[tuple[Literal["s", "ms", "us", "ns"], int], ...] = (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9))
_PER_SECOND: dict[str, int] = dict(_UNITS)  # a numpy time unit -> its ticks per second


def export_frame(
    frame: pd.DataFrame, path: Path, project_root: Path, uploads: Mapping[int, Sequence[Row]] | None = None
) -> Path:
    """Write ``frame`` to ``path`` (format from the suffix); returns the path written. ``uploads`` are the
    files of each unit (``reports.uploaded_files``): those of the frame's units are copied alongside."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot export to {path.name!r}: use a {', '.join(FORMATS)} file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out = frame.copy(deep=False)
        for column in out.columns:
            # lists (checkbox answers), objects, and text mixed with other values: JSON in every cell of the
            # column, so each reads back as what it was ("1" the text, 1 the number)
            if _mixed(out[column]):
                out[column] = out[column].map(_json_text, na_action="ignore")
            elif isinstance(out[column].dtype, pd.DatetimeTZDtype):
                text = utc_text(out[column])
                if text is not None:
                    out[column] = text
        # a text with a carriage return but no newline is not quoted when lines end in "\n", and a reader
        # breaks the row there: such a file ends its lines in "\r\n" (RFC 4180), which quotes it
        out.to_csv(path, index=False, lineterminator="\r\n" if _carriage_return(out) else None)
    elif suffix == ".parquet":
        _write_parquet(frame, path)
    else:
        out = frame.copy(deep=False)
        for column in out.columns:
            if isinstance(out[column].dtype, pd.DatetimeTZDtype):
                text = utc_text(out[column], json_style=True)
                if text is not None:
                    out[column] = text
        _write_jsonl(out, path)
    _copy_files(frame, path, project_root, uploads or {})
    return path


def _carriage_return(frame: pd.DataFrame) -> bool:
    """Whether a text cell holds a carriage return (a column of text at a time, in C)."""
    return any(
        _kind(frame[column]) == "string" and bool(frame[column].str.contains("\r", regex=False).any())
        for column in frame.columns
    )


def _write_jsonl(frame: pd.DataFrame, path: Path) -> None:
    """``to_json`` lines, numbers to pandas' most decimal places (15; its default writes 10). A column
    holding a number that 15 digits round past the largest double (it would read back as Infinity) is
    written by ``json.dumps`` instead, after the others on each line."""
    text = frame.to_json(orient="records", lines=True, date_format="iso", double_precision=15)
    # such a number is written 1.79769313486232e+308: only then is each column looked into
    exact = [column for column in frame.columns if _huge(frame[column])] if "e+308" in text else []
    if not exact:
        path.write_text(text, encoding="utf-8")
        return
    text = frame.drop(columns=exact).to_json(orient="records", lines=True, date_format="iso", double_precision=15)
    cells = [[json.dumps(None if _missing(v) else v) for v in frame[column].tolist()] for column in exact]
    keys = [json.dumps(str(column)) for column in exact]
    with path.open("w", encoding="utf-8") as out:
        for line, row in zip(text.splitlines(), zip(*cells, strict=True), strict=True):
            spliced = ",".join(f"{key}:{cell}" for key, cell in zip(keys, row, strict=True))
            out.write(f"{line[:-1]}{',' if line != '{}' else ''}{spliced}}}\n")


_LARGEST_15_DIGITS = 1.79769313486231e308  # larger doubles written with 15 digits round up past the largest


def _huge(column: pd.Series) -> bool:
    """Whether a column holds a finite number whose 15-digit text would overflow (numbers nested in lists too)."""
    if column.dtype.kind == "f":
        values = column.to_numpy()
        return bool((np.abs(values[np.isfinite(values)]) > _LARGEST_15_DIGITS).any())
    return _mixed(column) and any(map(_holds_huge, column.tolist()))


def _holds_huge(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and abs(value) > _LARGEST_15_DIGITS
    if isinstance(value, list):
        return any(map(_holds_huge, value))
    if isinstance(value, dict):
        return any(map(_holds_huge, value.values()))
    return False


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_parquet(path, index=False)``, the same file, with the columns converted on one thread:
    text columns convert holding the GIL, so pyarrow's threads only contended (0.54 s -> 0.25 s at 1M)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet export needs pyarrow: pip install 'crowdnb[parquet]'") from exc
    frame, encoded = _arrow_ready(frame, pa)
    with warnings.catch_warnings():  # as pandas does: pyarrow reads .values of time-zone-aware columns
        warnings.filterwarnings("ignore", r"(Series|DatetimeIndex)\.values returning an ndarray that drops")
        table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    metadata = dict(table.schema.metadata)
    if frame.attrs:
        metadata[b"PANDAS_ATTRS"] = json.dumps(frame.attrs).encode()
    if encoded:
        metadata[JSON_COLUMNS.encode()] = json.dumps(encoded).encode()
    if metadata != table.schema.metadata:
        table = table.replace_schema_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink:  # as pandas opens it
        pq.write_table(table, sink, compression="snappy")


def _kind(column: pd.Series) -> str:
    """What an object column holds, as ``infer_dtype`` says in one C pass ("" for other columns)."""
    return pd.api.types.infer_dtype(column, skipna=True) if column.dtype == object else ""


def _mixed(column: pd.Series, kind: str | None = None) -> bool:
    """Whether an object column holds lists, objects or values of several kinds."""
    kind = _kind(column) if kind is None else kind
    return kind.startswith("mixed") and kind != "mixed-integer-float"


def _json_text(value: Any) -> str:
    return json.dumps(value)  # ASCII, as CSV cells of lists always were: any text survives any encoding


def _arrow_ready(frame: pd.DataFrame, pa: Any) -> tuple[pd.DataFrame, list[str]]:
    """``frame`` with each object column Arrow cannot store as it is (or not so that it reads back the same:
    a struct fills in keys other rows have, ints become floats among floats) as JSON text; and those columns.

    One worker's answer must not break the export of a whole task (``[1, {"a": 1}]`` beside ``"text"``).
    """
    encoded = []
    out = frame
    for column in frame.columns:
        kind = _kind(frame[column])
        # "integer": Python ints, as an object column holds them when some are beyond int64
        if not _mixed(frame[column], kind) and kind != "integer":
            continue
        values = frame[column].tolist()
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowException, OverflowError, TypeError, ValueError):
            array = None
        if array is not None and _storable(array.type, pa):
            if _exact(array.type, pa):  # lists of text (checkbox answers): nothing to compare, 1M in 0.2 s
                continue
            if all(map(_same, values, array.to_pylist())):
                continue
        if out is frame:
            out = frame.copy(deep=False)
        out[column] = frame[column].map(_json_text, na_action="ignore")
        encoded.append(str(column))
    return out, encoded


def _storable(kind: Any, pa: Any) -> bool:
    """Whether Parquet can write an Arrow type: it has no struct without fields (what ``{}`` infers)."""
    if kind.num_fields == 0:
        return not pa.types.is_struct(kind)
    return all(_storable(kind.field(i).type, pa) for i in range(kind.num_fields))


def _exact(kind: Any, pa: Any) -> bool:
    """Whether every value Arrow infers this type from reads back as it was: no struct (it fills in the
    keys other rows have) and no floating point (whole numbers among fractions become fractions)."""
    if pa.types.is_struct(kind) or pa.types.is_floating(kind):
        return False
    return all(_exact(kind.field(i).type, pa) for i in range(kind.num_fields))


def _same(sent: Any, back: Any) -> bool:
    """``sent`` (a frame cell) and ``back`` (what Arrow returns for it) are the same value of the same type."""
    if _missing(sent):
        return back is None
    if type(sent) is not type(back):  # 1 and 1.0 and True are equal in Python, not in a file
        return False
    if isinstance(sent, list):
        return len(sent) == len(back) and all(map(_same, sent, back))
    if isinstance(sent, dict):
        return sent.keys() == back.keys() and all(_same(v, back[k]) for k, v in sent.items())
    return bool(sent == back)


def utc_text(times: pd.Series, json_style: bool = False) -> pd.Series | None:
    """UTC times as ``to_csv`` writes them ("2026-01-02 03:04:05.120+00:00", one precision for the whole
    column) or, ``json_style``, as ``to_json(date_format="iso")`` does ("2026-01-02T03:04:05.120Z", whole
    milliseconds), missing ones NaN; made a column at a time: pandas formats each value on its own, most
    of an export's time. None when the times are not in UTC or not all of one width."""
    if str(times.dt.tz) != "UTC":
        return None
    naive = times.dt.tz_convert(None).to_numpy()
    present = ~np.isnat(naive)
    unit: Literal["s", "ms", "us", "ns"] = "ms"
    if json_style:
        naive = naive.astype("datetime64[ms]")  # to_json's milliseconds: floored, as numpy casts
    else:
        ticks = naive.view(np.int64)[present]
        per_second = _PER_SECOND[np.datetime_data(naive.dtype)[0]]
        # the coarsest of s, ms, us, ns that shows every value exactly, as pandas chooses it
        for unit, size in _UNITS:  # noqa: B007 (the unit found is the result)
            if size >= per_second or not (ticks % (per_second // size)).any():
                break
    text = np.datetime_as_string(naive, unit=unit)
    lengths = np.strings.str_len(text[present])
    if not lengths.size or (lengths != lengths[0]).any():
        return None  # no times, or a year outside 1000-9999: left to pandas
    width = int(lengths[0])
    between, zone = ("T", "Z") if json_style else (" ", "+00:00")
    codes = np.empty((len(text), width + len(zone)), dtype=np.uint32)  # UTF-32 code points, a row per value
    codes[:, :width] = text.view(np.uint32).reshape(len(text), -1)[:, :width]
    codes[:, 10] = ord(between)  # between date and time
    codes[:, width:] = np.frombuffer(zone.encode("utf-32-le"), dtype=np.uint32)
    cells = codes.view(f"<U{width + len(zone)}").ravel().astype(object)
    cells[~present] = np.nan
    return pd.Series(cells, index=times.index, dtype=object)


def _copy_files(frame: pd.DataFrame, path: Path, project_root: Path, uploads: Mapping[int, Sequence[Row]]) -> None:
    """Copy the uploaded files of the frame's units into ``<stem>_files/`` beside the export (the store's
    record of each upload, never an answer's text: a worker can make an answer look like any path)."""
    if not uploads or "unit_id" not in frame.columns:
        return
    target = path.parent / f"{path.stem}_files"
    for unit_id in set(frame["unit_id"].dropna().astype("int64").tolist()).intersection(uploads):
        for entry in uploads[unit_id]:
            relative = PurePosixPath(str(entry["path"]))
            source = project_root / relative
            if source.is_file():
                destination = target / relative.relative_to(FOLDER)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
