"""A project's platform settings (issue 13, item 11): an endpoint given only at launch is where every later
call goes — cn.grant/block/message/bonus, a Worker's verbs, the review app, a stopped run's review — not
the public endpoint (stood for here by a second fake, which must receive nothing)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

import crowdnb as cn
from crowdnb import providers
from crowdnb.cli import cli
from crowdnb.review.app import create_review_app
from crowdnb.testing.mturk import FakeMTurk
from crowdnb.testing.prolific import FakeProlific

from .conftest import FORM, SENTENCES
from .prolifics import TOKEN, Someone, study_of
from .turkers import FAST, ROWS, Turker, unit_of


@pytest.fixture
def public_mturk(mturk: FakeMTurk, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMTurk]:
    """Where boto3 goes unless told otherwise (the environment): stands for MTurk's public endpoint."""
    with FakeMTurk() as public:
        monkeypatch.setenv("AWS_ENDPOINT_URL_MTURK", public.url)
        yield public


def test_mturk_calls_after_a_launch_reach_the_endpoint_given_at_launch(
    project: cn.Project, mturk: FakeMTurk, public_mturk: FakeMTurk
) -> None:
    task = cn.Task("turk", title="T", description="D", reward=0.5, html=FORM, data=ROWS[:1], project=project)
    run = task.launch(provider="mturk_sandbox", provider_options={**FAST, "endpoint_url": mturk.url})
    alice = Turker(mturk, "A1ALICE")
    alice.work()
    run.stop()
    on = {"provider": "mturk_sandbox", "project": project}
    cn.grant("A1ALICE", "careful", 2, **on)
    cn.message("A1ALICE", "Thanks for the careful work.", **on)
    assert cn.bonus("A1ALICE", 0.25, "make-up", **on)
    cn.block("A1ALICE", "copied answers", **on)
    reopened = cn.open(project.root)  # another process: it reads the settings from the project
    reopened.worker("A1ALICE", "mturk_sandbox").unblock()
    reopened.runs[run.id].approve([unit_of(run, "A1ALICE")])
    review = create_review_app(reopened, TOKEN).test_client()
    reply = review.post("/api/workers/revoke", json={"worker": "A1ALICE", "provider": "mturk_sandbox",
                        "qualification": "careful"}, headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert mturk.score("careful", "A1ALICE") is None and mturk.requester.messages[0]["WorkerId"] == "A1ALICE"
    assert [b["BonusAmount"] for b in mturk.bonuses()] == ["0.25"] and mturk.requester.blocks == {}
    assert mturk.count("CreateWorkerBlock") == mturk.count("DeleteWorkerBlock") == 1
    assert mturk.assignment(alice.assignment)["AssignmentStatus"] == "Approved"
    cleanup = CliRunner().invoke(cli, ["mturk", "cleanup", "--sandbox", "--home", str(project.root)])
    assert cleanup.exit_code == 0, cleanup.output
    assert mturk.count("ListHITs") == 1 and public_mturk.calls == []
    # settings are per provider name: live MTurk was never launched here, so it keeps MTurk's own endpoint
    assert providers.settings.read(project.store, "mturk") == {}
    assert providers.settings.read(project.store, "mturk_sandbox")["endpoint_url"] == mturk.url


def test_a_launch_without_the_endpoint_goes_back_to_the_default_one(
    project: cn.Project, mturk: FakeMTurk, public_mturk: FakeMTurk
) -> None:
    task = cn.Task("turk", title="T", description="D", reward=0.5, html=FORM, data=ROWS[:1], project=project)
    task.launch(provider="mturk_sandbox", provider_options={**FAST, "endpoint_url": mturk.url}).stop()
    task.launch(provider="mturk_sandbox", provider_options=FAST).stop()  # the launch says where it runs
    assert "endpoint_url" not in providers.settings.read(project.store, "mturk_sandbox")
    assert mturk.count("CreateHITWithHITType") == public_mturk.count("CreateHITWithHITType") == 1
    assert mturk.hits() == public_mturk.hits() == []  # each run's HIT disposed of where it was made


def test_prolific_calls_after_a_launch_reach_the_base_url_given_at_launch(
    project: cn.Project, fake: FakeProlific
) -> None:
    with FakeProlific(token=TOKEN) as launched_at:  # ``fake`` is PROLIFIC_BASE_URL: the public API here
        task = cn.Task("rate", title="Rate", reward=1.0, html=FORM, data=SENTENCES[:1], project=project)
        options = {"base_url": launched_at.base_url, "completion_url": launched_at.completion_url,
                   "workspace": "lab", "poll_seconds": 0.1, "timeout": 2}  # fmt: skip
        run = task.launch(provider="prolific", provider_options=options)
        ann = Someone(launched_at, study_of(launched_at))
        ann.finish(run)
        run.stop()
        on = {"provider": "prolific", "project": project}
        cn.message(ann.id, "Thank you!", **on)
        assert cn.bonus(ann.id, 0.3, "make-up", **on)
        cn.grant(ann.id, "careful", 1, **on)
        cn.block(ann.id, "copied answers", **on)
        assert launched_at.messages[0]["recipient_id"] == ann.id and launched_at.paid(ann.id) == [30]
        (workspace,) = launched_at.workspaces.values()
        assert workspace["title"] == "lab"  # the workspace setting too: the block list is the lab's
        blocked = [g["id"] for g in launched_at.groups.values() if g["workspace_id"] == workspace["id"]]
        assert any(ann.id in launched_at.group_members(g) for g in blocked)
    assert fake.calls() == []


def test_settings_never_hold_a_secret(project: cn.Project) -> None:
    class Leaky:
        name = "leaky"
        platform_settings = ("api_token",)

    with pytest.raises(cn.ConfigError, match="secrets are never stored"):
        providers.settings.keep(project.store, Leaky(), {"api_token": secrets.token_hex(8)})
    assert providers.settings.read(project.store, "leaky") == {}


def test_a_provider_passed_as_an_object_keeps_no_settings(project: cn.Project) -> None:
    from .test_providers import FakePlatform

    task = cn.Task("plat", title="T", reward=0.2, html=FORM, data=SENTENCES[:1], project=project)
    task.launch(provider=FakePlatform(project.store)).stop()
    assert project.store.scalar("SELECT count(*) FROM meta WHERE key LIKE 'provider_settings:%'") == 0
