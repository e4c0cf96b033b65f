"""Rules that act on their own, rehearsed on simulated careful workers, speeders and spammers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

import crowdnb as cn
from crowdnb import ConfigError

from .conftest import FORM, Worker, wait_until

DATA = [{"text": f"sentence {i}"} for i in range(24)]
GOLDS = [{"text": f"gold {i}", "answers": {"label": "pos" if i % 2 else "neg"}} for i in range(8)]


def too_fast(row: Any, frame: pd.DataFrame) -> bool:
    """Faster than a quarter of the run's median time."""
    return bool(row.duration_s < frame.duration_s.median() / 4)


def statuses(run: cn.Run, workers: list[str]) -> set[str]:
    frame = run.df
    return set(frame.loc[frame["worker"].isin(workers), "status"])


def test_speeders_are_soft_rejected_as_they_submit(make_run: Any) -> None:
    run = make_run(data=DATA)
    rule = run.rule("too-fast", too_fast, "soft_reject", note="Too quick to have read the sentence.")
    # careful: 2-4 s a unit at this pace; speeders 0.05-0.2 s, under a quarter of the median
    sim = cn.simulate(run, workers=8, behaviour={"careful": 0.75, "speeder": 0.25}, units=2, pace=0.1, seed=2)
    assert sim.errors == [] and len(sim.bots("speeder")) == 2
    speeders, careful = sim.bots("speeder"), sim.bots("careful")
    wait_until(lambda: statuses(run, speeders) == {"soft_rejected"}, "every speeder's unit soft-rejected")
    assert statuses(run, careful) == {"completed"}  # left for review, not approved or rejected
    history = rule.history
    assert set(history["action"]) == {"soft_rejected"} and set(history["worker"]) == set(speeders)
    assert (history["note"] == "Too quick to have read the sentence.").all()
    audit = run.store.query("SELECT DISTINCT actor FROM reviews WHERE action = 'soft_rejected'")
    assert [r["actor"] for r in audit] == ["rule:too-fast"]


def test_dry_run_shows_what_a_rule_would_do_and_changes_nothing(make_run: Any) -> None:
    run = make_run(data=DATA)
    mix = {"careful": 3, "speeder": 1, "spammer": 1}
    sim = cn.simulate(run, workers=5, behaviour=mix, units=2, pace=0.1, seed=4)
    run.stop()  # no monitor: only dry_run and apply act
    before = run.df.copy()
    rule = run.rule("too-fast", too_fast, "soft_reject")
    plan = rule.dry_run()
    kinds = plan["worker"].map(sim.behaviours)
    assert (kinds == "speeder").sum() == 2 and "careful" not in set(kinds)  # a spammer may be quick too
    assert (plan["action"] == "soft_reject").all() and (plan["rule"] == "too-fast").all()
    assert {"duration_s", "age_hours", "flagged", "label"} <= set(plan.columns)
    pd.testing.assert_frame_equal(run.df, before)
    assert run.store.scalar("SELECT count(*) FROM reviews") == 0

    done = rule.apply()
    assert done["done"].all() and done["error"].isna().all() and len(done) == len(plan)
    assert statuses(run, sim.bots("speeder")) == {"soft_rejected"} and statuses(run, sim.bots("careful")) == {
        "completed"
    }
    assert rule.dry_run().empty and rule.apply().empty  # nothing left to do


def test_a_rule_held_back_acts_only_once_made_active(make_run: Any) -> None:
    run = make_run(data=DATA[:4])
    cn.simulate(run, workers=1, seed=1)
    rule = run.rule("flag-all", lambda s: True, "flag", note="look", every=0.1, active=False)
    assert len(rule.dry_run()) == 4
    other = run.rule("tick", lambda s: True, "flag", note="the monitor ran", every=0.1)
    wait_until(lambda: len(other.history) == 4, "an active rule's pass")  # the same ticks passed the other by
    assert rule.history.empty and len(rule.dry_run()) == 4
    rule.active = True
    wait_until(lambda: len(rule.history) == 4, "the rule acting once active")


def test_auto_approve_after_hours_unless_flagged(make_run: Any) -> None:
    run = make_run(data=DATA[:6])
    cn.simulate(run, workers=2, behaviour="careful", seed=1)
    held = int(run.df["unit_id"].iloc[0])
    assert run.flag(held, note="Looks odd; check it myself.") == 1 and run.flag(held) == 0
    rule = run.rule("auto-approve", lambda s: s.age_hours >= 24 and not s.flagged, "approve", note="Thanks!")
    assert rule.dry_run().empty  # not 24 hours yet
    later = rule.dry_run(at=datetime.now(UTC) + timedelta(hours=25))
    assert sorted(later["unit_id"]) == sorted(set(run.df["unit_id"]) - {held})
    assert run.counts["accepted"] == 0

    soon = run.rule("auto-approve-soon", lambda s: s.age_hours > 0.5 / 3600 and not s.flagged, "approve", every=0.2)
    wait_until(lambda: run.counts["accepted"] == 5, "every unflagged unit approved")
    frame = run.df.set_index("unit_id")
    assert frame.loc[held, "status"] == "completed"
    assert set(soon.history["action"]) == {"accepted"} and run.spend["rewards"] == pytest.approx(0.5)


