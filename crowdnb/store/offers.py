"""What a worker can be offered next: the checks ``lifecycle.reserve`` makes before it gives a unit (the run
is running, the worker's quota, a unit of an item they have not done), and the same checks read only,
for the page of a worker who just submitted (open their next unit, or thank them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import WorkerRefused
from . import states as S
from .db import Store


@dataclass(frozen=True)
class Quota:
    """The per-worker limits checked while reserving a unit."""

    allowed_concurrent: int = 0  # live units of this run at once; 0 = unlimited
    maximum_units_per_worker: int = 0  # units of this task, all runs; 0 = unlimited


def next_refusal(store: Store, run_id: int, worker_id: int, quota: Quota) -> WorkerRefused | None:
    """Why ``reserve`` would give the worker no unit now (None: it would give one). Reads only: a hint for
    the page of a worker who just submitted (load their next unit, or thank them); ``reserve`` decides."""

    def one(sql: str, params: tuple[Any, ...]) -> Any:
        rows = store.query(sql, params)
        return rows[0] if rows else None

    if one(LIVE_AGENT, (run_id, worker_id)) is not None:
        return None  # they hold another unit: that one is theirs next
    try:
        offer(one, run_id, worker_id, quota)
    except WorkerRefused as exc:
        return exc
    return None


LIVE_AGENT = (
    f"SELECT * FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN {S.sql_in(S.AGENT_LIVE)} "
    "ORDER BY id LIMIT 1"
)


def offer(one: Callable[[str, tuple[Any, ...]], Any], run_id: int, worker_id: int, quota: Quota) -> tuple[Any, Any]:
    """The run and the unit a worker without a live unit would get; ``WorkerRefused`` saying why not.
    ``one(sql, params)`` is the first row of a query (or None), in the caller's transaction."""
    run = one("SELECT status, task_id FROM task_runs WHERE id = ?", (run_id,))
    if run is None or run["status"] != "running":
        raise WorkerRefused("finished", "This task is finished. Thank you for your interest!")
    if quota.maximum_units_per_worker:
        done = one(
            "SELECT count(*) AS n FROM units WHERE task_id = ? AND worker_id = ? "
            f"AND status IN {S.sql_in(S.UNIT_TAKEN)}",
            (run["task_id"], worker_id),
        )["n"]
        if done >= quota.maximum_units_per_worker:
            raise WorkerRefused(
                "max_reached",
                f"You have done the maximum of {quota.maximum_units_per_worker} "
                f"unit{'s' if quota.maximum_units_per_worker != 1 else ''} of this task. Thank you!",
            )
    unit = one(
        f"SELECT u.* FROM units u WHERE u.task_run_id = ? AND u.status = {S.sql(S.LAUNCHED)} AND u.unit_index >= 0 "
        "AND NOT EXISTS (SELECT 1 FROM agents a WHERE a.assignment_id = u.assignment_id "
        f"AND a.worker_id = ? AND a.status NOT IN {S.sql_in(S.AGENT_RELEASED)}) "
        "ORDER BY u.id LIMIT 1",
        (run_id, worker_id),
    )
    if unit is None:
        raise WorkerRefused("no_work", "There is no work left for you in this task right now. Thank you!")
    # allowed_concurrent is checked after a unit is found so "no work" wins over "too many"
    if quota.allowed_concurrent:
        held = one(
            f"SELECT count(*) AS n FROM agents WHERE task_run_id = ? AND worker_id = ? AND status IN {S.sql_in(S.AGENT_LIVE)}",
            (run_id, worker_id),
        )["n"]
        if held >= quota.allowed_concurrent:
            raise WorkerRefused("too_many", "You have too many units of this task open at once; finish one first.")
    return run, unit
