"""The Prolific provider against a real local fake of Prolific's REST API (crowdnb.testing.prolific).

Participants are real HTTP clients: they take a place on the fake, open the study link (the fake fills in
the placeholders and sets its "logged in" cookie), work on the router, and follow the completion redirect
back to the fake. Faults are injected on the fake's endpoints, and crashes are real SIGKILLed processes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.errors import ConfigError, ProviderError
from crowdnb.providers import Provider, create, objects
from crowdnb.providers.prolific import REJECTION, ProlificProvider, minor, rejection_message
from crowdnb.providers.prolific_api import ProlificAPI, Unreached
from crowdnb.testing.prolific import FakeProlific, Refused

from .conftest import SENTENCES, wait_until
from .prolifics import PLACEHOLDERS, TOKEN, Someone, study_of, unit_of


# --- set-up and places ---------------------------------------------------------------------------
def test_launch_creates_workspace_project_and_one_published_study(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    assert [w["title"] for w in fake.workspaces.values()] == ["crowdnb"]
    assert [p["title"] for p in fake.projects.values()] == ["rate"]
    study = study_of(fake)
    assert len(fake.studies) == 1 and len(fake.calls("POST", "studies/")) == 1
    assert study["external_study_url"] == f"{run.url}?{PLACEHOLDERS}"  # the docs' double-brace form
    assert study["reward"] == 100 and study["prolific_id_option"] == "url_parameters"
    assert study["status"] == "ACTIVE" and study["total_available_places"] == 3
    code = study["completion_codes"][0]
    assert code["code_type"] == "COMPLETED" and code["actions"] == [{"action": "MANUALLY_REVIEW"}]
    assert study["maximum_allowed_time"] == 30  # the task's 1800 s assignment duration
    assert run.provider_client().fee_rate == pytest.approx(0.428)


def test_places_are_added_as_units_launch(launch: Any, fake: FakeProlific) -> None:
    run = launch(data=SENTENCES[:4], max_num_concurrent_units=2)
    study = study_of(fake)
    assert study["total_available_places"] == 2 and run.counts["launched"] == 2
    Someone(fake, study).finish(run)
    wait_until(lambda: study["total_available_places"] == 3, "a third place after a unit was done")
    assert [c["json"] for c in fake.calls("PATCH", "studies/*/")][-1] == {"total_available_places": 3}


def test_resume_after_a_stop_makes_a_new_study_for_the_units_left(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    Someone(fake, study_of(fake)).finish(run)
    run.stop()
    first = study_of(fake)
    assert first["status"] in ("AWAITING REVIEW", "COMPLETED") and first["_stopped"]
    run.resume()
    assert len(fake.studies) == 2
    second = study_of(fake, 1)
    assert second["status"] == "ACTIVE" and second["total_available_places"] == 2  # the two expired units
    Someone(fake, second).finish(run)
    wait_until(lambda: len(run.df) == 2, "the second study's submission")


# --- the worker's side ---------------------------------------------------------------------------
def test_identify_reads_prolific_parameters_and_previews_without_them(fake: FakeProlific, project: cn.Project) -> None:
    provider = ProlificProvider(project.store)
    assert isinstance(provider, Provider)
    who = provider.identify({"PROLIFIC_PID": "p1", "STUDY_ID": "s1", "SESSION_ID": "x1"})
    assert who is not None and who.worker == "p1" and who.external == {"study_id": "s1", "session_id": "x1"}
    assert provider.identify({}) is None
    assert provider.identify({"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}) is None  # Prolific's own preview


def test_preview_and_a_participant_working_through_the_study(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    preview = requests.get(run.url, headers={"Accept": "application/json"}, timeout=10)
    assert preview.json()["status"] == "preview"
    ann = Someone(fake, study_of(fake))
    assert fake.submissions[ann.session]["status"] == "RESERVED"
    ann.finish(run)
    assert fake.submissions[ann.session]["status"] == "AWAITING REVIEW"
    assert fake.completions == [(ann.session, study_of(fake)["completion_codes"][0]["code"])]
    frame = run.df
    assert list(frame["worker"]) == [ann.id] and frame.loc[0, "label"] == "pos"


def test_returned_and_timed_out_units_are_offered_again(launch: Any, fake: FakeProlific) -> None:
    run = launch(data=SENTENCES[:1])
    study = study_of(fake)
    ann = Someone(fake, study)
    ann.open()
    assert run.counts["assigned"] == 1
    fake.return_(ann.session)
    wait_until(lambda: run.counts["launched"] == 1, "the returned unit offered again")
    bob = Someone(fake, study)  # the returned place is free on Prolific too
    bob.open()
    fake.time_out(bob.session)
    wait_until(lambda: run.counts["launched"] == 1, "the timed-out unit offered again")
    statuses = run.store.query("SELECT status FROM agents ORDER BY started_at")
    assert [r["status"] for r in statuses] == ["returned", "timeout"]
    Someone(fake, study).finish(run)
    wait_until(lambda: run.counts["completed"] == 1, "the third participant's submission")


# --- review and money ----------------------------------------------------------------------------
def test_approve_reject_and_soft_reject_move_submissions(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    people = [Someone(fake, study_of(fake)) for _ in range(3)]
    for person in people:
        person.finish(run)
    ann, bob, cid = people
    run.approve([unit_of(run, ann.id)])
    run.reject([unit_of(run, bob.id)], note="Answers were random.")
    run.soft_reject([unit_of(run, cid.id)])
    assert [fake.submissions[p.session]["status"] for p in people] == ["APPROVED", "REJECTED", "APPROVED"]
    reject = next(c["json"] for c in fake.calls("POST", "submissions/*/transition/") if c["json"]["action"] == "REJECT")
    assert reject["message"] == f"Answers were random. {REJECTION}" and len(reject["message"]) >= 100
    assert reject["rejection_category"] == "LOW_EFFORT"
    run.approve([unit_of(run, ann.id)])  # approving again changes nothing anywhere
    assert len([c for c in fake.calls("POST", "submissions/*/transition/") if c["json"]["action"] == "APPROVE"]) == 2


def test_approving_before_prolific_has_the_submission_says_why(launch: Any, fake: FakeProlific) -> None:
    run = launch(data=SENTENCES[:1])
    ann = Someone(fake, study_of(fake))
    ann.open()
    ann.submit(run)  # saved in crowdnb, but the participant never went back to Prolific
    with pytest.raises(ProviderError, match="ACTIVE; only one awaiting review"):
        run.approve([unit_of(run, ann.id)])


def test_a_page_opened_without_the_session_is_still_reviewed(launch: Any, fake: FakeProlific) -> None:
    run = launch(data=SENTENCES[:1])
    ann = Someone(fake, study_of(fake))
    ann.http.get(ann.place.link, timeout=10, allow_redirects=False)  # Prolific's cookie, not its link
    unit = ann.http.get(f"{run.url}?PROLIFIC_PID={ann.id}", timeout=10).json()  # a hand-made link
    ann.unit = unit
    fake.open(ann.session)
    ann.http.get(ann.submit(run)["url"], timeout=10)
    run.approve([unit_of(run, ann.id)], bonus=0.05)  # the submission is looked up by participant
    assert fake.submissions[ann.session]["status"] == "APPROVED" and fake.paid(ann.id) == [5]


def test_rejection_message_is_padded_to_prolific_minimum() -> None:
    assert len(REJECTION) >= 100 and rejection_message(None) == REJECTION
    long = "x" * 120
    assert rejection_message(long) == long
    assert rejection_message("  too\nshort ") == f"too short {REJECTION}"


def test_bonus_is_set_up_and_paid_once(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    unit = unit_of(run, ann.id)
    assert run.approve([unit], bonus=0.25) == 1
    assert run.bonus([unit], 0.25, "Thank you for your careful work.", key="with-approval") == 0
    assert fake.paid(ann.id) == [25] and fake.submissions[ann.session]["bonus_payments"] == [25]
    assert [c["json"]["csv_bonuses"] for c in fake.calls("POST", "submissions/bonus-payments/")] == [
        f"{ann.session},0.25"
    ]
    provider = run.provider_client()
    token = objects.listed(run.store, "prolific", "bonus")[0].key
    provider.bonus(ann.id, 0.25, "again", token, None)  # the provider itself refuses to pay a token twice
    assert fake.paid() == [25] and len(fake.calls("POST", "bulk-bonus-payments/*/pay/")) == 1
    assert cn.bonus(ann.id, 1.5, "a make-up payment", provider="prolific", project=run.project)
    assert fake.paid() == [25, 150]


def test_amounts_are_whole_cents() -> None:
    assert minor(1.0, "reward") == 100 and minor(0.07, "bonus") == 7 and minor(19.99, "bonus") == 1999
    with pytest.raises(ConfigError, match=r"0\.125 is not a whole number of cents"):
        minor(0.125, "bonus")


def test_the_fake_pays_again_on_every_pay_call(fake: FakeProlific) -> None:
    """The property the bonus ledger exists for: Prolific's pay call is not idempotent."""
    api = ProlificAPI(TOKEN, fake.base_url)
    ws = api.post("workspaces/", {"title": "w"})["id"]
    project = api.post(f"workspaces/{ws}/projects/", {"title": "p"})["id"]
    body = {"name": "n", "description": "d", "external_study_url": f"https://x.invalid/?{PLACEHOLDERS}",
            "estimated_completion_time": 5, "reward": 100, "total_available_places": 1, "project": project,
            "prolific_id_option": "url_parameters",
            "completion_codes": [{"code": "C1", "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}]}  # fmt: skip
    study = api.post("studies/", body)["id"]
    api.post(f"studies/{study}/transition/", {"action": "PUBLISH"})
    someone = fake.take_part(study)
    setup = api.post("submissions/bonus-payments/", {"study_id": study, "csv_bonuses": f"{someone.id},1.00"})
    api.post(f"bulk-bonus-payments/{setup['id']}/pay/")
    api.post(f"bulk-bonus-payments/{setup['id']}/pay/")
    assert fake.paid(someone.id) == [100, 100]


def test_message_reaches_the_participant(launch: Any, fake: FakeProlific) -> None:
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    cn.message(ann.id, "Thanks! More tasks tomorrow.", provider="prolific", project=run.project)
    assert fake.messages[0]["recipient_id"] == ann.id and fake.messages[0]["study_id"] == study_of(fake)["id"]
    with pytest.raises(ConfigError, match="no Prolific submission crowdnb knows"):
        cn.message("0" * 24, "hello", provider="prolific", project=run.project)


# --- eligibility ---------------------------------------------------------------------------------
def test_qualifications_are_pushed_down_as_a_participant_group(
    launch: Any, fake: FakeProlific, project: cn.Project
) -> None:
    cn.grant("a" * 24, "trusted", provider="prolific", project=project)
    run = launch(qualifications=[cn.requirement("trusted", "Exists")])
    study = study_of(fake)
    allow = next(f for f in study["filters"] if f["filter_id"] == "participant_group_allowlist")
    (group,) = allow["selected_values"]
    assert fake.group_members(group) == {"a" * 24}
    with pytest.raises(Refused, match="not eligible"):
        fake.take_part(study["id"], "b" * 24)
    cn.grant("b" * 24, "trusted", provider="prolific", project=project)  # granted during the run: pushed down
    assert fake.group_members(group) == {"a" * 24, "b" * 24}
    Someone(fake, study, "b" * 24).finish(run)
    cn.revoke("a" * 24, "trusted", provider="prolific", project=project)
    assert fake.group_members(group) == {"b" * 24}
    run.stop()
    assert fake.groups[group]["is_deleted"]  # the run's group is cleaned up; the block list stays
    assert [g["name"] for g in fake.groups.values() if not g["is_deleted"]] == ["crowdnb block list"]


def test_must_not_have_requirements_become_an_exclude_group(
    launch: Any, fake: FakeProlific, project: cn.Project
) -> None:
    cn.grant("d" * 24, "spammer", provider="prolific", project=project)
    cn.grant("e" * 24, "fluent", provider="prolific", project=project)
    launch(qualifications=[cn.block_list("spammer")])
    study = study_of(fake)
    assert not [f for f in study["filters"] if f["filter_id"] == "participant_group_allowlist"]
    (block, exclude) = next(f for f in study["filters"] if f["filter_id"] == "participant_group_blocklist")[
        "selected_values"
    ]
    assert fake.group_members(exclude) == {"d" * 24} and fake.group_members(block) == set()
    with pytest.raises(Refused):
        fake.take_part(study["id"], "d" * 24)
    fake.take_part(study["id"], "e" * 24)  # known but not excluded
    fake.take_part(study["id"])  # a newcomer: "must not have" lets them in


def test_block_adds_to_the_block_list_every_study_uses(launch: Any, fake: FakeProlific, project: cn.Project) -> None:
    cn.block("c" * 24, "spam before any study", provider="prolific", project=project)
    run = launch()
    study = study_of(fake)
    block = next(f for f in study["filters"] if f["filter_id"] == "participant_group_blocklist")["selected_values"]
    (group,) = block
    assert fake.groups[group]["name"] == "crowdnb block list" and fake.group_members(group) == {"c" * 24}
    ann = Someone(fake, study)
    ann.finish(run)
    cn.block(ann.id, "copied answers", provider="prolific", project=project)
    assert fake.group_members(group) == {"c" * 24, ann.id}
    cn.unblock("c" * 24, provider="prolific", project=project)
    assert fake.group_members(group) == {ann.id}
    Someone(fake, study, "c" * 24).open()  # unblocked: may take part again
    with pytest.raises(Refused):
        fake.take_part(study["id"], ann.id)


def test_filters_pass_through_and_bad_options_are_refused(launch: Any, fake: FakeProlific, project: cn.Project) -> None:
    age = {"filter_id": "age", "selected_range": {"lower": 18, "upper": 40}}
    launch(options={"filters": [age], "workspace": "lab", "project": "pilot"})
    study = study_of(fake)
    assert age in study["filters"]
    assert [w["title"] for w in fake.workspaces.values()] == ["lab"]
    assert [p["title"] for p in fake.projects.values()] == ["pilot"]
    for options, message in [
        ({"api_token": "x"}, "would be stored with the run"),
        ({"colour": "red"}, "unknown Prolific option"),
        ({"rejection_category": "RUDE"}, "rejection_category 'RUDE'"),
        ({"filters": [{"age": 3}]}, r"filters\[0\]"),
        ({"fee_rate": 2}, "fee_rate=2"),
    ]:
        with pytest.raises(ConfigError, match=message):
            create("prolific", project.store, **options)


def test_a_bad_token_fails_before_anything_is_created(
    launch: Any, fake: FakeProlific, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROLIFIC_API_TOKEN", "wrong")
    with pytest.raises(ProviderError, match="GET users/me/ failed: HTTP 401: Invalid token"):
        launch()
    assert fake.studies == {} and fake.workspaces == {}
    monkeypatch.delenv("PROLIFIC_API_TOKEN")
    with pytest.raises(ConfigError, match="no Prolific API token"):
        launch()


def test_token_from_register_and_nothing_secret_in_the_project(
    launch: Any, fake: FakeProlific, project: cn.Project, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.delenv("PROLIFIC_API_TOKEN")
    cn.register("prolific", api_token=TOKEN, base_url=fake.base_url)
    caplog.set_level("DEBUG")
    run = launch()
    ann = Someone(fake, study_of(fake))
    ann.finish(run)
    run.approve([unit_of(run, ann.id)], bonus=0.1)
    run.stop()
    assert TOKEN not in json.dumps(run.config)
    for path in project.root.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the token is in {path}"
    assert TOKEN not in caplog.text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("crowdnb"))
    assert "Prolific" in ours and ann.id not in ours  # logged, but never a participant's full id


def test_platform_errors_name_the_call_and_say_whether_to_retry(fake: FakeProlific) -> None:
    api = ProlificAPI(TOKEN, fake.base_url, timeout=2)
    fake.fail("GET", "workspaces/", status=429)
    with pytest.raises(ProviderError) as throttled:
        api.get("workspaces/")
    assert throttled.value.transient and throttled.value.status == 429 and throttled.value.retry_after is None
    assert str(throttled.value) == "Prolific GET workspaces/ failed: HTTP 429: Too many requests: try again later"
    for header, seconds in (("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None)):
        fake.fail("GET", "workspaces/", status=429, retry_after=header)
        with pytest.raises(ProviderError) as asked:
            api.get("workspaces/")
        assert asked.value.retry_after == seconds, header
    with pytest.raises(ProviderError) as missing:
        api.get("studies/nope/")
    assert not missing.value.transient and "no study 'nope'" in missing.value.message
    closed = ProlificAPI(TOKEN, "http://127.0.0.1:1/api/v1/", timeout=2)
    with pytest.raises(Unreached) as refused:
        closed.post("bulk-bonus-payments/x/pay/")
    assert refused.value.transient and TOKEN not in str(refused.value)
