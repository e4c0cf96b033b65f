"""Slow and greedy clients (issue 13, item 6), on both routers with real sockets: the router keeps answering
while they are held, drops them after the header and read timeouts, and caps connections per address.

Timeouts are made short (1 s) so the tests are quick; loops are bounded, a few hundred sockets at most.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

import crowdnb as cn

from .conftest import FORM, SENTENCES, wait_until
from .serving import free_port, start_server

FAST = {"header_seconds": 1.0, "read_seconds": 1.0}
SLOW_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "  # the headers never end
SLOW_BODY = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"


def open_sockets(port: int, count: int, payload: bytes) -> list[socket.socket]:
    """``count`` connections that each send ``payload`` and then nothing."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(payload)
        held.append(sock)
    return held


REPLIES: dict[socket.socket, bytes] = {}  # what the server sent each slow socket before closing it


def dropped(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (whatever it answered first, kept in REPLIES); never blocks."""
    sock.setblocking(False)
    try:
        while data := sock.recv(65536):
            REPLIES[sock] = REPLIES.get(sock, b"") + data
        return True
    except BlockingIOError:
        return False
    except OSError:  # reset
        return True


@contextlib.contextmanager
def dribbling(port: int, count: int, every: float = 0.3, rounds: int = 40) -> Iterator[list[socket.socket]]:
    """``count`` clients sending one header byte every ``every`` s (faster than any read timeout): only a
    deadline on the headers as a whole drops them. Bounded: ``rounds`` bytes at most."""
    held = open_sockets(port, count, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stop = threading.Event()

    def drip() -> None:
        for _ in range(rounds):
            if stop.wait(every):
                return
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.send(b"X")

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        yield held
    finally:
        stop.set()
        thread.join(timeout=5)
        close_all(held)


def healthy(base: str) -> bool:
    reply = requests.get(base + "healthz", timeout=5)
    return reply.status_code == 200 and reply.json()["ok"] is True


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def check_slow_clients_are_dropped(base: str, port: int, count: int) -> None:
    """While ``count`` slow sockets (half without an end to their headers, half stalled in their body) and a
    few dribblers are held, the router answers; then every one of them is dropped, and it still answers."""
    stalled = open_sockets(port, count - count // 2, SLOW_BODY)
    slow = open_sockets(port, count // 2, SLOW_HEADERS) + stalled
    try:
        with dribbling(port, 10) as dribblers:
            assert all(healthy(base) for _ in range(3))
            wait_until(lambda: all(map(dropped, slow + dribblers)), "every slow client dropped", timeout=30)
        assert healthy(base)
        # a body that stopped arriving is the client's error (werkzeug: the client disconnected), not a 500
        assert {REPLIES.get(sock, b"")[:12] for sock in stalled} == {b"HTTP/1.1 400"}
    finally:
        close_all(slow)


def check_the_cap_per_address(base: str, port: int, cap: int) -> None:
    idle = open_sockets(port, cap, b"")
    try:
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        with extra:
            assert extra.recv(4096).startswith(b"HTTP/1.1 503")
        assert requests.get(base + "healthz", timeout=5).status_code == 503  # the same address: refused too
    finally:
        close_all(idle)
    wait_until(lambda: requests.get(base + "healthz", timeout=5).status_code == 200, "the cap released", timeout=15)


# --- in the kernel (werkzeug) -------------------------------------------------------------------------
def launch(project: cn.Project, **options: Any) -> cn.Run:
    task = cn.Task("slow", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    return task.launch(provider="mock", architect="local", architect_options=options)


@pytest.fixture
def local_run(project: cn.Project) -> Iterator[cn.Run]:
    run = launch(project, **FAST, per_address=1000)
    yield run
    run.stop()


def port_of(run: cn.Run) -> int:
    return int(run.url.rstrip("/").rsplit(":", 1)[1])


def test_the_kernels_router_drops_slow_clients_and_keeps_answering(local_run: cn.Run) -> None:
    check_slow_clients_are_dropped(local_run.url, port_of(local_run), 200)


def test_the_kernels_router_caps_connections_per_address(project: cn.Project) -> None:
    run = launch(project, **FAST, per_address=8, proxies=[])  # 127.0.0.1 capped like any address
    try:
        check_the_cap_per_address(run.url, port_of(run), 8)
    finally:
        run.stop()


def test_a_proxys_address_is_not_capped(project: cn.Project) -> None:
    # a tunnel or jupyter-server-proxy connects from 127.0.0.1 for every worker: loopback is a proxy's by default
    run = launch(project, **FAST, per_address=8)
    idle = open_sockets(port_of(run), 12, b"")
    try:
        assert healthy(run.url)
    finally:
        close_all(idle)
        run.stop()


def test_a_heartbeat_socket_outlives_the_read_timeout(local_run: cn.Run) -> None:
    unit = requests.get(local_run.worker_url("alice"), headers={"Accept": "application/json"}, timeout=10).json()
    ws = websocket.create_connection(local_run.url.replace("http", "ws") + f"ws?token={unit['token']}", timeout=10)
    try:
        time.sleep(FAST["read_seconds"] * 2.5)  # idle between heartbeats, as a page is
        ws.send("beat")
        assert json.loads(ws.recv())["type"] == "status"
    finally:
        ws.close()


def test_bounds_are_checked_and_kept_for_resume(project: cn.Project) -> None:
    with pytest.raises(cn.ConfigError, match=r"read_seconds=0 must be a number of seconds above 0"):
        launch(project, read_seconds=0)
    with pytest.raises(cn.ConfigError, match=r"proxies: 'lan' is not a network"):
        launch(project, proxies=["lan"])
    run = launch(project, **FAST, per_address=7)
    try:
        stored = run.config["architect"]["options"]
        assert (stored["header_seconds"], stored["read_seconds"], stored["per_address"]) == (1.0, 1.0, 7)
        assert "127.0.0.0/8" in stored["proxies"]
    finally:
        run.stop()


# --- crowdnb serve (gunicorn + gevent) ----------------------------------------------------------------
@pytest.fixture
def stopped_run(tmp_path: Path) -> cn.Run:
    project = cn.open(tmp_path / "served", create=True)
    task = cn.Task("served", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    run = task.launch()
    run.stop()
    return run


@contextlib.contextmanager
def serving(run: cn.Run, *options: str, host: str | None = "127.0.0.1") -> Iterator[tuple[str, int]]:
    port = free_port()
    server = start_server(run.store.root, port, *options, host=host)
    try:
        yield f"http://127.0.0.1:{port}/", port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses listening on ``port`` (from /proc/net/tcp: "0100007F" is 127.0.0.1)."""
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    found = set()
    for row in rows:
        local, state = row.split()[1], row.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_serve_drops_slow_clients_and_keeps_answering(stopped_run: cn.Run) -> None:
    options = ("--header-timeout", "1", "--read-timeout", "1", "--per-address", "1000", "--connections", "400")
    with serving(stopped_run, *options) as (base, port):
        check_slow_clients_are_dropped(base, port, 300)


def test_serve_caps_connections_per_address_and_listens_on_this_machine_only(stopped_run: cn.Run) -> None:
    with serving(stopped_run, "--per-address", "8", "--proxies", "none", host=None) as (base, port):
        assert listening_addresses(port) == {"127.0.0.1"}
        check_the_cap_per_address(base, port, 8)
