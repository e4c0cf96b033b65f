"""The review web app: token and CSRF guards, actions that change the store exactly as the Python API
does, export downloads, and worker-written text escaped wherever a reviewer looks."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

import crowdnb as cn
from crowdnb import quality
from crowdnb.review.app import create_review_app

TOKEN = "review-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SCRIPT = "<script>alert(1)</script>"
EVIL_WORKER = "<img src=x onerror=alert(1)>"
# (worker, label, why) in the order they submit; alice and bob share both items of the first two rows
ANSWERS = [
    ("alice", "pos", "upbeat"),
    ("alice", "pos", "cheerful"),
    ("bob", "neg", "grumpy"),
    ("bob", "pos", "fine"),
    ("carol", "neg", SCRIPT),
]


def submit(run: cn.Run, answers: list[tuple[str, str, str]]) -> dict[str, list[int]]:
    """Each (worker, label, why) takes a unit and submits it over HTTP; returns unit ids by worker."""
    for name, label, why in answers:
        with requests.Session() as http:
            http.headers["Accept"] = "application/json"
            unit = http.get(run.worker_url(name), timeout=10)
            assert unit.status_code == 200, unit.text
            body = {
                "token": unit.json()["token"],
                "submission_id": uuid.uuid4().hex,
                "answers": {"label": label, "why": why},
            }
            assert http.post(run.url + "submit", json=body, timeout=10).status_code == 200
    frame = run.df
    return {str(name): [int(u) for u in rows["unit_id"]] for name, rows in frame.groupby("worker")}


@contextlib.contextmanager
def serving(app: Flask) -> Iterator[str]:
    """``app`` on a real port of 127.0.0.1, in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="review-app-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def study(make_run: Any) -> tuple[cn.Run, dict[str, list[int]]]:
    """A live run (two workers per sentence) with five submitted units: alice 2, bob 2, carol 1."""
    run = make_run(units_per_assignment=2)
    return run, submit(run, ANSWERS)


@pytest.fixture
def client(study: Any) -> FlaskClient:
    run, _ = study
    return create_review_app(run.project, TOKEN).test_client()


def sign_in(client: FlaskClient) -> str:
    """Open the token link; returns the session's CSRF token (read from the task page's form)."""
    assert client.get(f"/?token={TOKEN}").status_code == 200
    page = client.get("/tasks/sentiment")
    assert page.status_code == 200
    found = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    assert found, "the task page has no CSRF field"
    return found.group(1)


