"""Real JupyterLab tests: the quickstart notebook and a worker link through jupyter-server-proxy.

A module-scoped fixture starts ``jupyter lab`` (this virtualenv's) on a free port with a token, in a
temp folder of its own (notebooks, workspaces, settings, runtime files), and stops it afterwards.
Debian's Chromium, driven by Playwright, opens the notebooks and runs them as a person would; the
tests read results from the DOM and, read only, from the project's SQLite file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Response, expect

from .conftest import wait_until

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "notebooks" / "quickstart.ipynb"
ARTIFACTS = REPO / "test-artifacts"
TIMEOUT_MS = 15_000

# What a code cell of the open notebook holds (from the notebook model, so hidden outputs count too), the
# kernel's status, and the live panel's progress bar: ipywidgets 8 draws an IntProgress as
# .widget-hprogress > .progress > .progress-bar and sets the bar's style.width to the percentage.
SNAPSHOT_JS = """
() => {
  const panel = window.crowdPanel;
  const text = (value) => [].concat(value ?? []).join("");
  const cells = Array.from(panel.content.model.cells).filter((c) => c.type === "code").map((c) => {
    const cell = c.toJSON();
    return {
      count: cell.execution_count,
      source: text(cell.source).slice(0, 80),
      outputs: cell.outputs.map((o) => ({
        type: o.output_type,
        name: o.name ?? null,
        text: o.output_type === "stream" ? text(o.text)
          : o.output_type === "error" ? `${o.ename}: ${o.evalue}`
          : text(o.data?.["text/plain"]),
      })),
    };
  });
  const bars = Array.from(document.querySelectorAll(".jp-OutputArea-output .widget-hprogress"))
    .filter((bar) => bar.querySelector(".widget-label")?.textContent.trim() === "submitted")
    .map((bar) => bar.querySelector(".progress-bar").style.width);
  return { kernel: panel.sessionContext.session?.kernel?.status ?? null, cells, bars };
}
"""

# Once the notebook's document and kernel are ready: clear the outputs saved in the file (the quickstart
# is stored with its outputs and widget state), then run all cells. The run command is fired, not awaited:
# its promise settles only when every cell has run, and Playwright's evaluate has no timeout of its own.
RUN_ALL_JS = """
async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  window.crowdPanel = panel;
  await window.jupyterapp.commands.execute("notebook:clear-all-cell-outputs");
  window.jupyterapp.commands.execute("notebook:run-all-cells");
  return panel.context.path;
}
"""

LAB_SETTINGS = {
    # no news or update toasts over the notebook
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    # every cell attached to the DOM: widgets scrolled out of view still render, and a tall viewport shows them all
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    # the copied notebooks are scratch: never write them back
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}


@dataclass
class Lab:
    """A running JupyterLab: its address, token, notebook folder and log."""

    url: str
    token: str
    root: Path
    log: Path
    process: subprocess.Popen[bytes]

    def api(self, method: str, path: str) -> Any:
        reply = requests.request(
            method, f"{self.url}/api/{path}", headers={"Authorization": f"token {self.token}"}, timeout=10
        )
        reply.raise_for_status()
        return reply.json() if reply.content else None

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop_lab(lab: Lab) -> None:
    """Shut the kernels down through the server, then stop its process group (TERM, then KILL)."""
    try:
        for kernel in lab.api("GET", "kernels"):
            lab.api("DELETE", f"kernels/{kernel['id']}")
    except (requests.RequestException, ValueError):
        pass  # the server is gone already; kernels exit on their own when their parent does
    try:
        os.killpg(lab.process.pid, signal.SIGTERM)
        lab.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(lab.process.pid, signal.SIGKILL)
        lab.process.wait(timeout=5)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """JupyterLab on a free port, serving a temp folder that holds a copy of the quickstart notebook."""
    base = tmp_path_factory.mktemp("lab")
    root, home = base / "notebooks", base / "jupyter"
    root.mkdir()
    shutil.copyfile(QUICKSTART, root / "quickstart.ipynb")
    settings = home / "user-settings"
    for name, values in LAB_SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values), encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JPY_", "JUPYTER"))}
    env.pop("CROWDNB_PUBLIC_URL", None)  # links must come from jupyter-server-proxy, not an outside template
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    for variable, folder in {
        "JUPYTER_RUNTIME_DIR": "runtime",
        "JUPYTER_CONFIG_DIR": "config",
        "JUPYTER_DATA_DIR": "data",
        "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
    }.items():
        (home / folder).mkdir()
        env[variable] = str(home / folder)
    port, token = free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
        f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={settings}",
    ]  # fmt: skip
    log = home / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Lab(f"http://127.0.0.1:{port}", token, root, log, process)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                if requests.get(f"{server.url}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within 30 s:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.1)
        yield server
    finally:
        stop_lab(server)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context per test: the Lab page sets the token cookie that worker pages then use too."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def run_notebook(lab: Lab, context: BrowserContext, name: str) -> Page:
    """Open ``name`` in a fresh workspace, wait for an idle kernel, clear its outputs and run all cells."""
    page = context.new_page()
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext"
        " && document.querySelector('.jp-Notebook-ExecutionIndicator[data-status=\"idle\"]')",
        timeout=30_000,
    )
    assert page.evaluate(RUN_ALL_JS) == name
    return page


def snapshot(page: Page, lab: Lab) -> dict[str, Any]:
    """The notebook's code cells, kernel status and live progress bars; fails at once on an error output."""
    state: dict[str, Any] = page.evaluate(SNAPSHOT_JS)
    errors = [o["text"] for cell in state["cells"] for o in cell["outputs"] if o["type"] == "error"]
    if errors:
        raise AssertionError(f"a cell raised: {errors}\n--- server log ---\n{lab.log_tail()}")
    return state


