"""Starting `crowdnb serve` as a real subprocess for tests (gunicorn + gevent on 127.0.0.1)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(root: Path, port: int, *options: str, host: str | None = "127.0.0.1") -> subprocess.Popen[bytes]:
    """`crowdnb serve ROOT --port PORT [--host HOST] OPTIONS…` in a session of its own, once it answers."""
    log = root / f"serve-{port}.log"
    where = ["--host", host] if host is not None else []
    with log.open("ab") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "crowdnb", "serve", str(root), *where, "--port", str(port), *options],
            stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    return server
            except requests.RequestException:  # not listening yet, or the worker is still loading
                time.sleep(0.1)
            assert server.poll() is None, log.read_text()
        raise AssertionError("crowdnb serve did not answer within 30 s")
    except BaseException:
        os.killpg(server.pid, signal.SIGKILL)  # never leave a server behind
        server.wait(timeout=10)
        raise
