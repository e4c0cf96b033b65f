"""Fixtures and a participant for the Prolific tests: a fake Prolific, runs on it, someone taking part."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn
from crowdnb.testing.prolific import FakeProlific

TOKEN = "tok-" + uuid.uuid4().hex  # distinctive, so a leak into the project folder is found
PLACEHOLDERS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeProlific]:
    """A fake Prolific; the token and base URL reach crowdnb the documented way (environment variables)."""
    with FakeProlific(token=TOKEN) as server:
        monkeypatch.setenv("PROLIFIC_API_TOKEN", TOKEN)
        monkeypatch.setenv("PROLIFIC_BASE_URL", server.base_url)
        monkeypatch.setenv("CROWDNB_CONFIG", str(tmp_path / "config"))
        yield server


@pytest.fixture
def launch(project: cn.Project, fake: FakeProlific) -> Iterator[Any]:
    """``launch(data, options={...}, **task_options)``: a run on the fake; every run stopped afterwards."""
    from .conftest import FORM, SENTENCES  # conftest imports these fixtures

    runs: list[cn.Run] = []

    def go(data: Any = None, options: dict[str, Any] | None = None, **task_options: Any) -> cn.Run:
        task = cn.Task("rate", title="Rate sentences", reward=1.0, html=FORM, project=project,
                       data=SENTENCES[:3] if data is None else data, **task_options)  # fmt: skip
        opts = {"completion_url": fake.completion_url, "poll_seconds": 0.1, "timeout": 2} | (options or {})
        run = task.launch(provider="prolific", provider_options=opts)
        runs.append(run)
        return run

    yield go
    for run in runs:
        if run.serving:
            run.stop()


def study_of(fake: FakeProlific, number: int = 0) -> dict[str, Any]:
    """The ``number``-th study on the fake."""
    return list(fake.studies.values())[number]


class Someone:
    """A Prolific participant: a place on the fake and a cookie-keeping HTTP session (JSON pages)."""

    def __init__(self, fake: FakeProlific, study: dict[str, Any], pid: str | None = None) -> None:
        self.fake = fake
        self.place = fake.take_part(study["id"], pid)
        self.id, self.session = self.place.id, self.place.session_id
        self.http = requests.Session()
        self.http.headers["Accept"] = "application/json"
        self.unit: dict[str, Any] = {}

    def open(self) -> requests.Response:
        reply = self.http.get(self.place.link, timeout=10)  # the fake redirects to the study URL
        if reply.ok:
            self.unit = reply.json()
        return reply

    def submit(self, run: cn.Run, label: str = "pos") -> dict[str, Any]:
        body = {"token": self.unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"label": label}}
        reply = self.http.post(run.url + "submit", json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        return dict(reply.json()["completion"])

    def finish(self, run: cn.Run, label: str = "pos") -> None:
        """Open, submit and follow the completion redirect back to Prolific."""
        assert self.open().status_code == 200
        completion = self.submit(run, label)
        assert completion["kind"] == "redirect"
        assert self.http.get(completion["url"], timeout=10).status_code == 200


def unit_of(run: cn.Run, worker: str) -> int:
    return int(run.df.set_index("worker").loc[worker, "unit_id"])
