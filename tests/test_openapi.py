"""The worker API as its OpenAPI description says, fuzzed with schemathesis: no input makes the router fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings

import crowdnb as cn
from crowdnb.pages.page import ASSETS

from .conftest import FORM, SENTENCES

schema = schemathesis.openapi.from_dict(json.loads((ASSETS / "openapi.json").read_text()))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cn.Run]:
    project = cn.open(tmp_path_factory.mktemp("openapi") / "project", create=True)
    run = cn.Task("fuzzed", title="T", reward=0.1, html=FORM, data=SENTENCES * 20, project=project).launch()
    yield run
    run.stop()


def test_the_router_serves_its_description(served: cn.Run) -> None:
    assert requests.get(served.url + "openapi.json", timeout=10).json()["info"]["title"] == "crowdnb worker API"


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_router_fail(case: schemathesis.Case, served: cn.Run) -> None:
    response = case.call(base_url=served.url.rstrip("/"), timeout=10)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}"
    )
    assert Path(served.store.path).is_file()


def test_the_fuzzer_reached_the_dispatcher(served: cn.Run) -> None:
    """Runs after the fuzzing: generated worker ids were dispatched, so the cases were real requests."""
    assert served.store.scalar("SELECT count(*) FROM workers") > 0
