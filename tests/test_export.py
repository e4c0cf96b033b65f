"""Export to CSV, Parquet and JSONL: same rows, stable column order, files alongside."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import requests

import crowdnb as cn
from crowdnb.frame.live import META_COLUMNS


@pytest.fixture
def finished(make_run) -> cn.Run:
    run = make_run(
        html='{{ text }}<input type="checkbox" name="tags" value="a"><input type="checkbox" name="tags" value="b"><input name="why">'
    )
    cn.simulate(run, workers=2, answer=lambda row: {"tags": ["a", "b"], "why": f"because {row['text']}"})
    return run


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_export_round_trips(finished: cn.Run, tmp_path: Path, suffix: str) -> None:
    path = finished.export(tmp_path / f"out{suffix}")
    back = {".csv": pd.read_csv, ".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True)}[suffix](
        path
    )
    frame = finished.df
    assert list(back.columns) == list(frame.columns)
    assert list(back["unit_id"]) == list(frame["unit_id"])
    assert list(back["why"]) == list(frame["why"])
    tags = back.loc[0, "tags"]
    assert (json.loads(tags) if suffix == ".csv" else list(tags)) == ["a", "b"]


def test_column_order_is_meta_then_inputs_then_answers(finished: cn.Run) -> None:
    columns = list(finished.df.columns)
    assert columns[:11] == META_COLUMNS
    assert columns[11:] == ["text", "tags", "why"]


def test_unknown_format_is_refused(finished: cn.Run, tmp_path: Path) -> None:
    with pytest.raises(cn.ConfigError, match=r"use a \.csv, \.parquet, \.jsonl file name"):
        finished.export(tmp_path / "out.xlsx")
    assert not (tmp_path / "out.xlsx").exists()


def test_uploaded_files_are_copied_beside_the_export(make_run, tmp_path: Path) -> None:
    run = make_run(html='{{ text }}<input type="file" name="photo">', data=[{"text": "x"}])
    unit = requests.get(run.worker_url("alice"), headers={"Accept": "application/json"}, timeout=10).json()
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"]}
    requests.post(run.url + "submit", data=form, files={"photo": ("cat.jpg", b"jpeg")}, timeout=10)
    run.export(tmp_path / "out.csv")
    exported = pd.read_csv(tmp_path / "out.csv")
    assert exported.loc[0, "photo_name"] == "cat.jpg"
    # the copy sits where the exported path points, with "files/" read as "out_files/"
    copy = tmp_path / "out_files" / Path(exported.loc[0, "photo"]).relative_to("files")
    assert copy.read_bytes() == b"jpeg"
    assert [p for p in (tmp_path / "out_files").rglob("*") if p.is_file()] == [copy]
