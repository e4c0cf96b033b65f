"""Shared fixtures: a real project folder, a real run served on 127.0.0.1 port 0, and HTTP workers."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn

from .clouds import cloud, moto_server  # noqa: F401  (fixtures of the EC2 tests: moto in server mode)
from .labs import lab, lab_context  # noqa: F401  (fixtures of the JupyterLab tests: a real Lab, a browser context)
from .prolifics import fake, launch  # noqa: F401  (fixtures of the Prolific tests: a fake Prolific)
from .turkers import mturk, on_mturk  # noqa: F401  (fixtures of the MTurk tests: a fake MTurk endpoint)

CHROMIUM = "/usr/bin/chromium"  # Debian's; `make chromium` installs it, Playwright downloads nothing
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

SENTENCES = [{"text": f"sentence number {i}"} for i in range(6)]
FORM = """
<p>{{ text }}</p>
<label><input type="radio" name="label" value="pos"> positive</label>
<label><input type="radio" name="label" value="neg"> negative</label>
<input type="text" name="why">
"""


def wait_until(condition: Any, what: str = "the condition", timeout: float = 10.0) -> Any:
    """Poll ``condition`` (usually a database read) until it is truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> cn.Project:
    """An empty project folder of its own."""
    return cn.open(tmp_path / "project", create=True)


@pytest.fixture
def make_run(project: cn.Project) -> Iterator[Any]:
    """Launch runs on the embedded default (mock crowd, local router on port 0); all stopped after the test."""
    runs: list[cn.Run] = []

    def make(name: str = "sentiment", data: Any = None, **options: Any) -> cn.Run:
        task = cn.Task(name, title="Sentiment", reward=0.1, html=options.pop("html", FORM),
                       data=SENTENCES if data is None else data, project=project, **options)  # fmt: skip
        run = task.launch(provider="mock", architect="local")
        runs.append(run)
        return run

    yield make
    for run in runs:
        if run.serving:
            run.stop()


@pytest.fixture
def run(make_run: Any) -> cn.Run:
    """A live run of six sentences, one unit each."""
    return make_run()


class Worker:
    """A crowd worker speaking the worker protocol over real HTTP (JSON flavour)."""

    def __init__(self, run: cn.Run, name: str) -> None:
        self.run, self.name = run, name
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.unit: dict[str, Any] = {}

    def enter(self) -> requests.Response:
        reply = self.http.get(self.run.worker_url(self.name), timeout=10)
        if reply.status_code == 200:
            self.unit = reply.json()
        return reply

    def submit(
        self, answers: dict[str, Any], submission_id: str | None = None, token: str | None = None
    ) -> requests.Response:
        body = {
            "token": token or self.unit["token"],
            "submission_id": submission_id or uuid.uuid4().hex,
            "answers": answers,
        }
        return self.http.post(self.run.url + "submit", json=body, timeout=10)


@pytest.fixture
def worker(run: cn.Run) -> Any:
    """``worker("alice")`` makes a worker of the default run."""
    return lambda name, on=None: Worker(on or run, name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module; fails (never skips) when Chromium is missing."""
    from playwright.sync_api import sync_playwright

    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}; the browser tests need it. "
            "Run `make chromium` to install Debian's Chromium (CI installs it through `make test`).",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


PAGE_TIMEOUT_MS = 10_000


@pytest.fixture
def new_page(browser: Any, make_run: Any) -> Iterator[Any]:
    """``new_page(url=None, **context_options)``: a worker's page in a browser context of its own (one per
    worker), its script errors and console errors collected in ``page.errors``; closed before the runs stop."""
    contexts: list[Any] = []

    def open_page(url: str | None = None, **options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.errors = errors
        if url is not None:
            page.goto(url)
        return page

    yield open_page
    for context in contexts:
        context.close()
