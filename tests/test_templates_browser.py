"""Every gallery template in Debian's Chromium: filled with the mouse and with the keyboard, submitted
through a launched run, checked at phone width and by axe-core.

One run per template (two workers: one with a mouse at desktop width, one with the keyboard at 375 px).
A template added to ``templates/`` is picked up by the parametrization and fails until it has fillers
here: every template must promise how a person fills it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

import crowdnb as cn
from crowdnb.pages import gallery

from .a11y import axe_violations, describe
from .conftest import wait_until

pytestmark = pytest.mark.browser

TIMEOUT_MS = 10_000
PHONE = {"width": 375, "height": 740}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
Filler = Callable[[Page, dict[str, Any]], dict[str, Any]]

expect.set_options(timeout=TIMEOUT_MS)


def submit(page: Page) -> None:
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()


def refused_in_page(page: Page, error: str, message: str) -> None:
    """Submit is stopped by the template's own check: its message shows and nothing is saved."""
    page.click("#crowd-submit")
    expect(page.locator(error)).to_contain_text(message)
    expect(page.locator("#crowd-saved")).to_have_count(0)


def invalid_field(page: Page, selector: str) -> None:
    """Submit is stopped by the browser's validity check on ``selector`` (set by the template's script)."""
    page.click("#crowd-submit")
    assert page.eval_on_selector(selector, "el => el.validationMessage"), f"{selector} should be invalid"
    expect(page.locator("#crowd-saved")).to_have_count(0)


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


# --- text classification -----------------------------------------------------------------------------
def text_classification_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_label("negative").click()
    page.get_by_label("Comment (optional)").fill("sounds annoyed")
    return {"label": "negative", "comment": "sounds annoyed"}


def text_classification_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_label("positive").focus()
    press(page, "Space", "ArrowDown", "Tab")
    page.keyboard.type("plain fact")
    return {"label": "neutral", "comment": "plain fact"}


# --- multi-label ----------------------------------------------------------------------------------------
def multi_label_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    invalid_field(page, "#ml-topics input[value=politics]")
    page.get_by_label("science").click()
    page.get_by_label("health").click()
    return {"topics": ["science", "health"]}


def multi_label_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_label("politics").focus()
    press(page, "Space", "Tab", "Tab", "Space")
    return {"topics": ["politics", "science"]}


# --- free text ------------------------------------------------------------------------------------------
SUMMARY = "A new bus line links the old town and the campus."


def free_text_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.locator("#summary").fill("   too short        ")
    page.get_by_label("hard").click()
    invalid_field(page, "#summary")
    page.locator("#summary").fill(SUMMARY)
    expect(page.locator("#ft-count")).to_contain_text(f"{len(SUMMARY)} of 400")
    return {"summary": SUMMARY, "difficulty": "hard"}


def free_text_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.locator("#summary").focus()
    page.keyboard.type(SUMMARY)
    press(page, "Tab", "Space", "ArrowRight")
    return {"summary": SUMMARY, "difficulty": "medium"}


# --- Likert survey --------------------------------------------------------------------------------------
LIKERT = ("answers_question", "accurate", "clear", "polite")


def likert_survey_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    for name, value in zip(LIKERT, "5421", strict=True):
        page.locator(f"label:has(input[name={name}][value='{value}'])").click()
    return dict(zip(LIKERT, "5421", strict=True))


def likert_survey_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.locator("input[name=answers_question][value='1']").focus()
    press(page, "Space", "ArrowRight", "ArrowRight", "Tab")  # 3, then the next item
    press(page, "Space", "Tab")  # 1
    press(page, "Space", "ArrowRight", "ArrowRight", "ArrowRight", "ArrowRight", "Tab")  # 5
    press(page, "Space", "ArrowRight")  # 2
    return {"answers_question": "3", "accurate": "1", "clear": "5", "polite": "2"}


# --- pairwise comparison --------------------------------------------------------------------------------
def pairwise_comparison_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_text("B is better").click()
    page.get_by_label("Why? (optional)").fill("more natural")
    return {"preferred": "B", "reason": "more natural"}


def pairwise_comparison_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_label("A is better").focus()
    press(page, "Space", "ArrowRight", "Tab")
    page.keyboard.type("both fine")
    return {"preferred": "tie", "reason": "both fine"}


