"""crowd.call in Chromium: the declarative hook, a readable error, a dropped socket mid-call answered once."""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from playwright.sync_api import expect

import crowdnb as cn

from .conftest import wait_until

pytestmark = pytest.mark.browser
expect.set_options(timeout=10_000)

PAGE = """
<p>{{ text }}</p>
<label>Your sentence <input id="sentence" name="sentence"></label>
<button type="button" id="ask" data-crowd-call="guess" data-crowd-args="#sentence" data-crowd-result="#guess">Ask</button>
<output id="guess"></output>
<button type="button" id="broken" data-crowd-call="broken" data-crowd-result="#oops">Break</button>
<output id="oops"></output>
<input type="hidden" name="label" value="done">
<script>
crowd.onReady(function () {
  document.getElementById("ask").addEventListener("crowd:result", function (event) {
    document.getElementById("sentence").dataset.answered = event.detail.result.label;
  });
});
</script>
"""


def launch(project: cn.Project, **procedures: Any) -> cn.Run:
    task = cn.Task("live-page", title="Fool the model", reward=0.1, html=PAGE, data=[{"text": "hi"}], project=project)
    for name, fn in procedures.items():
        task.procedure(fn, name=name)
    return task.launch()


@pytest.fixture
def served(project: cn.Project) -> Any:
    runs: list[cn.Run] = []

    def make(**procedures: Any) -> cn.Run:
        runs.append(launch(project, **procedures))
        return runs[-1]

    yield make
    for run in runs:
        run.stop()


def guess(args: dict[str, Any], worker: Any) -> dict[str, Any]:
    label = "positive" if "good" in args.get("sentence", "") else "negative"
    return {"text": f"The model says: {label}", "label": label}


def test_a_button_calls_the_notebook_and_shows_its_answer(new_page: Any, served: Any) -> None:
    def broken(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        raise cn.ProcedureError("The model is not available; try again in a minute.")

    run = served(guess=guess, broken=broken)
    page = new_page(run.worker_url("alice"))
    page.fill("#sentence", "a good day")
    page.click("#ask")
    expect(page.locator("#guess")).to_have_text("The model says: positive")
    expect(page.locator("#sentence")).to_have_attribute("data-answered", "positive")
    page.click("#broken")
    expect(page.locator("#oops")).to_have_text("The model is not available; try again in a minute.")
    expect(page.locator("#oops")).to_have_class(re.compile("crowd-call-error"))
    results = page.evaluate("crowd.call('guess', {sentence: 'bad'}).then(r => r.label)")
    assert results == "negative"
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    assert run.df.loc[0, "calls"] == 3
    assert list(run.calls_df["status"]) == ["ok", "error", "ok"]
    assert not page.errors


def test_a_raising_procedure_shows_the_worker_a_message(new_page: Any, served: Any) -> None:
    def broken(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {"x": 1 / 0}

    run = served(guess=guess, broken=broken)
    page = new_page(run.worker_url("alice"))
    page.click("#broken")
    expect(page.locator("#oops")).to_contain_text("Something went wrong")
    expect(page.locator("#oops")).not_to_contain_text("ZeroDivisionError")
    assert "ZeroDivisionError" in run.calls_df.loc[0, "traceback"]


def test_a_call_whose_socket_drops_is_answered_once(new_page: Any, served: Any) -> None:
    ran: list[float] = []

    def slow(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        ran.append(time.monotonic())
        time.sleep(1.0)
        return {"text": "answered"}

    run = served(guess=slow)
    page = new_page()
    dropped = threading.Event()
    sent: list[str] = []  # every attempt of the call: on a socket, or by POST
    page.on("request", lambda request: sent.append("post") if request.url.endswith("/call") else None)

    def route(socket: Any) -> None:
        server = socket.connect_to_server()

        def from_page(message: Any) -> None:
            server.send(message)
            if '"call"' in str(message):
                sent.append("socket")
            if '"call"' in str(message) and not dropped.is_set():
                dropped.set()
                socket.close()  # the page's socket drops while the call runs on the server

        socket.on_message(from_page)
        server.on_message(lambda message: socket.send(message))

    page.route_web_socket(re.compile(r".*/ws\?token=.*"), route)
    page.goto(run.worker_url("alice"))
    page.wait_for_function("() => window.crowd && window.crowd.mode === 'task'")
    page.wait_for_timeout(300)  # the socket is open: the call goes over it
    page.fill("#sentence", "anything")
    page.click("#ask")
    expect(page.locator("#guess")).to_have_text("answered")
    assert dropped.is_set() and len(sent) == 2, sent  # sent again after the drop, with the same id
    wait_until(lambda: len(run.calls_df) == 1, "the call to be stored")
    assert len(ran) == 1 and run.calls_df.loc[0, "status"] == "ok"
