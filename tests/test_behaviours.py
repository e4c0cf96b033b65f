"""Worker behaviours for rehearsing a study: each leaves its signature in the stored data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
import pytest

import crowdnb as cn
from crowdnb import ConfigError
from crowdnb.bots.behaviours import assign

from .conftest import wait_until

GOLDS = [{"text": f"gold {i}", "answers": {"label": "pos" if i % 2 else "neg"}} for i in range(8)]
DATA = [{"text": f"sentence {i}"} for i in range(60)]
MIX = {"careful": 0.4, "speeder": 0.2, "spammer": 0.2, "absent_minded": 0.2}


def gold_right(frame: Any) -> Any:
    """Whether each gold submission has the known answer."""
    known = {g["text"]: g["answers"]["label"] for g in GOLDS}
    return frame["label"] == frame["text"].map(known)


def test_a_mix_is_whole_bots_in_an_order_drawn_from_the_seed() -> None:
    chosen = [b.name for b in assign({"careful": 0.7, "speeder": 0.2, "spammer": 0.1}, 10, seed=3)]
    assert Counter(chosen) == {"careful": 7, "speeder": 2, "spammer": 1}
    assert [b.name for b in assign({"careful": 0.7, "speeder": 0.2, "spammer": 0.1}, 10, seed=3)] == chosen
    assert Counter(b.name for b in assign({"careful": 1, "speeder": 1, "spammer": 1}, 4, seed=0)) == {
        "careful": 2, "speeder": 1, "spammer": 1}  # fmt: skip
    assert {b.name for b in assign("speeder", 3, seed=None)} == {"speeder"}
    assert {b.name for b in assign(None, 2, seed=None)} == {"default"}


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("lazy", r"behaviour 'lazy' is not one of careful, speeder, spammer, absent_minded"),
        ({"careful": -1}, r"shares must be numbers ≥ 0 with a sum above 0"),
        ({"careful": 0}, r"shares must be numbers ≥ 0 with a sum above 0"),
        ({}, r"is not one of"),
    ],
)
def test_a_bad_behaviour_is_named(make_run: Any, behaviour: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cn.simulate(make_run(), workers=2, behaviour=behaviour)


def test_each_behaviour_leaves_its_signature(make_run: Any) -> None:
    run = make_run(data=DATA, gold=cn.Gold(GOLDS, first=1, every=2, max_wrong=100), disconnect_grace=0.2)
    sim = cn.simulate(run, workers=10, behaviour=MIX, units=3, seed=7)
    assert sim.errors == [] and Counter(sim.behaviours.values()) == {
        "careful": 4, "speeder": 2, "spammer": 2, "absent_minded": 2}  # fmt: skip
    data, golds = run.df, run.gold_df
    kind = sim.behaviours
    data["behaviour"], golds["behaviour"] = data["worker"].map(kind), golds["worker"].map(kind)
    assert set(data["behaviour"]) == set(MIX)

    # speeders: the rule "faster than a quarter of the median time" catches every one of their units, no careful one
    median = data["duration_s"].median()
    caught = data[data["duration_s"] < median / 4]
    assert (data.loc[data["behaviour"] == "speeder", "duration_s"] < median / 4).all()
    assert "careful" not in set(caught["behaviour"]) and "absent_minded" not in set(caught["behaviour"])

    # spammers: one answer for everything, gold or not
    for name in sim.bots("spammer"):
        theirs = units_of(data, golds, name)
        assert len(theirs) == 3 and theirs["label"].nunique() == 1 and theirs["why"].nunique() == 1

    # careful workers: every gold right; speeders answer at random (within the rules)
    careful_golds = golds[golds["behaviour"] == "careful"]
    assert len(careful_golds) >= 4 and gold_right(careful_golds).all()
    assert data.loc[data["behaviour"] == "speeder", "label"].isin(["pos", "neg"]).all()

    # who abandoned what is on record: only absent-minded bots left units
    assert {kind[r["name"]] for r in released(run, sim.abandoned)} == {"absent_minded"}


def released(run: cn.Run, abandoned: int) -> list[Any]:
    """The agents whose page closed midway, once the run has released all ``abandoned`` of them."""
    query = (
        "SELECT a.id, w.name, u.status, u.agent_id, u.unit_index FROM agents a JOIN units u ON u.id = a.unit_id "
        "JOIN workers w ON w.id = a.worker_id WHERE a.task_run_id = ? AND a.status = 'disconnect'"
    )

    def all_of_them() -> list[Any] | None:
        rows = run.store.query(query, (run.id,))
        return rows if len(rows) == abandoned else None

    return wait_until(all_of_them, f"{abandoned} units released")


def units_of(data: pd.DataFrame, golds: pd.DataFrame, worker: str) -> pd.DataFrame:
    """A worker's data and gold submissions together."""
    return pd.concat([data[data["worker"] == worker], golds[golds["worker"] == worker]])


def test_absent_minded_workers_leave_units_midway_and_miss_some_golds(make_run: Any) -> None:
    run = make_run(data=DATA[:24], gold=cn.Gold(GOLDS, first=1, every=1, max_wrong=100), disconnect_grace=0.2)
    sim = cn.simulate(run, workers=3, behaviour="absent_minded", pace=0.01, units=6, seed=3)
    assert sim.errors == [] and sim.abandoned > 0
    left = released(run, sim.abandoned)
    for agent in left:  # a data unit is offered again (and maybe done by now); a gold one made for them is withdrawn
        assert agent["agent_id"] != agent["id"]
        assert agent["status"] in (("launched", "assigned", "completed") if agent["unit_index"] >= 0 else ("expired",))
    right = gold_right(run.gold_df)
    assert right.any() and not right.all()  # careful mostly, but not always


def test_stop_ends_the_bots_and_joins_their_threads(make_run: Any) -> None:
    run = make_run(data=DATA[:10])
    sim = cn.simulate(run, workers=3, behaviour="careful", pace=1.0, wait=False, seed=1)  # 20-40 s a unit
    wait_until(lambda: run.counts["assigned"] == 3, "every bot holding a unit")
    assert not sim.done
    sim.stop()
    assert sim.done and all(not t.is_alive() for t in sim.threads)
    assert sim.submitted == 0 and sim.errors == []  # stopped while thinking: nothing sent, nothing failed