def test_a_rule_never_overrides_a_person(make_run: Any) -> None:
    run = make_run(data=DATA[:4])
    cn.simulate(run, workers=1, seed=1)
    run.stop()
    first, second = (int(u) for u in run.df["unit_id"].iloc[:2])
    run.reject(first, note="Wrong language.")
    run.approve(second)
    done = run.rule("approve-all", lambda s: True, "approve").apply()
    assert first not in set(done["unit_id"]) and len(done) == 2
    assert run.df.set_index("unit_id").loc[first, "status"] == "rejected"
    actors = {r["unit_id"]: r["actor"] for r in run.store.query("SELECT unit_id, actor FROM reviews")}
    assert actors[first] == actors[second] == "requester"


def test_bonus_on_gold_accuracy_is_paid_once(make_run: Any) -> None:
    run = make_run(data=DATA, gold=cn.Gold(GOLDS, first=2, every=2, max_wrong=100))
    sim = cn.simulate(run, workers=6, behaviour={"careful": 0.5, "spammer": 0.5}, units=6, seed=5)
    run.stop()
    records = run.worker_df.set_index("worker")
    careful = sim.bots("careful")
    assert (records.loc[careful, "gold_accuracy"] == 1.0).all() and (records.loc[careful, "gold_answers"] >= 3).all()
    good = records[(records["gold_answers"] >= 3) & (records["gold_accuracy"] >= 0.9)].index
    # a spammer answers one label, and half the golds want the other (one in 14 gets 3 golds of one kind)
    assert set(careful) <= set(good) and not set(sim.bots("spammer")) <= set(good)

    rule = run.rule("accurate", lambda w: w.gold_answers >= 3 and w.gold_accuracy >= 0.9, "bonus", on="worker",
                    amount=0.25, note="Thank you for your accurate work.")  # fmt: skip
    assert sorted(rule.dry_run()["worker"]) == sorted(good)
    threads = [threading.Thread(target=rule.apply) for _ in range(4)]  # four at once: paid once each
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rule.apply()
    paid = run.store.query("SELECT args FROM provider_calls WHERE call = 'bonus'")
    assert len(paid) == len(good) and run.spend["bonuses"] == pytest.approx(0.25 * len(good))  # booked in the run
    assert sorted(rule.history["worker"]) == sorted(good)


def test_workers_failing_gold_are_blocked_while_the_run_goes_on(make_run: Any) -> None:
    run = make_run(data=DATA[:12], gold=cn.Gold(GOLDS, first=2, every=1, max_wrong=100))
    run.rule("gold-failures", lambda w: w.gold_wrong >= 2, "block", on="worker", note="Too many check questions wrong.")
    # spammers give one label to everything, and half the golds want the other: they fail as they go on
    sim = cn.simulate(run, workers=4, behaviour={"careful": 0.5, "spammer": 0.5}, seed=3)
    assert sim.errors == []
    spammers, careful = sim.bots("spammer"), sim.bots("careful")
    records = wait_until(lambda: _settled(run), "every worker with two wrong golds blocked")[0].set_index("worker")
    blocked = set(records.index[records["blocked"]])
    assert blocked == set(records.index[records["gold_wrong"] >= 2]) and blocked & set(spammers)
    assert not blocked & set(careful)
    reviews = run.store.query("SELECT actor, note FROM reviews WHERE action = 'grant' AND details LIKE '%blocked%'")
    assert {(r["actor"], r["note"]) for r in reviews} == {("rule:gold-failures", "Too many check questions wrong.")}
    assert len(reviews) == len(blocked)  # once each, though the rule saw them on every tick


def _settled(run: cn.Run) -> list[pd.DataFrame] | None:
    """The worker records once the rule has blocked everyone it should have."""
    records = run.worker_df
    return [records] if (records["blocked"] == (records["gold_wrong"] >= 2)).all() else None


def test_a_new_submission_is_judged_at_the_next_tick(make_run: Any) -> None:
    run = make_run(data=DATA[:3])
    run.rule("no-why", lambda s: not s.why, "reject", note="Please say why.", every=3600)  # one full pass only
    wait_until(lambda: run.rules["no-why"].next_pass > 0, "the first pass")
    alice = Worker(run, "alice")
    alice.enter()
    assert alice.submit({"label": "pos", "why": ""}).status_code == 200
    wait_until(lambda: run.counts["rejected"] == 1, "the submission rejected")


