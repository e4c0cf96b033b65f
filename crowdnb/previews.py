"""Dry-run previews: every task's page served for any input row by one small server of this process.

``task.preview_link(row)`` mounts the task's dry-run app (:mod:`crowdnb.router.preview`) under a
random path of a server on 127.0.0.1 (a daemon thread, started on first use) and returns the address
a notebook user's browser opens it at, found as for a run's router (:func:`crowdnb.architects.links.
browser_base`): ``$CROWDNB_PUBLIC_URL``, jupyter-server-proxy, or the server's own address. A task
previewed again under the same name replaces its earlier mount.
"""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server

from .architects.links import browser_base
from .router.preview import create_preview_app

if TYPE_CHECKING:
    from .task import Task

log = logging.getLogger(__name__)


class PreviewServer:
    """One WSGI server for the dry runs of every task previewed in this process."""

    def __init__(self) -> None:
        self._dispatch = DispatcherMiddleware(NotFound())
        self._mounts: dict[str, Any] = self._dispatch.mounts  # read on every request: mounting needs no restart
        self._names: dict[str, str] = {}  # task name → its current mount
        self._server: BaseWSGIServer | None = None
        self._lock = threading.Lock()

    def url(self) -> str:
        """The server's own address (ending in "/"), starting it on first use."""
        with self._lock:
            if self._server is None:
                self._server = make_server("127.0.0.1", 0, self._dispatch, threaded=True)
                thread = threading.Thread(
                    target=self._server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name="crowdnb-previews",
                    daemon=True,
                )
                thread.start()
                log.info("dry-run previews served on http://127.0.0.1:%d/", self._server.server_port)
            return f"http://127.0.0.1:{self._server.server_port}/"

    def mount(self, task: Task) -> str:
        """The path (``t/<key>/``) where ``task``'s dry run is served; mounted on first use."""
        key = task._preview_key
        with self._lock:
            if key is None or f"/t/{key}" not in self._mounts:
                key = secrets.token_urlsafe(12)
                spec = task.spec
                app = create_preview_app(
                    task.page,
                    task._sample_row,
                    title=spec.title,
                    description=spec.description,
                    static_dir=Path(spec.static_dir) if spec.static_dir else None,
                    max_upload_mb=spec.max_upload_mb,
                    extra_answers=spec.extra_answers,
                )
                old = self._names.get(task.name)
                if old is not None:
                    self._mounts.pop(f"/t/{old}", None)
                self._mounts[f"/t/{key}"] = app
                self._names[task.name] = key
                task._preview_key = key
        return f"t/{key}/"

    def stop(self) -> None:
        """Stop serving (tests; a kernel's server goes with its process)."""
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None


server = PreviewServer()


def link(task: Task, row: int = 0) -> str:
    """The address a notebook user's browser opens ``task``'s dry run at, for input ``row``."""
    task._sample_row(row)  # a row out of range is the caller's error, said now
    return f"{browser_base(server.url())}{server.mount(task)}?row={row}"
