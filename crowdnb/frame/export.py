"""Writing a frame of submissions to CSV, Parquet or JSONL, with uploaded files copied alongside."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..router.uploads import FOLDER, paths_of

FORMATS = (".csv", ".parquet", ".jsonl")
_UNITS: tuple[tuple[Literal["s", "ms", "us", "ns"], int], ...] = (("s", 1), ("ms", 10**3), ("us", 10**6), ("ns", 10**9))
_PER_SECOND: dict[str, int] = dict(_UNITS)  # a numpy time unit -> its ticks per second


def export_frame(frame: pd.DataFrame, path: Path, project_root: Path) -> Path:
    """Write ``frame`` to ``path`` (format from the suffix); returns the path written."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"cannot export to {path.name!r}: use a {', '.join(FORMATS)} file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out = frame.copy(deep=False)
        for column in out.columns:  # lists (checkbox answers) are written as JSON in a CSV cell
            # infer_dtype is one C pass; only columns it calls "mixed" can hold lists or dicts
            if out[column].dtype == object and pd.api.types.infer_dtype(out[column], skipna=True).startswith("mixed"):
                out[column] = out[column].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            elif isinstance(out[column].dtype, pd.DatetimeTZDtype):
                text = utc_text(out[column])
                if text is not None:
                    out[column] = text
        out.to_csv(path, index=False)
    elif suffix == ".parquet":
        _write_parquet(frame, path)
    else:
        out = frame.copy(deep=False)
        for column in out.columns:
            if isinstance(out[column].dtype, pd.DatetimeTZDtype):
                text = utc_text(out[column], json_style=True)
                if text is not None:
                    out[column] = text
        out.to_json(path, orient="records", lines=True, date_format="iso")
    _copy_files(frame, path, project_root)
    return path


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    """``frame.to_parquet(path, index=False)``, the same file, with the columns converted on one thread:
    text columns convert holding the GIL, so pyarrow's threads only contended (0.54 s -> 0.25 s at 1M)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ConfigError("Parquet export needs pyarrow: pip install 'crowdnb[parquet]'") from exc
    with warnings.catch_warnings():  # as pandas does: pyarrow reads .values of time-zone-aware columns
        warnings.filterwarnings("ignore", r"(Series|DatetimeIndex)\.values returning an ndarray that drops")
        table = pa.Table.from_pandas(frame, preserve_index=False, nthreads=1)
    if frame.attrs:
        table = table.replace_schema_metadata({**table.schema.metadata, "PANDAS_ATTRS": json.dumps(frame.attrs)})
    with pa.OSFile(str(path), "wb") as sink:  # as pandas opens it
        pq.write_table(table, sink, compression="snappy")


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


def _copy_files(frame: pd.DataFrame, path: Path, project_root: Path) -> None:
    """Copy uploaded files referenced by the frame into ``<stem>_files/`` beside the export."""
    target = path.parent / f"{path.stem}_files"
    for column in frame.columns:
        dtype = frame[column].dtype
        if not (dtype == np.dtype(object) or isinstance(dtype, pd.StringDtype)):  # numbers and times: no paths
            continue
        # the first present cell rules out most columns at no cost (no isna pass over a million rows)
        first = next((v for v in frame[column] if isinstance(v, (str, list))), None)
        if first is None or not paths_of(first):
            continue
        values = frame[column].dropna()
        cells = [paths_of(v) for v in values]
        if not all(cells):  # a file column: every value a stored path (or a list of them)
            continue
        for relative in (p for paths in cells for p in paths):
            source = project_root / relative
            if source.is_file():
                destination = target / Path(relative).relative_to(FOLDER)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
