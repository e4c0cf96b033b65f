"""A worker on (fake) MTurk in Chromium: the task framed by the worker site, preview, accept, work, and the
page posting the assignment back to MTurk's externalSubmit; then review, bonus, qualification, block."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, expect

import crowdnb as cn
from crowdnb.testing.mturk import FakeMTurk
from crowdnb.testing.mturk_state import TurkError

from .conftest import wait_until
from .turkers import ROWS, unit_of

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)


def test_a_worker_previews_completes_and_is_posted_back_to_mturk(
    browser: Browser, on_mturk: Any, mturk: FakeMTurk
) -> None:
    run = on_mturk(data=ROWS[:2], qualifications=[cn.block_list("spammer")])
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(mturk.frame_url(hit_id=mturk.hits()[0]["HITId"]))
        task = page.frame_locator("#task")
        expect(task.locator(".crowd-banner").first).to_contain_text("Preview")
        expect(task.locator("#crowd-submit")).to_be_disabled()
        assert run.store.scalar("SELECT count(*) FROM agents") == 0

        assignment = mturk.accept("A1ALICE")  # "Accept": MTurk reloads the frame with the assignment
        page.goto(mturk.frame_url(assignment))
        task = page.frame_locator("#task")
        task.locator("input[value=pos]").check()
        task.locator("input[name=why]").fill("clearly happy")
        task.locator("#crowd-submit").click()
        expect(task.locator("#mturk-submitted")).to_have_text("HIT submitted")  # the frame went to externalSubmit
        client_id = run.store.scalar("SELECT client_id FROM submissions")  # the page's own submission id
        assert mturk.submits == [{"assignmentId": assignment, "crowdnb_submission_id": client_id}]
        assert mturk.assignment(assignment)["AssignmentStatus"] == "Submitted"
    finally:
        context.close()

    wait_until(lambda: len(run.df) == 1, "the submission in run.df")
    row = run.df.iloc[0]
    assert (row["worker"], row["label"], row["why"]) == ("A1ALICE", "pos", "clearly happy")
    unit = unit_of(run, "A1ALICE")
    run.approve([unit], note="Thanks!", bonus=0.5)
    assert mturk.assignment(assignment)["AssignmentStatus"] == "Approved"
    assert [b["BonusAmount"] for b in mturk.bonuses("A1ALICE")] == ["0.50"]

    cn.grant("A1ALICE", "careful", 2, provider="mturk_sandbox", project=run.project)
    assert mturk.score("careful", "A1ALICE") == 2
    cn.grant("A2MALLORY", "spammer", 1, provider="mturk_sandbox", project=run.project)
    with pytest.raises(TurkError, match="qualification"):  # the block list, pushed down: MTurk refuses her
        mturk.accept("A2MALLORY")
    cn.block("A1ALICE", "copied answers", provider="mturk_sandbox", project=run.project)
    assert mturk.requester.blocks == {"A1ALICE": "copied answers"}
    with pytest.raises(TurkError, match="blocked"):
        mturk.accept("A1ALICE")