def test_a_failing_predicate_is_reported_and_the_others_still_act(make_run: Any) -> None:
    run = make_run(data=DATA[:4])
    cn.simulate(run, workers=1, seed=1)
    broken = run.rule("broken", lambda s: s["no_such_column"] == 1, "reject", every=0.2)
    with pytest.raises(cn.ConfigError, match=r"rule 'broken' failed on unit \d+: KeyError"):
        broken.dry_run()
    run.rule("flag-all", lambda s: True, "flag", note="check", every=0.2)
    wait_until(lambda: len(run.rules["flag-all"].history) == 4, "the working rule's flags")
    wait_until(lambda: broken.errors, "the broken rule's error kept")
    assert "KeyError" in broken.errors[0] and run.counts["rejected"] == 0 and run.serving
    assert any("rule 'broken' failed on unit" in line for line in run.errors)  # the run's log says so too


def test_resume_needs_the_rules_again(make_run: Any, project: cn.Project) -> None:
    run = make_run(data=DATA[:2])
    run.rule("auto-approve", lambda s: s.age_hours >= 24, "approve")
    run.rule("too-fast", too_fast, "soft_reject")
    run.stop()
    again = cn.Run(project, run.id)  # as after a kernel restart: the functions are gone
    assert [r["name"] for r in again.rulebook.stored()] == ["auto-approve", "too-fast"]
    assert "age_hours >= 24" in again.rulebook.stored()[0]["when"]
    with pytest.raises(
        ConfigError, match=r"rules whose functions are not stored: 'auto-approve', 'too-fast'; register"
    ):
        again.resume()
    assert again.state == "stopped"
    again.rule("too-fast", too_fast, "soft_reject")
    again.remove_rule("auto-approve")
    again.resume()
    assert again.serving and list(again.rules) == ["too-fast"]
    again.stop()


def test_a_server_resumes_a_run_with_rules_without_them(make_run: Any, project: cn.Project, caplog: Any) -> None:
    from crowdnb.serve import hosted_app

    run = make_run(data=DATA[:2])
    run.rule("auto-approve", lambda s: s.age_hours >= 24, "approve")
    run.stop()
    app, served = hosted_app(project.root, run.id, "http://127.0.0.1:9/")  # what `crowdnb serve` runs
    try:
        assert app is not None and served.serving and served.rules == {}
        assert "has rules (auto-approve) that do not run under crowdnb serve" in caplog.text
    finally:
        served.stop()


def test_rules_are_refused_where_they_could_not_act(project: cn.Project) -> None:
    task = cn.Task("away", title="Away", reward=0.1, html=FORM, data=DATA[:2], project=project)
    run = task.launch(provider="mock", architect="process")  # the router (and the data) in another process
    try:
        with pytest.raises(ConfigError, match=r"served by a router elsewhere, where rules cannot act yet"):
            run.rule("auto-approve", lambda s: s.age_hours >= 24, "approve")
        assert run.rules == {}
        cn.simulate(run, workers=1)
    finally:
        run.stop()  # its rows come home: a rule can act on them here
    assert len(run.rule("flag-all", lambda s: True, "flag", note="look").apply()) == 2
    with pytest.raises(ConfigError, match=r"or remove its rules first: run.remove_rule\('flag-all'\)"):
        run.resume()


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("r", lambda s: True, "aprove"), {}, r"unknown action 'aprove'; use one of approve, reject"),
        (("r", lambda s: True, "approve"), {"on": "worker"}, r"'approve' acts on a submission"),
        (("r", lambda s: True, "approve"), {"on": "unit"}, r"on='unit'; use on='submission'"),
        (("r", lambda s: True, "bonus"), {"note": "thanks"}, r"bonus amount None must be a positive number"),
        (("r", lambda s: True, "bonus"), {"amount": 0.5}, r"a bonus needs a reason"),
        (("r", lambda s: True, "grant"), {}, r"action 'grant' needs qualification='NAME'"),
        (("r", lambda s: True, "approve"), {"amount": 1.0}, r"amount= is for action 'bonus'"),
        (("r", lambda a, b, c: True, "approve"), {}, r"when\(row\[, frame\]\); it takes 3 arguments"),
        (("r", "yes", "approve"), {}, r"when= must be a function"),
        (("", lambda s: True, "approve"), {}, r"rule name '' must be"),
        (("r", lambda s: True, "approve"), {"every": 0}, r"every=0 must be a positive number of seconds"),
    ],
)
def test_a_bad_rule_is_named_and_nothing_is_stored(run: cn.Run, args: Any, options: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run.rule(*args, **options)
    assert run.rules == {} and run.rulebook.stored() == []


def test_remove_rule_names_the_rules_there_are(run: cn.Run) -> None:
    run.rule("a", lambda s: False, "flag")
    with pytest.raises(ConfigError, match=r"run \d+ has no rule 'b'; its rules: 'a'"):
        run.remove_rule("b")