# --- bounding boxes -------------------------------------------------------------------------------------
def bounding_boxes_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    refused_in_page(page, "#bb-error", "Draw at least one box")
    page.select_option("#bb-label", "car")
    image = page.locator("#bb-image")
    expect(image).to_have_js_property("complete", True)
    box = image.bounding_box()
    assert box is not None
    scale = box["width"] / 480  # the picture is 480 × 320 and may be shown smaller
    page.mouse.move(box["x"] + 40 * scale, box["y"] + 190 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 120 * scale, box["y"] + 230 * scale, steps=4)
    page.mouse.move(box["x"] + 210 * scale, box["y"] + 260 * scale, steps=4)
    page.mouse.up()
    expect(page.locator("#bb-count")).to_have_text("1 box.")
    page.mouse.click(box["x"] + 5, box["y"] + 5)  # a click is not a box
    expect(page.locator("#bb-list > li")).to_have_count(1)
    return {"boxes": [{"label": "car", "x": 40, "y": 190, "w": 170, "h": 70}]}


def touch_drag(page: Page, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A finger drag, as Chromium's touch input (Playwright itself only taps)."""
    cdp = page.context.new_cdp_session(page)
    steps = [(start[0] + (end[0] - start[0]) * i / 5, start[1] + (end[1] - start[1]) * i / 5) for i in range(6)]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": steps[0][0], "y": steps[0][1]}]})
    for x, y in steps[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def bounding_boxes_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    """A finger draws the first box (the phone), then the keyboard adds the second."""
    image = page.locator("#bb-image")
    expect(image).to_have_js_property("complete", True)
    image.scroll_into_view_if_needed()
    box = image.bounding_box()
    assert box is not None
    scale = box["width"] / 480
    touch_drag(page, (box["x"] + 40 * scale, box["y"] + 190 * scale), (box["x"] + 210 * scale, box["y"] + 260 * scale))
    expect(page.locator("#bb-count")).to_have_text("1 box.")
    page.locator("#bb-label").focus()
    page.keyboard.press("Tab")
    expect(page.locator("#bb-add")).to_be_focused()
    page.keyboard.press("Enter")  # a box in the middle; focus moves to its label
    expect(page.locator("#bb-list li:last-child select")).to_be_focused()
    page.keyboard.press("ArrowDown")  # person → car
    for value in ("300", "150", "40", "120"):  # x, y, width, height
        press(page, "Tab", "Control+a")
        page.keyboard.type(value)
    page.keyboard.press("Tab")  # commits the last number
    expect(page.locator("#bb-count")).to_have_text("2 boxes.")
    return {
        "boxes": [
            {"label": "person", "x": 40, "y": 190, "w": 170, "h": 70},
            {"label": "car", "x": 300, "y": 150, "w": 40, "h": 120},
        ]
    }


def boxes_match(got: Any, want: list[dict[str, Any]]) -> bool:
    """Drawn boxes equal ``want`` within 3 px (a pointer lands on whole CSS pixels of a scaled picture)."""
    boxes = json.loads(got)
    return len(boxes) == len(want) and all(
        b["label"] == w["label"] and all(abs(b[k] - w[k]) <= 3 for k in "xywh")
        for b, w in zip(boxes, want, strict=True)
    )


# --- span highlighting ----------------------------------------------------------------------------------
def select_text(page: Page, start: int, end: int) -> None:
    """Drag the mouse over characters ``start``..``end`` (UTF-16 units) of the text."""
    rects = page.evaluate(
        """([start, end]) => {
            const node = document.getElementById('ner-text').firstChild, r = document.createRange();
            const at = i => { r.setStart(node, i); r.setEnd(node, i + 1); const b = r.getBoundingClientRect(); return [b.left, b.right, b.top + b.height / 2]; };
            return [at(start), at(end - 1)];
        }""",
        [start, end],
    )
    (left, _, y1), (_, right, y2) = rects
    page.mouse.move(left + 1, y1)
    page.mouse.down()
    page.mouse.move(right - 1, y2, steps=5)
    page.mouse.up()


def ner_spans_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    refused_in_page(page, "#ner-error", "Mark at least one name")
    text = row["text"]
    units = text.encode("utf-16-le")
    name = "Marie Curie"
    start = len(units[: units.index(name.encode("utf-16-le"))]) // 2
    select_text(page, start, start + len(name))
    page.get_by_role("button", name="Mark as person").click()
    expect(page.locator("#ner-text mark")).to_have_text(name)
    at = text.index(name)  # code points: the 🎉 before it is one, though JavaScript counts two
    return {"spans": [{"start": at, "end": at + len(name), "label": "person", "text": name}]}


def ner_spans_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.locator("#ner-from").focus()
    press(page, *["ArrowDown"] * 4, "Tab", "ArrowDown", "Tab", "ArrowDown", "Tab", "Enter")  # words 5–6
    text = row["text"]
    at = text.index("Nobel Prize")
    expect(page.locator("#ner-count")).to_have_text("1 span marked.")
    return {"spans": [{"start": at, "end": at + 11, "label": "organisation", "text": "Nobel Prize"}]}


# --- audio rating ---------------------------------------------------------------------------------------
def audio_rating_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_text("2 Poor").click()
    refused_in_page(page, "#au-error", "play the whole clip")
    page.get_by_role("button", name="Play clip").click()
    expect(page.locator("#au-progress")).to_have_text("Played to the end.")
    page.get_by_label("Background noise or hiss").click()
    return {"quality": "2", "issues": ["noise"]}


def audio_rating_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    page.get_by_role("button", name="Play clip").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#au-progress")).to_have_text("Played to the end.")
    page.locator("input[name=quality][value='1']").focus()
    press(page, "Space", "ArrowRight", "ArrowRight", "ArrowRight")
    return {"quality": "4"}


# --- video annotation -----------------------------------------------------------------------------------
def clip_loaded(page: Page) -> None:
    """The clip's metadata is in: the page knows its length (6 s) and has drawn its timeline."""
    expect(page.locator("#va-duration")).to_have_value("6")
    expect(page.locator("#va-ticks span")).to_have_count(7)


def timeline_x(page: Page, label: str, seconds: float) -> tuple[float, float]:
    """Where on screen ``seconds`` of the clip is, in the timeline row of ``label``."""
    lane = page.locator(f".va-lane[data-label='{label}']")
    lane.scroll_into_view_if_needed()
    box = lane.bounding_box()
    assert box is not None
    return box["x"] + box["width"] * seconds / 6, box["y"] + box["height"] / 2


def video_annotation_mouse(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    refused_in_page(page, "#va-error", "Mark at least one segment")
    clip_loaded(page)
    page.mouse.move(*timeline_x(page, "bicycle", 2))
    page.mouse.down()
    page.mouse.move(*timeline_x(page, "bicycle", 3), steps=4)
    page.mouse.move(*timeline_x(page, "bicycle", 4), steps=4)
    page.mouse.up()
    expect(page.locator("#va-count")).to_have_text("1 segment.")
    expect(page.locator("#va-status")).to_have_text(re.compile(r"Segment 1 added: bicycle, [12]\.\d+ to [34]\.\d+ s\."))
    expect(page.locator(".va-choice[data-label=bicycle]")).to_have_attribute("aria-pressed", "true")
    page.mouse.click(*timeline_x(page, "car", 5))  # a click is not a segment: it moves the clip there
    expect(page.locator("#va-time")).to_have_text("5.0 / 6.0 s")
    expect(page.locator("#va-list > li")).to_have_count(1)
    page.get_by_role("button", name="Play segment 1").click()  # plays 2–4 s, then stops by itself
    expect(page.locator("#va-status")).to_have_text("Playing.")
    expect(page.locator("#va-status")).to_have_text(re.compile(r"Paused at [45]\.\d+ s\."))  # not at 6 s, the end
    decoded = page.evaluate(
        "() => { const v = document.getElementById('va-video'); return [v.error, v.getVideoPlaybackQuality().totalVideoFrames]; }"
    )
    assert decoded[0] is None and decoded[1] > 0, f"Chromium did not decode the clip: {decoded}"
    return {"segments": [{"label": "bicycle", "start": 2, "end": 4}], "duration": "6"}


def video_annotation_keys(page: Page, row: dict[str, Any]) -> dict[str, Any]:
    """Two segments with the shortcut keys alone, a third marked and deleted, play and pause."""
    clip_loaded(page)
    page.locator("#va-play").focus()
    status = page.locator("#va-status")
    press(page, "e")
    expect(status).to_have_text("Mark the start first (S), then the end (E).")
    press(page, "l", "s")  # 1 s
    expect(status).to_have_text("Start marked at 1.0 s for car. Press E at its end.")
    press(page, "l", "l", "e")  # 3 s
    expect(status).to_have_text("Segment 1 added: car, 1.0 to 3.0 s.")
    press(page, "2")
    expect(status).to_have_text("Label: person.")
    press(page, "l", "s", "l", ".", ".", "e")  # 4 s to 5.2 s
    expect(status).to_have_text("Segment 2 added: person, 4.0 to 5.2 s.")
    press(page, "3", "j", "s", ",", ",", ",", "e")  # bicycle, 4.2 s back to 3.9 s
    expect(status).to_have_text("Segment 3 added: bicycle, 3.9 to 4.2 s.")
    press(page, "Delete")
    expect(status).to_have_text("Segment 3 deleted: bicycle, 3.9 to 4.2 s. 2 segments.")
    expect(page.get_by_role("button", name="Delete segment 2")).to_be_focused()
    press(page, "j", "j", "j", "k")
    expect(status).to_have_text("Playing.")
    press(page, "k")
    expect(status).to_contain_text("Paused at ")
    return {
        "segments": [{"label": "car", "start": 1, "end": 3}, {"label": "person", "start": 4, "end": 5.2}],
        "duration": "6",
    }


def segments_match(got: Any, want: list[dict[str, Any]]) -> bool:
    """Marked segments equal ``want``: by the keys exactly, by the mouse within 0.05 s (a whole pixel)."""
    segments = json.loads(got)
    return len(segments) == len(want) and all(
        s["label"] == w["label"] and all(abs(s[k] - w[k]) <= 0.05 for k in ("start", "end"))
        for s, w in zip(segments, want, strict=True)
    )


FILLERS: dict[str, tuple[Filler, Filler]] = {
    "text_classification": (text_classification_mouse, text_classification_keys),
    "multi_label": (multi_label_mouse, multi_label_keys),
    "free_text": (free_text_mouse, free_text_keys),
    "likert_survey": (likert_survey_mouse, likert_survey_keys),
    "pairwise_comparison": (pairwise_comparison_mouse, pairwise_comparison_keys),
    "bounding_boxes": (bounding_boxes_mouse, bounding_boxes_keys),
    "ner_spans": (ner_spans_mouse, ner_spans_keys),
    "audio_rating": (audio_rating_mouse, audio_rating_keys),
    "video_annotation": (video_annotation_mouse, video_annotation_keys),
}
ROW = {"ner_spans": 2}  # the row with an emoji before the names: offsets in code points, not UTF-16


def focus_is_visible(page: Page) -> None:
    """The keyboard worker's focused control is inside the task and drawn with a clear outline."""
    outline = page.evaluate(
        """() => { const el = document.activeElement, s = getComputedStyle(el);
                   return [!!el.closest('.crowd-task'), s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
    )
    assert outline[0] and outline[1] != "none" and outline[2] >= 2, f"focused control's outline: {outline}"


def no_horizontal_overflow(page: Page) -> None:
    sizes = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert sizes[0] <= sizes[1], f"the page is {sizes[0]} px wide in a {sizes[1]} px viewport"


def expect_answers(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key, value in want.items():
        if key == "boxes":
            assert boxes_match(got[key], value), (got[key], value)
        elif key == "spans":
            assert json.loads(got[key]) == value
        elif key == "segments":
            assert segments_match(got[key], value), (got[key], value)
        else:
            assert got[key] == value, (key, got[key], value)


# one worker each, one after the other: a shared template (chat) is driven by tests/test_chat_browser.py
@pytest.mark.parametrize("name", [n for n in sorted(cn.templates()) if gallery.describe(n).workers == 1])
def test_template_is_filled_and_submitted_by_mouse_and_keyboard(
    name: str, project: cn.Project, make_run: Any, new_page: Callable[..., Page]
) -> None:
    assert name in FILLERS, f"template {name!r} has no mouse and keyboard fillers in this test module"
    described = gallery.describe(name)
    rows = cn.Task("probe", title="p", reward=0, template=name, data=described.example).rows()
    row = rows[ROW.get(name, 0)]
    task = cn.Task(  # one unit each: a worker's page would otherwise open the other unit once theirs is saved
        f"gallery-{name}", title=described.title, reward=0.1, template=name, data=[row, row], project=project,
        maximum_units_per_worker=1,
    )  # fmt: skip
    run = task.launch(provider="mock", architect="local")
    try:
        mouse_fill, keys_fill = FILLERS[name]
        desk = new_page(run.worker_url("mouse"), viewport={"width": 1000, "height": 800})
        want = {"mouse": mouse_fill(desk, row)}
        violations = axe_violations(desk)
        assert not violations, f"{name} at desktop width:\n{describe(violations)}"
        submit(desk)

        phone = new_page(run.worker_url("keys"), viewport=PHONE, is_mobile=True, has_touch=True)
        no_horizontal_overflow(phone)
        want["keys"] = keys_fill(phone, row)
        focus_is_visible(phone)
        no_horizontal_overflow(phone)  # with what the worker added (boxes, spans) on the page
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / f"template-{name}-phone.png"), full_page=True)
        violations = axe_violations(phone)
        assert not violations, f"{name} at phone width:\n{describe(violations)}"
        submit(phone)
        for page in (desk, phone):
            assert page.errors == [], page.errors  # type: ignore[attr-defined]

        wait_until(lambda: len(run.df) == 2, "both submissions in run.df")
        frame = run.df
        by_worker = frame.set_index("worker")
        for worker, answers in want.items():
            expect_answers(by_worker.loc[worker].to_dict(), answers)
        if name == "audio_rating":
            assert all(float(v) >= 1.3 for v in frame["listened"]), "the whole 1.5 s clip was played"
    finally:
        run.stop()


def test_axe_finds_what_it_should(new_page: Callable[..., Page], make_run: Any) -> None:
    """The checker itself: an unlabelled input and low-contrast text are reported."""
    run = make_run(html='<input type="text" name="x"><p style="color:#bbb;background:#fff">faint</p>')
    page = new_page(run.worker_url("checker"))  # task mode: axe skips text in a preview's disabled fieldset
    found = {v["id"] for v in axe_violations(page)}
    assert {"label", "color-contrast"} <= found, found
    assert re.match(r"^4\.", page.evaluate("axe.version"))


def test_review_app_shows_drawn_boxes_over_the_picture_under_its_csp(
    project: cn.Project, make_run: Any, new_page: Callable[..., Page]
) -> None:
    """The review app forbids outside images and scripts: the renderer's inlined picture must still load."""
    from crowdnb.review.app import create_review_app

    from .conftest import Worker
    from .test_review_app import serving

    described = gallery.describe("bounding_boxes")
    task = cn.Task(
        "boxes", title="Boxes", reward=0.1, template="bounding_boxes", data=described.example, project=project
    )
    run = task.launch(provider="mock", architect="local")
    try:
        worker = Worker(run, "alice")
        assert worker.enter().status_code == 200
        assert worker.submit(described.example_answers).status_code == 200
        wait_until(lambda: len(run.df) == 1, "the submission in run.df")
        token = "r" * 24
        with serving(create_review_app(project, token)) as url:
            page = new_page(f"{url}/?token={token}")
            page.goto(f"{url}/tasks/boxes")
            rendered = page.locator(".rv-rendered")
            expect(rendered.locator("img")).to_have_js_property("naturalWidth", 480)
            expect(rendered.get_by_text("1 car")).to_be_visible()
            expect(rendered.get_by_text("2 person")).to_be_visible()
            assert page.errors == [], page.errors  # type: ignore[attr-defined]  # no CSP refusal
    finally:
        run.stop()


def test_review_app_shows_marked_segments_on_the_clips_timeline(
    project: cn.Project, make_run: Any, new_page: Callable[..., Page]
) -> None:
    """Each segment a worker marked is a bar in its label's row, as long as it lasted within the clip."""
    from crowdnb.review.app import create_review_app

    from .conftest import Worker
    from .test_review_app import serving

    described = gallery.describe("video_annotation")
    task = cn.Task(
        "clips", title="Clips", reward=0.1, template="video_annotation", data=described.example, project=project
    )
    run = task.launch(provider="mock", architect="local")
    try:
        worker = Worker(run, "alice")
        assert worker.enter().status_code == 200
        assert worker.submit(described.example_answers).status_code == 200  # car 0.5–3 s, person 2–5.5 s of 6 s
        wait_until(lambda: len(run.df) == 1, "the submission in run.df")
        token = "v" * 24
        with serving(create_review_app(project, token)) as url:
            page = new_page(f"{url}/?token={token}")
            page.goto(f"{url}/tasks/clips")
            rendered = page.locator(".rv-rendered")
            expect(rendered.get_by_text("car: 0.5–3 s")).to_be_visible()
            bars = {}
            for label in ("car", "person"):
                bar = rendered.locator(f"div[title^='{label} ']")
                expect(bar).to_be_visible()
                box, lane = bar.bounding_box(), bar.locator("xpath=..").bounding_box()
                assert box is not None and lane is not None
                bars[label] = ((box["x"] - lane["x"]) / lane["width"] * 6, box["width"] / lane["width"] * 6)
            assert bars["car"] == pytest.approx((0.5, 2.5), abs=0.05), bars
            assert bars["person"] == pytest.approx((2, 3.5), abs=0.05), bars
            assert page.errors == [], page.errors  # type: ignore[attr-defined]
    finally:
        run.stop()
