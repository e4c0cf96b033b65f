"""Fixtures of the Heroku extension's tests: the fake Platform API, a stopped run's project, a crowdnb wheel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from crowdnb_heroku.fake import FakeHeroku
from crowdnb_heroku.platform import Platform

import crowdnb as cn
from crowdnb.architects.wheel import crowdnb_wheel

PAGE = '<p>{{ text }}</p><input name="answer">'


@pytest.fixture
def fake() -> Iterator[FakeHeroku]:
    """The fake Platform API on 127.0.0.1 (builds finish on their third read)."""
    with FakeHeroku() as running:
        yield running


@pytest.fixture
def platform(fake: FakeHeroku) -> Platform:
    """A client of the fake with the right token and no real waiting between retries."""
    return Platform(fake.api_key, fake.base_url, backoff=0.0)


@pytest.fixture
def stopped_run(tmp_path: Path) -> cn.Run:
    """A launched-then-stopped run of three rows in a project folder of its own (what gets deployed)."""
    project = cn.open(tmp_path / "study", create=True)
    task = cn.Task(
        "heroku", title="T", reward=0.1, html=PAGE, data=[{"text": f"row {i}"} for i in range(3)], project=project
    )
    run = task.launch()
    run.stop()
    return run


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One wheel of the running crowdnb for the whole session (building it takes a second or two)."""
    return crowdnb_wheel(tmp_path_factory.mktemp("wheel"))
