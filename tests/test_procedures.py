"""Live procedures: pages call notebook Python over the socket or by POST, each call answered once and stored."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pandas as pd
import pytest
import websocket

import crowdnb as cn

from .conftest import FORM, SENTENCES, Worker, wait_until


@pytest.fixture
def live(project: cn.Project) -> Any:
    """``live(**procedures)``: a run whose task registers each keyword as a procedure; stopped afterwards."""
    runs: list[cn.Run] = []

    def make(timeout: float = 10.0, **procedures: Any) -> cn.Run:
        task = cn.Task("guessing", title="Guess", reward=0.1, html=FORM, data=SENTENCES, project=project)
        for name, fn in procedures.items():
            task.procedure(fn, name=name, timeout=timeout)
        run = task.launch()
        runs.append(run)
        return run

    yield make
    for run in runs:
        if run.serving:
            run.stop()


def socket_of(run: cn.Run, worker: Worker) -> websocket.WebSocket:
    url = run.url.replace("http", "ws") + "ws?token=" + worker.unit["token"]
    return websocket.create_connection(url, timeout=10)


def call_over(ws: websocket.WebSocket, name: str, args: dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    """Send one call and read until its result (heartbeat replies may come first)."""
    call_id = call_id or uuid.uuid4().hex
    ws.send(json.dumps({"type": "call", "id": call_id, "name": name, "args": args}))
    while True:
        reply = json.loads(ws.recv())
        if reply.get("type") == "result" and reply["id"] == call_id:
            return reply


def post_call(run: cn.Run, worker: Worker, name: str, args: Any, call_id: str | None = None) -> Any:
    body = {"token": worker.unit["token"], "id": call_id or uuid.uuid4().hex, "name": name, "args": args}
    return worker.http.post(run.url + "call", json=body, timeout=20)


def test_a_page_calls_a_procedure_and_the_call_is_stored(live: Any) -> None:
    seen: list[Any] = []

    def shout(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        seen.append(worker)
        return {"text": args["text"].upper(), "row": worker.input["text"]}

    run = live(shout=shout)
    alice = Worker(run, "alice")
    alice.enter()
    ws = socket_of(run, alice)
    reply = call_over(ws, "shout", {"text": "hello"})
    ws.close()
    assert reply["ok"] and reply["result"] == {"text": "HELLO", "row": alice.unit["input"]["text"]}
    assert seen[0].name == "alice" and seen[0].agent_id == int(alice.unit["agent_id"]) and seen[0].role is None
    calls = run.calls_df
    assert list(calls["name"]) == ["shout"] and list(calls["status"]) == ["ok"]
    assert calls.loc[0, "args.text"] == "hello" and calls.loc[0, "result.text"] == "HELLO"
    assert calls.loc[0, "worker"] == "alice" and calls.loc[0, "duration_ms"] >= 0
    assert alice.submit({"label": "pos", "why": "x"}).status_code == 200
    frame = run.df
    assert frame.loc[0, "calls"] == 1


def test_a_retry_of_the_same_call_after_a_dropped_socket_is_answered_once(live: Any) -> None:
    ran: list[str] = []
    release = threading.Event()

    def slow(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        ran.append(args["n"])
        release.wait(5)
        return {"n": args["n"] + 1}

    run = live(slow=slow)
    alice = Worker(run, "alice")
    alice.enter()
    call_id = uuid.uuid4().hex
    first = socket_of(run, alice)
    first.send(json.dumps({"type": "call", "id": call_id, "name": "slow", "args": {"n": 1}}))
    wait_until(lambda: ran, "the procedure to start")
    first.close()  # dropped mid-call; the page retries the same id on a new socket and by POST
    second = socket_of(run, alice)
    answers: list[Any] = []
    by_post = threading.Thread(target=lambda: answers.append(post_call(run, alice, "slow", {"n": 1}, call_id).json()))
    by_post.start()
    time.sleep(0.2)
    release.set()
    replayed = call_over(second, "slow", {"n": 1}, call_id)
    by_post.join(10)
    again = post_call(run, alice, "slow", {"n": 1}, call_id).json()  # long after: from the store
    second.close()
    assert ran == [1]
    for reply in (replayed, answers[0], again):
        assert reply["ok"] and reply["result"] == {"n": 2}
    assert len(run.calls_df) == 1


def test_a_raising_procedure_gives_the_worker_a_message_and_the_requester_the_traceback(
    live: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        raise KeyError("weights")

    def unavailable(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        raise cn.ProcedureError("The model is not available; try again in a minute.")

    run = live(broken=broken, unavailable=unavailable)
    alice = Worker(run, "alice")
    alice.enter()
    with caplog.at_level("ERROR", logger="crowdnb"):
        reply = post_call(run, alice, "broken", {}).json()
    assert not reply["ok"] and "please try again" in reply["message"] and "weights" not in reply["message"]
    assert "KeyError: 'weights'" in caplog.text
    told = post_call(run, alice, "unavailable", {}).json()
    assert told == {
        "type": "result",
        "id": told["id"],
        "ok": False,
        "message": "The model is not available; try again in a minute.",
    }
    calls = run.calls_df
    assert list(calls["status"]) == ["error", "error"]
    assert "KeyError" in calls.loc[0, "traceback"] and pd.isna(calls.loc[1, "traceback"])


def test_a_slow_procedure_times_out_and_never_blocks_other_pages(live: Any) -> None:
    stuck = threading.Event()

    def sleepy(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        stuck.wait(30)
        return {}

    def quick(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {"ok": True}

    run = live(timeout=1.0, sleepy=sleepy, quick=quick)
    alice, bob = Worker(run, "alice"), Worker(run, "bob")
    alice.enter()
    sockets = [socket_of(run, alice) for _ in range(5)]  # more stuck calls than sleepy's pool has threads
    for ws in sockets:
        ws.send(json.dumps({"type": "call", "id": uuid.uuid4().hex, "name": "sleepy", "args": {}}))
    # meanwhile another worker enters, calls, heartbeats and submits as if nothing were stuck
    assert bob.enter().status_code == 200
    assert post_call(run, bob, "quick", {}).json()["result"] == {"ok": True}
    bob_ws = socket_of(run, bob)
    bob_ws.send("heartbeat")
    assert json.loads(bob_ws.recv())["type"] == "status"
    assert bob.submit({"label": "neg", "why": "y"}).status_code == 200
    replies = [json.loads(ws.recv()) for ws in sockets]
    stuck.set()
    for ws in [*sockets, bob_ws]:
        ws.close()
    assert all(not r["ok"] and "took too long" in r["message"] for r in replies)
    assert set(run.calls_df.query("name == 'sleepy'")["status"]) == {"timeout"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "echo", "args": {}}, "id is missing"),
        ({"id": "x" * 12, "name": "no such thing!", "args": {}}, "not a procedure name"),
        ({"id": "x" * 12, "name": "echo", "args": [1]}, "args must be a JSON object"),
        ({"id": "x" * 12, "name": "echo", "args": {"t": "a" * 70_000}}, "too large"),
    ],
)
def test_a_malformed_call_is_refused_and_not_stored(live: Any, body: dict[str, Any], message: str) -> None:
    run = live(echo=lambda args, worker: args)
    alice = Worker(run, "alice")
    alice.enter()
    reply = alice.http.post(run.url + "call", json={"token": alice.unit["token"], **body}, timeout=10)
    assert reply.status_code in (400, 413) and message in reply.json()["message"]
    assert run.calls_df.empty


def test_calls_need_a_genuine_live_token(live: Any) -> None:
    run = live(echo=lambda args, worker: args)
    forged = Worker(run, "mallory")
    forged.unit = {"token": "forged"}
    assert post_call(run, forged, "echo", {}).status_code == 403
    alice = Worker(run, "alice")
    alice.enter()
    assert alice.submit({"label": "pos", "why": "x"}).status_code == 200
    assert post_call(run, alice, "echo", {}).status_code == 409  # submitted: the unit is no longer hers


def test_an_unknown_or_bad_result_is_an_error_the_worker_reads(live: Any) -> None:
    run = live(listy=lambda args, worker: [1, 2])
    alice = Worker(run, "alice")
    alice.enter()
    assert "please try again" in post_call(run, alice, "listy", {}).json()["message"]
    unknown = post_call(run, alice, "nothing", {}).json()
    assert not unknown["ok"] and "cannot answer 'nothing'" in unknown["message"]
    run.procedure("nothing", lambda args, worker: {"now": "here"})  # registered on the live run
    assert post_call(run, alice, "nothing", {}).json()["result"] == {"now": "here"}
    details = run.calls_df["traceback"].tolist()
    assert "returned list" in details[0] and "run.procedure('nothing', fn)" in details[1]


def test_procedure_options_are_checked(project: cn.Project) -> None:
    task = cn.Task("checked", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    with pytest.raises(cn.ConfigError, match="timeout=0"):
        task.procedure(lambda a, w: {}, name="x", timeout=0)
    with pytest.raises(cn.ConfigError, match="procedure name 'two words'"):
        task.procedure(lambda a, w: {}, name="two words")
    with pytest.raises(cn.ConfigError, match="is a function"):
        task.procedure("not callable", name="x")

    @task.procedure(timeout=3)
    def guess(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {}

    assert task.spec.procedures == ({"name": "guess", "timeout": 3.0, "concurrency": 4},)


def test_resume_asks_for_the_procedures_again(live: Any, project: cn.Project) -> None:
    run = live(echo=lambda args, worker: args)
    run.stop()
    again = cn.open(project.root)
    stored = cn.Run(again, run.id)
    with pytest.raises(cn.ConfigError, match=r"run.procedure\('echo', fn\)"):
        stored.resume()
    stored.procedure("echo", lambda args, worker: {"back": True})
    stored.resume()
    try:
        alice = Worker(stored, "alice")
        alice.enter()
        assert post_call(stored, alice, "echo", {}).json()["result"] == {"back": True}
    finally:
        stored.stop()


def test_simulated_workers_play_a_live_task_calling_procedures(live: Any) -> None:
    def guess(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        return {"label": "pos" if "good" in args["sentence"] else "neg"}

    def play(bot: Any) -> dict[str, Any]:
        first = bot.call("guess", {"sentence": "a good " + bot.input["text"]})
        second = bot.call("guess", {"sentence": "a bad one"})
        return {"label": first["label"], "why": second["label"]}

    run = live(guess=guess)
    sim = cn.simulate(run, workers=2, play=play)
    assert sim.errors == [] and sim.submitted == len(SENTENCES)
    frame = run.df
    assert set(frame["label"]) == {"pos"} and set(frame["why"]) == {"neg"} and set(frame["calls"]) == {2}
    assert len(run.calls_df) == 2 * len(SENTENCES)
    with pytest.raises(cn.ConfigError, match="not both"):
        cn.simulate(run, play=play, answer=lambda row: {})
