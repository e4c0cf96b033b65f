"""Review decisions on submitted units: recorded once in the store, then carried out by the provider.

The store write comes first and is idempotent (a unit already accepted is not accepted again), so a
decision repeated by a double click, a retry or a second reviewer moves money at most once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import lifecycle, providers
from . import states as S
from .providers import UnitRef

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)


def decide(run: Run, unit_ids: Sequence[int], decision: str, note: str | None, actor: str = "requester") -> int:
    """Apply ``decision`` (accepted, rejected, soft_rejected) to units of ``run``; returns how many changed."""
    provider = run._service.provider if run._service else providers.create(run.config["provider"]["name"], run.store)
    changed = 0
    for unit_id in unit_ids:
        unit = run.store.get_unit(unit_id)
        if unit["task_run_id"] != run.id:
            from .errors import NotFound

            raise NotFound(f"unit {unit_id} is not part of run {run.id}")
        if not lifecycle.review(run.store, unit_id, decision, actor, note):
            continue
        changed += 1
        agent = run.store.get_agent(int(unit["agent_id"]))
        worker = run.store.worker_name(int(unit["worker_id"]))
        ref = UnitRef(unit_id, run.id, worker, float(unit["pay_amount"]), json.loads(agent["external"]))
        action = {S.ACCEPTED: provider.approve, S.REJECTED: provider.reject, S.SOFT_REJECTED: provider.soft_reject}[
            decision
        ]
        action(ref, note)
    return changed
