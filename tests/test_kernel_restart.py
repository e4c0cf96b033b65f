"""A kernel restarted in the middle of a run: ``cn.open`` + ``run.resume()`` carry on, nothing lost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket
from jupyter_client.manager import KernelManager, start_new_kernel

import crowdnb as cn

from .conftest import wait_until
from .test_serve import invariants


@pytest.fixture
def kernel() -> Iterator[tuple[KernelManager, Any]]:
    km, kc = start_new_kernel(kernel_name="python3")
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def execute(kc: Any, code: str) -> Any:
    """Run ``code`` in the kernel; the value of its last line, which must print JSON."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = kc.execute_interactive(code, timeout=60, output_hook=hook)
    assert reply["content"]["status"] == "ok", "".join(out)
    return json.loads("".join(out).strip().splitlines()[-1])


def enter(url: str, worker: str, check: bool = True) -> Any:
    """A worker opens the task (JSON flavour of the page): the unit, with its token."""
    reply = requests.get(f"{url}?worker_id={worker}", headers={"Accept": "application/json"}, timeout=10)
    if not check:
        return reply
    assert reply.status_code == 200, reply.text
    return reply.json()


def finish(url: str, worker: str) -> None:
    """The worker's unit (entered again: a refresh returns the same one) submitted."""
    token = enter(url, worker)["token"]
    body = {"token": token, "submission_id": uuid.uuid4().hex, "answers": {"answer": worker}}
    assert requests.post(url + "submit", json=body, timeout=10).status_code == 200


def submit(url: str, worker: str) -> None:
    enter(url, worker)
    finish(url, worker)


def test_a_restarted_kernel_resumes_the_run(kernel: tuple[KernelManager, Any], tmp_path: Path) -> None:
    km, kc = kernel
    root = tmp_path / "study"
    started = execute(
        kc,
        f"""
import json, crowdnb as cn
task = cn.Task("restart", title="T", reward=0.1, html='<p>{{{{ text }}}}</p><input name="answer">',
               data=[{{"text": f"row {{i}}"}} for i in range(6)], project={str(root)!r}, disconnect_grace=1)
run = task.launch()
print(json.dumps({{"id": run.id, "url": run.url}}))
""",
    )
    for name in ("before-1", "before-2", "before-3"):
        submit(started["url"], name)
    # two workers hold a unit when the kernel dies: one keeps working, one has walked away
    holder = enter(started["url"], "holder")
    enter(started["url"], "walked-away")

    km.restart_kernel(now=True)  # what "Restart kernel" does: the process and its router thread are gone
    kc.wait_for_ready(timeout=60)

    resumed = execute(
        kc,
        f"""
import json, crowdnb as cn
run = cn.open({str(root)!r}).run({started["id"]})
seen = len(run.df)
run.resume()
print(json.dumps({{"url": run.url, "seen": seen, "state": run.state}}))
""",
    )
    assert resumed["seen"] == 3 and resumed["state"] == "running"
    # the holder's page reconnects its socket to the resumed router and submits with its old token
    ws = websocket.create_connection(resumed["url"].replace("http", "ws") + f"ws?token={holder['token']}", timeout=10)
    ws.send(json.dumps({"type": "heartbeat"}))
    assert json.loads(ws.recv())["type"] == "status"
    body = {"token": holder["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": "holder"}}
    assert requests.post(resumed["url"] + "submit", json=body, timeout=10).status_code == 200
    ws.close()
    submit(resumed["url"], "after-1")
    # the unit of the worker who walked away is offered again once their page failed to come back
    wait_until(lambda: enter(resumed["url"], "after-2", check=False).status_code == 200, "the orphan unit", 60)
    finish(resumed["url"], "after-2")
    done = execute(
        kc,
        f"""
run = cn.open({str(root)!r}).run({started["id"]})
print(json.dumps({{"workers": sorted(run.df["worker"]), "counts": run.counts}}))
""",
    )
    assert done["workers"] == ["after-1", "after-2", "before-1", "before-2", "before-3", "holder"]
    assert done["counts"]["completed"] == 6
    assert invariants(root) == []
    assert cn.open(root).run(started["id"]).df["unit_id"].is_unique
