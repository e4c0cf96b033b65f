"""The live frame built in bulk equals the row-by-row definition, and refreshing never changes a handed-out frame."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

import crowdnb as cn
from crowdnb.frame.bulk import FIELDS, FrameBuilder, build, columns_of, record
from crowdnb.frame.live import META_COLUMNS, LiveFrame

# --- the oracle: a DataFrame of one record dict per row, typed (the frame's definition) -------------------


def by_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The frame as a DataFrame of records builds it: column order where rows first show a name."""
    frame = pd.DataFrame([record(r) for r in rows]) if rows else pd.DataFrame({c: [] for c in META_COLUMNS})
    frame = frame.astype({c: object for c, dtype in frame.dtypes.items() if isinstance(dtype, pd.StringDtype)})
    for column in ("run_id", "unit_id", "assignment_id", "unit_index", "row_index"):
        frame[column] = frame[column].astype("int64")
    for column in ("started_at", "submitted_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["duration_s"] = (frame["submitted_at"] - frame["started_at"]).dt.total_seconds()
    frame["reward"] = frame["reward"].astype("float64")
    return frame[META_COLUMNS + [c for c in frame.columns if c not in META_COLUMNS]]


def cells(frame: pd.DataFrame) -> dict[str, Any]:
    """Everything that must match, down to each cell's type (None is not NaN, 1 is not 1.0 or True)."""
    return {
        "columns": list(frame.columns),
        "dtypes": [str(d) for d in frame.dtypes],
        "cells": {c: [(type(v).__name__, repr(v)) for v in frame[c]] for c in frame.columns},
    }


# field names that clash with fixed columns, with each other and with their own prefixes
KEYS = st.sampled_from(["a", "b", "text", "status", "worker", "duration_s", "input_a", "answer_b", "x.y"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(KEYS, inner, max_size=2),
    max_leaves=4,
)
FLAT = st.dictionaries(KEYS, SCALARS, max_size=3)
UPLOAD = st.builds(lambda n: {"path": f"files/1/2/r{n}/f.jpg", "name": f"f{n}.jpg"}, st.integers(0, 9))
FILES = st.one_of(
    st.none(),
    st.just("{}"),
    st.dictionaries(st.sampled_from(["photo", "a"]), UPLOAD | st.lists(UPLOAD, min_size=1, max_size=2), min_size=1).map(
        json.dumps
    ),
)
META = st.sampled_from([None, "{}", '{"feedback": "too long"}', '{"feedback": null}', '{"client": "x"}'])


@st.composite
def submissions(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows as the store gives them: mostly alike (the bulk path), some with their own fields or nesting."""
    count = draw(st.integers(0, 12))
    common_input, common_answers = draw(FLAT), draw(FLAT)
    rows = []
    for i in range(count):
        odd = draw(st.booleans())
        inputs = draw(st.dictionaries(KEYS, VALUES, max_size=3)) if odd else {**common_input, **draw(FLAT)}
        answers = draw(st.dictionaries(KEYS, VALUES, max_size=3)) if odd else common_answers
        rows.append(
            {
                "rev": i + 1,
                "submission_id": 1000 + i,
                "unit_id": 500 + i,
                "run_id": draw(st.sampled_from([7, 8])),
                "assignment_id": 300 + i,
                "unit_index": draw(st.integers(0, 2)),
                "row_index": i,
                "worker": draw(st.sampled_from(["w1", "w2"])),
                "status": draw(st.sampled_from(["completed", "accepted"])),
                "reward": draw(st.sampled_from([0.05, 1, 0.0])),
                "started_at": f"2026-01-02T03:04:{i:02d}.{draw(st.integers(0, 999)):03d}Z",
                "submitted_at": f"2026-01-02T03:05:{i:02d}.500Z",
                "input": json.dumps(inputs),
                "answers": json.dumps(answers),
                "files": draw(FILES) if odd else "{}",
                "meta": draw(META),
            }
        )
    return rows


@settings(max_examples=300, deadline=None, derandomize=True)
@given(submissions())
def test_a_frame_built_in_bulk_equals_one_built_row_by_row(rows: list[dict[str, Any]]) -> None:
    assert cells(build(columns_of(rows))) == cells(by_rows(rows))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(submissions(), st.lists(st.integers(0, 12), max_size=3))
def test_rows_added_in_batches_make_the_frame_of_all_rows_at_once(rows: list[dict[str, Any]], cuts: list[int]) -> None:
    builder = FrameBuilder()
    bounds = sorted({0, len(rows), *(c for c in cuts if c <= len(rows))})
    for start, stop in itertools.pairwise(bounds):
        builder.add(columns_of(rows[start:stop]))
    assert cells(builder.frame()) == cells(by_rows(rows))


def test_alike_rows_take_the_bulk_path_with_the_same_result() -> None:
    # a thousand rows of one shape, and one in the middle with a nested answer that record() builds
    rows = [
        {
            **dict.fromkeys(FIELDS, None),
            **{"rev": i, "submission_id": i, "unit_id": i, "run_id": 1, "assignment_id": i, "unit_index": 0},
            **{"row_index": i, "worker": f"w{i % 3}", "status": "".join(["compl", "eted"]), "reward": 0.1},
            "started_at": "2026-01-02T03:04:05.000Z",
            "submitted_at": "2026-01-02T03:04:15.250Z",
            "input": json.dumps({"text": f"t{i}", "n": i}),
            "answers": json.dumps(
                {"label": ["pos", "neg"][i % 2], "score": i / 2} if i != 500 else {"label": {"a": 1}}
            ),
        }
        for i in range(1000)
    ]
    frame = build(columns_of(rows))
    assert cells(frame) == cells(by_rows(rows))
    assert list(frame.columns[11:]) == ["text", "n", "label", "score", "label.a"]
    assert frame["duration_s"].iloc[0] == 10.25 and frame["reward"].dtype == np.float64
    assert frame["label"].dtype == object and frame["status"].iloc[0] is frame["status"].iloc[3]  # one string per value
    assert frame["label"].iloc[0] is frame["label"].iloc[2]  # parsed apart, shared in the frame


# --- the live frame over a real store ------------------------------------------------------------------


def submit(run: cn.Run, name: str, answers: dict[str, Any], files: dict[str, Any] | None = None) -> None:
    """A worker takes a unit and submits it over HTTP, as a browser does."""
    unit = requests.get(run.worker_url(name), headers={"Accept": "application/json"}, timeout=10).json()
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"], **answers}
    reply = requests.post(run.url + "submit", data=form, files=files, timeout=10)
    assert reply.status_code == 200, reply.text


def test_refreshed_all_along_equals_loaded_cold_with_reviews_and_uploads(make_run: Any) -> None:
    run = make_run(
        html='{{ text }}<input name="label"><input type="file" name="photo">', data=[{"text": str(i)} for i in range(6)]
    )
    seen = []
    for i in range(6):
        photo = {"photo": (f"p{i}.jpg", b"jpeg")} if i % 2 else None
        submit(run, f"w{i}", {"label": f"l{i}"}, photo)
        seen.append(run.df)
        if i == 2:
            run.approve(int(run.df.loc[0, "unit_id"]))
    run.reject(int(run.df.loc[5, "unit_id"]), note="no")
    frame = run.df
    cold = LiveFrame(run.store, "run", run.id).refresh()
    assert cells(cold) == cells(frame)
    assert list(frame["status"]) == ["accepted", *["completed"] * 4, "rejected"]
    assert list(frame["photo_name"].fillna("")) == ["", "p1.jpg", "", "p3.jpg", "", "p5.jpg"]
    # each frame handed out kept the rows and statuses it had
    assert [len(f) for f in seen] == [1, 2, 3, 4, 5, 6]
    assert list(seen[1]["status"]) == ["completed", "completed"] and seen[2]["status"].iloc[0] == "completed"
    assert seen[5]["status"].iloc[5] == "completed"


def test_a_mirror_fed_by_rows_equals_the_store_frame(make_run: Any) -> None:
    run = make_run(data=[{"text": f"t{i}"} for i in range(5)])
    cn.simulate(run, workers=2, answer=lambda row: {"label": "pos" if row["text"] != "t3" else "neg"})
    run.approve([int(u) for u in run.df["unit_id"][:2]])
    from crowdnb.store import reports

    fetch = lambda rev: reports.submissions_since(run.store, "run", run.id, rev)  # noqa: E731
    declared = lambda: run.spec.frame_columns(run.store.first_input(run.id))  # noqa: E731
    assert cells(LiveFrame(None, fetch=fetch, columns=declared).refresh()) == cells(run.df)
    assert "why" not in LiveFrame(None, fetch=fetch).refresh()  # no answer had it: only declared, it is there


def test_a_frame_needs_a_store_or_a_fetch_function() -> None:
    with pytest.raises(TypeError, match="needs a store or a fetch function"):
        LiveFrame(None)


def test_a_frame_read_a_few_rows_at_a_time_equals_one_read_at_once(make_run: Any) -> None:
    run = make_run(data=[{"text": f"t{i}"} for i in range(11)])
    cn.simulate(run, workers=3, answer=lambda row: {"label": "pos", "why": row["text"]})
    run.approve([int(u) for u in run.df["unit_id"][::3]])
    for rows in (1, 2, 5, 11, 12):
        assert cells(LiveFrame(run.store, "run", run.id, batch_rows=rows).refresh()) == cells(run.df), rows


def test_a_build_that_fails_leaves_no_statement_holding_a_snapshot(make_run: Any) -> None:
    run = make_run(data=[{"text": f"t{i}"} for i in range(6)])
    cn.simulate(run, workers=2)
    with run.store.write() as conn:  # a row the frame cannot read
        conn.execute("UPDATE submissions SET answers = '{broken' WHERE id = (SELECT min(id) FROM submissions)")
    with pytest.raises(json.JSONDecodeError) as failure:
        LiveFrame(run.store, "run", run.id, batch_rows=2).refresh()
    assert failure.value  # the traceback is kept, as a notebook keeps the last one
    with sqlite3.connect(run.store.path) as db:  # no read transaction left open: the WAL checkpoints whole
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def test_a_new_run_frame_has_its_declared_columns_before_any_submission(make_run: Any) -> None:
    run = make_run(
        html='{{ text }}<input name="label" required><input type="file" name="photo"><input name="run_id">',
        data=[{"text": "a", "extra": 1}],
        feedback=True,
    )
    frame = run.df
    assert frame.empty and frame["label"].tolist() == []  # not a KeyError
    declared = ["text", "extra", "label", "photo", "photo_name", "answer_run_id", "_feedback"]
    assert list(frame.columns) == META_COLUMNS + declared
    submit(run, "w1", {"label": "x", "run_id": "7"})
    frame = run.df
    assert frame.loc[0, "label"] == "x" and frame.loc[0, "answer_run_id"] == "7"
    assert pd.isna(frame.loc[0, "photo"]) and "photo_name" in frame and "_feedback" in frame  # nobody sent them


def test_a_never_launched_task_has_no_runs_no_rows_and_no_spend(tmp_path: Path) -> None:
    task = cn.Task("fresh", title="T", reward=0.1, html='{{ text }}<input name="label">', data=[{"text": "a"}],
                   project=tmp_path / "nowhere")  # fmt: skip
    assert task.runs == []
    assert task.df.empty and list(task.df.columns)[-2:] == ["text", "label"]
    assert task.spend == {"rewards": 0.0, "pending": 0.0, "bonuses": 0.0, "fees": 0.0, "total": 0.0}
    assert not (tmp_path / "nowhere").exists()  # reading made no project
    project = cn.open(tmp_path / "other", create=True)
    other = cn.Task("fresh", title="T", reward=0.1, html='<input name="label">', project=project)
    assert other.runs == [] and other.df["label"].tolist() == [] and other.spend["total"] == 0.0
