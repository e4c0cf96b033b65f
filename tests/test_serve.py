"""`crowdnb serve`: a run served by gunicorn + gevent in its own process; SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

import crowdnb as cn

from .serving import free_port, start_server

PAGE = '<p>{{ text }}</p><input name="answer">'


@pytest.fixture
def stopped_run(tmp_path: Path) -> cn.Run:
    project = cn.open(tmp_path / "served")
    task = cn.Task(
        "served", title="T", reward=0.1, html=PAGE, data=[{"text": f"row {i}"} for i in range(120)], project=project
    )
    run = task.launch()
    run.stop()
    return run


def invariants(root: Path) -> list[str]:
    """Units, agents and submissions agree with each other (read from the file, as another process would)."""
    store = cn.open(root).store
    problems = [
        f"unit {r['id']} is {r['status']} with {r['n']} submissions"
        for r in store.query(
            "SELECT u.id, u.status, (SELECT count(*) FROM submissions s WHERE s.unit_id = u.id) AS n FROM units u"
        )
        if (r["status"] in ("completed", "accepted", "rejected", "soft_rejected")) != (r["n"] == 1)
    ]
    problems += [
        f"unit {r['id']} is assigned but its agent is {r['status']}"
        for r in store.query(
            "SELECT u.id, a.status FROM units u JOIN agents a ON a.id = u.agent_id WHERE u.status = 'assigned'"
        )
        if r["status"] not in ("accepted", "in_task")
    ]
    return problems


def test_serve_answers_workers_and_sigterm_stops_the_run(stopped_run: cn.Run) -> None:
    port = free_port()
    server = start_server(stopped_run.store.root, port)
    try:
        base = f"http://127.0.0.1:{port}/"
        unit = requests.get(base + "?worker_id=alice", headers={"Accept": "application/json"}, timeout=10).json()
        body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": "yes"}}
        saved = requests.post(base + "submit", json=body, headers={"Accept": "application/json"}, timeout=10)
        assert saved.json()["status"] == "saved"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    run = cn.open(stopped_run.store.root).run(stopped_run.id)
    assert run.state == "stopped" and list(run.df["answer"]) == ["yes"]
    assert invariants(stopped_run.store.root) == []


def test_sigkill_mid_load_loses_no_acknowledged_submission(stopped_run: cn.Run) -> None:
    root, port = stopped_run.store.root, free_port()
    acked: list[str] = []
    lock = threading.Lock()

    def bot(name: str, stop: threading.Event) -> None:
        http = requests.Session()
        http.headers["Accept"] = "application/json"
        base = f"http://127.0.0.1:{port}/"
        while not stop.is_set():
            try:
                unit = http.get(f"{base}?worker_id={name}", timeout=5)
                if unit.status_code != 200:
                    return
                client_id = uuid.uuid4().hex
                body = {"token": unit.json()["token"], "submission_id": client_id, "answers": {"answer": name}}
                if http.post(base + "submit", json=body, timeout=5).status_code == 200:
                    with lock:
                        acked.append(client_id)
            except requests.RequestException:
                return  # the server is gone

    server = start_server(root, port)
    stop = threading.Event()
    bots = [threading.Thread(target=bot, args=(f"bot-{i}", stop)) for i in range(8)]
    for thread in bots:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(server.pid, signal.SIGKILL)  # mid-load: no chance to clean up
    server.wait(timeout=10)
    stop.set()
    for thread in bots:
        thread.join(timeout=10)
    assert len(acked) >= 40

    store = cn.open(root).store
    stored = {r["client_id"] for r in store.query("SELECT client_id FROM submissions")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged submissions were lost"
    assert invariants(root) == []

    server = start_server(root, port)  # the restart expires what was in flight and re-offers it
    try:
        stop = threading.Event()
        bots = [threading.Thread(target=bot, args=(f"late-{i}", stop)) for i in range(4)]
        for thread in bots:
            thread.start()
        for thread in bots:
            thread.join(timeout=60)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    counts = cn.open(root).run(stopped_run.id).counts
    assert counts["completed"] == 120, counts
    assert store.scalar("SELECT count(*) FROM submissions") == 120
    assert set(acked) <= {r["client_id"] for r in store.query("SELECT client_id FROM submissions")}
    assert invariants(root) == []
