"""Fixtures of the Heroku extension's tests: the fake Platform API and a client of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from crowdnb_heroku.fake import FakeHeroku
from crowdnb_heroku.platform import Platform


@pytest.fixture
def fake() -> Iterator[FakeHeroku]:
    """The fake Platform API on 127.0.0.1 (builds finish on their third read)."""
    with FakeHeroku() as running:
        yield running


@pytest.fixture
def platform(fake: FakeHeroku) -> Platform:
    """A client of the fake with the right token and no real waiting between retries."""
    return Platform(fake.api_key, fake.base_url, backoff=0.0)
