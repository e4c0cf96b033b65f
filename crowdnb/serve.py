"""``crowdnb serve``: a run's router outside the notebook, under gunicorn with gevent (one worker).

The same Flask app as in the kernel, with the same store, so workers keep being served while no notebook
is open (an EC2 instance runs this). One worker process, because websockets and the unit monitor live in
the process; gevent gives it thousands of cheap connections instead of a thread each.

Everything that can be wrong (no project, no run to serve, a busy port) is found before the first line is
printed. The listening socket is bound here, then this process becomes a fresh interpreter that patches
the standard library for gevent before anything imports ``ssl`` (``requests``, boto3: their TLS would
otherwise block the event loop) and hands the socket to gunicorn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import values
from prometheus_client.multiprocess import mark_process_dead

from .architects.guard import AddressCap, ClientLimits, refuse
from .architects.local import listen, unavailable
from .errors import ArchitectError, ConfigError, NotFound
from .project import Project, ProjectLike, as_project, missing_project, project_exists
from .remote import install_operator
from .router import metrics
from .router.feed import token
from .store import reports
from .store.db import Store, project_root

if TYPE_CHECKING:
    from flask import Flask

    from .run import Run

log = logging.getLogger(__name__)


class HostedArchitect:
    """An architect for a server that someone else runs (gunicorn here): it only hands the app over.

    ``metrics_dir`` is where its processes keep the run's counted metrics (prometheus-client's multiprocess
    mode), so a worker that gunicorn restarts goes on counting from where the last one stopped.
    """

    name = "hosted"

    def __init__(self, url: str, metrics_dir: Path | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.metrics_dir = metrics_dir
        self.app: Flask | None = None

    def deploy(self, app: Flask) -> str:
        """Keep the app for the server; the URL is where that server answers."""
        self.app = app
        return self.url

    def shutdown(self) -> None:
        """The server stops itself."""

    def options(self) -> dict[str, object]:
        """Nothing to store: the run keeps the options of its own architect."""
        return {}


# a worker's page holds two connections (the page's keep-alive one and its websocket); idle ones cost ~40 KB
CONNECTIONS = 5000
NO_PROJECT = "launch a task there first (crowdnb demo --home DIR makes a demo project)"

# the program this process becomes: gevent's patches come before any other import
_BOOT = "from gevent import monkey; monkey.patch_all()\nimport sys\nfrom crowdnb.serve import _run_gunicorn\n_run_gunicorn(sys.argv[1])\n"


def _choose(store: Store, run_id: int | None) -> int:
    """``run_id``, else the latest run with work left; NotFound lists the runs when none has."""
    runs = reports.runs_overview(store)
    if not runs:
        raise NotFound(f"the project {store.root} has no run to serve; launch a task first")
    ids = [int(r["run_id"]) for r in runs]
    if run_id is not None:
        if run_id not in ids:
            raise NotFound(f"no run {run_id} in {store.root}; runs: {', '.join(map(str, ids))}")
        return run_id
    to_do = reports.units_to_do(store)
    open_runs = [i for i in ids if to_do.get(i)]
    if not open_runs:
        shown = "; ".join(f"{r['run_id']} ({r['task']}, {r['state']}, {r['submitted']}/{r['units']} units submitted)"
                          for r in runs[-5:])  # fmt: skip
        more = f" and {len(runs) - 5} older (crowdnb runs)" if len(runs) > 5 else ""
        raise NotFound(
            f"no run in {store.root} has work left (every unit is done): {shown}{more}; "
            "serve one anyway with --run ID, or launch a new run"
        )
    return open_runs[-1]


def pick_run(project: ProjectLike, run_id: int | None) -> Run:
    """The run to serve: ``run_id``, else the project's latest run that has work left."""
    where = as_project(project)
    return where.run(_choose(where.store, run_id))


