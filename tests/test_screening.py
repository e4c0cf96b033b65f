"""Screening: a new worker's first unit is judged; passing unlocks the task, failing closes it; capped."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import ConfigError

from .conftest import Worker

DATA = [{"text": f"data {i}"} for i in range(6)]
CHECKS = [{"text": "screen: say pos"}]


def said_pos(inputs: dict, answers: dict) -> bool:
    return answers.get("label") == "pos"


def test_pass_then_real_units(make_run) -> None:
    run = make_run(data=DATA, screening=cn.Screening(said_pos, rows=CHECKS))
    alice = Worker(run, "alice")
    assert alice.enter().json()["input"] == {"text": "screen: say pos"}
    assert alice.enter().json()["input"] == {"text": "screen: say pos"}  # a refresh: the same screening unit
    alice.submit({"label": "pos"})
    assert alice.enter().json()["input"]["text"] == "data 0"
    assert len(run.screening_df) == 1 and run.df.empty
    assert cn.open(run.store.root).worker("alice").qualifications == {"sentiment-screened": 1}


def test_fail_closes_the_task_in_every_run(make_run) -> None:
    run = make_run(data=DATA, screening=cn.Screening(said_pos, rows=CHECKS))
    bob = Worker(run, "bob")
    bob.enter()
    assert bob.submit({"label": "neg"}).status_code == 200  # the answer is saved; the judgement is separate
    refused = Worker(run, "bob").enter()
    assert refused.status_code == 403 and "did not meet this task's standard" in refused.json()["message"]
    run.stop()
    later = make_run(data=DATA, screening=cn.Screening(said_pos, rows=CHECKS))
    assert Worker(later, "bob").enter().status_code == 403


def test_screening_on_the_tasks_own_data_is_capped(make_run) -> None:
    run = make_run(data=DATA, screening=cn.Screening(said_pos, max_units=2))
    for name in ("a", "b"):
        entry = Worker(run, name).enter().json()
        assert entry["input"]["text"].startswith("data ")  # a copy of a real row …
    assert run.counts["launched"] == 6  # … while every data unit stays on offer
    refused = Worker(run, "c").enter()
    assert refused.status_code == 403 and "not taking new workers" in refused.json()["message"]


def test_bots_are_screened(make_run) -> None:
    run = make_run(data=DATA, screening=cn.Screening(said_pos, rows=CHECKS))
    sim = cn.simulate(run, workers=2, answer=lambda row: {"label": "pos"})
    assert sim.errors == [] and len(run.df) == 6 and len(run.screening_df) == 2


def test_resume_needs_the_function_again(make_run) -> None:
    run = make_run(data=DATA, screening=cn.Screening(said_pos, rows=CHECKS))
    run.stop()
    reopened = cn.open(run.store.root).run(run.id)
    with pytest.raises(ConfigError, match=r"run.resume\(screening_validate=fn\)"):
        reopened.resume()
    reopened.resume(screening_validate=said_pos)
    reopened.stop()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"validate": "yes"}, "screening validate= must be a function"),
        ({"validate": said_pos, "max_units": 0}, "max_units=0 must be a whole number ≥ 1"),
        ({"validate": said_pos, "rows": []}, "screening rows= is empty"),
    ],
)
def test_bad_screening_is_refused(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cn.Screening(**kwargs)


def test_screening_and_gold_together_are_refused(project: cn.Project) -> None:
    from .conftest import FORM

    with pytest.raises(ConfigError, match="use screening= or gold=, not both"):
        cn.Task("t", title="T", reward=0, html=FORM, data=DATA, project=project,
                screening=cn.Screening(said_pos), gold=cn.Gold([{"text": "g", "answers": {"label": "pos"}}]))  # fmt: skip
