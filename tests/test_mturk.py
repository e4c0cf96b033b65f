"""The MTurk provider end to end against the mturk MTurk endpoint (a real HTTP server boto3 talks to).

Workers act as on MTurk: they accept a HIT on the mturk worker site, open the run's URL with MTurk's
parameters over real HTTP, submit to the router and post the assignment back to externalSubmit.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.errors import ConfigError, ProviderError
from crowdnb.providers import objects
from crowdnb.testing.mturk import FakeMTurk
from crowdnb.testing.mturk_state import TurkError

from .conftest import FORM, wait_until
from .turkers import FAST, ROWS, Turker, unit_of


# --- setting up and publishing ---------------------------------------------------------------------
def test_launch_makes_a_hit_type_and_one_hit_per_unit(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(max_num_concurrent_units=2)
    hits = mturk.hits()
    assert len(hits) == 2  # max_num_concurrent_units: the third unit waits
    hit = hits[0]
    assert (hit["Title"], hit["Description"], hit["Reward"]) == ("Sentiment", "Read a sentence.", "0.50")
    assert hit["Keywords"] == "sentiment, text"
    assert hit["AssignmentDurationInSeconds"] == 1800 and hit["AutoApprovalDelayInSeconds"] == 7 * 86400
    assert hit["MaxAssignments"] == 1 and run.url in hit["Question"]
    assert hit["RequesterAnnotation"].startswith("crowdnb:") and ":run:" in hit["RequesterAnnotation"]
    assert len({h["HITTypeId"] for h in hits}) == 1
    Turker(mturk, "A1ALICE").work()
    # MTurk has the HIT a moment before crowdnb records its id: wait for crowdnb's record
    wait_until(
        lambda: len(objects.listed(run.store, "mturk_sandbox", "hit", task_run_id=run.id, state="active")) == 3,
        "a HIT for the third unit once one was done, recorded",
    )
    stored = objects.listed(run.store, "mturk_sandbox", "hit", task_run_id=run.id)
    assert {o.remote_id for o in stored} == {h["HITId"] for h in mturk.hits()}


def test_an_http_router_is_refused_before_anything_is_made(project: cn.Project, mturk: FakeMTurk) -> None:
    task = cn.Task("turk", title="T", reward=0.5, html=FORM, data=ROWS, project=project)
    with pytest.raises(ConfigError, match="HTTPS"):
        task.launch(provider="mturk_sandbox", provider_options={"retry_delay": 0.01})
    assert mturk.calls == []


def test_keys_are_never_taken_from_provider_options(project: cn.Project, mturk: FakeMTurk) -> None:
    task = cn.Task("turk", title="T", reward=0.5, html=FORM, data=ROWS, project=project)
    with pytest.raises(ConfigError, match="crowdnb register mturk"):
        task.launch(provider="mturk_sandbox", provider_options={**FAST, "aws_secret_access_key": "s3cret"})
    assert not project.runs  # nothing stored: the key never reached the database
    assert b"s3cret" not in (project.root / "crowdnb.db").read_bytes()


def test_live_mturk_wants_the_maximum_cost_confirmed(on_mturk: Any, project: cn.Project, mturk: FakeMTurk) -> None:
    with pytest.raises(ConfigError, match=r"may cost up to \$1\.80 .*confirm_spend': 1\.80"):
        on_mturk(provider="mturk")  # 3 units × ($0.50 + 20 %)
    assert mturk.count("CreateHITType") == 0
    with pytest.raises(ConfigError, match=r"\$1\.80"):
        on_mturk(provider="mturk", options={"confirm_spend": 1.0})
    run = on_mturk(provider="mturk", options={"confirm_spend": 1.80})
    assert len(mturk.hits()) == 3 and run.provider_client().fee_rate == 0.2


def test_preview_then_a_worker_completes_a_unit_posted_back_to_mturk(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    preview = requests.get(mturk.preview_url(), headers={"Accept": "application/json"}, timeout=10)
    assert preview.json()["status"] == "preview"
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    assert alice.open().json()["status"] == "assigned"
    completion = alice.submit({"label": "pos"})
    assert completion["kind"] == "form_post"
    assert completion["url"] == f"{mturk.url}/mturk/externalSubmit"
    assert completion["fields"]["assignmentId"] == alice.assignment
    assert alice.post_back(completion).status_code == 200
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Submitted"
    frame = run.df
    assert list(frame["worker"]) == ["A1ALICE"] and list(frame["label"]) == ["pos"]
    agent = json.loads(run.store.scalar("SELECT external FROM agents"))
    assert agent == {"assignmentId": alice.assignment, "hitId": agent["hitId"], "turkSubmitTo": mturk.url}


def test_the_post_back_names_the_submission_so_mturk_takes_it(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    alice.open()
    # what MTurk does with a form of assignmentId alone: refused, the assignment stays Accepted (never paid)
    alone = requests.post(f"{mturk.url}/mturk/externalSubmit", data={"assignmentId": alice.assignment}, timeout=10)
    assert alone.status_code == 400 and mturk.assignment(alice.assignment)["AssignmentStatus"] == "Accepted"
    assert alice.post_back(alice.submit({"label": "pos"})).status_code == 200
    posted = {"assignmentId": alice.assignment, "crowdnb_submission_id": f"sub-{alice.assignment}"}
    assert mturk.submits[-1] == posted  # what MTurk received: crowdnb's submission id beside the assignment
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Submitted"
    run.approve([unit_of(run, "A1ALICE")])
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved"


def test_a_page_without_mturk_ids_is_refused(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    bad = requests.get(run.url + "?assignmentId=X1&workerId=A1&hitId=../x", timeout=10)
    assert bad.status_code == 400 and "hitId" in bad.text
    elsewhere = requests.get(
        run.url + "?assignmentId=X1&workerId=A1&hitId=H1&turkSubmitTo=https://evil.example", timeout=10
    )
    assert elsewhere.status_code == 400 and "turkSubmitTo" in elsewhere.text


# --- review and money ------------------------------------------------------------------------------
def test_approve_with_a_bonus_pays_once(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    worker = Turker(mturk, "A1ALICE")
    worker.work()
    unit = unit_of(run, "A1ALICE")
    assert run.approve([unit], note="Great", bonus=0.25) == 1
    alice = mturk.assignment(worker.assignment)
    assert alice["AssignmentStatus"] == "Approved" and alice["RequesterFeedback"] == "Great"
    assert [b["BonusAmount"] for b in mturk.bonuses("A1ALICE")] == ["0.25"]
    assert run.approve([unit], bonus=0.25) == 0  # the same decision and bonus again: nothing moves
    provider = run.provider_client()
    token = run.store.scalar("SELECT key FROM reviews WHERE action = 'bonus'")
    provider.bonus("A1ALICE", 0.25, "Thank you for your careful work.", token)  # a retry with the same token
    assert len(mturk.bonuses()) == 1 and mturk.count("ApproveAssignment") == 1


def test_reject_then_approve_overrides_the_rejection(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    unit = unit_of(run, "A1ALICE")
    run.reject([unit], note="Off topic")
    rejected = mturk.assignment(alice.assignment)
    assert rejected["AssignmentStatus"] == "Rejected" and rejected["RequesterFeedback"] == "Off topic"
    run.approve([unit])
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved"


def test_soft_reject_pays_on_mturk(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    run.soft_reject([unit_of(run, "A1ALICE")])
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved"
    assert run.df.loc[0, "status"] == "soft_rejected"


def test_bonus_outside_a_unit_goes_against_the_workers_latest_assignment(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    assert cn.bonus("A1ALICE", 1.5, "make-up", provider="mturk_sandbox", project=run.project)
    assert mturk.bonuses("A1ALICE")[0]["AssignmentId"] == alice.assignment
    with pytest.raises(ProviderError, match="against an assignment"):
        cn.bonus("A9NOBODY", 1.0, "never worked", provider="mturk_sandbox", project=run.project)


def test_message_block_and_unblock(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    cn.message("A1ALICE", "Thanks for the careful work!", provider="mturk_sandbox", project=run.project)
    assert mturk.requester.messages[0]["MessageText"] == "Thanks for the careful work!"
    with pytest.raises(ProviderError, match="has not worked"):
        cn.message("A9NOBODY", "hello", provider="mturk_sandbox", project=run.project)
    cn.block("A2MALLORY", "spam", provider="mturk_sandbox", project=run.project)
    assert mturk.requester.blocks == {"A2MALLORY": "spam"}
    with pytest.raises(TurkError, match="blocked"):
        mturk.accept("A2MALLORY")
    cn.unblock("A2MALLORY", provider="mturk_sandbox", project=run.project)
    assert mturk.requester.blocks == {}
    mturk.accept("A2MALLORY")


# --- qualifications --------------------------------------------------------------------------------
def test_requirements_are_pushed_down_with_mturk_system_qualifications(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(
        qualifications=[
            cn.requirement("english", "GreaterThanOrEqualTo", 3),
            cn.requirement("mturk:approval_rate", "GreaterThanOrEqualTo", 95),
            cn.requirement("mturk:locale", "In", ["US", "CA-QC"]),
            cn.requirement("mturk:masters", "DoesNotExist"),
        ]
    )
    wanted = mturk.hits()[0]["QualificationRequirements"]
    by_type = {q["QualificationTypeId"]: q for q in wanted}
    assert by_type["000000000000000000L0"]["IntegerValues"] == [95]
    assert by_type["00000000000000000071"]["LocaleValues"] == [
        {"Country": "US"},
        {"Country": "CA", "Subdivision": "QC"},
    ]
    assert by_type["2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"]["Comparator"] == "DoesNotExist"  # the sandbox's Masters
    (english,) = [mturk.requester.qualification_types[t] for t in by_type if t in mturk.requester.qualification_types]
    assert english["Name"] == "english" and by_type[english["QualificationTypeId"]]["IntegerValues"] == [3]
    assert all(q["ActionsGuarded"] == "DiscoverPreviewAndAccept" for q in wanted)
    assert len(wanted) == 4  # the block list every task has is MTurk's own worker block, not a qualification
    with pytest.raises(TurkError, match="qualification"):
        mturk.accept("A1ALICE")  # no english yet
    for worker in ("A2BOB", "A3CAROL", "A4DAVE"):
        cn.grant(worker, "english", 3, provider="mturk_sandbox", project=run.project)
    mturk.profile("A2BOB", approval_rate=80)
    with pytest.raises(TurkError, match="000000000000000000L0"):
        mturk.accept("A2BOB")
    mturk.profile("A3CAROL", locale=("FR", None))
    with pytest.raises(TurkError, match="00000000000000000071"):
        mturk.accept("A3CAROL")
    mturk.profile("A4DAVE", locale=("CA", "QC"))
    mturk.accept("A4DAVE")


def test_a_granted_qualification_lets_the_worker_take_the_hit(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(qualifications=[cn.requirement("english", "GreaterThanOrEqualTo", 3)])
    with pytest.raises(TurkError, match="qualification"):
        mturk.accept("A1ALICE")
    cn.grant("A1ALICE", "english", 4, provider="mturk_sandbox", project=run.project)
    assert mturk.score("english", "A1ALICE") == 4
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    assert alice.open().json()["status"] == "assigned"
    cn.revoke("A1ALICE", "english", provider="mturk_sandbox", project=run.project)
    assert mturk.score("english", "A1ALICE") is None
    assert len(mturk.requester.qualification_types) == 1  # found by name, never made twice


def test_mturk_requirements_are_checked_when_written_and_ignored_elsewhere(make_run: Any) -> None:
    with pytest.raises(ConfigError, match="not an MTurk system qualification"):
        cn.requirement("mturk:karma", "Exists")
    with pytest.raises(ConfigError, match="country code"):
        cn.requirement("mturk:locale", "In", ["usa"])
    with pytest.raises(ConfigError, match="0 to 100"):
        cn.requirement("mturk:approval_rate", "GreaterThan", 101)
    with pytest.raises(ConfigError, match="kept by mturk"):
        cn.grant("A1", "mturk:approval_rate", 99)
    # on another crowd an MTurk qualification does not apply: crowdnb cannot see it
    run = make_run(qualifications=[cn.requirement("mturk:approval_rate", "GreaterThanOrEqualTo", 95)])
    assert requests.get(run.worker_url("bob"), headers={"Accept": "application/json"}, timeout=10).status_code == 200


# --- returns, abandons, a second HIT -----------------------------------------------------------------
def test_returned_and_abandoned_units_are_offered_again(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(data=ROWS[:1])
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    alice.open()
    assert run.counts["assigned"] == 1
    mturk.return_assignment(alice.assignment)
    wait_until(lambda: run.counts["launched"] == 1, "the returned unit offered again")
    bob = Turker(mturk, "A2BOB")
    bob.accept()
    assert bob.open().json()["status"] == "assigned"
    mturk.abandon(bob.assignment)
    wait_until(lambda: run.counts["launched"] == 1, "the abandoned unit offered again")
    statuses = [r["status"] for r in run.store.query("SELECT status FROM agents ORDER BY id")]
    assert statuses == ["returned", "returned"]
    carol = Turker(mturk, "A3CAROL")
    carol.work()
    assert list(run.df["worker"]) == ["A3CAROL"] and len(mturk.hits()) == 1


def test_a_worker_who_took_another_hit_is_paid_on_the_one_they_hold(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    first = alice.accept()
    alice.open()
    mturk.return_assignment(first)
    second = alice.accept()  # MTurk hands out another HIT of the group
    assert alice.open().json()["resumed"] is True  # the same unit back …
    completion = alice.submit({"label": "neg"})
    assert completion["fields"]["assignmentId"] == second  # … posted back on the assignment held now
    alice.post_back(completion)
    run.approve([unit_of(run, "A1ALICE")])
    assert mturk.assignment(second)["AssignmentStatus"] == "Approved"


def test_a_submit_straight_to_mturk_without_answers_reoffers_the_unit(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk(data=ROWS[:1])
    mallory = Turker(mturk, "A6MALLORY")
    mallory.accept()
    mallory.open()
    mturk.submit(mallory.assignment, {"anything": "x"})  # posted to externalSubmit by hand: crowdnb has nothing
    wait_until(lambda: run.counts["launched"] == 1, "the unit offered again")
    wait_until(lambda: any(h["HITStatus"] == "Assignable" for h in mturk.hits()), "a replacement HIT")
    Turker(mturk, "A2BOB").work()
    assert list(run.df["worker"]) == ["A2BOB"]


# --- stopping, cleaning up ------------------------------------------------------------------------
def test_stop_expires_and_disposes_hits_keeping_those_awaiting_review(on_mturk: Any, mturk: FakeMTurk) -> None:
    run = on_mturk()
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    run.stop()
    left = mturk.hits()
    assert [h["HITId"] for h in left] == [mturk.assignment(alice.assignment)["HITId"]]  # awaiting review
    states = sorted(o.state for o in objects.listed(run.store, "mturk_sandbox", "hit", task_run_id=run.id))
    assert states == ["disposed", "disposed", "pending"]
    run.approve([unit_of(run, "A1ALICE")])
    from click.testing import CliRunner

    from crowdnb.cli import cli

    out = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", str(run.project.root)])
    assert out.exit_code == 0, out.output
    assert "1 HITs disposed" in out.output and mturk.hits() == []


def test_resume_after_a_stop_offers_the_units_again(on_mturk: Any, mturk: FakeMTurk, project: cn.Project) -> None:
    run = on_mturk()
    Turker(mturk, "A1ALICE").work()
    run.stop()
    again = cn.open(project.root).runs[run.id].resume()
    try:
        assert again.counts["launched"] == 2
        assert sum(h["HITStatus"] == "Assignable" for h in mturk.hits()) == 2
        Turker(mturk, "A2BOB").work()
        assert sorted(again.df["worker"]) == ["A1ALICE", "A2BOB"]
    finally:
        again.stop()


def test_the_provider_keeps_the_protocol_and_calls_mturk_only_when_used(project: cn.Project, mturk: FakeMTurk) -> None:
    from crowdnb.providers import Provider, create

    provider = create("mturk", project.store)
    assert isinstance(provider, Provider) and provider.fee_rate == 0.2 and provider.poll_seconds == 30
    assert provider.identify({"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "H1"}) is None
    assert mturk.calls == []  # made from stored options for run.spend or review: no network until a call


def test_an_unreachable_mturk_is_a_transient_provider_error(project: cn.Project, mturk: FakeMTurk) -> None:
    from crowdnb.providers import create

    provider = create("mturk_sandbox", project.store, endpoint_url="http://127.0.0.1:9", retry_delay=0.01)
    with pytest.raises(ProviderError, match=r"no answer from http://127\.0\.0\.1:9") as caught:
        provider.block("A1ALICE", "spam")
    assert caught.value.transient and caught.value.platform == "MTurk"
    assert [o.state for o in objects.listed(project.store, "mturk_sandbox", "block")] == ["requested"]