def hosted_app(
    project: ProjectLike, run_id: int | None, url: str, metrics_dir: Path | None = None
) -> tuple[Flask, Run]:
    """Resume the run in this process behind a hosted architect; returns its WSGI app and the run."""
    run = pick_run(project, run_id)
    if run.state == "running":  # the previous server died without stopping it
        log.warning("run %s was left running (a crash?): expiring its outstanding units before resuming", run.id)
        run.stop()
    # notebook functions (validators, onboarding and screening checks) answer over the operator channel
    run.operator_hub = install_operator(run, str(run.store.get_run(run.id)["secret"]))
    architect = HostedArchitect(url, metrics_dir)
    rules = [r["name"] for r in run.rulebook.stored()]
    if rules:  # functions of the notebook that made them: this server cannot run them
        log.warning("run %s has rules (%s) that do not run under crowdnb serve", run.id, ", ".join(rules))
        run.rulebook.elsewhere = True
    run.resume(architect=architect)
    assert architect.app is not None
    return architect.app, run


def serve(project: ProjectLike, run_id: int | None, host: str = "127.0.0.1", port: int = 8000,
          public_url: str | None = None, connections: int = CONNECTIONS,
          say: Callable[[str], None] | None = None, limits: ClientLimits | None = None) -> None:  # fmt: skip
    """Serve a run with gunicorn + gevent until the server is stopped (SIGTERM stops the run cleanly).

    ``say`` hears where it listens, how a notebook attaches to it and how Prometheus scrapes it (the URL,
    the run's feed and metrics tokens: credentials, so never logged; the command prints them). ``host`` is
    this machine only unless asked ("0.0.0.0": every interface). ``limits`` bound slow and greedy clients
    (``crowdnb.architects.guard``: header and read timeouts, connections per client address). This process
    becomes the server (``os.execv``): the call does not return.
    """
    bounds = limits or ClientLimits()
    try:
        import gevent  # noqa: F401
        import gunicorn  # noqa: F401
    except ImportError as exc:
        raise ConfigError("crowdnb serve needs gunicorn and gevent: pip install 'crowdnb[serve]'") from exc
    if not isinstance(project, Project) and not project_exists(project):
        raise NotFound(missing_project(project, NO_PROJECT))
    root = project.root if isinstance(project, Project) else project_root(project)
    run_id, feed_token, metrics_token, work_left = _chosen(root, run_id)
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise ArchitectError(
            unavailable(host, port, exc, "choose another --port (--port 0 takes a free one)")
        ) from None
    port = sock.getsockname()[1]
    everywhere = host in ("0.0.0.0", "::", "")
    url = public_url or f"http://{_shown(socket.gethostname() if everywhere else host)}:{port}/"
    where = f"{_shown(host or '0.0.0.0')}:{port}" + (", every address of this machine" if everywhere else "")
    metrics_dir = counting_across_processes(root / "metrics" / f"run{run_id}")  # the env var outlives the exec
    if say is not None:
        say(f"Serving run {run_id} at {url} (listening on {where})")
        if not work_left:
            say(f"Note: run {run_id} has no work left; workers are told it is finished (feed and review still work)")
        say(f"Attach a notebook: cn.attach({url!r}, token={feed_token!r})")
        say(f"Prometheus: scrape {url}metrics with Authorization: Bearer {metrics_token}")
    sys.stdout.flush()
    sys.stderr.flush()
    os.set_inheritable(sock.fileno(), True)
    args = {"root": str(root), "run_id": run_id, "url": url, "fd": sock.fileno(), "connections": connections,
            "metrics_dir": str(metrics_dir), "limits": dataclasses.asdict(bounds)}  # fmt: skip
    os.execv(sys.executable, [sys.executable, "-c", _BOOT, json.dumps(args)])


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _worker(base: type, timeout: type, limits: ClientLimits) -> type:
    """gunicorn's gevent worker, with a cap on connections per client address and a read timeout on
    request bodies (its keep-alive deadline already bounds the headers)."""
    cap = AddressCap(limits)

    class Worker(base):
        def handle(self, listener: Any, client: Any, addr: Any) -> None:
            address = str(addr[0]) if isinstance(addr, tuple) else str(addr)
            if not cap.enter(address):
                refuse(client, address)
                return
            try:
                super().handle(listener, client, addr)
            finally:
                cap.leave(address)

        def timeout_ctx(self) -> Any:
            return timeout(limits.header_seconds, False)  # gunicorn's keep-alive setting, to the fraction

        def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
            sock.settimeout(limits.read_seconds)  # each read of the body (each write of the reply) waits this long
            try:
                return super().handle_request(listener_name, req, sock, addr)
            finally:
                with contextlib.suppress(OSError):
                    sock.settimeout(None)  # the next request's headers: under the keep-alive deadline

    return Worker


