"""The router's end of the operator channel, over a real websocket: a decision re-sent is applied once,
calls into the notebook wait for it or say it is away, and only the run's operator token gets in."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from flask import Flask
from werkzeug.serving import make_server

from crowdnb.errors import WorkerRefused
from crowdnb.router import operator
from crowdnb.router.operator import OperatorHub
from crowdnb.store.db import Store

SECRET = "s3cret-of-the-run"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[OperatorHub, str, list[tuple[str, dict[str, Any]]]]]:
    applied: list[tuple[str, dict[str, Any]]] = []

    def apply(action: str, args: dict[str, Any]) -> Any:
        applied.append((action, args))
        time.sleep(0.5)  # a platform call taking its time
        return len(applied)

    hub = OperatorHub(7, SECRET, apply, frozenset({"onboarding"}))
    app = Flask("hub")
    app.register_blueprint(operator.blueprint(hub, Store(tmp_path), lambda: None))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield hub, f"ws://127.0.0.1:{server.server_port}/_crowd/operator", applied
    hub.close()
    server.shutdown()
    server.server_close()


def connect(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url, header=[f"Authorization: Bearer {operator.token(SECRET, 7)}"], timeout=10)
    assert json.loads(ws.recv())["type"] == "hello"
    return ws


def test_a_decision_sent_again_is_applied_once(served: Any) -> None:
    _, url, applied = served
    ws = connect(url)
    decide = json.dumps({"type": "decide", "id": "d-1", "action": "approve", "args": {"unit_ids": [1]}})
    ws.send(decide)
    ws.send(decide)  # re-sent while the first is being applied
    first = json.loads(ws.recv())
    ws.send(decide)  # re-sent after the answer was lost
    again = json.loads(ws.recv())
    assert first == again == {"type": "decided", "id": "d-1", "ok": True, "value": 1}
    assert applied == [("approve", {"unit_ids": [1]})]
    ws.close()


def test_notebook_python_is_called_and_held_while_away(served: Any) -> None:
    hub, url, _ = served
    with pytest.raises(WorkerRefused) as away:
        hub.remote("onboarding_validate")({"answer": "ready"})
    assert away.value.reason == "waiting" and "notebook is away" in str(away.value)
    with pytest.raises(WorkerRefused):
        hub.hold("onboarding")
    hub.hold("unit")  # nothing else needs the notebook
    ws = connect(url)
    answers: list[Any] = []
    caller = threading.Thread(target=lambda: answers.append(hub.remote("onboarding_validate")({"answer": "ready"})))
    caller.start()
    call = json.loads(ws.recv())
    assert call["type"] == "call" and call["hook"] == "onboarding_validate" and call["args"] == [{"answer": "ready"}]
    ws.send(json.dumps({"type": "result", "id": call["id"], "ok": True, "value": True}))
    caller.join(5)
    assert answers == [True]
    ws.close()
    deadline = time.monotonic() + 5
    while hub.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not hub.connected


@pytest.mark.parametrize("header", [[], ["Authorization: Bearer forged"], [f"Authorization: Bearer {SECRET}"]])
def test_only_the_operator_token_gets_in(served: Any, header: list[str]) -> None:
    _, url, _ = served
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, header=header, timeout=10)
    assert refused.value.status_code == 401
