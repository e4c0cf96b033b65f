"""`crowdnb serve`: a run served by gunicorn + gevent in its own process; SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
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
    project = cn.open(tmp_path / "served", create=True)
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


def _serve(root: Path, *args: str, home: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home)} if home else dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "crowdnb", "serve", str(root), *args],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def test_serve_on_a_busy_port_says_so_in_one_line_before_anything_else(stopped_run: cn.Run) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        done = _serve(stopped_run.store.root, "--host", "127.0.0.1", "--port", str(port), timeout=30)
    assert done.returncode == 1 and done.stdout == ""  # no "Serving run …" first
    assert done.stderr == (
        f"error: port {port} on 127.0.0.1 is already in use; choose another --port (--port 0 takes a free one)\n"
    )
    assert cn.open(stopped_run.store.root).run(stopped_run.id).state == "stopped"


def test_serve_without_run_refuses_when_every_run_is_done(tmp_path: Path) -> None:
    project = cn.open(tmp_path / "done", create=True)
    task = cn.Task("finished", title="T", reward=0.1, html=PAGE, data=[{"text": "one"}], project=project)
    run = task.launch()
    cn.simulate(run, workers=1)
    run.stop()
    done = _serve(project.root, "--port", "0", timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"error: no run in {project.root} has work left (every unit is done): {run.id} (finished, stopped, "
        "1/1 units submitted); serve one anyway with --run ID, or launch a new run\n"
    )


def test_serve_picks_the_latest_run_with_work_left_and_names_where_it_listens(tmp_path: Path) -> None:
    project = cn.open(tmp_path / "mixed", create=True)
    open_run = cn.Task("open", title="T", reward=0.1, html=PAGE, data=[{"text": "a"}], project=project).launch()
    open_run.stop()
    finished = cn.Task("later", title="T", reward=0.1, html=PAGE, data=[{"text": "b"}], project=project).launch()
    cn.simulate(finished, workers=1)
    finished.stop()
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {**os.environ, "HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "crowdnb", "serve", str(project.root), "--port", str(port), "--host", "0.0.0.0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["run"] == str(open_run.id)
        unit = requests.get(
            f"http://127.0.0.1:{port}/?worker_id=zoe", headers={"Accept": "application/json"}, timeout=10
        )
        assert unit.json()["input"] == {"text": "a"}  # the open run's row, not the finished run's
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    host = socket.gethostname()
    assert out.splitlines()[0] == (
        f"Serving run {open_run.id} at http://{host}:{port}/ (listening on 0.0.0.0:{port}, every address of this machine)"
    )
    assert out.splitlines()[1].startswith(f"Attach a notebook: cn.attach('http://{host}:{port}/', token=")
    assert "MonkeyPatchWarning" not in err and "Traceback" not in err
    assert list(home.iterdir()) == []  # gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl) is not made
    assert cn.open(project.root).run(open_run.id).state == "stopped"
