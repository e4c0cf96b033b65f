"""The form composer in Debian's Chromium: every field type and validator filled in a real page, the
page's own checks (announced), a trigger, the insertions' CSS and JS, axe-core, and the server's refusal
of a POST that skips the page's checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

import crowdnb as cn
from crowdnb.forms import validators

from .a11y import axe_violations, describe
from .conftest import wait_until

pytestmark = pytest.mark.browser

FORMS = Path(__file__).parent / "forms"
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)

# the server's twins of insertions/custom_validators.js (the page runs the JS ones)
validators.register("inRange", lambda field, value, low, high: None if low <= float(value) <= high else f"Enter a whole age from {low} to {high}.")  # fmt: skip
validators.register("noForbiddenWords", lambda field, value, check: "Please keep it polite." if check and "stupid" in value.lower() else None)  # fmt: skip
validators.register("serverOnlyCode", lambda field, value: None if value == "OPEN" else "That code is not valid today.")


@pytest.fixture
def volunteer(project: cn.Project) -> Iterator[cn.Run]:
    task = cn.Task(  # one unit each: a saved page stays (it would open the worker's next unit) for the checks after
        "volunteer", title="Volunteer", reward=0.2, form=FORMS / "volunteer", data=[{}] * 3, project=project,
        maximum_units_per_worker=1,
    )  # fmt: skip
    run = task.launch()
    yield run
    run.stop()


def stored(run: cn.Run) -> int:
    return int(run.store.scalar("SELECT count(*) FROM submissions WHERE task_run_id = ?", [run.id]))


def test_every_field_type_and_validator_in_the_page(
    volunteer: cn.Run, new_page: Callable[..., Page], tmp_path: Path
) -> None:
    page = new_page(volunteer.worker_url("ada"), viewport={"width": 1000, "height": 900})
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    story = page.locator("#cf-section-1-body")
    expect(story).to_be_hidden()  # "initially_collapsed"
    expect(page.locator("#cf-section-1 .cf-toggle")).to_have_attribute("aria-expanded", "false")
    violations = axe_violations(page)
    assert not violations, describe(violations)

    # the insertions: the form's CSS file applies, its instruction file is inlined
    assert page.eval_on_selector(".cf-title", "e => getComputedStyle(e).color") == "rgb(20, 90, 50)"
    expect(page.locator("#intro-text")).to_contain_text("spring food drive")

    # an empty submit is stopped in the page: every message beside its field, a summary announced
    page.click("#crowd-submit")
    summary = page.locator("#cf-summary")
    expect(summary).to_have_attribute("role", "alert")
    expect(summary).to_contain_text("Please correct 9 fields:")
    expected = {
        "full_name": "Please fill in this field.",
        "email": "Please fill in this field.",
        "age": "Please fill in this field.",
        "site": "Please fill in this field.",
        "skills": "Choose at least 2 options.",  # one box starts checked
        "shift": "Please fill in this field.",
        "motivation": "Please fill in this field.",
        "cv": "Please choose a file.",
    }
    for name, message in expected.items():
        expect(page.locator(f"#id_{name}-error")).to_have_text(message)
    expect(page.locator("#id_full_name")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#id_full_name")).to_have_attribute("aria-describedby", "id_full_name-error")
    assert page.evaluate("document.activeElement.id") == "id_full_name"  # focus on the first problem
    expect(story).to_be_visible()  # a collapsed section with a problem opens
    violations = axe_violations(page)  # the error state too
    assert not violations, describe(violations)

    # the worker corrects: each message follows, the built-in validators and the JS custom ones
    page.fill("#id_full_name", "A")
    expect(page.locator("#id_full_name-error")).to_have_text("Use at least 2 characters (you used 1).")
    page.fill("#id_full_name", "Ada Lovelace")
    expect(page.locator("#id_full_name-error")).to_have_text("")
    page.focus("#id_email")  # leaving the name field: its onBlur trigger gets the value (onFocus fired on entry)
    assert page.evaluate("[document.body.dataset.nameFocused, document.body.dataset.nameBlurred]") == [
        "yes",
        "left:Ada Lovelace",
    ]
    expect(page.locator("#id_full_name")).not_to_have_attribute("aria-invalid", "true")
    page.fill("#id_email", "ada@gmail.com")
    expect(page.locator("#id_email-error")).to_have_text("The value does not have the expected format.")
    page.fill("#id_email", "ada@lab.example.org")
    page.fill("#id_passcode", "secretpw")
    expect(page.locator("#id_passcode-error")).to_have_text("The value does not have the expected format.")
    page.fill("#id_passcode", "secret7")
    page.fill("#id_age", "12")
    expect(page.locator("#id_age-error")).to_have_text("Enter a whole age from 16 to 99.")  # custom_validators.js
    page.fill("#id_age", "30")
    page.select_option("#id_site", "north")
    page.select_option("#id_languages", ["en", "fr", "es"])
    expect(page.locator("#id_languages-error")).to_have_text("Choose at most 2 options.")
    page.select_option("#id_languages", ["en", "fr"])
    page.check("#id_skills-2")  # driving, beside the pre-checked cooking
    page.check("#id_shift-2")  # night: the trigger writes a note and sets the hidden field
    expect(page.locator("#shift-note")).to_have_text("Night shifts end at 2 am; we pay for a taxi home.")
    assert page.input_value("#id_source") == "shift-night"
    page.click("#cf-section-1 .cf-toggle")  # collapse (the onClick trigger of the section title fires too)
    expect(story).to_be_hidden()
    assert page.evaluate("document.body.dataset.clicked") == "story"
    page.click("#cf-section-1 .cf-toggle")
    page.fill("#id_motivation", "You are all stupid people, honestly.")
    expect(page.locator("#id_motivation-error")).to_have_text("Please keep it polite.")
    page.fill("#id_motivation", "I like helping people in my town.")
    cv = tmp_path / "notes.exe"
    cv.write_bytes(b"MZ")
    page.set_input_files("#id_cv", str(cv))
    expect(page.locator("#id_cv-error")).to_have_text("notes.exe is not an accepted type (.pdf, .txt).")
    assert posts == []  # nothing was sent while the page had problems
    cv = tmp_path / "cv.txt"
    cv.write_text("Ada Lovelace: analyst")
    page.set_input_files("#id_cv", str(cv))

    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    assert page.evaluate("document.body.dataset.registering") == "yes"  # the submit button's trigger
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
    wait_until(lambda: len(volunteer.df) == 1, "the submission in run.df")
    row = volunteer.df.iloc[0]
    assert row["full_name"] == "Ada Lovelace" and row["email"] == "ada@lab.example.org" and row["age"] == "30"
    assert row["languages"] == ["en", "fr"] and row["skills"] == ["cooking", "driving"] and row["shift"] == "night"
    assert row["source"] == "shift-night" and row["site"] == "north"
    assert (volunteer.store.root / row["cv"]).read_text() == "Ada Lovelace: analyst"


def test_a_post_that_skips_the_page_is_refused_by_the_server(volunteer: cn.Run, new_page: Callable[..., Page]) -> None:
    page = new_page(volunteer.worker_url("mallory"))
    reply = page.evaluate(
        """async () => {
            const body = new FormData(document.querySelector("form.crowd-form"));  // token and submission id
            body.set("full_name", "M"); body.set("email", "not-an-address"); body.set("age", "7");
            body.set("site", "moon"); body.append("skills", "juggling");
            const r = await fetch("submit", {method: "POST", body, headers: {Accept: "application/json"}});
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert reply["status"] == 422
    errors = reply["body"]["errors"]
    assert errors["full_name"] == "Use at least 2 characters (you used 1)."
    assert errors["email"] == "Enter a valid e-mail address."
    assert errors["age"] == "Enter a whole age from 16 to 99."
    assert errors["site"] == "'moon' is not one of the options."
    assert errors["skills"] == "'juggling' is not one of the options."
    assert errors["cv"] == "Please choose a file."
    assert stored(volunteer) == 0


def test_a_rule_only_the_server_knows_shows_beside_its_field(
    project: cn.Project, new_page: Callable[..., Page]
) -> None:
    config = {"form": {"title": "Door code", "sections": [{"title": "Code", "fieldsets": [{"rows": [{"fields": [
        {"type": "input", "name": "code", "label": "Today's code", "validators": {"required": True, "serverOnlyCode": []}}
    ]}]}]}], "submit_button": {"text": "Open"}}}  # fmt: skip
    run = cn.Task("door", title="Door", reward=0.1, form=config, data=[{}, {}], project=project).launch()
    try:
        page = new_page(run.worker_url("eve"))
        page.fill("#cf-code", "SHUT")
        page.click("#crowd-submit")  # the page finds nothing wrong; the server does
        expect(page.locator("#cf-code-error")).to_have_text("That code is not valid today.")
        expect(page.locator("#crowd-errors")).to_contain_text("Please correct one field and submit again.")
        assert stored(run) == 0
        page.fill("#cf-code", "OPEN")
        page.click("#crowd-submit")
        expect(page.locator("#crowd-saved")).to_be_visible()
        wait_until(lambda: stored(run) == 1, "the corrected submission")
    finally:
        run.stop()


def test_the_form_fits_a_phone_and_passes_axe(volunteer: cn.Run, new_page: Callable[..., Page]) -> None:
    page = new_page(
        volunteer.worker_url("phone"), viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.keyboard.press("Tab")  # keyboard: the first control is reachable and its focus is visible
    assert page.evaluate("document.activeElement.id") == "id_full_name"
    assert page.eval_on_selector("#id_full_name", "e => getComputedStyle(e).outlineStyle") != "none"
    for _ in range(12):  # on through the fields to the collapsed section's title, opened with the keyboard
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('cf-toggle')"):
            break
    page.keyboard.press("Enter")
    expect(page.locator("#cf-section-1-body")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    violations = axe_violations(page)
    assert not violations, describe(violations)


def test_the_feedback_box_comes_before_the_forms_submit_button(
    project: cn.Project, new_page: Callable[..., Page]
) -> None:
    task = cn.Task("survey", title="Survey", reward=0.1, form=FORMS / "survey", feedback=True, project=project)
    run = task.launch()
    try:
        page = new_page(run.worker_url("fay"))
        follows = page.evaluate("""() => {
            const [box, errors, button] = ["crowd-feedback", "crowd-errors", "crowd-submit"].map(id => document.getElementById(id));
            return [box.compareDocumentPosition(button), errors.compareDocumentPosition(button)]
                .every(p => p & Node.DOCUMENT_POSITION_FOLLOWING);
        }""")
        assert follows
        page.check("#id_mode-1")
        page.fill("#id_minutes", "25")
        page.fill("#crowd-feedback", "The map was helpful.")
        page.click("#crowd-submit")
        expect(page.locator("#crowd-saved")).to_be_visible()
        wait_until(lambda: len(run.df) == 1, "the submission")
        assert run.df.loc[0, "mode"] == "bike" and run.df.loc[0, "_feedback"] == "The map was helpful."
    finally:
        run.stop()
