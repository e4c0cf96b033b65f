"""Writing a frame of submissions to CSV, Parquet or JSONL, with uploaded files copied alongside."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .uploads import FOLDER, paths_of

FORMATS = (".csv", ".parquet", ".jsonl")


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
        out.to_csv(path, index=False)
    elif suffix == ".parquet":
        try:
            frame.to_parquet(path, index=False)
        except ImportError as exc:
            raise ConfigError("Parquet export needs pyarrow: pip install 'crowdnb[parquet]'") from exc
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    _copy_files(frame, path, project_root)
    return path


def _copy_files(frame: pd.DataFrame, path: Path, project_root: Path) -> None:
    """Copy uploaded files referenced by the frame into ``<stem>_files/`` beside the export."""
    target = path.parent / f"{path.stem}_files"
    for column in frame.columns:
        values = frame[column].dropna()
        if values.empty or not paths_of(values.iloc[0]):  # one cell rules out most columns at no cost
            continue
        cells = [paths_of(v) for v in values]
        if not all(cells):  # a file column: every value a stored path (or a list of them)
            continue
        for relative in (p for paths in cells for p in paths):
            source = project_root / relative
            if source.is_file():
                destination = target / Path(relative).relative_to(FOLDER)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)
