"""Task data: every supported source, and errors that name the file, row and column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from crowdnb import DataError
from crowdnb.data import load


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda p: [{"text": "a"}, {"text": "b"}],
        lambda p: pd.DataFrame({"text": ["a", "b"]}),
        lambda p: write(p, "d.csv", "text\na\nb\n"),
        lambda p: write(p, "d.json", json.dumps([{"text": "a"}, {"text": "b"}])),
        lambda p: write(p, "d.jsonl", '{"text": "a"}\n\n{"text": "b"}\n'),
        lambda p: str(write(p, "d.csv", "\ufefftext\na\nb\n")),  # a BOM from Excel, and a str path
    ],
    ids=["list", "dataframe", "csv", "json", "jsonl", "csv-bom-str"],
)
def test_every_source_gives_the_same_rows(tmp_path: Path, make) -> None:
    rows = load(make(tmp_path), ["text"])
    assert rows.finite
    assert rows.take() == [{"text": "a"}, {"text": "b"}]
    assert rows.exhausted


def test_generator_is_read_lazily() -> None:
    pulled = []

    def gen():
        for i in range(10):
            pulled.append(i)
            yield {"text": str(i)}

    rows = load(gen(), ["text"])
    assert not rows.finite and pulled == []
    assert [r["text"] for r in rows.take(3)] == ["0", "1", "2"]
    assert pulled == [0, 1, 2] and not rows.exhausted
    rows.take(100)
    assert rows.exhausted


def test_dataframe_missing_values_become_none() -> None:
    rows = load(pd.DataFrame({"text": ["a", None], "n": [1.0, float("nan")]}), ["text"]).take()
    assert rows[1] == {"text": None, "n": None}
    assert isinstance(rows[0]["n"], float)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.csv", "title\nx\n", r"d\.csv, row 1: column 'text' is missing"),
        ("d.csv", "text,label\na,b\nc\n", r"d\.csv, row 2: 1 values for 2 columns"),
        ("d.csv", "", r"d\.csv: the file is empty"),
        ("d.csv", "text,text\na,b\n", r"column 'text' appears twice"),
        ("d.jsonl", '{"text": "a"}\n{"text": \n', r"d\.jsonl, row 2: not valid JSON"),
        ("d.json", '{"text": "a"}', r"d\.json: the JSON top level is a dict"),
        ("d.json", "[1, 2]", r"d\.json, row 1: a int, expected an object"),
        ("d.xlsx", "", r"unknown data format '\.xlsx'"),
    ],
)
def test_bad_files_name_file_row_and_column(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load(write(tmp_path, name, text), ["text"]).take()


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "nope.csv").take()


def test_unstorable_value_is_named() -> None:
    with pytest.raises(DataError, match=r"list, row 2, column 'when': value cannot be stored as JSON"):
        load([{"when": 1}, {"when": object()}]).take()


def test_a_single_dict_is_refused_with_advice() -> None:
    with pytest.raises(DataError, match="pass a list of dicts"):
        load({"text": "a"})


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv: not UTF-8 text \(byte 8\); save the file as UTF-8"):
        load(path, ["text"]).take()
