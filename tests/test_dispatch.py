"""Dispatch: atomic reservation, replicas, quotas, throttling, refresh, and abandoned units re-offered."""

from __future__ import annotations

import json
import threading
from collections import Counter

import crowdnb as cn
from crowdnb.store import lifecycle
from crowdnb.store.offers import Quota

from .conftest import wait_until


def test_fifty_concurrent_bots_never_double_assign(make_run) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(20)], units_per_assignment=3)
    sim = cn.simulate(run, workers=50, answer=lambda row: {"label": "pos", "why": row["text"]})
    assert sim.errors == []
    assert sim.submitted == 60
    frame = run.df
    assert len(frame) == 60 and frame["unit_id"].is_unique
    # a worker never gets two units of one assignment
    assert not frame.duplicated(["assignment_id", "worker"]).any()
    assert (frame.groupby("assignment_id").size() == 3).all()
    # every answer belongs to the input its worker was shown
    assert (frame["why"] == frame["text"]).all()
    assert run.store.scalar("SELECT count(*) FROM agents") == 60
    assert run.counts["completed"] == 60


def test_refresh_resumes_same_agent(run: cn.Run, worker) -> None:
    alice = worker("alice")
    first = alice.enter().json()
    again = alice.enter().json()
    assert again["agent_id"] == first["agent_id"] and again["input"] == first["input"]
    assert again["resumed"] is True and first["resumed"] is False
    assert run.counts["assigned"] == 1


def test_allowed_concurrent_limits_open_units(make_run, worker) -> None:
    run = make_run(allowed_concurrent=1)
    alice = worker("alice", run)
    alice.enter()
    token = alice.unit["token"]
    # a second tab that is not a refresh: only possible by asking for more than one unit at once
    held = lifecycle.reserve(run.store, run.id, run.store.worker("mock", "alice"), Quota(allowed_concurrent=1), {})
    assert held[1] is True  # the live agent comes back, no second unit
    alice.submit({"label": "pos"}, token=token)
    assert alice.enter().status_code == 200  # after finishing, the next unit is given


def test_maximum_units_per_worker_counts_across_runs(make_run, worker) -> None:
    first = make_run(maximum_units_per_worker=2)
    alice = worker("alice", first)
    for _ in range(2):
        alice.enter()
        assert alice.submit({"label": "pos"}).status_code == 200
    refused = alice.enter()
    assert refused.status_code == 403 and refused.json()["reason"] == "max_reached"
    first.stop()
    second = make_run(maximum_units_per_worker=2)  # same task name: a second run
    reply = worker("alice", second).enter()
    assert reply.status_code == 403 and "maximum of 2" in reply.json()["message"]
    assert worker("bob", second).enter().status_code == 200


def test_max_num_concurrent_units_throttles_launching(make_run) -> None:
    run = make_run(max_num_concurrent_units=2)
    assert run.counts["launched"] == 2 and run.counts["created"] == 4
    cn.simulate(run, workers=3)
    wait_until(lambda: run.counts["completed"] == 6)
    assert run.counts["created"] == 0


def test_timed_out_unit_is_offered_again(make_run, worker) -> None:
    run = make_run(data=[{"text": "only"}], assignment_duration=1)
    alice = worker("alice", run)
    alice.enter()
    assert worker("bob", run).enter().status_code == 410  # taken
    wait_until(lambda: run.counts["launched"] == 1, timeout=10)
    status = run.store.scalar("SELECT status FROM agents")
    assert status == "timeout"
    bob = worker("bob", run)
    assert bob.enter().status_code == 200
    assert bob.submit({"label": "neg"}).status_code == 200
    late = alice.submit({"label": "pos"})  # alice's unit went to bob: her late answer is refused, clearly
    assert late.status_code == 409 and "offered to another worker" in late.json()["message"]
    assert list(run.df["worker"]) == ["bob"]


def test_late_submission_is_kept_when_nobody_took_the_unit(make_run, worker) -> None:
    run = make_run(data=[{"text": "only"}], assignment_duration=1)
    alice = worker("alice", run)
    alice.enter()
    wait_until(lambda: run.counts["launched"] == 1, timeout=10)
    assert alice.submit({"label": "pos"}).status_code == 200
    assert run.counts["completed"] == 1 and list(run.df["worker"]) == ["alice"]


def test_disconnected_worker_releases_the_unit(make_run, worker) -> None:
    import websocket

    run = make_run(data=[{"text": "only"}], disconnect_grace=0.5)
    alice = worker("alice", run)
    alice.enter()
    ws = websocket.create_connection(run.url.replace("http", "ws") + "ws?token=" + alice.unit["token"], timeout=5)
    ws.send(json.dumps({"type": "heartbeat"}))
    ws.recv()
    ws.close()
    wait_until(lambda: run.counts["launched"] == 1, timeout=10)
    assert run.store.scalar("SELECT status FROM agents") == "disconnect"
    assert worker("bob", run).enter().status_code == 200


def test_refresh_within_grace_keeps_the_unit(make_run, worker) -> None:
    import websocket

    run = make_run(data=[{"text": "one"}, {"text": "two"}], disconnect_grace=0.3)
    alice, bob = worker("alice", run), worker("bob", run)
    alice.enter()
    bob.enter()
    socket_of = {w.name: run.url.replace("http", "ws") + "ws?token=" + w.unit["token"] for w in (alice, bob)}
    websocket.create_connection(socket_of["alice"], timeout=5).close()
    again = websocket.create_connection(socket_of["alice"], timeout=5)  # the page reloaded and reconnected
    websocket.create_connection(socket_of["bob"], timeout=5).close()  # bob's page is gone for good, later
    bob_agent = int(bob.unit["agent_id"])
    wait_until(lambda: run.store.agent_status(bob_agent) == "disconnect", "bob's unit released", timeout=10)
    # the grace passed for alice first, and the monitor released bob: alice's reconnect kept her unit
    assert run.store.agent_status(int(alice.unit["agent_id"])) in ("accepted", "in_task")
    assert run.counts["assigned"] == 1 and run.counts["launched"] == 1
    again.close()


def test_concurrent_entries_of_one_worker_get_one_unit(run: cn.Run, worker) -> None:
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(worker("alice").enter().json())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r["agent_id"] for r in replies}) == 1
    assert Counter(run.counts)["assigned"] == 1
