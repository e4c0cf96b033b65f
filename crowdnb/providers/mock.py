"""The mock provider: workers identify themselves with ``?worker_id=NAME``; nothing leaves the machine.

Every call a real platform would receive is recorded in the project's ``provider_calls`` table, so
tests and dry runs can check exactly what would have been paid, messaged or blocked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..errors import ConfigError
from . import Completion, Identity, Report, RunInfo, UnitRef
from .meter import Meter

if TYPE_CHECKING:
    from ..store.db import Store


class MockProvider:
    """A local crowd: the worker id comes from the URL; payments are recorded, never made."""

    name = "mock"
    fee_rate = 0.0
    poll_seconds = 0.0  # mock workers never return a unit behind crowdnb's back

    def __init__(self, store: Store, **options: object) -> None:
        if options:
            raise ConfigError(f"the mock provider takes no options; got {', '.join(sorted(options))}")
        self.store = store
        self.meter = Meter()  # the calls a platform would have received, for the run's metrics

    def _record(self, call: str, key: str | None = None, **fields: object) -> bool:
        with self.meter.timed(self.name, call):
            return self.store.record_provider_call(self.name, call, idempotency_key=key, **fields)

    def identify(self, params: Mapping[str, str]) -> Identity | None:
        """``worker_id`` names the worker; without it the page is a preview."""
        worker = (params.get("worker_id") or "").strip()
        if not worker:
            return None
        if len(worker) > 128:
            raise ConfigError("worker_id is longer than 128 characters")
        external = {"assignment_id": params["assignment_id"]} if params.get("assignment_id") else {}
        return Identity(worker=worker, external=external)

    def worker_url(self, base_url: str, worker: str) -> str:
        """``base_url?worker_id=worker``."""
        return f"{base_url}?{urlencode({'worker_id': worker})}"

    def setup_run(self, run: RunInfo) -> None:
        """Record the run set-up."""
        self._record(
            "setup_run",
            task_run_id=run.id,
            title=run.title,
            reward=run.reward,
            url=run.url,
            requirements=[r.to_dict() for r in run.requirements],
        )

    def publish(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Record how many units went on offer."""
        self._record("publish", task_run_id=run.id, units=len(unit_ids))

    def completion(self, run: RunInfo, external: Mapping[str, str]) -> Completion:
        """Mock workers read that their answers are saved, then get their next unit (or "no work left")."""
        return Completion("next")

    def sync(self, run: RunInfo) -> Sequence[Report]:
        """Nothing happens on a mock platform that crowdnb does not see."""
        return []

    def expire(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Record how many units were withdrawn."""
        self._record("expire", task_run_id=run.id, units=len(unit_ids))

    def cleanup_run(self, run: RunInfo) -> None:
        """Record the clean-up."""
        self._record("cleanup_run", task_run_id=run.id)

    def approve(self, unit: UnitRef, note: str | None) -> None:
        """Record a payment of the unit's reward (once per unit)."""
        self._record(
            "approve", f"approve:{unit.id}", task_run_id=unit.run_id, unit_id=unit.id, amount=unit.amount, note=note
        )

    def reject(self, unit: UnitRef, note: str | None) -> None:
        """Record a rejection."""
        self._record("reject", f"reject:{unit.id}", task_run_id=unit.run_id, unit_id=unit.id, note=note)

    def soft_reject(self, unit: UnitRef, note: str | None) -> None:
        """Record a payment for work that will not be used (once per unit)."""
        self._record(
            "soft_reject", f"approve:{unit.id}", task_run_id=unit.run_id, unit_id=unit.id, amount=unit.amount, note=note
        )

    def bonus(self, worker: str, amount: float, reason: str, token: str, unit: UnitRef | None = None) -> None:
        """Record a bonus payment (once per token)."""
        self._record(
            "bonus", f"bonus:{token}", worker=worker, amount=amount, reason=reason, unit_id=unit.id if unit else None
        )

    def message(self, worker: str, text: str) -> None:
        """Record a message."""
        self._record("message", worker=worker, text=text)

    def block(self, worker: str, reason: str) -> None:
        """Record a block."""
        self._record("block", worker=worker, reason=reason)

    def unblock(self, worker: str) -> None:
        """Record an unblock."""
        self._record("unblock", worker=worker)

    def grant_qualification(self, worker: str, name: str, value: int) -> None:
        """Record a qualification push-down."""
        self._record("grant_qualification", worker=worker, qualification=name, value=value)

    def revoke_qualification(self, worker: str, name: str) -> None:
        """Record a qualification removal."""
        self._record("revoke_qualification", worker=worker, qualification=name)
