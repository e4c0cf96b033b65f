"""MTurk failing: HTTP 500s, throttling, answers that come too late, a platform that stays down, a process
killed mid-call. Nothing is paid twice, no HIT is made twice, nothing recorded is lost, the run resumes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

import crowdnb as cn
from crowdnb.cli import cli
from crowdnb.errors import ProviderError
from crowdnb.providers import objects
from crowdnb.testing.mturk import FakeMTurk

from .conftest import wait_until
from .turkers import FAST, Turker, unit_of

SLOW = 3.0  # seconds the fake holds a "timeout" answer: longer than the provider's 2 s timeout


def states(run: cn.Run, kind: str) -> list[str]:
    return sorted(o.state for o in objects.listed(run.store, "mturk_sandbox", kind, task_run_id=run.id))


def bonuses(run: cn.Run) -> list[str]:
    """The states of the project's MTurk bonus intents (a bonus belongs to a worker, not a run)."""
    return sorted(o.state for o in objects.listed(run.store, "mturk_sandbox", "bonus"))


@pytest.mark.parametrize("fault", ["500", "throttle", "timeout"])
def test_create_hit_failures_are_retried_into_exactly_one_hit_per_unit(
    on_mturk: Any, mturk: FakeMTurk, fault: str
) -> None:
    mturk.fail("CreateHITWithHITType", fault, times=2, delay=SLOW)
    run = on_mturk()
    hits = mturk.hits()
    assert len(hits) == 3  # a timed-out CreateHIT was carried out: its retry got the same HIT back
    stored = objects.listed(run.store, "mturk_sandbox", "hit", task_run_id=run.id)
    assert sorted(o.remote_id for o in stored) == sorted(h["HITId"] for h in hits)
    # a 500 or throttling was not carried out; a timed-out call was, so its retry is answered HitAlreadyExists
    assert mturk.count("CreateHITWithHITType") == (4 if fault == "timeout" else 5)


def test_mturk_down_during_publish_leaves_a_run_that_resumes(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project
) -> None:
    mturk.fail("CreateHITWithHITType", "500", times=100)
    with pytest.raises(ProviderError, match="CreateHITWithHITType"):
        on_mturk()
    (run_id,) = project.runs
    stopped = cn.open(project.root).runs[run_id]
    assert stopped.state == "stopped" and stopped.counts["launched"] == 3
    assert states(stopped, "hit") == ["creating"] * 3  # the intents, never answered
    mturk.healthy()
    run = stopped.resume()
    try:
        assert len(mturk.hits()) == 3 and states(run, "hit") == ["active"] * 3
        Turker(mturk, "A1ALICE").work()
        wait_until(lambda: len(run.df) == 1, "the submission")
    finally:
        run.stop()


