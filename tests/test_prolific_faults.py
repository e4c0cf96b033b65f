"""Prolific failing: 500s, lost answers, an outage, and processes killed at the worst moment. Nothing is
paid twice, nothing recorded is lost, the run resumes on the same study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import crowdnb as cn
from crowdnb.errors import ProviderError
from crowdnb.providers import objects
from crowdnb.testing.prolific import FakeProlific

from .conftest import SENTENCES, wait_until
from .prolifics import Someone, study_of, unit_of

# --- faults: 500s, lost answers, an outage, and processes killed at the worst moment ----------------
CHILD = textwrap.dedent(
    """
    import json, sys, time
    import crowdnb as cn
    project = cn.open(sys.argv[1])
    if sys.argv[2] == "launch":
        task = cn.Task("rate", title="Rate sentences", reward=1.0, html="<input name=label>",
                       data=[{"text": "a"}, {"text": "b"}], project=project)
        task.launch(provider="prolific", provider_options=json.loads(sys.argv[3]))
        time.sleep(120)
    else:
        project.runs[int(sys.argv[3])].bonus([int(sys.argv[4])], 0.4, "extra effort")
    """
)


def spawn(tmp_path: Path, *args: object) -> subprocess.Popen[bytes]:
    """A separate Python process working on the same project (killed by the test)."""
    with (tmp_path / "child.log").open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", CHILD, *map(str, args)], env=os.environ.copy(), stdout=log, stderr=log
        )


def bonus_state(run: cn.Run) -> str:
    (bonus,) = objects.listed(run.store, "prolific", "bonus")
    return bonus.state


def test_publish_survives_500s_on_create_and_publish(launch: Any, fake: FakeProlific) -> None:
    fake.fail("POST", "studies/", times=2)
    fake.fail("POST", "studies/*/transition/", times=1)
    launch()
    assert len(fake.studies) == 1 and study_of(fake)["status"] == "ACTIVE"
    assert len(fake.calls("POST", "studies/")) == 3


def test_a_study_created_but_unanswered_is_found_not_created_again(launch: Any, fake: FakeProlific) -> None:
    fake.fail("POST", "studies/", status=None, delay=1.5)  # created, but the answer comes too late
    launch(options={"timeout": 0.5})
    assert len(fake.calls("POST", "studies/")) == 1 and len(fake.studies) == 1
    assert study_of(fake)["status"] == "ACTIVE"


def test_platform_down_at_publish_leaves_a_resumable_run(launch: Any, fake: FakeProlific, project: cn.Project) -> None:
    fake.fail("POST", "studies/*/transition/", times=None)
    with pytest.raises(ProviderError, match=r"POST studies/\w+/transition/ failed: HTTP 500"):
        launch()
    (run,) = cn.open(project.root).runs.values()
    assert run.state == "stopped" and study_of(fake)["status"] == "UNPUBLISHED" and run.counts["launched"] == 3
    fake.heal()
    run.resume()
    try:
        assert len(fake.studies) == 1 and study_of(fake)["status"] == "ACTIVE"
        assert study_of(fake)["total_available_places"] == 3
        Someone(fake, study_of(fake)).finish(run)
        wait_until(lambda: len(run.df) == 1, "a submission after the resume")
    finally:
        run.stop()


def test_approve_retries_a_500_and_counts_a_lost_answer_as_done(launch: Any, fake: FakeProlific) -> None:
    run = launch(options={"timeout": 0.5})
    ann, bob = Someone(fake, study_of(fake)), Someone(fake, study_of(fake))
    ann.finish(run)
    bob.finish(run)
    fake.fail("POST", "submissions/*/transition/", times=1)
    run.approve([unit_of(run, ann.id)])
    fake.fail("POST", "submissions/*/transition/", status=None, delay=1.0)  # approved; the answer is lost
    run.approve([unit_of(run, bob.id)])
    assert fake.submissions[ann.session]["status"] == fake.submissions[bob.session]["status"] == "APPROVED"


def test_a_decision_prolific_cannot_take_now_is_sent_at_a_later_sync(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    fake.fail("POST", "submissions/*/transition/", times=None)  # Prolific's review calls are down
    with pytest.raises(ProviderError, match="the decision is kept and sent again at the next sync"):
        run.approve([unit_of(run, ann.id)])
    assert run.df.loc[0, "status"] == "accepted" and fake.submissions[ann.session]["status"] == "AWAITING REVIEW"
    fake.heal()
    wait_until(lambda: fake.submissions[ann.session]["status"] == "APPROVED", "the approval sent by a sync")


def test_a_bonus_whose_pay_answer_is_lost_is_confirmed_not_paid_again(launch: Any, fake: FakeProlific) -> None:
    run = launch(options={"timeout": 0.5})
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    unit = unit_of(run, ann.id)
    fake.fail("POST", "bulk-bonus-payments/*/pay/", status=None, delay=1.0)  # pays, then answers too late
    with pytest.raises(ProviderError, match="may or may not have paid"):
        run.approve([unit], bonus=0.3)
    assert fake.submissions[ann.session]["status"] == "APPROVED" and fake.paid() == [30]
    wait_until(lambda: bonus_state(run) == "paid", "the payment confirmed from the submission")
    assert run.provider_client().settle_bonuses() == {"paid": 1}
    assert run.bonus([unit], 0.3, "Thank you for your careful work.", key="with-approval") == 0
    assert fake.paid() == [30] and len(fake.calls("POST", "bulk-bonus-payments/*/pay/")) == 1


def test_a_refused_pay_is_paid_later_once_and_an_unanswered_one_never_twice(launch: Any, fake: FakeProlific) -> None:
    run = launch(options={"bonus_confirm_seconds": 0})
    ann, bob = Someone(fake, study_of(fake)), Someone(fake, study_of(fake))
    ann.finish(run)
    bob.finish(run)
    fake.fail("POST", "bulk-bonus-payments/*/pay/", status=400, times=1)  # refused: nothing was paid
    with pytest.raises(ProviderError, match="HTTP 400"):
        run.bonus([unit_of(run, ann.id)], 0.2, "great")
    wait_until(lambda: fake.paid(ann.id) == [20], "the refused bonus paid by the next sync")
    fake.fail("POST", "bulk-bonus-payments/*/pay/", status=500, times=1)  # may have paid: never sent again
    with pytest.raises(ProviderError, match="may or may not have paid"):
        run.bonus([unit_of(run, bob.id)], 0.2, "great")
    wait_until(lambda: run.provider_client().settle_bonuses() == {"paid": 1, "unconfirmed": 1}, "unconfirmed")
    assert fake.paid(bob.id) == [] and len(fake.calls("POST", "bulk-bonus-payments/*/pay/")) == 3


PAY = "bulk-bonus-payments/*/pay/"


def test_a_pay_refused_with_429_is_sent_again_and_paid_once(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    run.stop()  # no sync settles it in the background: only the bonus call itself re-sends
    fake.fail("POST", PAY, status=429, times=2)  # the wallet is busy: refused before processing, twice
    assert run.bonus([unit_of(run, ann.id)], 0.2, "great") == 1  # no error: the third pay call went through
    assert bonus_state(run) == "paid" and fake.paid(ann.id) == [20]
    assert len(fake.calls("POST", PAY)) == 3 and run.provider_client().settle_bonuses() == {"paid": 1}


def test_a_429_asking_to_wait_long_is_paid_by_a_sync_after_the_wait(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    run.stop()
    fake.fail("POST", PAY, status=429, retry_after="3600")  # busy for an hour: not waited on in the call
    with pytest.raises(ProviderError, match="nothing was paid: the bonus stays set up") as refused:
        run.bonus([unit_of(run, ann.id)], 0.2, "great")
    assert refused.value.transient and refused.value.retry_after == 3600
    assert run.provider_client().settle_bonuses() == {"set_up": 1}  # a sync within the hour leaves it be
    assert len(fake.calls("POST", PAY)) == 1 and fake.paid() == []
    (bonus,) = objects.listed(run.store, "prolific", "bonus")
    objects.set_state(run.store, "prolific", "bonus", bonus.key, "set_up", retry_at=0)  # the hour is over
    assert run.provider_client().settle_bonuses() == {"paid": 1}
    assert fake.paid(ann.id) == [20] and len(fake.calls("POST", PAY)) == 2


def test_sync_rides_out_an_outage_and_catches_up(launch: Any, fake: FakeProlific) -> None:
    run = launch(data=SENTENCES[:1])
    ann = Someone(fake, study_of(fake))
    ann.open()
    fake.fail("GET", "studies/*/submissions/", times=None)
    fake.return_(ann.session)
    wait_until(lambda: len(fake.calls("GET", "studies/*/submissions/")) >= 5, "polls during the outage", 20)
    assert run.serving and run.counts["assigned"] == 1
    fake.heal()
    wait_until(lambda: run.counts["launched"] == 1, "the return seen once Prolific answers again")


def test_a_stop_prolific_refuses_is_finished_by_cleanup(launch: Any, fake: FakeProlific, project: cn.Project) -> None:
    run = launch(qualifications=[cn.requirement("trusted", "Exists")])
    fake.fail("POST", "studies/*/transition/", times=None)
    with pytest.raises(ProviderError, match=r"call run.provider_client\(\).cleanup\(run.id\) again"):
        run.stop()
    assert run.state == "stopped" and not run.serving and study_of(fake)["status"] == "ACTIVE"
    assert all(g["is_deleted"] for g in fake.groups.values() if g["name"].startswith("crowdnb run"))
    fake.heal()
    assert run.provider_client().cleanup(run.id) == 1  # the study; the group was already deleted
    assert study_of(fake)["_stopped"] and run.provider_client().cleanup(run.id) == 0


def test_a_crashed_run_resumes_on_the_same_study(fake: FakeProlific, project: cn.Project, tmp_path: Path) -> None:
    options = {"completion_url": fake.completion_url, "poll_seconds": 0.1}
    child = spawn(tmp_path, project.root, "launch", json.dumps(options))
    try:
        wait_until(lambda: fake.studies and study_of(fake)["status"] == "ACTIVE", "the study published", 60)
    finally:
        child.kill()
        child.wait()
    (run,) = project.runs.values()
    assert run.state == "running"  # the process died without stopping anything
    run.resume()
    try:
        assert len(fake.calls("POST", "studies/")) == 1 and len(fake.studies) == 1
        assert study_of(fake)["total_available_places"] == 2
        Someone(fake, study_of(fake)).finish(run)
        wait_until(lambda: len(run.df) == 1, "a submission after the resume")
    finally:
        run.stop()
    assert study_of(fake)["_stopped"]


@pytest.mark.parametrize("stage", ["set-up", "pay"])
def test_a_process_killed_mid_bonus_pays_exactly_once_after_resume(
    launch: Any, fake: FakeProlific, project: cn.Project, tmp_path: Path, stage: str
) -> None:
    run = launch(options={"timeout": 30})
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    unit = unit_of(run, ann.id)
    run.stop()  # reviewing a stopped run: nothing settles in the background while the child works
    fake.fail("POST", "submissions/bonus-payments/" if stage == "set-up" else "bulk-bonus-payments/*/pay/",
              status=None, delay=30)  # fmt: skip
    child = spawn(tmp_path, project.root, "bonus", run.id, unit)
    try:
        made = (lambda: fake.setups) if stage == "set-up" else fake.paid
        wait_until(made, f"the {stage} reaching Prolific", 60)
    finally:
        child.kill()
        child.wait()
    fake.heal()
    assert bonus_state(run) == ("intent" if stage == "set-up" else "paying")
    run = cn.open(project.root).runs[run.id]
    run.resume()
    try:
        assert bonus_state(run) == "paid"  # settled while the run was set up again
        assert fake.paid() == [40] and len(fake.setups) == (2 if stage == "set-up" else 1)
        assert run.bonus([unit], 0.4, "extra effort") == 0
    finally:
        run.stop()
    assert fake.paid() == [40] and len(fake.calls("POST", "bulk-bonus-payments/*/pay/")) == 1
