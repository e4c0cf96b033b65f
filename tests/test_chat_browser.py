"""The chat gallery template in Chromium: two and three workers talking, a partner who reconnects, one who leaves."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

import crowdnb as cn
from crowdnb.pages import gallery

from .a11y import axe_violations, describe
from .conftest import wait_until

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)
PHONE = {"width": 375, "height": 740}


def chat_run(project: cn.Project, **options: Any) -> cn.Run:
    example = gallery.describe("chat").example
    task = cn.Task(
        "chat", title="Help a customer", reward=0.5, template="chat", data=example, project=project, **options
    )
    return task.launch()


@pytest.fixture
def served(project: cn.Project) -> Any:
    runs: list[cn.Run] = []

    def make(**options: Any) -> cn.Run:
        runs.append(chat_run(project, **options))
        return runs[-1]

    yield make
    for run in runs:
        if run.serving:
            run.stop()


def say(page: Page, text: str) -> None:
    expect(page.locator("#chat-text")).to_be_enabled()
    page.fill("#chat-text", text)
    page.press("#chat-text", "Enter")


def rate_and_submit(page: Page, rating: str) -> None:
    page.check(f"input[name=rating][value='{rating}']")
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()


def test_two_workers_chat_and_one_reconnects_with_the_history(served: Any, new_page: Any) -> None:
    run = served(chat=cn.Chat(partner_grace=30))
    ann = new_page(run.worker_url("ann"), viewport={"width": 1000, "height": 800})
    expect(ann.locator("#chat-state")).to_contain_text("Waiting for your partner (1 of 2 here)")
    expect(ann.locator(".chat-brief[data-role=customer]")).to_be_visible()
    bob = new_page(run.worker_url("bob"), viewport=PHONE, is_mobile=True, has_touch=True)
    expect(bob.locator(".chat-brief[data-role=agent]")).to_be_visible()
    expect(bob.locator(".chat-brief[data-role=customer]")).to_be_hidden()
    say(ann, "Hello, my parcel never came.")
    expect(bob.locator("#chat-log")).to_contain_text("Hello, my parcel never came.")
    bob.fill("#chat-text", "Sorry to hear that! Your order number?")
    bob.click("#chat-send")
    expect(ann.locator("#chat-log li:not(.chat-event)").last).to_contain_text("Your order number?")
    expect(ann.locator("#chat-log li.chat-mine")).to_have_count(1)
    for page in (ann, bob):
        violations = axe_violations(page)
        assert not violations, describe(violations)

    bob.close()  # his page goes away; the customer is told, and he comes back within the grace
    expect(ann.locator("#chat-log")).to_contain_text("agent lost their connection")
    bob = new_page(run.worker_url("bob"), viewport=PHONE, is_mobile=True, has_touch=True)
    expect(bob.locator("#chat-log")).to_contain_text("Hello, my parcel never came.")  # the history again
    expect(bob.locator("#chat-log")).to_contain_text("Your order number?")
    expect(ann.locator("#chat-log")).to_contain_text("agent is back")
    say(ann, "It is 1042.")
    expect(bob.locator("#chat-log")).to_contain_text("It is 1042.")
    rate_and_submit(ann, "5")
    rate_and_submit(bob, "4")
    for page in (ann, bob):
        assert page.errors == [], page.errors
    frame = run.df.set_index("worker")
    assert frame.loc["ann", "messages"] == 2 and frame.loc["bob", "messages"] == 1
    said = run.transcript(int(frame.loc["ann", "assignment_id"])).query("kind == 'message'")
    assert said["text"].tolist() == [
        "Hello, my parcel never came.",
        "Sorry to hear that! Your order number?",
        "It is 1042.",
    ]
    assert said["role"].tolist() == ["customer", "agent", "customer"]


def test_three_workers_chat_and_one_leaves_for_good(served: Any, new_page: Any, browser: Any) -> None:
    run = served(
        workers_per_assignment=3,
        roles=("customer", "agent", "supervisor"),
        chat=cn.Chat(partner_grace=1),
        disconnect_grace=0.5,
    )
    pages = [new_page(run.worker_url(name)) for name in ("ann", "bob", "cy")]
    expect(pages[0].locator("#chat-state")).to_contain_text("You are the customer")
    for number, page in enumerate(pages):
        say(page, f"hello from {number}")
    for page in pages:
        for number in range(3):
            expect(page.locator("#chat-log")).to_contain_text(f"hello from {number}")
    pages[2].context.close()  # the supervisor's browser is gone, and stays gone
    for page in pages[:2]:
        expect(page.locator("#chat-state")).to_contain_text("Your partner left the conversation", timeout=15_000)
        expect(page.locator("#chat-text")).to_be_disabled()
        expect(page.locator("#chat-log")).to_contain_text("supervisor did not come back")
    rate_and_submit(pages[0], "2")
    rate_and_submit(pages[1], "3")
    wait_until(lambda: run.counts["completed"] == 2, "the two who stayed submitted")
    assert run.counts["expired"] == 1  # the supervisor's seat: not paid, not offered again
    events = run.messages_df.query("kind == 'event'")["event"].tolist()
    assert events.count("joined") == 3 and "left" in events and "ended" in events
