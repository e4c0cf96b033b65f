"""Export to CSV, Parquet and JSONL: same rows, stable column order, files alongside."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import crowdnb as cn
from crowdnb.frame.bulk import build, columns_of
from crowdnb.frame.export import JSON_COLUMNS, export_frame
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


# --- whatever workers send, every export reads back as run.df holds it (issue 13, item 3) ---------------
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False, allow_infinity=False) | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2),
    max_leaves=6,
)
ANSWERS = st.lists(st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3), min_size=1, max_size=4)


def frame_of(answers: list[dict[str, Any]]) -> pd.DataFrame:
    """run.df of these submissions, built by the live frame's own builder from rows as the store holds them."""
    rows = [
        {
            **dict.fromkeys(("rev", "submission_id", "unit_id", "assignment_id"), number + 1),
            **{"run_id": 1, "unit_index": 0, "row_index": number, "worker": "w", "status": "completed"},
            **{"reward": 0.1, "started_at": "2026-01-01T00:00:00.000Z", "submitted_at": "2026-01-01T00:00:01.000Z"},
            **{"input": '{"text": "x"}', "answers": json.dumps(given), "files": None, "meta": None},
        }
        for number, given in enumerate(answers)
    ]
    return build(columns_of(rows))


def same(sent: Any, back: Any, close: bool = False) -> bool:
    """The same value of the same type (missing: None); ``close``: floats to JSONL's 15 decimal places."""
    if sent is None or (isinstance(sent, float) and math.isnan(sent)):
        return back is None
    if isinstance(sent, float) and isinstance(back, float):
        return sent == back or (close and math.isclose(sent, back, rel_tol=1e-14, abs_tol=1e-15))
    if type(sent) is not type(back):
        return False
    if isinstance(sent, list):
        return len(sent) == len(back) and all(same(s, b, close) for s, b in zip(sent, back, strict=True))
    if isinstance(sent, dict):
        return sent.keys() == back.keys() and all(same(v, back[k], close) for k, v in sent.items())
    return bool(sent == back)


def json_of(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return ValueError  # not JSON: the same as no value sent


def plain_text(sent: Any, text: str) -> bool:
    """A CSV cell written as text: the text itself, a number or a boolean as pandas writes them."""
    if sent is None or (isinstance(sent, float) and math.isnan(sent)):
        return text == ""
    if isinstance(sent, bool):
        return text == str(sent)
    if isinstance(sent, (int, float)):
        return float(text) == sent
    return isinstance(sent, str) and text == sent


@settings(max_examples=150, deadline=None, derandomize=True)
@given(answers=ANSWERS)
def test_any_answers_export_to_every_format_and_read_back(tmp_path_factory, answers: list[dict[str, Any]]) -> None:
    frame = frame_of(answers)
    columns = [c for c in frame.columns if c not in META_COLUMNS and c != "text"]
    folder = tmp_path_factory.mktemp("export")
    for suffix in (".csv", ".parquet", ".jsonl"):
        export_frame(frame, folder / f"out{suffix}", folder)
    table = pq.read_table(folder / "out.parquet")
    encoded = json.loads((table.schema.metadata or {}).get(JSON_COLUMNS.encode(), b"[]"))
    lines = [json.loads(line) for line in (folder / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    texts = pd.read_csv(folder / "out.csv", dtype=str, keep_default_na=False)
    for column in columns:
        sent = frame[column].tolist()
        back = table.column(column).to_pylist()
        if column in encoded:
            back = [None if v is None else json.loads(v) for v in back]
        assert all(map(same, sent, back)), (column, sent, back)
        assert all(same(s, line.get(column), close=True) for s, line in zip(sent, lines, strict=True)), (
            column,
            sent,
            lines,
        )
        cells = texts[column].tolist()
        present = [(s, t) for s, t in zip(sent, cells, strict=True) if not same(s, None)]
        as_json = all(same(s, json_of(t)) for s, t in present)
        kinds = {type(s) for s, _ in present}
        if len(kinds) > 1 or kinds & {list, dict}:  # several kinds in one column: every cell is JSON
            assert as_json, (column, sent, cells)
        else:
            assert as_json or all(plain_text(s, t) for s, t in zip(sent, cells, strict=True)), (column, sent, cells)


def test_a_carriage_return_keeps_its_csv_row(tmp_path: Path) -> None:
    # "\r" alone was written unquoted (lines end in "\n"), and a reader broke the row there
    frame = frame_of([{"a": "x\ry"}, {"a": "z"}])
    export_frame(frame, tmp_path / "out.csv", tmp_path)
    back = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert back["a"].tolist() == ["x\ry", "z"] and back["unit_id"].tolist() == ["1", "2"]
