"""A Prolific participant in Chromium: from the study link on (the fake) Prolific, through the task page,
back to Prolific by the completion redirect; then review, bonus, a qualification and a block."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

import crowdnb as cn
from crowdnb.testing.prolific import FakeProlific

from .conftest import FORM, SENTENCES, wait_until

pytestmark = pytest.mark.browser

TRUSTED, NEWCOMER = "5f1a" + "0" * 20, "5f1b" + "0" * 20


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeProlific]:
    with FakeProlific() as server:
        monkeypatch.setenv("PROLIFIC_API_TOKEN", server.token)
        monkeypatch.setenv("PROLIFIC_BASE_URL", server.base_url)
        monkeypatch.setenv("CROWDNB_CONFIG", str(tmp_path / "config"))
        yield server


def test_a_participant_takes_the_study_in_chromium_and_is_paid(
    browser: Browser, project: cn.Project, fake: FakeProlific
) -> None:
    cn.grant(TRUSTED, "trusted", provider="prolific", project=project)
    task = cn.Task("rate", title="Rate sentences", reward=1.0, html=FORM, data=SENTENCES[:2], project=project,
                   qualifications=[cn.requirement("trusted", "Exists")])  # fmt: skip
    run = task.launch(
        provider="prolific", provider_options={"completion_url": fake.completion_url, "poll_seconds": 0.1}
    )
    context = browser.new_context()
    try:
        (study,) = fake.studies.values()
        place = fake.take_part(study["id"], TRUSTED)
        page = context.new_page()
        page.goto(place.link)  # Prolific opens the study URL with the participant, study and session filled in
        expect(page).to_have_url(re.compile(f"PROLIFIC_PID={TRUSTED}&STUDY_ID={study['id']}&SESSION_ID="))
        page.check("input[name=label][value=pos]")
        page.fill("input[name=why]", "a cheerful tone")
        page.click("#crowd-submit")
        expect(page.get_by_text("Your submission has been received")).to_be_visible()
        code = study["completion_codes"][0]["code"]
        assert page.url == f"{fake.completion_url}?cc={code}"
        assert fake.submissions[place.session_id]["status"] == "AWAITING REVIEW"

        wait_until(lambda: len(run.df) == 1, "the submission in run.df")
        row = run.df.iloc[0]
        assert (row["worker"], row["label"], row["why"]) == (TRUSTED, "pos", "a cheerful tone")
        run.approve([int(row["unit_id"])], note="Thanks!", bonus=0.5)
        assert fake.submissions[place.session_id]["status"] == "APPROVED" and fake.paid(TRUSTED) == [50]

        allow = next(f for f in study["filters"] if f["filter_id"] == "participant_group_allowlist")
        (group,) = allow["selected_values"]
        cn.grant(NEWCOMER, "trusted", provider="prolific", project=project)
        assert fake.group_members(group) == {TRUSTED, NEWCOMER}  # pushed down while the study runs

        cn.block(TRUSTED, "testing the block", provider="prolific", project=project)
        block = next(f for f in study["filters"] if f["filter_id"] == "participant_group_blocklist")
        (block_group,) = block["selected_values"]
        assert TRUSTED in fake.group_members(block_group)
        page.goto(f"{run.url}?PROLIFIC_PID={TRUSTED}&STUDY_ID={study['id']}&SESSION_ID=again")
        expect(page.get_by_text("You can no longer take this requester's tasks.")).to_be_visible()
    finally:
        context.close()
        run.stop()
    assert study["_stopped"] and fake.groups[group]["is_deleted"]
