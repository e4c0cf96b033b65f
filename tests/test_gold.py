"""Gold units: mixed in on a schedule, without repeats, judged, counted, and disqualifying."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import ConfigError

from .conftest import Worker

GOLDS = [
    {"text": "gold sentence A", "answers": {"label": "pos"}},
    {"text": "gold sentence B", "answers": {"label": "neg"}},
    {"text": "gold sentence C", "answers": {"label": "pos"}},
]
DATA = [{"text": f"data {i}"} for i in range(12)]


def answer_right(row: dict) -> dict:
    known = {g["text"]: g["answers"]["label"] for g in GOLDS}
    return {"label": known.get(row["text"], "pos")}


def test_first_unit_is_gold_and_the_answer_is_never_sent(make_run) -> None:
    run = make_run(data=DATA, gold=cn.Gold(GOLDS, first=1, every=4))
    entry = Worker(run, "alice").enter().json()
    assert entry["input"]["text"].startswith("gold sentence")
    assert "answers" not in entry["input"] and "pos" not in str(entry["input"])


def test_schedule_without_repeats_and_kept_out_of_the_data(make_run) -> None:
    run = make_run(data=DATA, gold=cn.Gold(GOLDS, first=1, every=4))
    sim = cn.simulate(run, workers=1, answer=answer_right)
    assert sim.errors == []
    golds = run.gold_df
    # 12 data units: one gold first, then one after every 4 data units (at 4 and 8) → 3 golds, all different
    assert len(golds) == 3 and golds["text"].is_unique
    assert len(run.df) == 12 and not run.df["text"].str.startswith("gold").any()
    held = cn.open(run.store.root).worker("bot-1").qualifications
    assert held == {"sentiment-gold-correct": 3}
    assert run.state in ("running", "completed")


def test_disqualification_after_the_allowed_mistakes(make_run) -> None:
    golds = [{"text": f"gold {i}", "answers": {"label": "pos"}} for i in range(4)]
    run = make_run(data=DATA, gold=cn.Gold(golds, first=3, max_wrong=1))
    alice = Worker(run, "alice")
    for expected_status in (200, 200):
        alice.enter()
        assert alice.submit({"label": "neg"}).status_code == expected_status  # two wrong golds
    refused = Worker(run, "alice").enter()
    assert refused.status_code == 403 and "check questions" in refused.json()["message"]
    project = cn.open(run.store.root)
    assert project.worker("alice").qualifications == {"sentiment-gold-wrong": 2, "sentiment-gold-disqualified": 1}
    assert project.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'grant_qualification'") == 1
    run.stop()
    second = make_run(data=DATA, gold=cn.Gold(golds, first=3, max_wrong=1))  # the next run of the task too
    assert Worker(second, "alice").enter().status_code == 403


def test_abandoned_gold_is_withdrawn_not_offered_to_others(make_run) -> None:
    from .conftest import wait_until

    run = make_run(data=DATA[:1], gold=cn.Gold(GOLDS), assignment_duration=1)
    Worker(run, "alice").enter()
    wait_until(lambda: run.counts["expired"] == 1, timeout=10)
    assert run.counts["launched"] == 1  # the data unit is still on offer; the gold unit is gone


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": []}, "gold needs at least one row"),
        ({"rows": [{"text": "x"}]}, "gold row 1 needs an 'answers' dict"),
        ({"rows": GOLDS, "every": 0}, r"gold every=0 must be a whole number ≥ 1"),
    ],
)
def test_bad_gold_is_refused(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cn.Gold(**kwargs)
