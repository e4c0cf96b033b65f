"""Real JupyterLab tests: the quickstart walked through as a researcher would, and a worker link through
jupyter-server-proxy (the harness: tests/labs.py)."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Response, expect

from .conftest import wait_until
from .labs import ARTIFACTS, Lab, accepted_units, db_rows, run_notebook, shoot, snapshot, wait_finished

pytestmark = pytest.mark.browser


def test_quickstart_runs_in_jupyterlab(lab: Lab, lab_context: BrowserContext) -> None:
    page = run_notebook(lab, lab_context, "quickstart.ipynb")

    # the live panel's bar while the bots submit: distinct widths in the order they were seen
    seen: list[float] = []
    deadline = time.monotonic() + 40
    while not seen or seen[-1] < 100:
        state = snapshot(page, lab)
        assert len(state["bars"]) <= 1, f"more than one live progress bar: {state['bars']}"
        if state["bars"]:
            width = float(state["bars"][0].rstrip("%"))
            if not seen or width != seen[-1]:
                seen.append(width)
        if time.monotonic() > deadline:
            raise AssertionError(f"the live panel never reached 100%; widths seen: {seen}")
        time.sleep(0.05)
    assert seen == sorted(seen), f"the progress bar went backwards: {seen}"
    assert len([w for w in seen if w < 100]) >= 2, f"the progress bar did not move while the bots worked: {seen}"
    expect(page.locator(".jp-OutputArea-output .widget-hprogress .progress-bar-success")).to_be_visible()

    state = wait_finished(page, lab)
    last = state["cells"][-1]
    assert "stopped" in last["source"]
    assert [o["text"] for o in last["outputs"]] == ["'stopped'"], last
    stderr = [o["text"] for cell in state["cells"] for o in cell["outputs"] if o["name"] == "stderr"]
    assert stderr == [], f"the notebook wrote to stderr: {stderr}"
    cells = len(state["cells"])
    db = lab.root / "crowdnb_data" / "crowdnb.db"
    submissions = "SELECT count(*) AS n FROM submissions"
    assert db_rows(db, submissions)[0]["n"] == 36  # the bots' (4 workers × 12 sentences × 3 … at most one each)
    outputs = page.locator(".jp-OutputArea-output")
    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")

    # the preview: a dry run, through jupyter-server-proxy, with its controls on one line and all of its page shown
    preview = outputs.locator(".crowd-preview-widget")
    bar, frame = preview.locator(".crowd-preview-bar"), preview.locator("iframe.crowd-preview-frame")
    expect(frame).to_have_attribute("src", re.compile(re.escape(lab.url) + r"/proxy/\d+/t/[\w-]+/\?row=0$"))
    assert bar.bounding_box()["height"] < 40, "the preview's controls wrap onto a second line"  # type: ignore[index]
    worker_page = page.frame_locator(".crowd-preview-widget iframe.crowd-preview-frame")
    expect(worker_page.locator("blockquote")).to_have_text(re.compile(r"\S"))
    first = worker_page.locator("blockquote").inner_text()
    preview.get_by_role("button", name="▶").click()
    expect(frame).to_have_attribute("src", re.compile(r"\?row=1$"))
    expect(worker_page.locator("blockquote")).not_to_have_text(first)
    worker_page.get_by_label("Negative").check()
    worker_page.locator("#crowd-submit").click()
    expect(worker_page.locator("#crowd-dry-run")).to_contain_text('"label": "negative"')
    expect(worker_page.locator("#crowd-dry-run")).to_contain_text("nothing was stored")
    submit, box = worker_page.locator("#crowd-submit").bounding_box(), frame.bounding_box()
    assert submit and box and submit["y"] + submit["height"] <= box["y"] + box["height"], "Submit is cut off"
    assert db_rows(db, submissions)[0]["n"] == 36, "the dry run stored a submission"
    shoot(page, ".jp-OutputArea-output:has(.crowd-preview-widget)", "lab-preview.png")

    # the live panel: every unit in, the rate measured over a window and frozen, light rules in its table
    live = page.locator(".jp-OutputArea-output:has(.crowd-live-stats)")
    expect(live.locator(".crowd-live-stats")).to_contain_text("36/36 submitted")
    expect(live.locator(".crowd-live-stats")).to_contain_text(re.compile(r"\d+\.\d/min · time left done"))
    border = live.locator("table.crowd-latest td").first.evaluate("td => getComputedStyle(td).borderTopWidth")
    assert border == "0px", border
    shoot(page, ".jp-OutputArea-output:has(.crowd-live-stats)", "lab-live.png")

    # the review grid: opens on the units that need a decision, one compact line each, a legend, sort, keys
    grid = outputs.locator(".crowd-review")
    rows = grid.locator("tr.crowd-row")
    expect(rows).to_have_count(20)
    expect(grid.locator(".crowd-statuses [aria-pressed=true]")).to_have_text("needs a decision (36)")
    expect(grid.locator(".crowd-pager")).to_have_text("page 1 of 2 · 36 units")
    expect(grid.locator(".crowd-legend")).to_contain_text("awaiting review")
    heights = rows.evaluate_all("rows => rows.map((r) => r.getBoundingClientRect().height)")
    assert max(heights) <= 30, f"rows are not compact: {heights}"
    grid.locator("th[data-key=worker] button").click()
    expect(grid.locator("th[data-key=worker]")).to_have_attribute("aria-sort", "ascending")
    workers = grid.locator("td.crowd-worker").all_inner_texts()
    assert workers == sorted(workers), workers
    assert accepted_units(db) == 0
    rows.nth(0).locator("td.crowd-worker").click()  # the first row becomes current, the grid has the focus
    page.keyboard.press("a")  # the key runs run.approve in the kernel
    wait_until(lambda: accepted_units(db) == 1, "the approval to reach the database")
    expect(grid.locator(".crowd-pager")).to_contain_text("35 units")  # the grid (needs a decision) refreshed
    expect(grid.locator(".crowd-message")).to_have_text("accepted 1 of 1 unit")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("crowd-cursor"))
    page.keyboard.press("Enter")  # the unit opens: every column
    expect(grid.locator(".crowd-detail")).to_contain_text("label")
    page.keyboard.press("s")
    soft = "SELECT count(*) AS n FROM units WHERE status = 'soft_rejected'"
    wait_until(lambda: db_rows(db, soft)[0]["n"] == 1, "the soft rejection to reach the database")
    assert len(snapshot(page, lab)["cells"]) == cells, "a grid key reached the notebook (a cell was added)"
    shoot(page, ".jp-OutputArea-output:has(.crowd-review)", "lab-review.png")
    assert page.problems == [], "console errors in JupyterLab:\n" + "\n".join(page.problems)  # type: ignore[attr-defined]

    # one tall screenshot of the whole notebook with its widgets
    height = page.evaluate(
        """() => {
          const outer = window.crowdPanel.node.querySelector(".jp-WindowedPanel-outer");
          outer.scrollTop = 0;  // run-all left it scrolled to the last cell
          return outer.getBoundingClientRect().top + outer.scrollHeight + 40;
        }"""
    )
    page.set_viewport_size({"width": 1280, "height": min(int(height), 12_000)})
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lab-quickstart.png"))
    page.close()


PROXY_NOTEBOOK = [
    "import crowdnb as cn",
    'task = cn.Task("proxy-check", title="Proxy check", reward=0.01, html=\'<p>{{ text }}</p><input name="answer">\',\n'
    '               data=[{"text": "hello"}], project=cn.open("proxy_data", create=True))\n'
    "run = task.launch()  # not stopped: the router keeps serving until the kernel goes\n"
    'print(run.link("carol"))',
]


def test_worker_link_through_jupyter_server_proxy(lab: Lab, lab_context: BrowserContext) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in PROXY_NOTEBOOK])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / "proxy_check.ipynb")
    page = run_notebook(lab, lab_context, "proxy_check.ipynb")
    state = wait_finished(page, lab)
    printed = "".join(o["text"] for o in state["cells"][-1]["outputs"] if o["name"] == "stdout").strip()
    # absolute, so the printed link is clickable: the server's address from its runtime file, then the proxy path
    match = re.fullmatch(re.escape(lab.url) + r"/proxy/(\d+)/\?worker_id=carol", printed)
    assert match, f"run.link('carol') is not an absolute jupyter-server-proxy link: {printed!r}"
    router = f"/proxy/{match[1]}/"

    problems: list[str] = []
    sockets: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            problems.append(f"{response.status} {response.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    worker = lab_context.new_page()  # same context: the Lab visit set the token cookie the proxy checks
    worker.on("response", on_response)
    worker.on("console", on_console)
    worker.on("pageerror", lambda error: problems.append(f"uncaught exception: {error}"))
    worker.on("websocket", lambda ws: sockets.append(ws.url))
    worker.goto(printed)
    expect(worker.locator("fieldset.crowd-task p")).to_have_text("hello")
    stylesheet = worker.evaluate("() => document.styleSheets.length && document.styleSheets[0].href")
    assert stylesheet == f"{lab.url}{router}_crowd/crowd.css", stylesheet

    db = lab.root / "proxy_data" / "crowdnb.db"
    agent_sql = (
        "SELECT a.status FROM agents a JOIN workers w ON w.id = a.worker_id WHERE w.provider = 'mock' AND w.name = ?"
    )
    # the heartbeat went over the websocket, through the proxy, and the router marked carol as working
    wait_until(lambda: [a for a in db_rows(db, agent_sql, ("carol",)) if a["status"] == "in_task"], "the heartbeat")
    assert sockets and sockets[0].startswith(lab.url.replace("http:", "ws:", 1) + router + "ws?"), sockets

    worker.fill("input[name=answer]", "hello through the proxy")
    worker.click("#crowd-submit")
    expect(worker.locator("#crowd-saved")).to_be_visible()
    rows = db_rows(
        db,
        "SELECT s.answers FROM submissions s JOIN workers w ON w.id = s.worker_id WHERE w.name = ?",
        ("carol",),
    )
    assert [json.loads(row["answers"]) for row in rows] == [{"answer": "hello through the proxy"}]
    assert problems == [], "errors on the proxied worker page:\n" + "\n".join(problems)

    worker.close()
    page.close()
    session = next(s for s in lab.api("GET", "sessions") if s["path"].endswith("proxy_check.ipynb"))
    lab.api("DELETE", f"sessions/{session['id']}")  # shuts the kernel, and with it the run's router, down
