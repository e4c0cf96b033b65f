"""The review web app in Debian's Chromium (Playwright, conftest's ``browser``): a reviewer signs in with the
token link, approves, rejects and blocks, and a worker's script never runs in the reviewer's page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

import crowdnb as cn
from crowdnb.quality.requirements import BLOCKED
from crowdnb.review.app import create_review_app

from .test_review_app import TOKEN, serving, submit

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
SCRIPT_ANSWER = "<script>window.pwned=1</script><b>bold?</b>"
IMG_ANSWER = '<img src=x onerror="window.pwned=1">'
IMG_WORKER = "<img src=y onerror=window.pwned=2>"

expect.set_options(timeout=10_000)


def test_reviewer_approves_rejects_and_blocks_in_the_browser(browser: Browser, make_run: Any) -> None:
    run = make_run(units_per_assignment=2)
    units = submit(
        run,
        [
            ("alice", "pos", "a sunny sentence"),
            ("alice", "pos", "warm and kind"),
            ("bob", "neg", "sounds annoyed"),
            ("mallory", "neg", SCRIPT_ANSWER),
            (IMG_WORKER, "pos", IMG_ANSWER),
        ],
    )
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        with serving(create_review_app(run.project, TOKEN)) as base:
            page = context.new_page()
            page.on("console", lambda m: _console(m, problems))
            page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))

            page.goto(f"{base}/?token={TOKEN}")  # reloads itself without the token
            expect(page).to_have_url(f"{base}/")
            expect(page.locator("#rv-tasks")).to_contain_text("sentiment")
            page.click("#rv-tasks >> text=sentiment")
            expect(page.locator("#rv-task-name")).to_have_text("sentiment")

            # fewest units first: alice (two units) comes last
            order = page.locator("section.rv-worker").evaluate_all("s => s.map(x => x.dataset.worker)")
            assert order[-1] == "mock:alice" and len(order) == 4

            # select both of alice's units with the group box (JavaScript), approve with a note
            alice = page.locator('section.rv-worker[data-worker="mock:alice"]')
            alice.locator(".rv-select-group").check()
            expect(page.locator("#rv-selected")).to_have_text("2")
            page.fill("#rv-note", "Careful work, thank you")
            page.click("#rv-approve")
            expect(page.locator(".rv-flash")).to_contain_text("approved 2 of 2 units")

            # reject bob's unit with its own row button
            page.fill("#rv-note", "The sentence is positive")
            page.locator(f'tr[data-unit="{units["bob"][0]}"]').get_by_role("button", name="Reject", exact=True).click()
            expect(page.locator(".rv-flash")).to_contain_text("rejected 1 of 1 units")

            # block mallory from their group header
            page.fill("#rv-note", "Pasted markup instead of answers")
            mallory = page.locator('section.rv-worker[data-worker="mock:mallory"]')
            mallory.locator("button", has_text="Block worker").click()
            expect(page.locator(".rv-flash")).to_contain_text("blocked 1 of 1 workers (mallory)")
            expect(mallory.locator(".rv-blocked")).to_be_visible()

            # the payloads are shown as text and never ran
            expect(page.locator("dd", has_text="window.pwned=1</script>")).to_have_count(1)
            expect(page.locator("dd", has_text='onerror="window.pwned=1"')).to_have_count(1)
            expect(page.locator("h2", has_text=IMG_WORKER)).to_have_count(1)
            assert page.evaluate("() => window.pwned") is None
            assert page.locator("section.rv-worker img").count() == 0

            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "review-app.png"), full_page=True)

            page.goto(f"{base}/workers/mock/{IMG_WORKER}")
            expect(page.locator("#rv-worker-name")).to_have_text(IMG_WORKER)
            page.goto(f"{base}/tasks/sentiment/stats")
            expect(page.locator(".rv-alpha")).to_be_visible()
            assert page.evaluate("() => window.pwned") is None
    finally:
        context.close()

    for unit in units["alice"]:
        assert run.store.get_unit(unit)["status"] == "accepted"
        note = run.store.scalar("SELECT note FROM reviews WHERE unit_id = ? AND action = 'accepted'", (unit,))
        assert note == "Careful work, thank you"
    bob = units["bob"][0]
    assert run.store.get_unit(bob)["status"] == "rejected"
    assert run.store.scalar("SELECT note FROM reviews WHERE unit_id = ? AND action = 'rejected'", (bob,)) == (
        "The sentence is positive"
    )
    assert run.store.get_unit(units["mallory"][0])["status"] == "completed"
    assert cn.open(run.project.root).worker("mallory").qualifications == {BLOCKED: 1}
    blocks = run.store.query("SELECT args FROM provider_calls WHERE call = 'block'")
    assert [json.loads(b["args"]) for b in blocks] == [
        {"worker": "mallory", "reason": "Pasted markup instead of answers"}
    ]
    assert len(run.store.query("SELECT * FROM provider_calls WHERE call = 'approve'")) == 2
    assert problems == [], "\n".join(problems)


def _console(message: ConsoleMessage, problems: list[str]) -> None:
    # the escaped answers must not even try to load an image or run a script (CSP would report it)
    if message.type == "error" or re.search("Content Security Policy", message.text):
        problems.append(f"console {message.type}: {message.text}")
