"""Chaos: many bots refresh, abandon, disconnect and double-submit at random; nothing is lost or doubled."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid

import requests
import websocket

import crowdnb as cn

from .conftest import wait_until


def chaotic_bot(run: cn.Run, name: str, seed: int, acked: list[tuple[str, str]], lock: threading.Lock) -> None:
    rng = random.Random(seed)
    http = requests.Session()
    http.headers["Accept"] = "application/json"
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
            ws = websocket.create_connection(run.url.replace("http", "ws") + "ws?token=" + unit["token"], timeout=10)
            ws.send(json.dumps({"type": "heartbeat"}))
            ws.recv()
            ws.close()
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


def test_chaotic_crowd_completes_every_unit_exactly_once(make_run) -> None:
    rows = [{"text": f"row {i}"} for i in range(60)]
    run = make_run(data=rows, units_per_assignment=3, assignment_duration=3, disconnect_grace=0.5)
    acked: list[tuple[str, str]] = []
    lock = threading.Lock()
    failures: list[str] = []

    def bot(i: int) -> None:
        try:
            chaotic_bot(run, f"w{i}", i, acked, lock)
        except Exception as exc:  # reported below with the bot's name
            failures.append(f"w{i}: {exc!r}")

    bots = [threading.Thread(target=bot, args=(i,), daemon=True) for i in range(100)]
    for bot in bots:
        bot.start()
    for bot in bots:
        bot.join(timeout=120)
    assert failures == []
    # whoever is left finishes politely
    cn.simulate(run, workers=6, answer=lambda row: {"who": "finisher", "row": row["text"]}, prefix="finisher")
    wait_until(lambda: run.counts["completed"] == 180, timeout=30)

    store = run.store
    assert store.scalar("SELECT count(*) FROM submissions") == 180  # one per unit, none doubled
    stored = {r["client_id"] for r in store.query("SELECT client_id FROM submissions")}
    assert {client_id for client_id, _ in acked} <= stored  # nothing a worker was told is saved went missing
    frame = run.df
    assert not frame.duplicated(["assignment_id", "worker"]).any()  # never two units of one row for one worker
    assert (frame.groupby("assignment_id").size() == 3).all()
    assert (frame["row"] == frame["text"]).all()  # every answer belongs to the unit its worker was shown
    assert store.scalar("SELECT count(*) FROM agents WHERE status IN ('accepted', 'in_task')") == 0