def test_mturk_failing_a_publish_mid_run_gets_the_hit_made_at_a_later_sync(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(max_num_concurrent_units=1)
    assert len(mturk.hits()) == 1
    mturk.fail("CreateHITWithHITType", "500", times=4)  # every retry of the next publish fails
    Turker(mturk, "A1ALICE").work()
    wait_until(lambda: states(run, "hit") == ["active", "active"], "the second unit's HIT, made by a sync")
    assert mturk.count("CreateHITWithHITType") == 6 and len(mturk.hits()) == 2
    Turker(mturk, "A2BOB").work()
    wait_until(lambda: len(run.df) == 2, "both submissions")


@pytest.mark.parametrize("fault", ["500", "timeout"])
def test_approve_failures_are_retried_and_approve_once(on_mturk: Any, mturk: FakeMTurk, fault: str) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    balance = mturk.requester.balance
    mturk.fail("ApproveAssignment", fault, delay=SLOW)
    assert run.approve([unit_of(run, "A1ALICE")]) == 1
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved"
    assert float(balance - mturk.requester.balance) == pytest.approx(0.60)  # $0.50 + 20 %, once
    assert mturk.count("ApproveAssignment") == (2 if fault == "500" else 1)  # the timed-out one was done


@pytest.mark.parametrize("fault", ["500", "throttle", "timeout"])
def test_bonus_failures_are_retried_and_pay_once(on_mturk: Any, mturk: FakeMTurk, fault: str) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    mturk.fail("SendBonus", fault, delay=SLOW)
    run.approve([unit_of(run, "A1ALICE")], bonus=0.75)
    assert [b["BonusAmount"] for b in mturk.bonuses()] == ["0.75"]
    assert [o.state for o in objects.listed(run.store, "mturk_sandbox", "bonus")] == ["paid"]


def test_a_bonus_mturk_paid_but_whose_answer_was_lost_is_paid_once_whatever_the_refusal_says(
    on_mturk: Any, mturk: FakeMTurk
) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    unit = unit_of(run, "A1ALICE")
    run.stop()  # no sync of a served run sends it meanwhile
    mturk.fail("SendBonus", "timeout", delay=SLOW)  # paid, the answer lost: the retry's token is refused
    assert run.bonus([unit], 0.75, "careful work") == 1  # no error: MTurk's ledger shows it paid
    assert bonuses(run) == ["paid"] and mturk.count("ListBonusPayments") == 1
    assert run.bonus([unit], 0.75, "careful work") == 0
    assert [b["BonusAmount"] for b in mturk.bonuses()] == ["0.75"]


def test_settle_reports_a_bonus_paid_when_its_resend_is_refused(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    unit = unit_of(run, "A1ALICE")
    run.stop()
    mturk.fail("SendBonus", "timeout", delay=SLOW)  # paid, the answer lost …
    mturk.fail("SendBonus", "500", times=3)  # … and every retry fails: crowdnb cannot tell yet
    with pytest.raises(ProviderError, match="sent again"):
        run.bonus([unit], 0.5, "thanks")
    assert bonuses(run) == ["requested"]
    mturk.healthy()
    assert run.provider_client().settle() == 1  # the resend is refused; the ledger says paid
    # so a requester has no reason to pay it again under a new key: one payment in MTurk's ledger
    assert bonuses(run) == ["paid"] and len(mturk.bonuses("A1ALICE")) == 1


def test_a_real_refusal_of_a_second_equal_bonus_is_not_taken_for_the_first(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    unit = unit_of(run, "A1ALICE")
    assert run.bonus([unit], 0.5, "thanks") == 1
    mturk.requester.balance = Decimal("0.10")  # the next one is refused for lack of funds
    with pytest.raises(ProviderError, match="insufficient funds"):
        run.bonus([unit], 0.5, "thanks", key="once more")
    assert bonuses(run) == ["failed", "paid"] and len(mturk.bonuses()) == 1
    assert mturk.count("ListBonusPayments") == 1  # read once, and it listed only the first


def test_mturk_down_during_review_is_sent_when_it_is_back(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice, bob = Turker(mturk, "A1ALICE"), Turker(mturk, "A2BOB")
    alice.work()
    bob.work()
    mturk.fail("ApproveAssignment", "500", times=10**6)  # down: the run's own syncs keep trying too
    with pytest.raises(ProviderError, match="sent again"):
        run.approve([unit_of(run, "A1ALICE")])
    assert run.df.set_index("worker").loc["A1ALICE", "status"] == "accepted"  # the decision is kept
    mturk.fail("SendBonus", "500", times=10**6)
    with pytest.raises(ProviderError, match="sent again"):
        run.bonus([unit_of(run, "A2BOB")], 1.0, "extra")
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Submitted" and mturk.bonuses() == []
    mturk.healthy()
    # the served run's next sync sends both
    wait_until(lambda: mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved", "the approval sent")
    wait_until(lambda: len(mturk.bonuses()) == 1, "the bonus sent")
    run.stop()
    assert len(mturk.bonuses("A2BOB")) == 1


def test_review_after_the_run_stopped_is_sent_by_the_cleanup(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    run.stop()
    mturk.fail("RejectAssignment", "500", times=100)
    with pytest.raises(ProviderError, match="crowdnb mturk cleanup"):
        run.reject([unit_of(run, "A1ALICE")], note="Off topic")
    mturk.healthy()
    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", str(run.project.root)])
    assert out.exit_code == 0, out.output
    assert "1 unsent calls sent" in out.output
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Rejected"


def test_qualifications_and_blocks_while_mturk_is_down_reach_it_later(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project
) -> None:
    run = on_mturk()
    run.stop()
    for operation in ("AssociateQualificationWithWorker", "CreateWorkerBlock"):
        mturk.fail(operation, "500", times=100)
    with pytest.raises(ProviderError, match="sent again"):
        cn.grant("A1ALICE", "careful", 3, provider="mturk_sandbox", project=project)
    with pytest.raises(ProviderError, match="sent again"):
        cn.block("A2MALLORY", "spam", provider="mturk_sandbox", project=project)
    assert mturk.score("careful", "A1ALICE") is None and mturk.requester.blocks == {}
    mturk.healthy()
    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", str(project.root)])
    assert "2 unsent calls sent" in out.output, out.output
    assert mturk.score("careful", "A1ALICE") == 3 and mturk.requester.blocks == {"A2MALLORY": "spam"}
    assert len(mturk.requester.qualification_types) == 1


def _script(body: str) -> str:
    return "import sys, time\nimport crowdnb as cn\nproject = cn.open(sys.argv[1])\n" + body


def test_a_crash_after_mturk_paid_a_bonus_never_pays_it_again(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project
) -> None:
    run = on_mturk(options={"timeout": 20})  # the killed process would wait 20 s for SendBonus's answer
    Turker(mturk, "A1ALICE").work()
    unit = unit_of(run, "A1ALICE")
    run.stop()
    mturk.fail("SendBonus", "timeout", delay=60)  # paid at once, answered never (in time)
    code = _script(f"project.runs[{run.id}].bonus([{unit}], 2.0, 'great work')\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(project.root)])
    try:
        wait_until(lambda: len(mturk.bonuses()) == 1, "MTurk to pay the bonus", timeout=30)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (intent,) = objects.listed(project.store, "mturk_sandbox", "bonus")
    assert intent.state == "requested"  # the crash came before crowdnb heard back
    mturk.healthy()
    again = cn.open(project.root).runs[run.id]
    assert again.bonus([unit], 2.0, "great work") == 0  # crowdnb's own record: already decided
    assert again.provider_client().settle() == 1  # sent again with the same token: MTurk says paid
    assert len(mturk.bonuses()) == 1
    assert [o.state for o in objects.listed(project.store, "mturk_sandbox", "bonus")] == ["paid"]


def test_an_unsent_bonus_older_than_the_token_is_checked_before_paying(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    run.stop()  # no sync of a served run sends it meanwhile
    mturk.fail("SendBonus", "timeout", delay=SLOW)  # paid, but the answer comes too late …
    mturk.fail("SendBonus", "500", times=3)  # … and every retry fails
    with pytest.raises(ProviderError, match="sent again"):
        run.bonus([unit_of(run, "A1ALICE")], 0.5, "thanks")
    (intent,) = objects.listed(run.store, "mturk_sandbox", "bonus")
    assert intent.state == "requested" and len(mturk.bonuses()) == 1
    # a day later MTurk has forgotten the token: only its payment list can tell
    day_ago = (datetime.now(UTC) - timedelta(hours=25)).isoformat()
    objects.set_state(run.store, "mturk_sandbox", "bonus", intent.key, "requested", since=day_ago)
    mturk.advance(25 * 3600)
    mturk.healthy()
    assert run.provider_client().settle() == 1
    assert len(mturk.bonuses()) == 1 and mturk.count("ListBonusPayments") == 1


def _crashed_run(project: cn.Project) -> int:
    """A run of two units launched on the fake MTurk by another process, then killed (SIGKILL); its id."""
    code = _script(
        "task = cn.Task('crash', title='T', reward=0.5, html='<input name=a>', data=[{'x': 1}, {'x': 2}], project=project)\n"
        f"run = task.launch(provider='mturk_sandbox', provider_options={FAST!r})\n"
        "print(run.id, flush=True)\ntime.sleep(120)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code, str(project.root)], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            return int(child.stdout.readline())
        finally:
            child.send_signal(signal.SIGKILL)  # the process dies without stopping its run
            child.wait()


def test_cleanup_disposes_of_hits_a_crashed_run_left(on_mturk: Any, mturk: FakeMTurk, project: cn.Project) -> None:
    run_id = _crashed_run(project)
    assert len(mturk.hits()) == 2
    # a HIT the crash made but never remembered, found by this project's annotation
    tag = objects.recall(project.store, "mturk_sandbox", "project", "tag")
    assert tag is not None
    client = boto3.client("mturk", endpoint_url=mturk.url, region_name="us-east-1")
    hit_type = mturk.hits()[0]["HITTypeId"]
    client.create_hit_with_hit_type(
        HITTypeId=hit_type, LifetimeInSeconds=600, Question=mturk.hits()[0]["Question"],
        RequesterAnnotation=f"crowdnb:{tag.remote_id}:run:{run_id}:unit:999",
    )  # fmt: skip
    home = str(project.root)
    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", home])
    assert f"run(s) {run_id} still marked running" in out.output and len(mturk.hits()) == 3
    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", home, "--run", str(run_id)])
    assert out.exit_code == 0, out.output
    assert "3 HITs disposed" in out.output and "1 found only by annotation" in out.output
    assert mturk.hits() == [] and cn.open(project.root).runs[run_id].state == "stopped"


def test_no_secret_reaches_the_project_or_the_log(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cn.register("mturk", aws_access_key_id="AKIAEXAMPLEKEY", aws_secret_access_key="wJalr-secret-value")
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    run.approve([unit_of(run, "A1ALICE")], bonus=0.1)
    run.stop()
    database = b"".join(p.read_bytes() for p in project.root.glob("crowdnb.db*"))
    assert b"wJalr-secret-value" not in database and b"AKIAEXAMPLEKEY" not in database
    assert os.environ["CROWDNB_CONFIG"].startswith(str(tmp_path))
    assert "wJalr-secret-value" not in caplog.text
    assert not any("A1ALICE" in r.getMessage() for r in caplog.records if r.name.startswith("crowdnb"))


def test_a_run_whose_process_was_killed_resumes_on_its_hits(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project
) -> None:
    run_id = _crashed_run(project)
    before = {h["HITId"] for h in mturk.hits()}
    run = cn.open(project.root).runs[run_id].resume()
    try:
        assert {h["HITId"] for h in mturk.hits()} == before  # the live HITs still lead to the run: none made twice
        alice = Turker(mturk, "A1ALICE")
        alice.accept()
        assert alice.open().json()["status"] == "assigned"
        alice.post_back(alice.submit({"a": "done"}))
        assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Submitted"
    finally:
        run.stop()


def test_a_worker_passing_onboarding_while_mturk_is_down_is_not_shown_an_error(
    on_mturk: Any, mturk: FakeMTurk, project: cn.Project
) -> None:
    test = cn.Onboarding(html='<input name="answer">', data={}, expected={"answer": "ready"})
    run = on_mturk(onboarding=test)
    mturk.fail("AssociateQualificationWithWorker", "500", times=100)
    mturk.fail("CreateQualificationType", "500", times=100)
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    entry = alice.open()
    assert entry.json()["status"] == "onboarding"
    body = {"token": alice.unit["token"], "submission_id": "onboard-1", "answers": {"answer": "ready"}}
    reply = alice.http.post(run.url + "submit", json=body, timeout=10)
    assert reply.status_code == 200, reply.text  # the pass is kept here; MTurk hears of it later
    assert cn.open(project.root).worker("A1ALICE", provider="mturk_sandbox").qualifications == {"turk-onboarded": 1}
    assert alice.open().json()["status"] == "assigned"  # crowdnb enforces it itself meanwhile
    mturk.healthy()
    run.stop()
    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", str(project.root)])
    assert out.exit_code == 0, out.output
    wait_until(lambda: mturk.score("turk-onboarded", "A1ALICE") == 1, "the pass pushed down once MTurk is back")
