"""The process architect: ``crowdnb serve`` in a child process of the kernel, with its own copy of the run.

The local test bed of a router that runs elsewhere (EC2, Heroku): the run is deployed as a project folder
(its database of record beside the router), the notebook operates it over the operator channel, and its
rows come home when it stops. It also keeps the researcher's own work in the kernel from slowing workers
down: the router has a process (and, on a machine with several, a core) of its own. The child outlives the
kernel, so a study goes on while the notebook is closed; ``run.resume()`` reattaches to it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from ..errors import ArchitectError, ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0  # seconds for the child to answer /healthz


class ProcessArchitect:
    """Serve a run from ``crowdnb serve`` in a child process of its own (``architect_options={...}``).

    Args:
        host: the address the child's server listens on; 0.0.0.0 lets other machines reach it
        port: the port it listens on; 0 picks a free one
        public_url: what workers open when the router sits behind a proxy or tunnel (https://…)
        pid: set by crowdnb: the child's process id, kept with the run so a new kernel can reattach or stop it
        url: set by crowdnb: the router's address, kept with the run for the same reason
        resume: set by run.resume() (which reattaches to the child, or starts it again on the run's folder)
        start_timeout: seconds the child has to answer its health check at public_url (or its own address)
    """

    name = "process"
    serves_in_place = True  # the router's database is the folder deployed, on this machine
    remote = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        public_url: str | None = None,
        pid: int | None = None,
        url: str | None = None,
        resume: bool = False,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port {port!r} is not a port number (0–65535; 0 picks a free one)")
        if public_url is not None and not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"public_url {public_url!r} must start with http:// or https://")
        self.host, self.port, self.public_url = host, port, public_url
        self.pid, self.url = pid, url
        if isinstance(start_timeout, bool) or not isinstance(start_timeout, (int, float)) or not start_timeout > 0:
            raise ConfigError(f"start_timeout={start_timeout!r} must be a number of seconds above 0")
        self.start_timeout = float(start_timeout)
        self._process: subprocess.Popen[bytes] | None = None

    def deploy(self, app: object) -> str:
        """Not served in this process: the run is deployed as a project folder (``deploy_bundle``)."""
        raise ArchitectError("the process architect serves a run's folder with deploy_bundle(), not an app")

    def deploy_bundle(self, bundle: Path, run_id: str, env: dict[str, str]) -> str:
        """Start ``crowdnb serve`` on the folder ``bundle``; returns the URL once it answers."""
        port = self.port or _free_port(self.host)
        url = self.public_url or f"http://{self.host}:{port}/"
        command = [sys.executable, "-m", "crowdnb", "serve", str(bundle), "--run", str(run_id),
                   "--host", self.host, "--port", str(port), "--public-url", url]  # fmt: skip
        log_path = Path(bundle) / "router.log"
        with open(log_path, "ab") as out:
            # a session of its own: the router outlives the kernel (the study goes on), and is stopped as a group
            self._process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
            )
        self.pid, self.port, self.url = self._process.pid, port, url
        deadline = time.monotonic() + self.start_timeout
        while not self.healthy():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.teardown()
                tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise ArchitectError(f"the router process did not start: {' | '.join(tail) or 'no output'}")
            time.sleep(0.1)
        log.info("router of run %s in process %d at %s", run_id, self.pid, url)
        return url

    def healthy(self) -> bool:
        """Whether the router answers ``/healthz``."""
        if not self.url:
            return False
        try:
            return requests.get(self.url + "healthz", timeout=2).ok
        except requests.RequestException:
            return False

    def teardown(self) -> None:
        """Stop the child (SIGTERM to its group, SIGKILL after 15 s); nothing is left running."""
        if self.pid is None:
            return
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _alive(self.pid, self._process):
            time.sleep(0.1)
        if _alive(self.pid, self._process):
            os.killpg(self.pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(timeout=5)
        self.pid = None

    def shutdown(self) -> None:
        """Tear the child down (the in-process contract's name for it)."""
        self.teardown()

    def options(self) -> dict[str, object]:
        """Where it serves and which process, so a new kernel reattaches to it."""
        return {
            "host": self.host,
            "port": self.port,
            "public_url": self.public_url,
            "pid": self.pid,
            "url": self.url,
            "start_timeout": self.start_timeout,
        }


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _alive(pid: int, process: subprocess.Popen[bytes] | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
