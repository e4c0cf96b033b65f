"""Money: spend per run and task, bonuses once per key (also outside a unit), and the budget cap."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import ConfigError, StateError

from .conftest import FORM, SENTENCES, Worker
from .test_providers import FakePlatform


def test_spend_follows_review_and_bonuses(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    ids = list(run.df["unit_id"])
    assert run.spend == {"rewards": 0.0, "pending": pytest.approx(0.6), "bonuses": 0.0, "fees": 0.0, "total": 0.0}
    run.approve(ids[:3], note="Great work", bonus=0.05)
    run.approve(ids[:3], bonus=0.05)  # again: nothing more is paid
    run.soft_reject(ids[3])
    run.reject(ids[4], note="Did not read the sentence")
    spend = run.spend  # whole cents: never 0.15000000000000002
    assert spend == {"rewards": 0.4, "pending": 0.1, "bonuses": 0.15, "fees": 0.0, "total": 0.55}
    assert repr(spend["bonuses"]) == "0.15" and repr(spend["total"]) == "0.55"
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'bonus'") == 3
    task_spend = cn.open(run.store.root).task_spend("sentiment")
    assert task_spend == spend


def test_bonus_rules(run: cn.Run) -> None:
    alice = Worker(run, "alice")
    alice.enter()
    held = int(run.store.query("SELECT id FROM units WHERE status = 'assigned'")[0]["id"])
    with pytest.raises(StateError, match="only submitted units get a bonus"):
        run.bonus(held, 0.1, "early")
    alice.submit({"label": "pos"})
    with pytest.raises(ConfigError, match="bonus amount -1 must be a positive number"):
        run.bonus(held, -1, "x")
    with pytest.raises(ConfigError, match="a bonus needs a reason"):
        run.bonus(held, 0.1, "")
    with pytest.raises(ConfigError, match=r"bonus amount 0\.125 is not a whole number of cents"):
        run.bonus(held, 0.125, "half a cent more")  # MTurk would be sent "0.12", Prolific refuses it
    assert run.bonus(held, 0.1, "nice") == 1
    assert run.bonus(held, 0.1, "nice") == 0
    assert run.bonus(held, 0.1, "nice", key="second round") == 1


def test_fees_of_the_provider_are_counted(project: cn.Project) -> None:
    task = cn.Task("fees", title="T", reward=1.0, html=FORM, data=SENTENCES[:2], project=project)
    run = task.launch(provider=FakePlatform(project.store))
    try:
        for name in ("a", "b"):
            worker = Worker(run, name)
            worker.enter()
            worker.submit({"label": "pos"})
        run.approve(run.df["unit_id"])
        run.bonus(run.df["unit_id"][:1], 0.05, "quick")  # a fee of 0.01: rounded to the cent, half up
        assert run.spend == {"rewards": 2.0, "pending": 0.0, "bonuses": 0.05, "fees": 0.41, "total": 2.46}
    finally:
        run.stop()


def test_budget_cap_stops_launching(make_run) -> None:
    run = make_run(budget=0.35)  # six units at $0.10: only three fit
    assert run.counts["launched"] == 3 and run.counts["created"] == 3
    cn.simulate(run, workers=2)
    assert len(run.df) == 3 and run.counts["created"] == 3
    run.reject(run.df["unit_id"][0], note="wrong")  # a rejected unit is not paid: room for one more
    run.monitor_tick()
    assert run.counts["launched"] == 1


def test_budget_counts_earlier_runs_of_the_task(make_run) -> None:
    first = make_run(budget=0.8)
    cn.simulate(first, workers=2)
    first.approve(first.df["unit_id"])
    first.stop()
    second = make_run(budget=0.8)  # $0.60 already spent: two units fit
    assert second.counts["launched"] == 2


def test_bad_budget_is_refused(project: cn.Project) -> None:
    with pytest.raises(ConfigError, match="budget 0 must be a positive number"):
        cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES, budget=0, project=project)


def test_bonus_and_message_outside_a_unit(project: cn.Project) -> None:
    assert cn.bonus("carol", 1.5, "make-up for a broken unit", project=project) is True
    assert cn.bonus("carol", 1.5, "make-up for a broken unit", project=project) is False
    assert project.worker("carol").bonus(1.5, "make-up for a broken unit", key="second") is True
    cn.message("carol", "Thanks, we fixed the task.", project=project)
    calls = [
        (r["call"], r["amount"]) for r in project.store.query("SELECT call, amount FROM provider_calls ORDER BY id")
    ]
    assert calls == [("bonus", 1.5), ("bonus", 1.5), ("message", None)]
    actions = [r["action"] for r in project.store.query("SELECT action FROM reviews ORDER BY id")]
    assert actions == ["bonus", "bonus", "message"]
    with pytest.raises(ConfigError, match="the message is empty"):
        cn.message("carol", " ", project=project)
