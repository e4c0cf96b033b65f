"""Custom JS tasks: a prebuilt bundle served with the window.crowd SDK, over real HTTP and in Chromium."""

from __future__ import annotations

import http.client
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
import requests
from playwright.sync_api import Page, expect

import crowdnb as cn
from crowdnb.providers import Completion, RunInfo
from crowdnb.providers.mock import MockProvider

from .conftest import wait_until

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "js_rating"
BUNDLE = Path(__file__).resolve().parent / "fixtures" / "react_bundle"
PAIR = [{"id": "item-1", "left": "A dog runs.", "right": "A cat sleeps on a mat.", "image": ""}]
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

expect.set_options(timeout=10_000)


def js_run(make_run: Any, folder: Path = BUNDLE, data: Any = None, **options: Any) -> cn.Run:
    return make_run(html=None, js=str(folder), data=PAIR if data is None else data, **options)


def submissions(run: cn.Run) -> int:
    return int(run.store.scalar("SELECT count(*) FROM submissions WHERE task_run_id = ?", (run.id,)))


# --- defining a JS task ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("js", "message"),
    [
        ("missing-folder", r"js='.*missing-folder': no such folder"),
        ("empty", r"js='.*empty' has neither index.html nor main.js \(it holds nothing\)"),
        ("empty/notes.txt", r"js='.*notes.txt' is a file; pass the folder holding it"),
    ],
)
def test_js_folder_must_hold_a_bundle(project: cn.Project, tmp_path: Path, js: str, message: str) -> None:
    (tmp_path / "empty").mkdir()
    if js.endswith(".txt"):
        (tmp_path / js).write_text("x")
    with pytest.raises(cn.ConfigError, match=message):
        cn.Task("t", title="T", reward=0.1, js=str(tmp_path / js), project=project)
    assert project.store.query("SELECT * FROM tasks") == []


def test_js_task_arguments_are_checked(project: cn.Project) -> None:
    with pytest.raises(cn.ConfigError, match=r"exactly one of html=.*js="):
        cn.Task("t", title="T", reward=0.1, html="<input name=a>", js=str(BUNDLE), project=project)
    with pytest.raises(cn.ConfigError, match=r"answers= declares a JS task's answers"):
        cn.Task("t", title="T", reward=0.1, html="<input name=a>", answers=["a"], project=project)
    with pytest.raises(cn.ConfigError, match=r"answers= takes a list of answer names; got 'choice'"):
        cn.Task("t", title="T", reward=0.1, js=str(BUNDLE), answers="choice", project=project)
    task = cn.Task("t", title="T", reward=0.1, js=str(BUNDLE), answers=["choice", "reasons"], project=project)
    assert [f.name for f in task.fields] == ["choice", "reasons"] and task.page.required == []
    # a notebook preview has no server: the bundle's script and styles come inline
    preview = task.preview()
    assert "window.crowd.onReady" in preview and ".App-pair" in preview and '"mode": "preview"' in preview


# --- serving the bundle ----------------------------------------------------------------------------
def raw_get(url: str, path: str) -> http.client.HTTPResponse:
    """A GET with the path exactly as written (requests would resolve the dots)."""
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse()


def test_bundle_files_are_served_with_types_and_cache_headers(make_run: Any) -> None:
    run = js_run(make_run)
    page = requests.get(run.worker_url("alice"), timeout=10)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.text
    # the SDK comes first in the head, before the bundle's own (deferred) script
    assert html.index('id="crowd-config"') < html.index("_crowd/crowd.js") < html.index("static/js/main.4f3a2b1c.js")
    config = json.loads(html.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert config["mode"] == "task" and config["data"] == PAIR[0] and config["refusal"] is None
    for path, kind, cache in [
        ("static/js/main.4f3a2b1c.js", "text/javascript", "public, max-age=31536000, immutable"),
        ("static/css/main.9a8b7c6d.css", "text/css", "public, max-age=31536000, immutable"),
        ("static/media/logo.1a2b3c4d.svg", "image/svg+xml", "public, max-age=31536000, immutable"),
        ("favicon.svg", "image/svg+xml", "no-cache"),  # not content-hashed: revalidated
    ]:
        reply = requests.get(run.url + path, timeout=10)
        assert reply.status_code == 200, path
        assert reply.headers["Content-Type"].split(";")[0] == kind, path
        assert reply.headers["Cache-Control"] == cache, path
        assert reply.content == (BUNDLE / path).read_bytes()
    for path in ["/../conftest.py", "/static/../../conftest.py", "/%2e%2e/conftest.py", "/.env", "/static/js/nope.js"]:
        assert raw_get(run.url, path).status == 404, path
    assert requests.get(run.url + "openapi.json", timeout=10).json()["openapi"]  # routes win over bundle files
    assert requests.get(run.url + "healthz", timeout=10).json()["ok"] is True


def test_undeclared_answers_are_refused_and_nothing_is_stored(make_run: Any) -> None:
    run = js_run(make_run, answers=["choice", "reasons"])
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    unit = http.get(run.worker_url("alice"), timeout=10).json()
    body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"choise": "left"}}
    reply = http.post(run.url + "submit", json=body, timeout=10)
    assert reply.status_code == 422
    assert reply.json()["errors"] == {"choise": "not one of this task's answers (choice, reasons)"}
    assert submissions(run) == 0
    body["answers"] = {"choice": "left", "reasons": ["concise"]}
    assert http.post(run.url + "submit", json=body, timeout=10).status_code == 200
    assert submissions(run) == 1


