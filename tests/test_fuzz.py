"""Property tests: bad input gives a clear error and never corrupts anything."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import crowdnb as cn
from crowdnb import CrowdError
from crowdnb.data import load

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".json", ".jsonl"]))
def test_any_file_gives_rows_or_a_data_error(tmp_path: Path, content: bytes, suffix: str) -> None:
    path = tmp_path / f"data{suffix}"
    path.write_bytes(content)
    try:
        rows = load(path, ["text"]).take()
    except CrowdError as exc:
        assert str(path) in str(exc)
    except UnicodeDecodeError:
        raise AssertionError("a file that is not UTF-8 must give a DataError naming it") from None
    else:
        assert all(isinstance(r, dict) and "text" in r for r in rows)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values)
def test_any_json_body_is_refused_cleanly_or_stored_once(run: cn.Run, body) -> None:
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    before = run.store.scalar("SELECT count(*) FROM submissions")
    reply = http.post(
        run.url + "submit", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert reply.status_code < 500, reply.text
    assert reply.json()["status"] == "refused"
    assert run.store.scalar("SELECT count(*) FROM submissions") == before


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers=st.dictionaries(text, json_values, max_size=5))
def test_any_answers_from_a_real_worker_are_stored_as_given(make_run, answers) -> None:
    run = make_run(data=[{"text": "x"}], extra_answers=True)  # a task that takes answers its page does not declare
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    unit = http.get(run.worker_url("w"), timeout=10).json()
    body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": answers}
    reply = http.post(run.url + "submit", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    stored = json.loads(run.store.scalar("SELECT answers FROM submissions WHERE task_run_id = ?", (run.id,)))
    assert stored == json.loads(json.dumps(answers))
    run.stop()