def calls(run: cn.Run, call: str, unit_id: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM provider_calls WHERE call = ?" + (" AND unit_id = ?" if unit_id is not None else "")
    return run.store.query(sql, (call,) if unit_id is None else (call, unit_id))


def status_of(run: cn.Run, unit_id: int) -> str:
    return str(run.store.get_unit(unit_id)["status"])


# --- the token ---------------------------------------------------------------------------------------
GUARDED = [
    ("GET", "/"),
    ("GET", "/tasks/sentiment"),
    ("GET", "/tasks/sentiment/stats"),
    ("GET", "/tasks/sentiment/export.csv"),
    ("GET", "/qualifications"),
    ("GET", "/workers/mock/alice"),
    ("GET", "/_review/review.css"),
    ("GET", "/api/tasks"),
    ("GET", "/api/tasks/sentiment"),
    ("GET", "/api/qualifications"),
    ("POST", "/actions/approve"),
    ("POST", "/api/units/approve"),
    ("POST", "/api/workers/block"),
]


def test_every_route_needs_the_token(client: FlaskClient, study: Any) -> None:
    run, units = study
    body = {"unit_ids": [str(u) for u in units["alice"]], "worker": "carol", "note": "no"}
    attempts = [
        {},
        {"headers": {"Authorization": "Bearer wrong-token-0123456789abcdef"}},
        {"headers": {"Authorization": "Bearer "}},
        {"headers": {"Authorization": "Bearer tökén-with-non-ascii"}},
    ]
    for method, path in GUARDED:
        for options in attempts:
            reply = client.open(path, method=method, json=body if method == "POST" else None, **options)
            assert reply.status_code == 401, (method, path, options, reply.text)
            assert "Set-Cookie" not in reply.headers
            if path.startswith("/api/"):
                assert reply.json is not None and "token" in reply.json["error"]
        if method == "GET":
            assert client.get(f"{path}?token=wrong-token-0123456789abcdef").status_code == 401, path
        # a token in the query starts a session only on GET: a forged form cannot carry it
        if method == "POST":
            assert client.post(f"{path}?token={TOKEN}", json=body).status_code == 401, path
        with client.get(path, headers=BEARER) as reply:  # a file response holds the file open until closed
            assert reply.status_code in (200, 405), path
    assert status_of(run, units["alice"][0]) == "completed"
    assert calls(run, "approve") == [] and calls(run, "block") == []


def test_token_link_starts_a_strict_httponly_session(study: Any) -> None:
    run, _ = study
    with serving(create_review_app(run.project, TOKEN)) as base, requests.Session() as browser:
        first = browser.get(f"{base}/tasks/sentiment?status=completed&token={TOKEN}", allow_redirects=False)
        assert first.status_code == 200
        cookie = first.headers["Set-Cookie"]
        assert cookie.startswith("crowdnb_review=")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # the page reloads itself without the token (a same-site navigation keeps the Strict cookie)
        assert 'http-equiv="refresh" content="0;url=/tasks/sentiment?status=completed"' in first.text
        assert TOKEN not in first.text
        assert first.headers["Referrer-Policy"] == "no-referrer"
        page = browser.get(f"{base}/tasks/sentiment?status=completed")
        assert page.status_code == 200 and 'id="rv-task-name">sentiment<' in page.text
        assert browser.get(f"{base}/api/tasks").json()["tasks"][0]["name"] == "sentiment"
        with requests.Session() as stranger:
            assert stranger.get(f"{base}/tasks/sentiment").status_code == 401


def test_bearer_header_reads_the_api(client: FlaskClient, study: Any) -> None:
    run, units = study
    tasks = client.get("/api/tasks", headers=BEARER).json["tasks"]
    assert [t["name"] for t in tasks] == ["sentiment"]
    assert tasks[0]["units"]["completed"] == 5 and tasks[0]["submissions"] == 5
    assert tasks[0]["spend"]["pending"] == pytest.approx(0.5)
    task = client.get("/api/tasks/sentiment", headers=BEARER).json
    # grouped by worker, fewest units first; ids are strings (beyond JavaScript's safe integers)
    assert [g["worker"] for g in task["workers"]] == ["carol", "alice", "bob"]
    assert task["workers"][1]["units"][0]["id"] == str(units["alice"][0])
    assert task["workers"][1]["record"] == {"completed": 2, "accepted": 0, "rejected": 0, "soft_rejected": 0}
    expected = quality.worker_accuracy(run.project.task_frame("sentiment"))["agreement"]
    assert {g["worker"]: g["agreement"] for g in task["workers"]} == pytest.approx(
        {w: None if pd.isna(a) else a for w, a in expected.items()}
    )


def test_stats_page_shows_agreement_from_crowdnb_quality(client: FlaskClient, study: Any) -> None:
    run, _ = study
    frame = run.project.task_frame("sentiment")
    alpha = quality.krippendorff_alpha(frame, answer="label")
    votes = quality.majority_vote(frame, answer="label")
    html = client.get("/tasks/sentiment/stats", headers=BEARER).text
    assert f'<b class="rv-alpha">{alpha:.3f}</b>' in html
    assert f'<span class="rv-voted">{len(votes)}</span> items, {int(votes["tie"].sum())} tied' in html
    stats = client.get("/api/tasks/sentiment/stats", headers=BEARER).json
    assert stats["answers"][0]["alpha"] == pytest.approx(alpha)
    assert stats["units"]["completed"] == 5 and stats["spend"]["pending"] == pytest.approx(0.5)


# --- CSRF --------------------------------------------------------------------------------------------
def test_posts_without_the_session_csrf_token_are_refused(study: Any) -> None:
    run, units = study
    app = create_review_app(run.project, TOKEN)
    client, other = app.test_client(), app.test_client()
    csrf, other_csrf = sign_in(client), sign_in(other)
    assert csrf != other_csrf
    unit = str(units["alice"][0])
    for form in ({}, {"_csrf": "forged"}, {"_csrf": other_csrf}):
        reply = client.post("/actions/approve", data={"unit_ids": unit, "note": "x", **form})
        assert reply.status_code == 403 and "CSRF" in reply.text
    for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": other_csrf}):
        reply = client.post("/api/units/approve", json={"unit_ids": [unit]}, headers=headers)
        assert reply.status_code == 403 and "CSRF" in reply.json["error"]
    assert status_of(run, int(unit)) == "completed"
    assert calls(run, "approve") == []

    reply = client.post("/actions/approve", data={"unit_ids": unit, "_csrf": csrf, "next": "/tasks/sentiment"})
    assert reply.status_code == 303 and reply.headers["Location"] == "/tasks/sentiment"
    assert status_of(run, int(unit)) == "accepted"
    reply = client.post("/api/units/reject", json={"unit_ids": [str(units["bob"][0])]}, headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 200 and reply.json["changed"] == 1


def test_form_redirects_only_inside_the_app(client: FlaskClient, study: Any) -> None:
    _, units = study
    csrf = sign_in(client)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        reply = client.post(
            "/actions/soft-reject", data={"unit": str(units["carol"][0]), "_csrf": csrf, "next": target}
        )
        assert reply.status_code == 303 and reply.headers["Location"] == "/"


# --- actions change the store exactly as the Python API does -----------------------------------------
def unit_trace(run: cn.Run, unit_id: int) -> dict[str, Any]:
    """What a decision on a unit left in the store, with the unit's own ids replaced by UNIT."""
    unit = run.store.get_unit(unit_id)
    agent = run.store.get_agent(int(unit["agent_id"]))

    def clean(value: Any) -> Any:
        return value.replace(str(unit_id), "UNIT") if isinstance(value, str) else value

    reviews = run.store.query(
        "SELECT action, actor, amount, note, key, details FROM reviews WHERE unit_id = ? ORDER BY at, id", (unit_id,)
    )
    paid = run.store.query(
        "SELECT call, amount, idempotency_key, args FROM provider_calls WHERE unit_id = ? ORDER BY id", (unit_id,)
    )
    for row in paid:
        args = json.loads(row.pop("args"))
        args.pop("worker", None)
        row["args"] = args
    return {
        "unit": unit["status"],
        "agent": agent["status"],
        "reviews": [{k: clean(v) for k, v in r.items()} for r in reviews],
        "provider_calls": [{k: clean(v) for k, v in r.items()} for r in paid],
    }


def worker_trace(run: cn.Run, name: str) -> dict[str, Any]:
    """What an action on a worker left in the store: audit rows, provider calls, qualifications."""
    reviews = run.store.query(
        "SELECT r.action, r.actor, r.amount, r.note, r.details, r.key FROM reviews r JOIN workers w ON w.id = r.worker_id "
        "WHERE w.name = ? AND r.unit_id IS NULL ORDER BY r.at, r.id",
        (name,),
    )
    for row in reviews:
        row["key"] = row["key"] and row["key"].replace(name, "WORKER")
    pushed = []
    for row in run.store.query("SELECT call, amount, idempotency_key, args FROM provider_calls ORDER BY id"):
        args = json.loads(row["args"])
        if args.pop("worker", None) == name:
            pushed.append({**row, "args": args, "idempotency_key": (row["idempotency_key"] or "").replace(name, "W")})
    return {
        "reviews": reviews,
        "provider_calls": pushed,
        "qualifications": cn.open(run.project.root).worker(name).qualifications,
    }


UNIT_CASES = {
    "approve": ({"note": "Great work", "bonus": "0.25"}, lambda run, u: run.approve(u, note="Great work", bonus=0.25)),
    "reject": ({"note": "Off topic"}, lambda run, u: run.reject(u, note="Off topic")),
    "soft-reject": ({"note": "Unclear"}, lambda run, u: run.soft_reject(u, note="Unclear")),
    "bonus": ({"note": "Extra care", "bonus": "0.5"}, lambda run, u: run.bonus(u, 0.5, "Extra care")),
}


@pytest.mark.parametrize("action", list(UNIT_CASES))
def test_unit_actions_match_the_python_api(client: FlaskClient, study: Any, action: str) -> None:
    run, units = study
    fields, python = UNIT_CASES[action]
    by_form, by_json, by_python = units["alice"][0], units["alice"][1], units["bob"][0]
    csrf = sign_in(client)
    reply = client.post(f"/actions/{action}", data={**fields, "unit_ids": str(by_form), "_csrf": csrf})
    assert reply.status_code == 303, reply.text
    body = {**fields, "unit_ids": [str(by_json)], "bonus": float(fields["bonus"]) if "bonus" in fields else None}
    reply = client.post(f"/api/units/{action}", json=body, headers=BEARER)
    assert reply.status_code == 200 and reply.json["changed"] == 1, reply.text
    python(run, [by_python])
    assert unit_trace(run, by_form) == unit_trace(run, by_python) == unit_trace(run, by_json)
    assert unit_trace(run, by_form)["reviews"], "the action left no audit row"


WORKER_CASES = {
    "block": ({"note": "Spam"}, lambda p, w: cn.block(w, "Spam", project=p)),
    "message": (
        {"note": "Please read the guidelines"},
        lambda p, w: cn.message(w, "Please read the guidelines", project=p),
    ),
    "grant": ({"qualification": "expert", "value": "3"}, lambda p, w: cn.grant(w, "expert", 3, project=p)),
    "revoke": ({"qualification": "trusted"}, lambda p, w: cn.revoke(w, "trusted", project=p)),
    "bonus": ({"note": "Make-up pay", "bonus": "1.5"}, lambda p, w: cn.bonus(w, 1.5, "Make-up pay", project=p)),
}


@pytest.mark.parametrize("action", list(WORKER_CASES))
def test_worker_actions_match_the_python_api(client: FlaskClient, study: Any, action: str) -> None:
    run, _ = study
    project = run.project
    for name in ("alice", "bob", "carol"):
        cn.grant(name, "trusted", project=project)
    fields, python = WORKER_CASES[action]
    csrf = sign_in(client)
    reply = client.post(f"/actions/{action}", data={**fields, "worker": "mock:alice", "_csrf": csrf})
    assert reply.status_code == 303, reply.text
    body: dict[str, Any] = {**fields, "worker": "carol", "provider": "mock", "value": int(fields.get("value", 1))}
    body["bonus"] = float(fields["bonus"]) if "bonus" in fields else None
    reply = client.post(f"/api/workers/{action}", json=body, headers={"X-CSRF-Token": csrf})
    assert reply.status_code == 200 and reply.json["changed"] == 1, reply.text
    python(project, "bob")
    assert worker_trace(run, "alice") == worker_trace(run, "bob") == worker_trace(run, "carol")
    assert worker_trace(run, "alice")["reviews"][-1]["action"] == {"block": "grant"}.get(action, action)


def test_block_by_units_blocks_their_workers(client: FlaskClient, study: Any) -> None:
    run, units = study
    csrf = sign_in(client)
    ids = [str(units["carol"][0]), str(units["bob"][1])]
    reply = client.post("/actions/block", data={"unit_ids": ids, "note": "Copy-pasted answers", "_csrf": csrf})
    assert reply.status_code == 303
    assert [c["args"] for c in calls(run, "block")] == [
        json.dumps({"worker": "carol", "reason": "Copy-pasted answers"}),
        json.dumps({"worker": "bob", "reason": "Copy-pasted answers"}),
    ]
    page = client.get("/tasks/sentiment").text
    assert page.count('rv-badge rv-blocked">blocked<') == 2


def test_qualifications_page_grants_lists_and_revokes(client: FlaskClient, study: Any) -> None:
    run, _ = study
    csrf = sign_in(client)
    cn.block("carol", "spam", project=run.project)
    form = {"worker_name": "dave", "provider_name": "mock", "qualification": "english_native", "value": "2"}
    reply = client.post("/actions/grant", data={**form, "_csrf": csrf, "next": "/qualifications"})
    assert reply.status_code == 303 and reply.headers["Location"] == "/qualifications"
    html = client.get("/qualifications").text
    assert "granted english_native=2 to 1 of 1 workers (dave)" in html
    section = html[html.index('data-qualification="english_native"') :]
    assert '<a href="/workers/mock/dave">dave</a>' in section and '<td class="rv-num">2</td>' in section
    assert 'value="mock:carol">Unblock</button>' in html
    # the block's row button lifts the block through cn.unblock, so the provider hears of it too
    revoke = {"qualification": "crowdnb-blocked", "worker": "mock:carol", "_csrf": csrf}
    assert client.post("/actions/revoke", data=revoke).status_code == 303
    assert cn.open(run.project.root).worker("carol").qualifications == {}
    assert [json.loads(c["args"]) for c in calls(run, "unblock")] == [{"worker": "carol"}]
    revoke = {"qualification": "english_native", "worker": "mock:dave", "_csrf": csrf}
    assert client.post("/actions/revoke", data=revoke).status_code == 303
    assert 'data-qualification="english_native"' in client.get("/qualifications").text  # listed, held by nobody
    assert cn.open(run.project.root).worker("dave").qualifications == {}


def test_approving_twice_pays_once(client: FlaskClient, study: Any) -> None:
    run, units = study
    csrf = sign_in(client)
    unit = units["alice"][1]
    form = {"unit": str(unit), "note": "Thanks", "bonus": "0.1", "_csrf": csrf}
    for _ in range(2):  # a double click
        assert client.post("/actions/approve", data=form).status_code == 303
    again = client.post("/api/units/approve", json={"unit_ids": [str(unit)], "bonus": 0.1}, headers=BEARER)
    assert again.status_code == 200 and again.json["changed"] == 0
    assert len(calls(run, "approve", unit)) == 1
    assert len(calls(run, "bonus", unit)) == 1
    assert run.store.scalar("SELECT count(*) FROM reviews WHERE unit_id = ? AND action = 'accepted'", (unit,)) == 1
    assert "approved 0 of 1 units" in client.get("/tasks/sentiment").text


# --- errors ------------------------------------------------------------------------------------------
ERRORS = [
    ("/api/units/approve", {"unit_ids": ["12abc"]}, 400, "not a unit id"),
    ("/api/units/approve", {"unit_ids": ["12345"]}, 404, "no unit 12345"),
    ("/api/units/approve", {"unit_ids": []}, 400, "select the units"),
    ("/api/units/approve", ["not", "an", "object"], 400, "JSON object"),
    ("/api/units/bonus", {"unit_ids": ["ALICE"], "bonus": -1, "note": "x"}, 400, "positive number"),
    ("/api/units/bonus", {"unit_ids": ["ALICE"], "bonus": 1}, 400, "needs a reason"),
    ("/api/units/reject", {"unit_ids": ["APPROVED"]}, 409, "cannot go from 'accepted' to 'rejected'"),
    ("/api/units/pay-twice", {"unit_ids": ["ALICE"]}, 404, "no unit action"),
    ("/api/workers/block", {"worker": "carol"}, 400, "needs a reason"),
    ("/api/workers/grant", {"worker": "carol", "qualification": "bad name!"}, 400, "not valid"),
    ("/api/workers/grant", {"worker": "carol", "qualification": "crowdnb-blocked"}, 400, "use Block"),
    ("/api/workers/grant", {"worker": "carol", "qualification": "q", "value": 1.5}, 400, "whole number"),
    ("/api/tasks/nothing", None, 404, "no task 'nothing'"),
]


def test_crowd_errors_answer_4xx_with_the_message(client: FlaskClient, study: Any) -> None:
    run, units = study
    run.approve(units["bob"][0])
    named = {"ALICE": str(units["alice"][0]), "APPROVED": str(units["bob"][0])}
    for path, body, status, message in ERRORS:
        if isinstance(body, dict) and body.get("unit_ids"):
            body = {**body, "unit_ids": [named.get(u, u) for u in body["unit_ids"]]}
        reply = client.post(path, json=body, headers=BEARER) if body is not None else client.get(path, headers=BEARER)
        assert reply.status_code == status, (path, body, reply.text)
        assert message in reply.json["error"], (path, body)
    assert status_of(run, units["alice"][0]) == "completed"
    assert calls(run, "bonus") == [] and calls(run, "block") == []


def test_a_refused_form_shows_the_message_and_the_way_back(client: FlaskClient, study: Any) -> None:
    csrf = sign_in(client)
    reply = client.post("/actions/reject", data={"_csrf": csrf, "next": "/tasks/sentiment"})
    assert reply.status_code == 400
    assert "select the units to reject first" in reply.text and 'href="/tasks/sentiment"' in reply.text
    missing = client.get("/tasks/nothing")
    assert missing.status_code == 404 and "no task &#39;nothing&#39;" in missing.text
    assert "Traceback" not in missing.text


# --- export ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_download_returns_the_rows(client: FlaskClient, study: Any, fmt: str) -> None:
    run, _ = study
    reply = client.get(f"/tasks/sentiment/export.{fmt}", headers=BEARER)
    assert reply.status_code == 200
    assert reply.headers["Content-Disposition"] == f"attachment; filename=sentiment.{fmt}"
    data = io.BytesIO(reply.data)
    got = {"csv": pd.read_csv, "parquet": pd.read_parquet}.get(fmt, lambda d: pd.read_json(d, lines=True))(data)
    want = run.project.task_frame("sentiment")
    assert len(got) == len(want) == 5
    assert sorted(got["unit_id"].astype(str)) == sorted(want["unit_id"].astype(str))
    assert sorted(got["why"]) == sorted(why for _, _, why in ANSWERS)


# --- escaping ----------------------------------------------------------------------------------------
def test_worker_text_is_escaped_on_every_page(make_run: Any) -> None:
    run = make_run(units_per_assignment=2)
    submit(run, [(EVIL_WORKER, "pos", SCRIPT), ("dave", "neg", "fine")])
    cn.grant(EVIL_WORKER, "expert", project=run.project)
    client = create_review_app(run.project, TOKEN).test_client()
    pages = ["/tasks/sentiment", "/tasks/sentiment/stats", "/qualifications", "/workers/mock/" + EVIL_WORKER]
    for path in pages:
        html = client.get(path, headers=BEARER).text
        assert SCRIPT not in html and EVIL_WORKER not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html, path
    task_page = client.get("/tasks/sentiment", headers=BEARER)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in task_page.text
    assert "script-src 'self'" in task_page.headers["Content-Security-Policy"]


# --- the command -------------------------------------------------------------------------------------
def test_cli_review_prints_a_token_link_and_serves(study: Any) -> None:
    run, _ = study
    command = [sys.executable, "-m", "crowdnb", "review", "--home", str(run.project.root), "--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        link = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=(\S+)", "".join(lines))
        assert link, lines
        base, token = link.groups()
        assert len(token) >= 32
        with requests.Session() as http:
            assert http.get(f"{base}/").status_code == 401
            assert http.get(f"{base}/?token={token}").status_code == 200
            assert "sentiment" in http.get(f"{base}/").text
    finally:
        server.terminate()
        server.communicate(timeout=10)


def test_each_answer_is_shown_once_the_stored_values_one_click_away(project: cn.Project) -> None:
    task = cn.Task("rated", title="T", reward=0.1, template="text_classification", project=project,
                   data=[{"text": "A fine day."}])  # fmt: skip
    plain = cn.Task("plain", title="T", reward=0.1, html='<input name="note">', project=project)
    runs = [task.launch(), plain.launch()]
    try:
        cn.simulate(runs[0], workers=1, answer=lambda row: {"label": "positive", "comment": "unusual-remark"})
        cn.simulate(runs[1], workers=1, answer=lambda row: {"note": "plain-note"})
        client = create_review_app(project, TOKEN).test_client()
        rated = client.get("/tasks/rated", headers=BEARER).get_data(as_text=True)
        shown = re.sub(r"<details class=\"rv-raw\">.*?</details>", "", rated, flags=re.S)
        assert shown.count("unusual-remark") == 1  # in the template's rendering, not again in a list beside it
        assert 'class="rv-rendered"' in shown and "rv-answers" not in shown
        assert re.search(r"<details class=\"rv-raw\"><summary>answers as stored</summary>.*unusual-remark", rated, re.S)
        bare = client.get("/tasks/plain", headers=BEARER).get_data(as_text=True)
        assert bare.count("plain-note") == 1 and "rv-raw" not in bare  # no rendering: the list is the view
    finally:
        for run in runs:
            run.stop()
