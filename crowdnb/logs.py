"""A project's log: one JSON object a line in ``<project>/logs/crowdnb.log``, rotated by size.

Every line has ``at`` (UTC, ISO 8601), ``level``, ``logger`` and ``message``, and, when known, ``run``,
``agent`` and ``request`` (the id of one HTTP request, also sent back as ``X-Request-Id``), plus ``error``
with the traceback of an exception. Where a record belongs and what it is about come from ``bound``: the
router binds the run and request to each request (and the agent once a worker's token names one), a run's
monitor binds its run to each tick. A record logged outside any binding goes to the project opened last.

One handler on the ``crowdnb`` logger routes records to the open projects' files (``attach``/``detach``);
it never prints, and nothing is configured on the root logger. The ``crowdnb`` logger is set to INFO when
nobody set its level (lifecycle at INFO, per-request detail at DEBUG): set it yourself to log more or less.
Code logs neither answers nor credentials, and worker ids only shortened.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import logging.handlers
import threading
import time
from collections.abc import Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FILE = Path("logs") / "crowdnb.log"
MAX_BYTES = 10 * 1024 * 1024  # a file this large is rotated: crowdnb.log.1 … .5
BACKUPS = 5
KEPT = 100  # the latest warnings and errors a served run keeps in ``run.errors``
FIELDS = ("project", "run", "agent", "request")

_bound: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("crowdnb_log_context", default=None)


def bind(**fields: Any) -> contextvars.Token[dict[str, Any] | None]:
    """Add ``fields`` (project, run, agent, request) to every record this thread (context) logs from now on;
    ``unbind`` the returned token to go back."""
    return _bound.set({**current(), **{k: v for k, v in fields.items() if v is not None}})


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    """Go back to the fields bound before ``bind`` returned ``token``."""
    _bound.reset(token)


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """``bind`` for the duration of a ``with`` block."""
    mark = _bound.set({**current(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(mark)


def current() -> dict[str, Any]:
    """The fields bound now."""
    return dict(_bound.get() or {})


class JsonLines(logging.Formatter):
    """A record as one JSON object (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = getattr(record, "crowdnb", {})
        line.update({k: context[k] for k in FIELDS[1:] if k in context})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ProjectLogs(logging.Handler):
    """The handler that writes each record to the log of the project it belongs to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._files: dict[str, logging.Handler] = {}
        self._listeners: dict[str, Callable[[int, str], None] | None] = {}
        self._latest: str | None = None
        self._guard = threading.Lock()

    def attach(
        self, root: Path, on_problem: Callable[[int, str], None] | None = None, max_bytes: int = MAX_BYTES
    ) -> Path:
        """Write the records of the project at ``root`` to its log; ``on_problem(run_id, text)`` hears each
        warning and error logged for one of its runs (``"ERROR crowdnb.service: …"``). Returns the file's path."""
        path = root / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=BACKUPS,
                                                       encoding="utf-8", delay=True)  # fmt: skip
        handler.setFormatter(JsonLines())
        with self._guard:
            old = self._files.pop(str(root), None)
            self._files[str(root)] = handler
            self._listeners[str(root)] = on_problem
            self._latest = str(root)
        if old is not None:
            old.close()
        return path

    def detach(self, root: Path) -> None:
        """Stop writing the project's log (its file is closed)."""
        with self._guard:
            handler = self._files.pop(str(root), None)
            self._listeners.pop(str(root), None)
            if self._latest == str(root):
                self._latest = next(reversed(self._files), None)
        if handler is not None:
            handler.close()

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record`` to its project's file (nothing when no project is open)."""
        context = current()
        record.crowdnb = context
        with self._guard:
            root = str(context.get("project") or self._latest or "")
            handler, listener = self._files.get(root), self._listeners.get(root)
        if handler is None:
            return
        handler.handle(record)
        if listener is not None and record.levelno >= logging.WARNING and context.get("run") is not None:
            listener(int(context["run"]), f"{record.levelname} {record.name}: {record.getMessage()}")


HANDLER = ProjectLogs()


def install() -> ProjectLogs:
    """Put the one routing handler on the ``crowdnb`` logger (once per process)."""
    logger = logging.getLogger("crowdnb")
    if HANDLER not in logger.handlers:
        logger.addHandler(HANDLER)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    return HANDLER


def lines(
    root: Path, run: int | None = None, follow: bool = False, poll: float = 0.5
) -> Generator[dict[str, Any], None, None]:
    """The log of the project at ``root`` as dicts, oldest first (rotated files too), only ``run``'s when
    given; with ``follow`` it goes on with lines written later (and across a rotation) until closed."""
    path = root / FILE
    for older in sorted(path.parent.glob(path.name + ".*"), key=lambda p: -_number(p)):
        yield from _chosen(older.read_text(encoding="utf-8", errors="replace").splitlines(), run)
    if not path.exists() and not follow:
        return
    handle, inode, pending = None, None, ""
    try:
        while True:
            if handle is None and path.exists():
                handle, inode = path.open(encoding="utf-8", errors="replace"), path.stat().st_ino
            pending += handle.readline() if handle is not None else ""
            if pending.endswith("\n"):  # a whole line (a line being written is waited for)
                yield from _chosen([pending], run)
                pending = ""
                continue
            if not follow:
                yield from _chosen([pending], run)
                return
            if handle is not None and path.exists() and path.stat().st_ino != inode:  # rotated: the new file
                handle.close()
                handle = None
                continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _number(path: Path) -> int:
    suffix = path.suffix.lstrip(".")
    return int(suffix) if suffix.isdigit() else 0


def _chosen(texts: list[str], run: int | None) -> Iterator[dict[str, Any]]:
    for text in texts:
        text = text.strip()
        if not text:
            continue
        try:
            line = json.loads(text)
        except ValueError:
            continue  # a line cut by a crash: skipped, never fatal
        if isinstance(line, dict) and (run is None or line.get("run") == run):
            yield line
