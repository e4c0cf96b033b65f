"""A requester's decisions: recorded once in the store, then carried out by the provider.

On units (approve, reject, soft-reject, bonus) and on workers (grant, revoke, block, message, bonus). The
store write comes first and is idempotent (a unit already accepted is not accepted again), so a decision
repeated by a double click, a retry or a second reviewer moves money at most once. The facade (``Run``,
``cn.grant`` …) and the router (decisions an operator sends from a notebook) both come here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotFound, StateError
from ..quality.qualifications import apply_qualification, check_grantable
from ..quality.requirements import BLOCKED
from ..store import audit, lifecycle
from ..store import states as S
from . import UnitRef

if TYPE_CHECKING:
    from ..run import Run
    from ..store.db import Store
    from . import Provider

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
    """Refuse a bonus that is not a positive number of dollars in whole cents or has no reason for the worker."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
        raise ConfigError(f"bonus amount {amount!r} must be a positive number of dollars")
    if abs(round(amount * 100) - amount * 100) > 1e-6:  # money is never rounded behind the requester's back
        raise ConfigError(f"bonus amount {amount!r} is not a whole number of cents; give e.g. {round(amount, 2)}")
    if not reason or not reason.strip():
        raise ConfigError("a bonus needs a reason: the worker reads it")


def bonus_key(unit_id: int, key: str) -> str:
    """The audit key (and the platform's idempotency token) of a unit's bonus."""
    return f"bonus:{unit_id}:{key}"


def worker_bonus_key(provider: str, worker: str, key: str) -> str:
    """The audit key (and the platform's idempotency token) of a bonus outside any unit."""
    return f"worker-bonus:{provider}:{worker}:{key}"


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
        token = bonus_key(int(unit["id"]), key if key is not None else f"{amount:.2f}:{reason}")
        if lifecycle.record_bonus(run.store, int(unit["worker_id"]), float(amount), reason, token, actor, unit):
            provider.bonus(
                run.store.worker_name(int(unit["worker_id"])), float(amount), reason, token, _unit_ref(run, unit)
            )
            paid += 1
    return paid


def run_bonus(run: Run, worker: str, amount: float, reason: str, key: str, actor: str = "requester") -> bool:
    """Pay ``worker`` a bonus for their work in ``run``, once per ``key``, booked on their latest unit there
    (so it counts in ``run.spend``, and MTurk gets an assignment to pay it on). False if paid before."""
    check_bonus(amount, reason)
    unit = audit.latest_unit(run.store, run.id, worker)
    if unit is None:
        raise StateError(f"worker {worker!r} submitted nothing in run {run.id}; pay them with cn.bonus instead")
    token = worker_bonus_key(run.provider_name, worker, key)
    if not lifecycle.record_bonus(run.store, int(unit["worker_id"]), float(amount), reason, token, actor, unit):
        return False
    run.provider_client().bonus(worker, float(amount), reason, token, _unit_ref(run, unit))
    return True


def decide(
    run: Run,
    unit_ids: Sequence[int],
    decision: str,
    note: str | None,
    actor: str = "requester",
    pending_only: bool = False,
) -> int:
    """Apply ``decision`` (accepted, rejected, soft_rejected) to units of ``run``; returns how many changed.

    Every unit is checked first, so a batch with one unit that cannot take the decision changes nothing.
    ``pending_only`` (rules): decide only the units still awaiting review, skip the rest, never override.
    """
    units = [_own_unit(run, unit_id) for unit_id in unit_ids]
    for unit in units:
        if unit["status"] != decision and not pending_only:
            S.check_unit(unit["status"], decision)
    provider, changed = run.provider_client(), 0
    for unit in units:
        unit_id = int(unit["id"])
        record = audit.review_pending if pending_only else lifecycle.review
        if not record(run.store, unit_id, decision, actor, note):
            continue
        changed += 1
        ref = _unit_ref(run, unit)
        action = {S.ACCEPTED: provider.approve, S.REJECTED: provider.reject, S.SOFT_REJECTED: provider.soft_reject}[
            decision
        ]
        action(ref, note)
    return changed


def grant(store: Store, platform: Provider, worker: str, name: str, value: int, actor: str) -> int:
    """Give ``worker`` the qualification ``name`` with ``value`` (granting again updates it); returns the value."""
    check_grantable(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"qualification value {value!r} must be a whole number")
    apply_qualification(store, platform, worker, name, value, actor)
    return value


def revoke(store: Store, platform: Provider, worker: str, name: str, actor: str) -> bool:
    """Take the qualification ``name`` away from ``worker``; False if they did not have it."""
    check_grantable(name)
    return apply_qualification(store, platform, worker, name, None, actor)


def block(store: Store, platform: Provider, worker: str, reason: str, actor: str) -> bool:
    """Stop ``worker`` from getting units of any task (and block them on the platform); False if already blocked."""
    if not reason or not reason.strip():
        raise ConfigError("a block needs a reason (it is kept in the audit log)")
    changed = store.set_qualification(platform.name, worker, BLOCKED, 1, actor, note=reason)
    if changed:
        platform.block(worker, reason)
    return changed


def unblock(store: Store, platform: Provider, worker: str, actor: str) -> bool:
    """Lift a block; False if the worker was not blocked."""
    changed = store.set_qualification(platform.name, worker, BLOCKED, None, actor)
    if changed:
        platform.unblock(worker)
    return changed


def message(store: Store, platform: Provider, worker: str, text: str, actor: str) -> None:
    """Send ``worker`` a message through the platform (kept in the audit log)."""
    if not text or not text.strip():
        raise ConfigError("the message is empty")
    store.log_action(platform.name, worker, "message", actor, note=text)
    platform.message(worker, text)


def worker_bonus(
    store: Store, platform: Provider, worker: str, amount: float, reason: str, key: str | None, actor: str
) -> bool:
    """Pay ``worker`` a bonus outside any unit, once per ``key`` (default: worker, amount and reason)."""
    check_bonus(amount, reason)
    worker_id = store.worker(platform.name, worker)
    token = worker_bonus_key(platform.name, worker, key if key is not None else f"{amount:.2f}:{reason}")
    if not lifecycle.record_bonus(store, worker_id, float(amount), reason, token, actor):
        return False
    platform.bonus(worker, float(amount), reason, token)
    return True