# --- in Chromium -----------------------------------------------------------------------------------
def test_plain_js_example_submits_through_the_sdk(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = js_run(  # one unit each: the page stays once saved (with more to do, it opens the next unit)
        make_run, EXAMPLE, data=EXAMPLE / "example.csv", answers=["rating", "comment"], feedback=True,
        maximum_units_per_worker=1,
    )  # fmt: skip
    page = new_page(run.worker_url("alice"))
    expect(page.locator("#sentence")).to_have_text("The cat sat on the mat.")
    expect(page.locator("#submit")).to_be_disabled()
    # the heartbeat is automatic: the worker shows as in the task
    wait_until(
        lambda: run.store.query("SELECT 1 FROM agents WHERE task_run_id = ? AND status = 'in_task'", (run.id,)),
        "the SDK's heartbeat",
    )
    page.click("#star-4")
    page.fill("#comment", "clear enough")
    page.fill("#crowd-feedback", "The rating scale could use labels.")
    page.click("#submit")
    expect(page.locator("#status")).to_have_text(
        "Your answers are saved. You have done the maximum of 1 unit of this task. Thank you!"
    )
    expect(page.locator("#crowd-saved")).to_be_visible()
    expect(page.locator("#crowd-feedback")).to_be_disabled()
    row = run.df.iloc[0]
    assert (row["text"], row["rating"], row["comment"]) == ("The cat sat on the mat.", 4, "clear enough")
    assert row["_feedback"] == "The rating scale could use labels."
    assert not {"feedback", "_crowd_feedback"} & set(run.df.columns)
    assert json.loads(run.store.scalar("SELECT answers FROM submissions")) == {"rating": 4, "comment": "clear enough"}
    assert page.errors == []  # type: ignore[attr-defined]


def test_bundle_gets_its_data_and_saves_nested_answers_and_a_file(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = js_run(make_run)
    page = new_page(run.worker_url("bob"))
    expect(page.locator("#app-right figcaption")).to_have_text("A cat sleeps on a mat.")
    expect(page.locator("#app-mode")).to_have_text("mode: task")
    assert page.evaluate("() => crowd.data.id") == "item-1"
    page.click("#pick-right")
    page.check("input[name=accurate]")
    page.check("input[name=concise]")
    page.set_input_files("#app-file", files=[{"name": "sketch.png", "mimeType": "image/png", "buffer": PNG}])
    page.click("#app-submit")
    # the only unit: the reply thanks them (a worker with more to do is sent to their next unit)
    expect(page.locator("#app-status")).to_have_text(
        "Saved: Your answers are saved. There is no work left for you in this task right now. Thank you!"
    )
    row = run.df.iloc[0]
    assert row["choice"] == "right" and row["reasons"] == ["accurate", "concise"]
    assert row["detail.item"] == "item-1" and row["detail.seconds"] >= 0  # nested answers become dotted columns
    stored = run.store.root / row["sketch"]
    assert stored.read_bytes() == PNG and row["sketch_name"] == "sketch.png"
    assert page.errors == []  # type: ignore[attr-defined]


def test_bundle_preview_is_flagged_and_cannot_submit(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = js_run(make_run)
    page = new_page(run.url)
    expect(page.locator("#app-mode")).to_have_text("mode: preview")
    expect(page.locator("#crowd-preview")).to_contain_text("Preview")
    expect(page.locator("#pick-left")).to_be_disabled()
    reason = page.evaluate("() => crowd.submit({choice: 'left'}).then(() => 'saved', e => e.reason)")
    assert reason == "preview"
    assert run.store.scalar("SELECT count(*) FROM agents WHERE task_run_id = ?", (run.id,)) == 0


def test_bundle_shows_the_refusal_when_no_work_is_left(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = js_run(make_run)
    first = new_page(run.worker_url("carol"))
    first.click("#pick-left")
    first.click("#app-submit")
    expect(first.locator("#app-status")).to_contain_text("Saved")

    page = new_page()
    response = page.goto(run.worker_url("dave"))
    assert response is not None and response.status == 410
    assert response.headers["x-crowd-reason"] in ("no_work", "finished")
    expect(page.locator("#app-refusal")).to_contain_text("Sorry: ")
    expect(page.locator("#crowd-refusal")).to_have_text(page.evaluate("() => crowd.refusal.message"))
    assert page.evaluate("() => crowd.refusal.reason") in ("no_work", "finished")
    assert page.evaluate("() => crowd.mode") == "preview"
    assert submissions(run) == 1


def test_submitting_twice_from_js_stores_once(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = js_run(make_run)
    page = new_page(run.worker_url("erin"))
    expect(page.locator("#app-mode")).to_have_text("mode: task")
    replies = page.evaluate(
        "() => Promise.all([crowd.submit({choice: 'left'}), crowd.submit({choice: 'left'})])"
        ".then(r => crowd.submit({choice: 'right'}).then(third => [...r, third]))"
    )
    assert replies[0] == replies[1] == replies[2] and replies[0]["status"] == "saved"
    assert submissions(run) == 1
    assert run.df.iloc[0]["choice"] == "left"


class RedirectingCrowd(MockProvider):
    """A provider plugin whose workers finish on a page of their own (as Prolific's completion URL)."""

    def completion(self, run: RunInfo, external: Any) -> Completion:
        return Completion("redirect", url=run.url + "healthz?finished=1")


def test_sdk_follows_the_providers_completion(project: cn.Project, new_page: Callable[..., Page]) -> None:
    task = cn.Task("pairs", title="Pairs", reward=0.1, js=str(BUNDLE), data=PAIR, project=project)
    run = task.launch(provider=RedirectingCrowd(project.store))
    try:
        page = new_page(run.worker_url("frank"))
        page.click("#pick-left")
        page.click("#app-submit")
        page.wait_for_url("**/healthz?finished=1")
        assert submissions(run) == 1
    finally:
        run.stop()


def test_onboarding_page_is_flagged_and_leads_into_the_bundle(
    project: cn.Project, new_page: Callable[..., Page]
) -> None:
    test = cn.Onboarding(
        html='<p>Is a cat an animal?</p><label><input type="radio" name="q" value="yes"> yes</label>'
        '<label><input type="radio" name="q" value="no"> no</label>',
        expected={"q": "yes"},
    )
    task = cn.Task("pairs", title="Pairs", reward=0.1, js=str(BUNDLE), data=PAIR, onboarding=test, project=project)
    run = task.launch()
    try:
        page = new_page(run.worker_url("gus"))
        assert page.evaluate("() => crowd.mode") == "onboarding"
        page.check("input[name=q][value=yes]")
        page.click("#crowd-submit")  # passing reloads the page (the provider's "reload" completion)
        expect(page.locator("#app-mode")).to_have_text("mode: task")
        page.click("#pick-right")
        page.click("#app-submit")
        expect(page.locator("#app-status")).to_contain_text("Saved")
        assert run.df.iloc[0]["choice"] == "right"
    finally:
        run.stop()


def test_review_and_export_take_whatever_a_js_task_submits(make_run: Any, tmp_path: Path) -> None:
    from crowdnb.review.app import create_review_app

    from .test_review_app import BEARER, TOKEN, serving

    run = js_run(make_run)
    unit = requests.get(run.worker_url("hal"), headers={"Accept": "application/json"}, timeout=10).json()
    answers = {"choice": "left", "reasons": ["fluent", "concise"], "detail": {"seconds": 7, "boxes": [{"x": 1}]}}
    body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": answers}
    assert requests.post(run.url + "submit", json=body, timeout=10).status_code == 200
    assert list(run.df.columns[-4:]) == ["choice", "reasons", "detail.seconds", "detail.boxes"]
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        view = requests.get(f"{base}/api/tasks/{run.task_name}", headers=BEARER, timeout=10).json()
    shown = view["workers"][0]["units"][0]["answers"]
    assert shown == {"choice": "left", "reasons": '["fluent", "concise"]', "detail.seconds": "7",
                     "detail.boxes": '[{"x": 1}]'}  # fmt: skip
    run.export(tmp_path / "out.csv")
    run.export(tmp_path / "out.jsonl")
    csv = pd.read_csv(tmp_path / "out.csv")
    assert json.loads(csv.loc[0, "reasons"]) == ["fluent", "concise"]
    assert json.loads(csv.loc[0, "detail.boxes"]) == [{"x": 1}]
    line = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert line["reasons"] == ["fluent", "concise"] and line["detail.boxes"] == [{"x": 1}]
