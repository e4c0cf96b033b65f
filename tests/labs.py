"""A real JupyterLab for tests: a module-scoped fixture starts ``jupyter lab`` (this virtualenv's) on a free
port with a token, in a temp folder of its own (notebooks, workspaces, settings, runtime files), and
stops it afterwards. Debian's Chromium, driven by Playwright, opens notebooks and runs them as a person
would; tests read results from the DOM and, read only, from the project's SQLite file.

The same server also serves Notebook 7 (``/notebooks/NAME.ipynb``) when the ``notebook`` package is
installed (the ``lab`` extra).
"""

from __future__ import annotations

import json
import os
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
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page

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
    # Notebook 7 (served by the same server) exposes its app to the tests as JupyterLab does
    config = {"JupyterNotebookApp": {"expose_app_in_browser": True}}
    (home / "config" / "jupyter_server_config.json").write_text(json.dumps(config), encoding="utf-8")
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
        deadline = time.monotonic() + 60  # a loaded 2-core machine has taken over 30 s
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited with {process.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                if requests.get(f"{server.url}/api/status", params={"token": token}, timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer within 60 s:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.1)
        yield server
    finally:
        stop_lab(server)


@pytest.fixture
def lab_context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser context per test: the Lab page sets the token cookie that worker pages then use too."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    context.close()


def run_notebook(lab: Lab, context: BrowserContext, name: str, ui: str = "lab") -> Page:
    """Open ``name`` in a fresh workspace of JupyterLab (``ui="lab"``) or Notebook 7 (``"notebook"``), wait for
    an idle kernel, clear its outputs and run all cells; ``page.problems`` collects console errors."""
    page = context.new_page()
    watch(page)
    address = f"lab/tree/{name}?reset&" if ui == "lab" else f"notebooks/{name}?"
    page.goto(f"{lab.url}/{address}token={lab.token}")
    page.wait_for_function(
        "() => window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel?.status === 'idle'",
        timeout=30_000,
    )
    assert page.evaluate(RUN_ALL_JS) == name
    return page


def watch(page: Page) -> list[str]:
    """Collect the page's console errors and uncaught exceptions in ``page.problems`` (and return the list)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught exception: {error} {error.stack}"))
    page.problems = problems  # type: ignore[attr-defined]
    return problems


def write_notebook(lab: Lab, name: str, sources: list[str]) -> None:
    """A notebook of code cells in the Lab's folder."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, lab.root / name)


def shoot(page: Page, selector: str, name: str) -> Path:
    """A screenshot of the element ``selector`` under test-artifacts/ (CI keeps the folder)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.locator(selector).first.scroll_into_view_if_needed()
    page.locator(selector).first.screenshot(path=str(path))
    return path


def snapshot(page: Page, lab: Lab) -> dict[str, Any]:
    """The notebook's code cells, kernel status and live progress bars; fails at once on an error output."""
    state: dict[str, Any] = page.evaluate(SNAPSHOT_JS)
    errors = [o["text"] for cell in state["cells"] for o in cell["outputs"] if o["type"] == "error"]
    if errors:
        raise AssertionError(f"a cell raised: {errors}\n--- server log ---\n{lab.log_tail()}")
    return state


def wait_finished(page: Page, lab: Lab, timeout: float = 30) -> dict[str, Any]:
    """The snapshot once every code cell has run (has an execution count) and the kernel is idle."""
    from .conftest import wait_until  # conftest imports this module's fixtures

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
