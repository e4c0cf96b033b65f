"""${var} templates (MTurk, Turkle, Mephisto static tasks) compiled into crowdnb's page shell."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

import crowdnb as cn
from crowdnb import ConfigError, DataError
from crowdnb.pages.dollar import DollarPage, detect_syntax

MTURK = Path(__file__).parent / "fixtures" / "mturk"
TWEET = {"author": "ann", "tweet": 'I "love" <b>this</b> & ${not_a_column}'}


def page_of(name: str) -> DollarPage:
    return DollarPage((MTURK / name).read_text(encoding="utf-8"), name)


@pytest.mark.parametrize(
    ("source", "syntax"),
    [
        ("<p>${text}</p>", "dollar"),
        ("<p>{{ text }}</p>", "jinja"),
        ("<p>{{ text }} costs ${price}</p>", "jinja"),  # Jinja markup wins
        ("<p>no variables</p>", "jinja"),
        ("<script>var s = `${x}`;</script><p>plain</p>", "jinja"),  # a JS template literal is not a column
        ("<form id='mturk_form'><input name=a></form>", "dollar"),  # a whole MTurk form, even without columns
    ],
)
def test_syntax_is_detected(source: str, syntax: str) -> None:
    assert detect_syntax(source) == syntax


def test_requester_ui_fragment_keeps_its_inputs_and_escapes_values() -> None:
    page = page_of("sentiment_requester_ui.html")
    assert page.required == ["author", "tweet"]
    assert [(f.name, f.kind, f.required) for f in page.fields(TWEET)] == [
        ("sentiment", "radio", True),
        ("confidence", "select", False),
    ]
    assert page.fields(TWEET)[0].options == ("positive", "neutral", "negative")
    assert not page.has_submit
    body = page.body(TWEET)
    assert "I &quot;love&quot; &lt;b&gt;this&lt;/b&gt; &amp; ${not_a_column}" in body
    assert "<b>this</b>" not in body
    # inside a script the value is a JS string's content: quotes and markup cannot end the string or script
    assert 'var tweet = "I \\"love\\" \\u003cb\\u003ethis\\u003c/b\\u003e \\u0026 \\u0024{not_a_column}";' in body
    assert "var label = `chars: ${tweet.length}`;" in body  # a JS template literal is left alone
    # the CDN stylesheet no longer holds the page back when offline
    assert 'rel="stylesheet" media="print" onload="this.media=&#x27;all&#x27;"' in body


def test_htmlquestion_document_is_adapted_to_the_shell() -> None:
    page = page_of("image_htmlquestion.html")
    row = {"image_url": "https://example.org/cat.jpg?a=1&b=2", "alt_text": 'a "cat"'}
    assert page.required == ["alt_text", "image_url"]
    assert page.has_submit
    head, body = page.head(row), page.body(row)
    assert ".thumb { max-width: 320px" in head and "bootstrap.min.css" in head
    for gone in ("externalHIT_v1.js", "<title", "<meta", "<html", "<body", "<form", "</form>", "<!DOCTYPE"):
        assert gone not in head + body, gone
    assert 'src="https://example.org/cat.jpg?a=1&amp;b=2" alt="a &quot;cat&quot;"' in body
    assert 'name="_crowd_assignmentId" id="assignmentId"' in body
    assert [(f.name, f.kind) for f in page.fields(row)] == [
        ("objects", "checkbox"),
        ("caption", "textarea"),
        ("tagged_at", "hidden"),
    ]
    shell = page.render(row, title="Describe", description="")
    assert shell.count("<form") == 1 and 'id="mturk_form"' in shell
    assert 'id="crowd-submit"' not in shell  # the template's own button submits
    assert shell.index("_crowd/crowd.js") < shell.index(".thumb {")  # the shims exist before its scripts run


def test_crowd_form_is_unwrapped_and_amazons_script_dropped() -> None:
    page = page_of("crowd_form.html")
    row = {"product": "Kettle", "review": "Boils fast."}
    assert page.required == ["product", "review"]
    body = page.body(row)
    assert "crowd-html-elements.js" not in body and "crowd-form" not in body
    assert [f.name for f in page.fields(row)] == ["helpful", "reason"]
    assert 'id="crowd-submit"' in page.render(row, title="T", description="")  # crowd-form adds a Submit


def test_mephisto_static_task_keeps_its_file_field_and_button() -> None:
    page = page_of("mephisto_static.html")
    fields = {f.name: f for f in page.fields({"text": "x"})}
    assert fields["evidence"].kind == "file" and fields["evidence"].accept == "image/*,.pdf"
    assert page.has_submit
    assert page.required == ["text"]


def test_other_crowd_html_elements_are_refused_with_a_way_out() -> None:
    with pytest.raises(ConfigError, match=r"t.html: <crowd-classifier> is one of Amazon's Crowd HTML Elements"):
        DollarPage('<crowd-form><crowd-classifier name="c" categories="[1]"></crowd-classifier></crowd-form>', "t.html")


def test_missing_column_gets_the_same_error_as_jinja(project: cn.Project) -> None:
    html = (MTURK / "sentiment_requester_ui.html").read_text(encoding="utf-8")
    with pytest.raises(DataError, match=r"list, row 1: column 'author' is missing; the task page uses author, tweet"):
        cn.Task("t", title="T", reward=0.1, html=html, data=[{"tweet": "hi"}], project=project)
    jinja = "<p>{{ author }} {{ tweet }}</p><input name=a>"
    with pytest.raises(DataError, match=r"list, row 1: column 'author' is missing; the task page uses author, tweet"):
        cn.Task("t", title="T", reward=0.1, html=jinja, data=[{"tweet": "hi"}], project=project)
    assert project.store.query("SELECT * FROM tasks") == []


def test_template_file_path_and_explicit_syntax(project: cn.Project) -> None:
    task = cn.Task("t", title="T", reward=0.1, template=str(MTURK / "crowd_form.html"), project=project,
                   data=[{"product": "<i>P</i>", "review": "ok"}])  # fmt: skip
    assert task.spec.kind == "dollar"
    assert "&lt;i&gt;P&lt;/i&gt;" in task.preview()
    # a Jinja page whose script happens to use ${…}: syntax="jinja" keeps it literal
    literal = cn.Task("l", title="T", reward=0, html="<p>${price}</p><input name=a>", syntax="jinja")
    assert literal.page.required == [] and "${price}" in literal.preview()
    forced = cn.Task("f", title="T", reward=0, html="<p>${price} {{x}}</p><input name=a>", syntax="dollar",
                     data=[{"price": 3}])  # fmt: skip
    assert "<p>3 {{x}}</p>" in forced.preview()
    with pytest.raises(ConfigError, match=r"syntax='mustache' is not one of auto, jinja, dollar"):
        cn.Task("b", title="T", reward=0, html="<p>${x}</p>", syntax="mustache")


# --- in Chromium, through the real page ------------------------------------------------------------
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
EXTERNAL = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture
def offline_page(browser: Browser, make_run: Any) -> Iterator[Callable[[str], Page]]:
    """A worker's page with no internet: CDN requests fail, and the CDN stylesheet never even answers."""
    contexts: list[BrowserContext] = []

    def open_page(url: str) -> Page:
        context = browser.new_context()
        context.set_default_timeout(10_000)
        contexts.append(context)
        hanging: list[Route] = []
        context.route(
            EXTERNAL, lambda route: hanging.append(route) if route.request.url.endswith(".css") else route.abort()
        )
        page = context.new_page()
        page.errors = []  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: page.errors.append(str(error)))  # type: ignore[attr-defined]
        page.goto(url, wait_until="domcontentloaded")  # "load" would wait for the stylesheet that never comes
        return page

    yield open_page
    for context in contexts:
        context.close()


