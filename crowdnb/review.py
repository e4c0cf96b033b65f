"""Review decisions on submitted units: recorded once in the store, then carried out by the provider.

The store write comes first and is idempotent (a unit already accepted is not accepted again), so a
decision repeated by a double click, a retry or a second reviewer moves money at most once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import lifecycle
from . import states as S
from .errors import ConfigError, NotFound, StateError
from .providers import UnitRef

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)


def _unit_ref(run: Run, unit: dict[str, Any]) -> UnitRef:
    agent = run.store.get_agent(int(unit["agent_id"]))
    worker = run.store.worker_name(int(unit["worker_id"]))
    return UnitRef(int(unit["id"]), run.id, worker, float(unit["pay_amount"]), json.loads(agent["external"]))


def _own_unit(run: Run, unit_id: int) -> dict[str, Any]:
    unit = run.store.get_unit(unit_id)
    if unit["task_run_id"] != run.id:
        raise NotFound(f"unit {unit_id} is not part of run {run.id}")
    return unit


def check_bonus(amount: object, reason: str) -> None:
    """Refuse a bonus that is not a positive number of dollars or has no reason for the worker."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
        raise ConfigError(f"bonus amount {amount!r} must be a positive number of dollars")
    if not reason or not reason.strip():
        raise ConfigError("a bonus needs a reason: the worker reads it")


def bonus(
    run: Run, unit_ids: Sequence[int], amount: float, reason: str, key: str | None = None, actor: str = "requester"
) -> int:
    """Pay each unit's worker a bonus once per (unit, ``key``); returns how many were paid now.

    ``key`` defaults to the amount and reason, so repeating the same bonus pays it once; pass a new key
    to pay the same worker the same amount again on purpose.
    """
    check_bonus(amount, reason)
    units = [_own_unit(run, unit_id) for unit_id in unit_ids]
    for unit in units:
        if unit["status"] not in S.UNIT_SUBMITTED:
            raise StateError(f"unit {unit['id']} is {unit['status']!r}; only submitted units get a bonus")
    provider, paid = run.provider_client(), 0
    for unit in units:
        token = f"bonus:{unit['id']}:{key if key is not None else f'{amount:.2f}:{reason}'}"
        if lifecycle.record_bonus(run.store, int(unit["worker_id"]), float(amount), reason, token, actor, unit):
            provider.bonus(
                run.store.worker_name(int(unit["worker_id"])), float(amount), reason, token, _unit_ref(run, unit)
            )
            paid += 1
    return paid


def decide(run: Run, unit_ids: Sequence[int], decision: str, note: str | None, actor: str = "requester") -> int:
    """Apply ``decision`` (accepted, rejected, soft_rejected) to units of ``run``; returns how many changed.

    Every unit is checked first, so a batch with one unit that cannot take the decision changes nothing.
    """
    units = [_own_unit(run, unit_id) for unit_id in unit_ids]
    for unit in units:
        if unit["status"] != decision:
            S.check_unit(unit["status"], decision)
    provider, changed = run.provider_client(), 0
    for unit in units:
        unit_id = int(unit["id"])
        if not lifecycle.review(run.store, unit_id, decision, actor, note):
            continue
        changed += 1
        ref = _unit_ref(run, unit)
        action = {S.ACCEPTED: provider.approve, S.REJECTED: provider.reject, S.SOFT_REJECTED: provider.soft_reject}[
            decision
        ]
        action(ref, note)
    return changed
