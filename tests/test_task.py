"""Task definitions: validation before anything is written, templates, and the exact worker page."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import ConfigError, DataError

from .conftest import FORM, SENTENCES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name!"}, "task name 'bad name!' is not valid"),
        ({"title": " "}, "title is empty"),
        ({"reward": -1}, "reward -1 must be a number"),
        ({"reward": "0.1"}, "reward '0.1' must be a number"),
        ({"units_per_assignment": 0}, r"units_per_assignment=0 must be a whole number ≥ 1"),
        ({"allowed_concurrent": -1}, "allowed_concurrent=-1"),
        ({"template": "text_classification"}, "exactly one of html="),
        ({"html": "{% if %}"}, r"html=, line 1: template syntax error"),
        ({"data": []}, "has no rows"),
        ({"data": [{"other": 1}]}, r"list, row 1: column 'text' is missing"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(project: cn.Project, kwargs, message) -> None:
    args = {"name": "t", "title": "T", "reward": 0.1, "html": FORM, "data": SENTENCES, "project": project} | kwargs
    with pytest.raises((ConfigError, DataError), match=message):
        cn.Task(args.pop("name"), **args)
    assert project.store.query("SELECT * FROM tasks") == []
    assert project.store.query("SELECT * FROM task_runs") == []


def test_unknown_template_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match=r"template 'nope' not found; shipped templates: .*text_classification"):
        cn.Task("t", title="T", reward=0, template="nope")


def test_shipped_template_with_its_example_data() -> None:
    assert "text_classification" in cn.templates()
    folder = cn.templates()["text_classification"]
    task = cn.Task("t", title="T", reward=0.1, template="text_classification", data=folder / "example.csv")
    assert [f.name for f in task.fields] == ["label", "comment"]
    assert task.fields[0].options == ("positive", "neutral", "negative")
    assert task.page.required == ["text"]  # `question` is optional: it has a default


def test_preview_is_the_page_a_worker_gets_with_input_escaped() -> None:
    task = cn.Task("t", title="Rate <it>", reward=0.1, html=FORM, data=[{"text": "<script>alert(1)</script>"}])
    html = task.preview()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert "Rate &lt;it&gt;" in html
    assert 'name="label" value="pos"' in html
    assert 'meta name="viewport"' in html
    assert 'id="crowd-submit"' in html


def test_preview_row_out_of_range() -> None:
    task = cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES)
    assert "sentence number 3" in task.preview(3)
    with pytest.raises(ConfigError, match="row 6 is out of range; the data has 6 rows"):
        task.preview(6)


def test_task_without_data_is_one_assignment() -> None:
    task = cn.Task("survey", title="T", reward=0.1, html='<input name="age" type="number">', units_per_assignment=5)
    assert [f.kind for f in task.fields] == ["number"]
    assert "survey" in repr(task)