def wait_finished(page: Page, lab: Lab, timeout: float = 30) -> dict[str, Any]:
    """The snapshot once every code cell has run (has an execution count) and the kernel is idle."""

    def done() -> dict[str, Any] | None:
        state = snapshot(page, lab)
        ran = state["kernel"] == "idle" and all(cell["count"] is not None for cell in state["cells"])
        return state if ran else None

    return dict(wait_until(done, "the notebook to finish running", timeout))


def db_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a project's SQLite file, opened read only (the kernel owns it)."""
    if not path.exists():
        return []
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql, params)]


def accepted_units(db: Path) -> int:
    return int(db_rows(db, "SELECT count(*) AS n FROM units WHERE status = 'accepted'")[0]["n"])


def test_quickstart_runs_in_jupyterlab(lab: Lab, context: BrowserContext) -> None:
    page = run_notebook(lab, context, "quickstart.ipynb")

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

    # the widgets rendered: the preview's iframe, the live panel, the review table's rows
    outputs = page.locator(".jp-OutputArea-output")
    expect(outputs.locator("iframe.crowd-preview")).to_be_visible()
    expect(outputs.locator(".crowd-live-stats")).to_contain_text("36/36 submitted")
    approve = outputs.get_by_role("button", name="approve", exact=True)
    expect(approve.first).to_be_visible()
    pager = outputs.locator(".widget-label", has_text=re.compile(r"^page \d+ of \d+"))
    expect(pager).to_contain_text(re.compile(r"\b36 units"))

    db = lab.root / "crowdnb_data" / "crowdnb.db"
    assert accepted_units(db) == 0
    approve.first.click()  # the click runs run.approve in the kernel
    wait_until(lambda: accepted_units(db) == 1, "the approval to reach the database")
    expect(pager).to_contain_text(re.compile(r"\b35 units"))  # the table (filter: completed) refreshed

    # one tall screenshot of the whole notebook with its widgets
    height = page.evaluate(
        """() => {
          window.jupyterapp.shell.collapseLeft();
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


def test_worker_link_through_jupyter_server_proxy(lab: Lab, context: BrowserContext) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in PROXY_NOTEBOOK])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / "proxy_check.ipynb")
    page = run_notebook(lab, context, "proxy_check.ipynb")
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

    worker = context.new_page()  # same context: the Lab visit set the token cookie the proxy checks
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
