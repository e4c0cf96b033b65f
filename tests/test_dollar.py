"""${var} templates (MTurk, Turkle, Mephisto static tasks) compiled into crowdnb's page shell."""

from __future__ import annotations

from pathlib import Path

import pytest

import crowdnb as cn
from crowdnb import ConfigError, DataError
from crowdnb.dollar import DollarPage, detect_syntax

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
