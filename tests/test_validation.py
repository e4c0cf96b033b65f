"""Server-side validation: real HTTP submits that skip the page's JavaScript are refused, and store nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.errors import FormError
from crowdnb.forms import validators
from crowdnb.pages.page import Field, TaskPage, parse_fields
from crowdnb.router.validation import answer_errors

FORMS = Path(__file__).parent / "forms"

HTML_PAGE = """
<p>{{ text }}</p>
<label>Label <select name="label" required><option value="">choose</option><option value="pos">positive</option>
  <option>negative</option></select></label>
<label>Code <input name="code" pattern="[A-Z]{3}" required></label>
<label>Stars <input type="number" name="stars" min="1" max="5"></label>
<label>Mail <input type="email" name="mail"></label>
<label>Why <textarea name="why" minlength="5" maxlength="50"></textarea></label>
<label><input type="radio" name="sure" value="yes" required> yes</label>
<label><input type="radio" name="sure" value="no"> no</label>
"""
GOOD_HTML = {"label": "negative", "code": "ABC", "stars": "4", "mail": "a@b.org", "why": "clear enough", "sure": "no"}

# the volunteer form's Python twins of its JS validators (insertions/custom_validators.js)
validators.register("inRange", lambda field, value, low, high: None if low <= float(value) <= high else f"Enter a whole age from {low} to {high}.")  # fmt: skip
validators.register("noForbiddenWords", lambda field, value, check: "Please keep it polite." if check and "stupid" in value.lower() else None)  # fmt: skip

GOOD_FORM: dict[str, Any] = {
    "full_name": "Ada Lovelace",
    "email": "ada@lab.example.org",
    "passcode": "secret7",
    "age": "30",
    "site": "north",
    "languages": ["en", "fr"],
    "skills": ["cooking", "driving"],
    "shift": "night",
    "motivation": "I like helping people in my town.",
    "source": "signup-v1",
}
PDF = ("cv.pdf", b"%PDF-1.4 a tiny cv", "application/pdf")


def stored(run: cn.Run) -> int:
    return int(run.store.scalar("SELECT count(*) FROM submissions WHERE task_run_id = ?", [run.id]))


def unit_status(run: cn.Run, agent_id: str) -> str:
    return str(run.store.scalar("SELECT u.status FROM units u JOIN agents a ON a.unit_id = u.id WHERE a.id = ?", [int(agent_id)]))  # fmt: skip


def files_on_disk(run: cn.Run) -> list[Path]:
    return [p for p in run.store.files_dir.rglob("*") if p.is_file()]


def post_form(
    run: cn.Run, unit: dict[str, Any], answers: dict[str, Any], files: Any = None, **kw: Any
) -> requests.Response:
    """A multipart POST as a page without JavaScript sends it."""
    data = {"_crowd_token": unit["token"], "_crowd_submission_id": kw.pop("submission_id", unit["submission_id"])}
    data.update(answers)
    headers = {"Accept": kw.pop("accept", "application/json")}
    return requests.post(
        run.url + "submit", data=data, files=files or {"_none": ("", b"")}, headers=headers, timeout=10
    )


def enter(run: cn.Run, name: str) -> dict[str, Any]:
    reply = requests.get(run.worker_url(name), headers={"Accept": "application/json"}, timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@pytest.fixture(scope="module")
def volunteer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cn.Run]:
    """The volunteer form (every field type and validator), 40 units, served for the whole module."""
    project = cn.open(tmp_path_factory.mktemp("forms") / "project", create=True)
    task = cn.Task(
        "volunteer", title="Volunteer", reward=0.2, form=FORMS / "volunteer", data=[{}] * 40, project=project
    )
    run = task.launch()
    yield run
    run.stop()


def test_html_rules_refuse_a_bypassing_json_submit_and_store_nothing(make_run: Any, worker: Any) -> None:
    run = make_run(html=HTML_PAGE)
    alice = worker("alice", on=run)
    assert alice.enter().status_code == 200
    bad = {"label": "maybe", "code": "ab1", "stars": "9", "mail": "not-mail", "why": "no", "sure": "perhaps"}
    reply = alice.submit(bad, submission_id="bypass-0001")
    assert reply.status_code == 422
    assert reply.json()["reason"] == "invalid"
    assert reply.json()["errors"] == {
        "label": "'maybe' is not one of the options.",
        "code": "The value does not have the expected format.",
        "stars": "Enter a number of at most 5.",
        "mail": "Enter a valid e-mail address.",
        "why": "Use at least 5 characters (you used 2).",
        "sure": "'perhaps' is not one of the options.",
    }
    assert stored(run) == 0 and run.df.empty
    assert unit_status(run, alice.unit["agent_id"]) == "assigned"  # still hers: she can correct and resend
    fixed = alice.submit(GOOD_HTML, submission_id="bypass-0001")  # nothing was stored under that id
    assert fixed.status_code == 200 and fixed.json()["duplicate"] is False
    assert stored(run) == 1 and run.df.loc[0, "label"] == "negative"  # an <option> without value= is its text


def test_html_required_fields_missing_are_named(make_run: Any, worker: Any) -> None:
    run = make_run(html=HTML_PAGE)
    alice = worker("alice", on=run)
    alice.enter()
    reply = alice.submit({"label": "", "code": "   ", "stars": ""})
    assert reply.status_code == 422
    assert reply.json()["errors"] == {f: "Please fill in this field." for f in ("label", "code", "sure")}
    assert stored(run) == 0


def test_a_page_without_javascript_gets_a_422_page_listing_the_fields(make_run: Any) -> None:
    run = make_run(html=HTML_PAGE)
    unit = enter(run, "alice")
    reply = post_form(run, unit, {**GOOD_HTML, "code": "abc", "stars": "0"}, accept="text/html")
    assert reply.status_code == 422 and reply.headers["X-Crowd-Reason"] == "invalid"
    assert "Please check your answers" in reply.text
    assert "<li>code: The value does not have the expected format.</li>" in reply.text
    assert "<li>stars: Enter a number of at least 1.</li>" in reply.text
    assert stored(run) == 0


def test_the_default_tasks_answers_still_pass(run: cn.Run, worker: Any) -> None:
    """The fixtures' page has no rules but its radio's options: those stay lenient, wrong options do not."""
    alice, bob = worker("alice"), worker("bob")
    alice.enter()
    bob.enter()
    assert alice.submit({"label": "pos", "why": ""}).status_code == 200
    assert bob.submit({"label": "meh"}).json()["errors"] == {"label": "'meh' is not one of the options."}


BAD_FORM_VALUES = [
    ("full_name", "A", "Use at least 2 characters (you used 1)."),
    ("full_name", "x" * 41, "Use at most 40 characters (you used 41)."),
    ("email", "ada@gmail.com", "The value does not have the expected format."),
    ("email", "ada at lab", "Enter a valid e-mail address."),
    ("passcode", "secretpw", "The value does not have the expected format."),
    ("age", "12", "Enter a whole age from 16 to 99."),
    ("age", "old", "Enter a number."),
    ("site", "east", "'east' is not one of the options."),
    ("site", "", "Please fill in this field."),
    ("languages", ["en", "fr", "es"], "Choose at most 2 options."),
    ("skills", ["cooking"], "Choose at least 2 options."),
    ("skills", ["cooking", "juggling"], "'juggling' is not one of the options."),
    ("shift", ["morning", "night"], "Choose one option."),
    ("motivation", "too short", "Use at least 20 characters (you used 9)."),
    ("motivation", "You are all stupid people, honestly.", "Please keep it polite."),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_FORM_VALUES)
def test_form_validators_refuse_bad_values_server_side(volunteer: cn.Run, name: str, value: Any, message: str) -> None:
    unit = enter(volunteer, f"bad-{name}-{len(str(value))}")
    before = stored(volunteer), files_on_disk(volunteer)
    reply = post_form(volunteer, unit, {**GOOD_FORM, name: value}, files={"cv": PDF})
    assert reply.status_code == 422
    assert reply.json()["errors"] == {name: message}
    assert (stored(volunteer), files_on_disk(volunteer)) == before  # no row, and the upload was not kept
    assert unit_status(volunteer, unit["agent_id"]) == "assigned"


@pytest.mark.parametrize(
    ("files", "message"),
    [({"cv": ("cv.exe", b"MZ", "application/octet-stream")}, "cv.exe is not an accepted type (.pdf, .txt)."),
     ({}, "Please choose a file.")],
)  # fmt: skip
def test_file_fields_check_presence_and_extension(volunteer: cn.Run, files: dict[str, Any], message: str) -> None:
    unit = enter(volunteer, f"file-{len(files)}")
    before = files_on_disk(volunteer)
    reply = post_form(volunteer, unit, GOOD_FORM, files=files)
    assert reply.status_code == 422 and reply.json()["errors"] == {"cv": message}
    assert files_on_disk(volunteer) == before


def test_a_json_submission_cannot_skip_a_required_file(volunteer: cn.Run) -> None:
    unit = enter(volunteer, "json-no-file")
    body = {"token": unit["token"], "submission_id": unit["submission_id"], "answers": GOOD_FORM}
    reply = requests.post(volunteer.url + "submit", json=body, headers={"Accept": "application/json"}, timeout=10)
    assert reply.status_code == 422 and reply.json()["errors"] == {"cv": "Please choose a file."}


def test_a_good_form_submission_is_saved_with_its_file(volunteer: cn.Run) -> None:
    unit = enter(volunteer, "good-volunteer")
    reply = post_form(volunteer, unit, GOOD_FORM, files={"cv": PDF})
    assert reply.status_code == 200, reply.text
    row = volunteer.df.set_index("worker").loc["good-volunteer"]
    assert row["skills"] == ["cooking", "driving"] and row["languages"] == ["en", "fr"]
    assert row["site"] == "north" and row["source"] == "signup-v1" and row["age"] == "30"
    assert (volunteer.store.root / row["cv"]).read_bytes() == PDF[1]


def test_a_failing_custom_validator_accepts_the_value(project: cn.Project, caplog: pytest.LogCaptureFixture) -> None:
    def explode(field: Field, value: Any, *args: Any) -> str | None:
        raise RuntimeError("validator bug")

    validators.register("explodes", explode)
    config = {"form": {"title": "T", "sections": [{"title": "S", "fieldsets": [{"rows": [{"fields": [
        {"type": "input", "name": "q", "label": "Q", "validators": {"explodes": True}}]}]}]}]}}  # fmt: skip
    run = cn.Task("explodes", title="T", reward=0.1, form=config, project=project).launch()
    try:
        unit = enter(run, "alice")
        with caplog.at_level(logging.ERROR, logger="crowdnb.router.validation"):
            reply = post_form(run, unit, {"q": "anything"})
        assert reply.status_code == 200 and stored(run) == 1
        assert "custom validator explodes failed" in caplog.text
    finally:
        run.stop()


def test_a_custom_validator_defined_nowhere_is_refused_when_the_task_is_made(project: cn.Project) -> None:
    config = {"form": {"title": "T", "sections": [{"title": "S", "fieldsets": [{"rows": [{"fields": [
        {"type": "input", "name": "q", "label": "Q", "validators": {"mysteryCheck": 3}}]}]}]}]}}  # fmt: skip
    with pytest.raises(FormError, match=r"form\.sections\[0\]\.fieldsets\[0\]\.rows\[0\]\.fields\[0\]\.validators\.mysteryCheck: custom validator 'mysteryCheck' is defined nowhere"):  # fmt: skip
        cn.Task("mystery", title="T", reward=0.1, form=config, project=project)


def test_onboarding_answers_are_checked_before_they_are_judged(make_run: Any, worker: Any) -> None:
    test = cn.Onboarding(html='<input name="answer" required pattern="[0-9]+">', expected={"answer": "4"})
    run = make_run("onboarded", onboarding=test)
    alice = worker("alice", on=run)
    assert alice.enter().json()["status"] == "onboarding"
    reply = alice.submit({"answer": "four"})
    assert reply.status_code == 422 and reply.json()["errors"] == {
        "answer": "The value does not have the expected format."
    }
    assert "onboarded-onboarded" not in run.store.qualifications_of(run.store.worker("mock", "alice"))  # not judged
    assert alice.submit({"answer": "4"}).status_code == 200


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (Field("t", "text", max_length=3), "a😀b", "Use at most 3 characters (you used 4)."),  # UTF-16, as browsers count
        (Field("t", "text", max_length=3), "  ab  ", None),  # surrounding spaces do not count
        (Field("c", "checkbox", ("a", "b"), multiple=True, min_length=2), {"a": True, "b": False}, "Choose at least 2 options."),
        (Field("c", "checkbox", ("a", "b"), multiple=True, min_length=2), {"a": True, "b": True}, None),
        (Field("t", "text"), {"nested": 1}, "Expected a value, not an object."),
        (Field("t", "text", required=True), None, "Please fill in this field."),
        (Field("n", "number", minimum=0), "nan", "Enter a number."),
        (Field("n", "number", minimum=0), 3, None),
        (Field("r", "text", pattern="^ab$", flags="i"), "AB", None),
        (Field("r", "text", pattern="^ab$"), "AB", "The value does not have the expected format."),
    ],
)  # fmt: skip
def test_answer_errors_of_single_values(field: Field, value: Any, message: str | None) -> None:
    assert answer_errors([field], {field.name: value}).get(field.name) == message


def test_html_attributes_become_field_rules() -> None:
    fields = {f.name: f for f in parse_fields(HTML_PAGE)}
    assert fields["label"].options == ("", "pos", "negative") and fields["label"].required
    assert fields["code"].pattern == "^(?:[A-Z]{3})$"
    assert (fields["stars"].minimum, fields["stars"].maximum) == (1.0, 5.0)
    assert (fields["why"].min_length, fields["why"].max_length) == (5, 50)
    assert fields["sure"].options == ("yes", "no") and fields["sure"].required


@pytest.mark.parametrize(
    "template",
    [
        '<p>{{ text }}</p><input name="label" required><select name="s"><option>a</option></select>',
        '<input name="{{ field }}" required><p>{{ text }}</p>',  # a value that names the field
        '<input name="label" {{ flag }}><p>{{ text }}</p>',  # a value that is an attribute
        '<select name="s"><option>{{ text }}</option><option>{{ field }}</option></select>',  # one that is an option
        '<input name="label" pattern="{{ text }}">',  # one that is a rule
        '<!-- {{ text }} --><input name="{{ crowd.row.field }}">',
        '{% if flag %}<input name="extra">{% endif %}<input name="label">',
    ],
)  # fmt: skip
def test_a_pages_fields_follow_each_row_wherever_its_values_land(template: str) -> None:
    page = TaskPage(template, "test")
    for row in ({"text": "one", "field": "a", "flag": "required"}, {"text": "two &lt;input name=x&gt;", "field": "b",
                "flag": "disabled"}, {"text": "<input name='y'>", "field": "c", "flag": ""}):  # fmt: skip
        row = {k: v for k, v in row.items() if k in page.variables or "crowd.row" in template}
        assert page.fields(row) == parse_fields(page.body(row)), row
