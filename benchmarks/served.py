"""The targets of the router benchmark whose router runs in a process of its own (gunicorn + gevent).

serve: the run is launched in this process and stopped at once, so it is stored; then ``python -m crowdnb
serve`` resumes it in a new session (so the whole server, master and worker, can be signalled as one
group). The notebook side stays here: the frame watcher reads ``run.df`` from the same SQLite file, as a
notebook attached to that project would.

process: the run is launched with ``architect="process"``, as a notebook would: ``crowdnb serve`` in a
child process on the run's own folder, and ``run.df`` read here through the notebook's mirror (each read
pulls what the router holds first, over HTTP).

For both, the router's CPU and memory are those of the gunicorn worker process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from machine import alive, children
from targets import FrameTail, new_task

STARTUP_TIMEOUT = 60.0  # seconds for the server to answer /healthz
STOP_TIMEOUT = 30.0  # seconds for SIGTERM to stop the server (gunicorn's graceful timeout is 10 s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(url: str) -> bool:
    """Whether the server answers its health check."""
    try:
        with urllib.request.urlopen(f"{url}healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:  # not listening yet, or the worker is still loading the app
        return False


class ServeTarget:
    """``crowdnb serve PROJECT`` on a free port, serving a freshly launched and stopped run."""

    name = "serve"

    def __init__(self, folder: Path, units: int, workers: int) -> None:
        import crowdnb as cn

        self.project = cn.open(folder, create=True)
        launched = new_task(self.project, units, workers).launch(provider="mock", architect="local")
        launched.stop()
        self.run = self.project.run(launched.id)  # a stored run: its frame is read from the file
        self._tail = FrameTail()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = folder / "serve.log"
        self.server: subprocess.Popen[bytes] | None = None
        try:
            self.server = self._start()
            self.pid = self._worker_pid()
        except BaseException:
            self._terminate()
            self.project.store.close()
            raise

    def _start(self) -> subprocess.Popen[bytes]:
        """Start the server in a new session and wait until it answers /healthz."""
        command = [sys.executable, "-m", "crowdnb", "serve", str(self.project.root)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            server = subprocess.Popen(command, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)
        self.server = server  # so that a failure below still stops it
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not healthy(self.url):
            if server.poll() is not None:
                raise RuntimeError(f"crowdnb serve exited with {server.returncode}:\n{self.tail_of_log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"crowdnb serve did not answer within {STARTUP_TIMEOUT:.0f} s:\n{self.tail_of_log()}"
                )
            time.sleep(0.1)
        return server

    def _worker_pid(self) -> int:
        """The gunicorn worker: the one child of the master (the process started above)."""
        assert self.server is not None
        return gunicorn_worker(self.server.pid)

    def new_keys(self) -> list[int]:
        """New rows of ``run.df``, read from the SQLite file the server writes."""
        return self._tail(self.run.df)

    def tail_of_log(self, lines: int = 30) -> str:
        """The end of the server's output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _terminate(self) -> None:
        """SIGTERM the server's process group, wait, and SIGKILL whatever is left of it."""
        server, self.server = self.server, None
        if server is None:
            return
        group = server.pid  # start_new_session: the master leads its own process group
        signal_group(group, signal.SIGTERM)
        try:
            server.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            signal_group(group, signal.SIGKILL)
            server.wait(timeout=10)
        deadline = time.monotonic() + 5  # the worker may outlive the master for a moment
        while group_alive(group) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(group):
            signal_group(group, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server (SIGTERM stops the run cleanly), then close this process's database."""
        try:
            self._terminate()
        finally:
            self.project.store.close()


class ProcessTarget:
    """A run launched with ``architect="process"`` from this process, in its own project."""

    name = "process"

    def __init__(self, folder: Path, units: int, workers: int) -> None:
        import crowdnb as cn

        self.project = cn.open(folder, create=True)
        try:
            self.run = new_task(self.project, units, workers).launch(provider="mock", architect="process")
        except BaseException:
            self.project.store.close()
            raise
        self.url = self.run.url
        self._tail = FrameTail()
        try:
            options = json.loads(self.project.store.get_run(self.run.id)["config"])["architect"]["options"]
            self.pid = gunicorn_worker(int(options["pid"]))
        except BaseException:
            self.stop()
            raise

    def new_keys(self) -> list[int]:
        """New rows of ``run.df``: the notebook's mirror, after pulling what the router holds."""
        return self._tail(self.run.df)

    def stop(self) -> None:
        """Stop the run (its rows come home, the router process is torn down), then close the project."""
        try:
            self.run.stop()
        finally:
            self.project.store.close()


def gunicorn_worker(master: int) -> int:
    """The one gunicorn worker under ``master``."""
    deadline = time.monotonic() + 5
    while len(workers := children(master)) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)  # a worker being forked or replaced
    if len(workers) != 1:
        raise RuntimeError(f"expected one gunicorn worker under {master}, found {workers}")
    return workers[0]


def signal_group(group: int, signum: int) -> None:
    """Signal every process of a group; nothing when it is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def group_alive(group: int) -> bool:
    """Whether a live (non-zombie) process of the group is left."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(
        alive(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _in(entry, group)
    )


def _in(entry: Path, group: int) -> bool:
    """Whether the process of a /proc entry belongs to the process group ``group``."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return False
    return int(stat[stat.rindex(")") + 2 :].split()[2]) == group
