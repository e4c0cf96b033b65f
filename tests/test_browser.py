"""Real browser tests: Debian's Chromium, driven by Playwright, against a live run's router.

Each simulated worker gets a browser context of their own (separate cookies, storage and sockets). The
browser is launched once per module; the run fixtures come from conftest (``make_run``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, expect

import crowdnb as cn

from .conftest import wait_until

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 10_000
XSS_ANSWER = "<script>window.pwned=1</script><b>x</b>"
XSS_INPUT = '<img src=x onerror="window.pwned=1">'

expect.set_options(timeout=TIMEOUT_MS)


def agents_of(run: cn.Run, worker: str) -> list[dict[str, Any]]:
    """The agents (unit reservations) a mock worker has in ``run``."""
    return run.store.query(
        "SELECT a.* FROM agents a JOIN workers w ON w.id = a.worker_id "
        "WHERE a.task_run_id = ? AND w.provider = 'mock' AND w.name = ? ORDER BY a.id",
        (run.id, worker),
    )


def sentence(page: Page) -> str:
    """The input sentence the task page shows."""
    return page.locator("fieldset.crowd-task p").first.inner_text()


def fill_in(page: Page, label: str, why: str) -> None:
    page.check(f"input[name=label][value={label}]")
    page.fill("input[name=why]", why)


def expect_saved(page: Page) -> None:
    expect(page.locator("#crowd-saved")).to_be_visible()
    expect(page.locator("#crowd-saved")).to_contain_text(re.compile("saved", re.IGNORECASE))


def test_two_workers_submit_in_their_own_browsers(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    answers = {"alice": ("pos", "sounds cheerful"), "bob": ("neg", "a grumpy tone")}
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} at {message.location}")

    def on_page_error(error: Error) -> None:
        problems.append(f"uncaught exception: {error}")

    pages: dict[str, Page] = {}
    shown: dict[str, str] = {}
    for name in answers:
        page = new_page()
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        page.goto(run.worker_url(name))
        expect(page.locator("fieldset.crowd-task p")).to_contain_text("sentence number")
        expect(page.locator("#crowd-submit")).to_be_enabled()
        pages[name], shown[name] = page, sentence(page)
    assert shown["alice"] != shown["bob"], "two workers were shown the same unit"

    for name, (label, why) in answers.items():
        fill_in(pages[name], label, why)
    ARTIFACTS.mkdir(exist_ok=True)
    pages["alice"].screenshot(path=str(ARTIFACTS / "worker-page.png"), full_page=True)

    for name in answers:
        pages[name].click("#crowd-submit")
    for name in answers:
        expect_saved(pages[name])
        expect(pages[name].locator("#crowd-submit")).to_be_disabled()

    df = run.df
    assert len(df) == 2
    assert sorted(df["worker"]) == ["alice", "bob"]
    by_worker = df.set_index("worker")
    for name, (label, why) in answers.items():
        assert by_worker.loc[name, "label"] == label
        assert by_worker.loc[name, "why"] == why
        assert by_worker.loc[name, "text"] == shown[name]
    assert run.counts["completed"] == 2
    assert problems == [], "JavaScript errors on the worker page:\n" + "\n".join(problems)


def test_refresh_mid_task_resumes_the_same_unit(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    page = new_page(run.worker_url("carol"))
    first = sentence(page)
    page.check("input[name=label][value=neg]")
    # the page's heartbeat reached the router: the worker is in the task when they refresh
    wait_until(lambda: [a for a in agents_of(run, "carol") if a["status"] == "in_task"], "carol's heartbeat")

    page.reload()
    expect(page.locator("fieldset.crowd-task p")).to_have_text(first)
    expect(page.locator(".crowd-banner", has_text="Welcome back")).to_be_visible()
    fill_in(page, "neg", "changed my mind after a refresh")
    page.click("#crowd-submit")
    expect_saved(page)

    df = run.df
    assert len(df[df["worker"] == "carol"]) == 1
    assert len(df) == 1
    assert df.iloc[0]["text"] == first
    assert df.iloc[0]["why"] == "changed my mind after a refresh"
    count = run.store.query(
        "SELECT count(*) AS n FROM agents a JOIN workers w ON w.id = a.worker_id "
        "WHERE a.task_run_id = ? AND w.provider = 'mock' AND w.name = ?",
        (run.id, "carol"),
    )
    assert count[0]["n"] == 1
    assert run.counts["completed"] == 1


def test_double_click_on_submit_stores_once(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    page = new_page(run.worker_url("dave"))
    fill_in(page, "pos", "clicked twice")
    page.dblclick("#crowd-submit")
    expect_saved(page)
    assert len(run.df) == 1
    assert run.store.query("SELECT count(*) AS n FROM submissions WHERE task_run_id = ?", (run.id,))[0]["n"] == 1
    assert run.counts["completed"] == 1


def test_submitting_the_form_twice_stores_once(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(maximum_units_per_worker=1)  # the page stays once saved, for the submit after it
    page = new_page(run.worker_url("erin"))
    fill_in(page, "neg", "submitted twice")
    # two submit events before the first reply arrives (an Enter key and a click, say), then one more after
    page.evaluate(
        "() => { const form = document.getElementById('crowd-form'); form.requestSubmit(); form.requestSubmit(); }"
    )
    expect_saved(page)
    page.evaluate("() => document.getElementById('crowd-form').requestSubmit()")
    expect(page.locator("#crowd-saved")).to_be_visible()
    assert len(run.df) == 1
    assert run.store.query("SELECT count(*) AS n FROM submissions WHERE task_run_id = ?", (run.id,))[0]["n"] == 1
    assert run.counts["completed"] == 1


def test_preview_shows_the_task_with_submit_disabled(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    page = new_page(run.url)
    expect(page.locator("h1")).to_have_text("Sentiment")
    expect(page.locator(".crowd-banner", has_text="Preview")).to_be_visible()
    expect(page.locator("fieldset.crowd-task p")).to_have_text("sentence number 0")
    expect(page.locator("#crowd-submit")).to_be_visible()
    expect(page.locator("#crowd-submit")).to_be_disabled()
    expect(page.locator("input[name=why]")).to_be_disabled()
    expect(page.locator("input[name=label][value=pos]")).to_be_disabled()
    assert run.store.query("SELECT count(*) AS n FROM agents WHERE task_run_id = ?", (run.id,))[0]["n"] == 0


def test_no_work_left_shows_a_refusal_page(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(data=[{"text": "only one"}])
    first = new_page(run.worker_url("frank"))
    expect(first.locator("fieldset.crowd-task p")).to_have_text("only one")
    fill_in(first, "pos", "the only one")
    first.click("#crowd-submit")
    expect_saved(first)

    page = new_page()
    response = page.goto(run.worker_url("grace"))
    assert response is not None
    # Once the only unit is done the monitor marks the run completed (within a tick), so the refusal is
    # "no_work" or, a moment later, "finished"; both must tell the worker plainly there is nothing to do.
    reason = response.headers.get("x-crowd-reason")
    assert reason in ("no_work", "finished"), f"unexpected refusal reason {reason!r}"
    assert response.status == 410
    message = page.locator("#crowd-message")
    expect(message).to_be_visible()
    if reason == "no_work":
        expect(page.locator("h1")).to_have_text("No work left")
        expect(message).to_contain_text("no work left")
    else:
        expect(page.locator("h1")).to_have_text("Task finished")
        expect(message).to_contain_text("finished")
    # a plain page: nothing to fill in, nothing loading
    assert page.locator("form, #crowd-submit, #crowd-status, script").count() == 0
    assert "Saving" not in page.locator("body").inner_text()
    assert len(agents_of(run, "grace")) == 0
    assert len(run.df) == 1


def test_form_post_without_javascript_saves(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    page = new_page(run.worker_url("heidi"), java_script_enabled=False)
    shown = sentence(page)
    fill_in(page, "neg", "no scripts here")
    with page.expect_navigation():
        page.click("#crowd-submit")
    expect(page.locator("h1")).to_have_text("Saved")
    expect(page.locator("#crowd-message")).to_contain_text("saved")

    df = run.df
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["worker"], row["text"], row["label"], row["why"]) == ("heidi", shown, "neg", "no scripts here")
    assert run.counts["completed"] == 1


def test_phone_viewport_fits_without_horizontal_scroll(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    phone = {"viewport": {"width": 375, "height": 667}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    page = new_page(run.worker_url("ivan"), **phone)
    expect(page.locator("#crowd-submit")).to_be_visible()
    # Under mobile emulation Chromium zooms out to fit a too-wide page, and window.innerWidth grows with it;
    # so the check is also against the layout viewport (clientWidth) and the phone's 375 CSS pixels.
    widths = page.evaluate(
        "() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,"
        " client: document.documentElement.clientWidth})"
    )
    assert widths["scroll"] <= widths["inner"], f"horizontal scroll on a phone: {widths}"
    assert widths["scroll"] <= widths["client"] <= 375, f"page wider than the phone: {widths}"
    assert widths["inner"] == 375, f"the browser zoomed out to fit the page: {widths}"
    box = page.locator("#crowd-submit").bounding_box()
    assert box is not None
    assert box["height"] >= 40, f"submit button is only {box['height']:.0f}px tall on a phone"
    assert box["x"] >= 0 and box["x"] + box["width"] <= 375


def test_html_in_answers_and_inputs_is_shown_as_text(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(data=[{"text": "a calm sentence"}, {"text": XSS_INPUT}])

    mallory = new_page(run.worker_url("mallory"))
    expect(mallory.locator("fieldset.crowd-task p")).to_have_text("a calm sentence")
    fill_in(mallory, "pos", XSS_ANSWER)
    mallory.click("#crowd-submit")
    expect_saved(mallory)
    assert mallory.evaluate("() => typeof window.pwned") == "undefined"
    df = run.df
    assert df.set_index("worker").loc["mallory", "why"] == XSS_ANSWER

    victim = new_page(run.worker_url("niaj"))  # goto waits for "load": a live <img> would have errored by then
    expect(victim.locator("fieldset.crowd-task p")).to_have_text(XSS_INPUT)
    assert victim.locator("fieldset.crowd-task img").count() == 0
    assert victim.evaluate("() => typeof window.pwned") == "undefined"
    fill_in(victim, "neg", "looks like markup")
    victim.click("#crowd-submit")
    expect_saved(victim)
    assert victim.evaluate("() => typeof window.pwned") == "undefined"
    assert run.df.set_index("worker").loc["niaj", "text"] == XSS_INPUT


def test_worker_blocked_mid_run_sees_a_clear_page(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run()
    page = new_page(run.worker_url("mallory"))
    fill_in(page, "pos", "first unit")
    page.click("#crowd-submit")
    expect_saved(page)
    cn.block("mallory", "copied answers between units", project=cn.open(run.store.root))
    response = page.goto(run.worker_url("mallory"))  # the next unit, or a reload
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not qualified")
    expect(page.locator("#crowd-message")).to_contain_text("can no longer take this requester's tasks")
    assert page.locator("form, #crowd-submit, script").count() == 0


def test_the_next_unit_opens_by_itself_after_a_save(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(data=[{"text": "the first sentence"}, {"text": "the second sentence"}])
    page = new_page(run.worker_url("ada"))
    first = sentence(page)
    page.reload()  # back to the unit they hold
    expect(page.locator("#crowd-notice")).to_contain_text("Welcome back")
    fill_in(page, "pos", "one")
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_contain_text("Your next unit opens in a moment.")
    expect(page.locator("#crowd-notice")).to_be_hidden()  # "Welcome back" was about the unit just saved
    expect(page.locator("fieldset.crowd-task p")).not_to_have_text(first)  # the next unit, by itself
    expect(page.locator("#crowd-notice")).to_have_count(0)
    fill_in(page, "neg", "two")
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_have_text(
        "Your answers are saved. There is no work left for you in this task right now. Thank you!"
    )
    expect(page.locator("#crowd-next")).to_have_count(0)  # nothing to go to: the page stays, thanking them
    assert page.errors == []  # type: ignore[attr-defined]
    assert sorted(run.df["why"]) == ["one", "two"] and run.counts["completed"] == 2


def test_the_pages_html_shown_inline_runs_without_errors(project: cn.Project, new_page: Callable[..., Page]) -> None:
    """``task.preview(row)``'s iframe (no server behind it): crowdnb's script and a form's run, nothing fails to load."""
    form = {"form": {"title": "F", "sections": [{"title": "S", "fieldsets": [{"rows": [{"fields": [
        {"type": "input", "name": "code", "label": "Code", "validators": {"required": True}}
    ]}]}]}]}}  # fmt: skip
    task = cn.Task("inline", title="Inline", reward=0.1, form=form, data=[{}], project=project)
    page = new_page()
    page.set_content(f"<!doctype html><body>{task.preview()._repr_html_()}</body>")
    inline = page.frame_locator("iframe.crowd-preview")
    expect(inline.locator("#cf-code")).to_be_disabled()  # a preview: inputs off
    expect(inline.locator(".crowd-banner", has_text="Preview")).to_be_visible()
    assert page.frames[1].evaluate("() => typeof window.crowd.submit") == "function"
    assert page.errors == []  # type: ignore[attr-defined]
