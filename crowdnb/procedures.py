"""Procedures of a live task: Python functions of the notebook that workers' pages call (``crowd.call``).

``@task.procedure`` (or ``run.procedure(name, fn)``) registers ``fn(args, worker) -> dict``. ``Executor``
is the in-kernel side of the router's ``Procedures`` seam: each procedure runs on a small thread pool of
its own, so a slow or stuck procedure holds only its own threads, never another procedure, a worker's
page or the router, and a call that outlasts its procedure's ``timeout`` is answered with a message.

What a worker reads when a procedure fails: the message of a ``cn.ProcedureError`` it raised ("The model
is not available; try again in a minute."), or a generic apology; the traceback goes to the log
(``crowdnb.procedures``) and to ``run.calls_df``.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, ProcedureError
from .router.calls import Caller

log = logging.getLogger(__name__)

Function = Callable[[dict[str, Any], Caller], dict[str, Any]]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Procedure:
    """A registered procedure: its name, the function, how long a call may take, how many run at once."""

    name: str
    fn: Function
    timeout: float = 10.0
    concurrency: int = 4

    def to_dict(self) -> dict[str, Any]:
        """What is stored with the task (a function is not storable; its name and limits are)."""
        return {"name": self.name, "timeout": self.timeout, "concurrency": self.concurrency}


def procedure(name: str | None, fn: Any, timeout: float = 10.0, concurrency: int = 4) -> Procedure:
    """A checked ``Procedure``; ``ConfigError`` names a bad argument."""
    if not callable(fn):
        raise ConfigError(f"a procedure is a function fn(args, worker) -> dict; got {fn!r}")
    name = name if name is not None else getattr(fn, "__name__", "")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"procedure name {name!r} is not valid; use up to 64 letters, digits, '_', '.' or '-', starting "
            "with a letter or '_' (pages call it by this name: crowd.call(name, args))"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise ConfigError(f"timeout={timeout!r} must be a number of seconds above 0 and at most 600")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or not 1 <= concurrency <= 64:
        raise ConfigError(f"concurrency={concurrency!r} must be a whole number from 1 to 64")
    return Procedure(name, fn, float(timeout), concurrency)


class Executor:
    """Runs a live registry of procedures for the router, each on its own bounded pool (in-kernel)."""

    def __init__(self, registry: Mapping[str, Procedure]) -> None:
        self.registry = registry  # the run's own dict: a procedure registered later is found too
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()
        self._closed = False

    def call(self, name: str, args: dict[str, Any], worker: Caller, call_id: str) -> dict[str, Any]:
        """Run procedure ``name`` for ``worker``; its result, or ``ProcedureError`` (see ``router.calls``)."""
        proc = self.registry.get(name)
        if proc is None:
            known = ", ".join(sorted(self.registry)) or "none"
            raise ProcedureError(
                f"This task cannot answer {name!r} right now.",
                detail=f"a page called procedure {name!r}, which is not registered (registered: {known}); "
                f"register it with run.procedure({name!r}, fn)",
            )
        future = self._pool(proc).submit(_guarded, proc, args, worker)
        try:
            outcome: tuple[dict[str, Any] | None, ProcedureError | None] = future.result(timeout=proc.timeout)
        except FutureTimeout:
            future.cancel()  # still queued behind stuck calls: it never runs
            raise ProcedureError(
                f"The task took too long to answer (more than {proc.timeout:g} s); please try again.",
                timed_out=True,
            ) from None
        result, error = outcome
        if error is not None:
            raise error
        assert result is not None
        return result

    def _pool(self, proc: Procedure) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise ProcedureError("This task has stopped.", detail="the run is no longer served")
            pool = self._pools.get(proc.name)
            if pool is None or pool._max_workers != proc.concurrency:  # re-registered with another limit
                if pool is not None:
                    pool.shutdown(wait=False)
                pool = ThreadPoolExecutor(proc.concurrency, thread_name_prefix=f"crowdnb-procedure-{proc.name}")
                self._pools[proc.name] = pool
            return pool

    def close(self) -> None:
        """Stop taking calls; queued ones are dropped, running ones finish on their own threads."""
        with self._lock:
            self._closed = True
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def _guarded(proc: Procedure, args: dict[str, Any], worker: Caller) -> tuple[Any, ProcedureError | None]:
    """Run the function; what it raised becomes the ``ProcedureError`` the worker reads (no traceback)."""
    try:
        return proc.fn(args, worker), None
    except ProcedureError as exc:
        return None, ProcedureError(exc.message, detail=exc.detail)
    except Exception as exc:
        text = "".join(traceback.format_exception(exc))
        message = f"Something went wrong while the task worked on your request ({proc.name}); please try again."
        return None, ProcedureError(message, detail=text)


def check_registered(names: list[str], registry: Mapping[str, Procedure]) -> None:
    """``ConfigError`` unless every stored procedure name has a function again (after a restart)."""
    missing = [n for n in names if n not in registry]
    if missing:
        calls = "; ".join(f"run.procedure({n!r}, fn)" for n in missing)
        raise ConfigError(f"this task's procedures are functions, which are not stored; register them again: {calls}")