def _chosen(root: Path, run_id: int | None) -> tuple[int, str, str, bool]:
    """The run to serve, its feed and metrics tokens and whether it has work left, read through a store of
    its own: gunicorn forks later, and a SQLite connection (the cached project's) must not cross a fork."""
    store = Store(root)
    try:
        chosen = _choose(store, run_id)
        secret = store.get_run(chosen)["secret"]
        work_left = bool(reports.units_to_do(store).get(chosen))
        return chosen, token(secret, chosen), metrics.token(secret, chosen), work_left
    finally:
        store.close()


def counting_across_processes(folder: Path) -> Path:
    """Put prometheus-client in multiprocess mode on an emptied ``folder`` (before gunicorn forks its worker):
    counts left by an earlier server would be added to this one's."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    # prometheus-client picks its value class when first imported (crowdnb imported it already): pick again
    values.ValueClass = values.get_value_class()
    return folder


def _run_gunicorn(arguments: str) -> None:
    """Run gunicorn on the socket ``serve`` bound (in the interpreter it became, gevent already patched in)."""
    from gevent import Timeout
    from gunicorn.app.base import BaseApplication
    from gunicorn.workers.ggevent import GeventWorker

    given = json.loads(arguments)
    bounds = ClientLimits(**{**given["limits"], "proxies": tuple(given["limits"]["proxies"])})
    root, run_id, url, connections = given["root"], given["run_id"], given["url"], given["connections"]
    metrics_dir = given["metrics_dir"]
    state: dict[str, Any] = {}

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"fd://{given['fd']}", "workers": 1, "worker_class": _worker(GeventWorker, Timeout, bounds),
                "worker_connections": connections, "accesslog": None, "graceful_timeout": 10,
                # gevent's worker reads a request's line and headers (after any idle keep-alive wait) under
                # one deadline (``timeout_ctx``): a slow client's header deadline; gunicorn's 2 s default
                # would drop a page's connection between its GET and its POST
                "keepalive": max(1, math.ceil(bounds.header_seconds)),
                # gunicorn 27 opens a control socket in ~/.gunicorn by default; nothing here uses it
                "control_socket_disable": True,
                "worker_exit": _stop_on_exit(state),
                # a dead worker's live gauges are dropped; its counters stay in the files and keep adding up
                "child_exit": lambda server, worker: mark_process_dead(worker.pid, metrics_dir),
                # the worker may be killed after graceful_timeout (idle keep-alive connections): the master
                # then stops the run from the file, as after a crash
                "on_exit": lambda server: pick_run(root, run_id).stop(),
            }.items():  # fmt: skip
                self.cfg.set(key, value)

        def load(self) -> Flask:
            from gevent import get_hub

            app, state["run"] = hosted_app(root, run_id, url, Path(metrics_dir))
            # a COMMIT waits for fsync; on the event loop it would stop every connection meanwhile
            state["run"].store.commit_with(get_hub().threadpool.apply)
            log.info("serving run %s at %s", state["run"].id, url)
            return app

    Server().run()


def _stop_on_exit(state: dict[str, Any]) -> Callable[[Any, Any], None]:
    def stop(server: Any, worker: Any) -> None:
        run = state.get("run")
        if run is not None and run.serving:
            run.stop()

    return stop
