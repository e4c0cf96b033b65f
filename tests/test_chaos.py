"""Chaos: many bots refresh, abandon, disconnect and double-submit at random; nothing is lost or doubled."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

import crowdnb as cn

from .conftest import wait_until
from .serving import free_port, start_server

PAGE = '<p>{{ text }}</p><input name="who"><input name="row">'


class Browser(requests.Session):
    """A worker's browser: a request that times out is sent again, as crowd.js resends a submission with its
    id (a saturated server may have done the first one: the retry must then be a duplicate, not a second)."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["Accept"] = "application/json"

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for attempt in range(4):
            try:
                return super().request(*args, **kwargs)
            except (requests.Timeout, requests.ConnectionError):
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")


def chaotic_bot(run: cn.Run, name: str, seed: int, acked: list[tuple[str, str]], lock: threading.Lock) -> None:
    rng = random.Random(seed)
    http = Browser()
    url, submit = run.worker_url(name), run.url + "submit"
    idle = 0.0
    while True:
        reply = http.get(url, timeout=30)
        if reply.status_code != 200:
            if reply.json()["reason"] in ("no_work", "finished") and run.counts["assigned"] and idle < 15:
                time.sleep(0.2)  # abandoned units come back after their timeout
                idle += 0.2
                continue
            return
        idle = 0.0
        unit = reply.json()
        roll = rng.random()
        if roll < 0.15:  # refresh: the same unit must come back
            again = http.get(url, timeout=30).json()
            if again.get("agent_id") != unit["agent_id"]:  # only if the unit timed out meanwhile (a slow machine)
                deadline = time.monotonic() + 5  # a refusal does not wait for the commit of the release
                while (status := run.store.agent_status(int(unit["agent_id"]))) not in ("timeout", "disconnect"):
                    assert time.monotonic() < deadline, f"a refresh gave {again} while the agent was {status}"
                    time.sleep(0.05)
                continue
            assert again["input"] == unit["input"]
        elif roll < 0.25:  # open the page's socket and vanish: the unit is released after the grace period
            try:
                ws = websocket.create_connection(
                    run.url.replace("http", "ws") + "ws?token=" + unit["token"], timeout=10
                )
                ws.send(json.dumps({"type": "heartbeat"}))
                ws.recv()
                ws.close()
            except (OSError, websocket.WebSocketException):  # the socket dropped under load: the page vanished anyway
                pass
            time.sleep(rng.uniform(1.2, 2))  # … and come back once the unit was released
            continue
        elif roll < 0.30:  # walk away without a word (the unit times out), and come back later
            time.sleep(rng.uniform(3.8, 4.5))
            continue
        client_id = uuid.uuid4().hex
        body = {
            "token": unit["token"],
            "submission_id": client_id,
            "answers": {"who": name, "row": unit["input"]["text"]},
        }
        first = http.post(submit, json=body, timeout=30)
        if roll < 0.45:  # double submit: the same id again, then a new id from "another tab"
            http.post(submit, json=body, timeout=30)
            http.post(submit, json=body | {"submission_id": uuid.uuid4().hex}, timeout=30)
        if first.status_code == 200:
            with lock:
                acked.append((client_id, name))


def unleash(run: cn.Run, bots: int) -> list[tuple[str, str]]:
    """``bots`` chaotic bots at once until no work is left; the submissions they were told are saved."""
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    failures: list[str] = []

    def bot(i: int) -> None:
        try:
            chaotic_bot(run, f"w{i}", i, acked, lock)
        except Exception as exc:  # reported below with the bot's name
            failures.append(f"w{i}: {exc!r}")

    threads = [threading.Thread(target=bot, args=(i,), daemon=True) for i in range(bots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert failures == []
    return acked


def polite_bot(run: cn.Run, name: str) -> None:
    """Take units and submit them until none is left."""
    http = Browser()
    while (reply := http.get(run.worker_url(name), timeout=30)).status_code == 200:
        unit = reply.json()
        body = {"token": unit["token"], "submission_id": uuid.uuid4().hex}
        http.post(run.url + "submit", json=body | {"answers": {"who": name, "row": unit["input"]["text"]}}, timeout=30)


def check_exactly_once(run: cn.Run, acked: list[tuple[str, str]], units: int) -> None:
    store = run.store
    assert store.scalar("SELECT count(*) FROM submissions") == units  # one per unit, none doubled
    stored = {r["client_id"] for r in store.query("SELECT client_id FROM submissions")}
    assert {client_id for client_id, _ in acked} <= stored  # nothing a worker was told is saved went missing
    frame = cn.open(store.root).run(run.id).df
    assert not frame.duplicated(["assignment_id", "worker"]).any()  # never two units of one row for one worker
    assert (frame.groupby("assignment_id").size() == 3).all()
    assert (frame["row"] == frame["text"]).all()  # every answer belongs to the unit its worker was shown
    assert store.scalar("SELECT count(*) FROM agents WHERE status IN ('accepted', 'in_task')") == 0


def test_chaotic_crowd_completes_every_unit_exactly_once(make_run) -> None:
    rows = [{"text": f"row {i}"} for i in range(60)]
    run = make_run(html=PAGE, data=rows, units_per_assignment=3, assignment_duration=3, disconnect_grace=0.5)
    acked = unleash(run, 100)
    # whoever is left finishes politely
    cn.simulate(run, workers=6, answer=lambda row: {"who": "finisher", "row": row["text"]}, prefix="finisher")
    wait_until(lambda: run.counts["completed"] == 180, timeout=30)
    check_exactly_once(run, acked, 180)


@pytest.mark.timeout(600)  # about a minute alone; several on a machine shared with other jobs
def test_a_thousand_chaotic_workers_on_crowdnb_serve(tmp_path: Path) -> None:
    rows = [{"text": f"row {i}"} for i in range(200)]
    task = cn.Task(
        "chaos", title="T", reward=0.1, html=PAGE, data=rows, units_per_assignment=3,
        assignment_duration=3, disconnect_grace=0.5, project=tmp_path / "served",
    )  # fmt: skip
    run = task.launch()
    run.stop()
    port = free_port()
    server = start_server(run.store.root, port)
    try:
        acked = unleash(run, 1000)
        finishers = [threading.Thread(target=polite_bot, args=(run, f"finisher-{i}")) for i in range(6)]
        for thread in finishers:
            thread.start()
        for thread in finishers:
            thread.join(timeout=120)
        wait_until(lambda: run.counts["completed"] == 600, "every unit completed", timeout=60)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    check_exactly_once(run, acked, 600)
