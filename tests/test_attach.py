"""A notebook follows a run served elsewhere: the feed replays from a cursor, with no gap and no repeat."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn

from .conftest import wait_until
from .serving import free_port, start_server

PAGE = '<p>{{ text }}</p><input name="answer">'


def feed(run: cn.Run, token: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else run.feed_token}"}
    return requests.get(run.url + "_crowd/feed", params=params, headers=headers, timeout=30)


def submit_one(base: str, name: str) -> int:
    """One worker takes a unit and submits it through the worker protocol; returns the HTTP status."""
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    unit = http.get(f"{base}?worker_id={name}", timeout=10)
    assert unit.status_code == 200, unit.text
    body = {"token": unit.json()["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": name}}
    return http.post(base + "submit", json=body, timeout=10).status_code


def test_the_feed_needs_the_run_token_and_checks_its_parameters(run: cn.Run) -> None:
    assert requests.get(run.url + "_crowd/feed", timeout=10).status_code == 401
    assert feed(run, token="forged").status_code == 401
    other = cn.Task("other", title="T", reward=0.1, html=PAGE, data=[{"text": "x"}], project=run.project).launch()
    try:
        assert feed(run, token=other.feed_token).status_code == 401  # another run's token
    finally:
        other.stop()
    for bad in ({"after": "x"}, {"after": -1}, {"limit": 0}, {"wait": "soon"}):
        assert feed(run, **bad).status_code == 400, bad
    assert feed(run).json()["rows"] == []


def test_paging_from_a_cursor_sees_every_change_once_in_order(make_run: Any, worker: Any) -> None:
    run = make_run("paged", data=[{"text": f"t{i}"} for i in range(7)])
    for i in range(7):
        w = worker(f"w{i}", run)
        assert w.enter().status_code == 200
        assert w.submit({"label": "pos"}).status_code == 200
    approved = sorted(run.df["unit_id"])[:2]
    run.approve(approved)

    cursor, seen, revs = 0, [], []
    while True:
        page = feed(run, after=cursor, limit=3).json()
        seen += [(r["unit_id"], r["status"]) for r in page["rows"]]
        revs += [r["rev"] for r in page["rows"]]
        assert page["cursor"] >= cursor
        cursor = page["cursor"]
        if not page["more"]:
            break
    assert revs == sorted(revs) and len(set(revs)) == len(revs)  # in order, never twice
    assert {u for u, _ in seen} == set(run.df["unit_id"])  # every unit
    latest = dict(seen)  # the last revision of each unit wins
    assert sorted(u for u, status in latest.items() if status == "accepted") == approved
    assert feed(run, after=cursor).json()["rows"] == []


def test_a_long_poll_answers_as_soon_as_a_submission_arrives(make_run: Any, worker: Any) -> None:
    run = make_run("polled", data=[{"text": "a"}, {"text": "b"}])
    cursor = feed(run).json()["cursor"]
    replies: list[dict[str, Any]] = []
    poll = threading.Thread(target=lambda: replies.append(feed(run, after=cursor, wait=20).json()))
    poll.start()
    w = worker("late", run)
    w.enter()
    assert w.submit({"label": "neg"}).status_code == 200
    poll.join(timeout=30)
    assert replies and [r["answers"] for r in replies[0]["rows"]] == ['{"label": "neg"}']


@pytest.fixture
def served(tmp_path: Path) -> Any:
    """A run served by `crowdnb serve` in its own process; the notebook's project is another folder."""
    root, port = tmp_path / "remote", free_port()
    task = cn.Task(
        "remote", title="T", reward=0.1, html=PAGE, data=[{"text": f"r{i}"} for i in range(40)], project=root
    )
    run = task.launch()
    run.stop()
    state = {"server": start_server(root, port)}
    yield run, f"http://127.0.0.1:{port}/", state, lambda: state.update(server=start_server(root, port))
    os.killpg(state["server"].pid, signal.SIGKILL)
    state["server"].wait(timeout=10)


def test_reattaching_replays_exactly_what_was_missed(served: Any, tmp_path: Path) -> None:
    run, url, _, _ = served
    notebook = tmp_path / "notebook"
    for i in range(10):
        assert submit_one(url, f"a{i}") == 200
    first = cn.attach(url, token=run.feed_token, project=notebook)
    assert len(first.df) == 10 and first.run_id == run.id
    first.close()  # the notebook goes away (kernel restart, laptop closed)

    for i in range(10):
        assert submit_one(url, f"b{i}") == 200
    remote = cn.open(run.store.root).run(run.id)
    changed = int(remote.df["unit_id"].iloc[0])
    remote.approve([changed])  # a decision taken on the server side while we were away

    again = cn.attach(url, token=run.feed_token, project=notebook)
    assert again.received == 11  # ten new submissions and one decision: not the twenty from scratch
    frame = again.df
    assert len(frame) == 20 and frame["unit_id"].is_unique
    assert set(frame["worker"]) == {f"a{i}" for i in range(10)} | {f"b{i}" for i in range(10)}
    assert frame.set_index("unit_id").loc[changed, "status"] == "accepted"
    assert frame.drop(columns="status").equals(remote.df.drop(columns="status"))
    again.close()


def test_a_follower_rides_out_a_router_crash_and_catches_up(served: Any, tmp_path: Path) -> None:
    run, url, state, restart = served
    follower = cn.attach(url, token=run.feed_token, project=tmp_path / "notebook").follow(wait=1)
    for i in range(5):
        assert submit_one(url, f"c{i}") == 200
    wait_until(lambda: len(follower.df) == 5, "the follower to see five submissions")

    os.killpg(state["server"].pid, signal.SIGKILL)
    state["server"].wait(timeout=10)
    wait_until(lambda: not follower.connected, "the follower to notice the router is gone")
    assert len(follower.df) == 5  # offline: the mirror still answers

    restart()
    for i in range(5):
        assert submit_one(url, f"d{i}") == 200
    wait_until(lambda: len(follower.df) == 10, "the follower to catch up after the restart", timeout=60)
    assert follower.connected and follower.df["unit_id"].is_unique
    follower.close()