def test_requester_ui_template_works_offline_in_chromium(make_run: Any, offline_page: Callable[[str], Page]) -> None:
    html = (MTURK / "sentiment_requester_ui.html").read_text(encoding="utf-8")
    run = make_run(html=html, data=[TWEET])
    page = offline_page(run.worker_url("ann"))
    expect(page.locator("#tweet")).to_have_text(TWEET["tweet"])
    assert page.evaluate("() => window.tweetLength") == len(TWEET["tweet"])  # the script got the value intact
    page.check("#s-neg")
    page.select_option("#confidence", "low")
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    row = run.df.iloc[0]
    assert (row["author"], row["tweet"], row["sentiment"], row["confidence"]) == (
        "ann", TWEET["tweet"], "negative", "low"
    )  # fmt: skip
    assert page.errors == []  # type: ignore[attr-defined]


def test_htmlquestion_document_submits_with_its_own_button(make_run: Any, offline_page: Callable[[str], Page]) -> None:
    html = (MTURK / "image_htmlquestion.html").read_text(encoding="utf-8")
    run = make_run(html=html, data=[{"image_url": "https://example.org/cat.jpg", "alt_text": "a cat"}])
    page = offline_page(run.worker_url("zoe") + "&assignment_id=ASSIGN1")
    assert page.locator("#crowd-submit").count() == 0
    assert page.eval_on_selector("#assignmentId", "e => e.value") == "ASSIGN1"  # turkSetAssignmentID() ran
    page.check("input[name=objects][value=person]")
    page.check("input[name=objects][value=animal]")
    page.fill("#caption", "A cat on a sofa.")
    page.click("#submitButton")
    expect(page.locator("#crowd-saved")).to_be_visible()
    expect(page.locator("#submitButton")).to_be_disabled()
    row = run.df.iloc[0]
    assert row["objects"] == ["person", "animal"] and row["caption"] == "A cat on a sofa."
    assert row["tagged_at"] == "page-zoe"  # the template's own submit listener on #mturk_form ran first
    assert not {"assignmentId", "_crowd_assignmentId"} & set(run.df.columns)
    assert page.errors == []  # type: ignore[attr-defined]


def test_crowd_form_submitted_by_script_goes_through_crowd_js(
    make_run: Any, offline_page: Callable[[str], Page]
) -> None:
    html = (MTURK / "crowd_form.html").read_text(encoding="utf-8")
    run = make_run(html=html, data=[{"product": "Kettle", "review": "Boils fast."}])
    page = offline_page(run.worker_url("yan"))
    page.check("input[name=helpful][value=yes]")
    page.fill("input[name=reason]", "specific")
    page.evaluate("() => document.getElementById('mturk_form').submit()")  # what MTurk templates' scripts do
    expect(page.locator("#crowd-saved")).to_be_visible()  # saved in place, no plain POST
    assert (run.df.iloc[0]["helpful"], run.df.iloc[0]["reason"]) == ("yes", "specific")


def test_mephisto_static_task_with_a_file_in_chromium(make_run: Any, offline_page: Callable[[str], Page]) -> None:
    html = (MTURK / "mephisto_static.html").read_text(encoding="utf-8")
    run = make_run(html=html, data=[{"text": "The sky is green."}])
    page = offline_page(run.worker_url("xia"))
    expect(page.locator("p b")).to_have_text("The sky is green.")
    page.check("#bad")
    page.set_input_files("#evidence", files=[{"name": "sky.png", "mimeType": "image/png", "buffer": PNG}])
    page.click("#mephisto-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    row = run.df.iloc[0]
    assert row["rating"] == "bad" and (run.store.root / row["evidence"]).read_bytes() == PNG
    assert page.errors == []  # type: ignore[attr-defined]
