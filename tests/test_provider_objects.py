"""Platform objects are remembered by key, survive a reopen, and are found by run, state or remote id."""

from __future__ import annotations

from pathlib import Path

from crowdnb.providers import objects
from crowdnb.store.db import Store


def test_objects_are_remembered_by_key_and_survive_a_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path)
    objects.remember(store, "mturk", "hit", "unit:1", "3XHIT", task_run_id=7, unit_id=1, hit_type="T1")
    objects.remember(store, "mturk", "hit", "unit:2", "3YHIT", task_run_id=7, unit_id=2)
    objects.remember(store, "mturk", "hit", "unit:3", "3ZHIT", task_run_id=8, unit_id=3)
    first = objects.recall(store, "mturk", "hit", "unit:1")
    assert first is not None and first.remote_id == "3XHIT" and first.data == {"hit_type": "T1"}
    objects.set_state(store, "mturk", "hit", "unit:1", "disposed", reason="expired")
    store.close()

    store = Store(tmp_path)
    again = objects.recall(store, "mturk", "hit", "unit:1")
    assert again is not None and again.state == "disposed"
    assert again.data == {"hit_type": "T1", "reason": "expired"}
    assert again.task_run_id == 7 and again.unit_id == 1
    assert [o.key for o in objects.listed(store, "mturk", "hit", task_run_id=7)] == ["unit:1", "unit:2"]
    assert [o.key for o in objects.listed(store, "mturk", "hit", state="active")] == ["unit:2", "unit:3"]
    found = objects.by_remote_id(store, "mturk", "3ZHIT")
    assert found is not None and found.key == "unit:3"
    assert objects.recall(store, "prolific", "hit", "unit:1") is None


def test_remembering_a_key_again_replaces_the_remote_id_but_keeps_one_row(tmp_path: Path) -> None:
    store = Store(tmp_path)
    objects.remember(store, "prolific", "study", "run:1", "S1")
    objects.remember(store, "prolific", "study", "run:1", "S2", places=3)
    rows = objects.listed(store, "prolific", "study")
    assert len(rows) == 1 and rows[0].remote_id == "S2" and rows[0].data == {"places": 3}


def test_claim_moves_an_object_only_from_the_state_it_expects(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert objects.remember(store, "prolific", "bonus", "b1", "", state="intent", cents=50)
    assert not objects.remember(store, "prolific", "bonus", "b1", "X", state="intent", replace=False)
    assert objects.claim(store, "prolific", "bonus", "b1", "intent", "set_up", remote_id="S1", fees=16.67)
    assert not objects.claim(store, "prolific", "bonus", "b1", "intent", "set_up", remote_id="S2")
    assert objects.claim(store, "prolific", "bonus", "b1", "set_up", "paying", before=[])
    assert not objects.claim(store, "prolific", "bonus", "b1", "set_up", "paying")  # a second payer loses
    found = objects.recall(store, "prolific", "bonus", "b1")
    assert found is not None and found.state == "paying" and found.remote_id == "S1"
    assert found.data == {"cents": 50, "fees": 16.67, "before": []}
