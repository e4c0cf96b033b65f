"""The MTurk tests' fixtures and worker: a fake MTurk endpoint, runs on it, and a worker acting as on MTurk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.testing.mturk import FakeMTurk

FAST = {"allow_http": True, "poll_seconds": 0.2, "retry_delay": 0.01, "timeout": 2}
ROWS = [{"text": f"sentence {i}"} for i in range(3)]


@pytest.fixture
def mturk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeMTurk]:
    """A fake MTurk endpoint, found by boto3 through the environment; no keys of this machine's user."""
    server = FakeMTurk().start()
    for name, value in server.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CROWDNB_CONFIG", str(tmp_path / "config"))
    yield server
    server.stop()


@pytest.fixture
def on_mturk(project: cn.Project, mturk: FakeMTurk) -> Iterator[Any]:
    """``on_mturk(data, provider=…, **task_options)`` runs a task on the fake MTurk; stopped after the test."""
    from .conftest import FORM

    runs: list[cn.Run] = []

    def start(data: Any = ROWS, provider: str = "mturk_sandbox", options: dict[str, Any] | None = None, **kw: Any):
        kw.setdefault("tags", ("sentiment", "text"))
        task = cn.Task("turk", title="Sentiment", description="Read a sentence.", reward=0.5, html=FORM,
                       data=data, project=project, **kw)  # fmt: skip
        run = task.launch(provider=provider, provider_options={**FAST, **(options or {})})
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.serving:
            run.stop()


class Turker:
    """A worker on the fake MTurk: accepts a HIT, opens the task page, submits, posts back to MTurk."""

    def __init__(self, mturk: FakeMTurk, name: str) -> None:
        self.mturk, self.name = mturk, name
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.http.headers["Connection"] = "close"  # no pooled socket left for the garbage collector to find
        self.assignment = ""
        self.unit: dict[str, Any] = {}

    def accept(self, hit_id: str | None = None) -> str:
        self.assignment = self.mturk.accept(self.name, hit_id)
        return self.assignment

    def open(self) -> requests.Response:
        reply = self.http.get(self.mturk.worker_url(self.assignment), timeout=10)
        if reply.status_code == 200:
            self.unit = reply.json()
        return reply

    def submit(self, answers: dict[str, Any]) -> dict[str, Any]:
        body = {"token": self.unit["token"], "submission_id": f"sub-{self.assignment}", "answers": answers}
        reply = self.http.post(self.mturk.worker_url(self.assignment).split("?")[0] + "submit", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        completion: dict[str, Any] = reply.json()["completion"]
        return completion

    def post_back(self, completion: dict[str, Any]) -> requests.Response:
        return requests.post(completion["url"], data=completion["fields"], timeout=10)

    def work(self, answers: dict[str, Any] | None = None) -> dict[str, Any]:
        """Accept, open, submit and post back: a whole unit."""
        self.accept()
        assert self.open().status_code == 200
        completion = self.submit(answers or {"label": "pos"})
        assert self.post_back(completion).status_code == 200
        return completion


def unit_of(run: cn.Run, worker: str) -> int:
    return int(run.df.set_index("worker").loc[worker, "unit_id"])
