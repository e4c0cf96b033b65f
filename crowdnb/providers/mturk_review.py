"""Review decisions and money on MTurk: each recorded as an intent before it is sent, sent again until
MTurk confirms it, and never carried out twice.

crowdnb writes a decision to its store first and then asks the provider once; if MTurk is down, the
intent stays here in state ``requested`` (``provider_objects`` kinds ``review`` and ``bonus``) and
``settle`` sends it again — at every sync of a served run, when a run resumes, before the next review
call, and from ``crowdnb mturk cleanup``. Sending again is safe:

- approve / reject read the assignment's status first (GetAssignment) and do nothing when MTurk already
  has the decision; approving a rejected assignment sets ``OverrideRejection``;
- a bonus carries a ``UniqueRequestToken`` derived from crowdnb's bonus key, so MTurk pays it once; the
  token lasts 24 hours, so past 23 hours from the first attempt ListBonusPayments is read first.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from . import objects
from .mturk_api import MTurkAPI, request_token, short, turk_code
from .retry import retried

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

TOKEN_SAFE_FOR = 23 * 3600  # seconds: MTurk remembers a UniqueRequestToken for 24 hours


class Review:
    """The decisions and payments of one MTurk account (live or sandbox) for one project."""

    def __init__(self, api: MTurkAPI, store: Store, provider: str, tag: Callable[[], str]) -> None:
        self.api, self.store, self.provider, self.tag = api, store, provider, tag
        self._lock = threading.Lock()  # the monitor's sync and a reviewer may settle at once

    # --- decisions -----------------------------------------------------------------------------
    def decide(self, unit_id: int, assignment: str, action: str, note: str | None) -> None:
        """Record and send "approve" or "reject" for a unit's assignment."""
        objects.remember(
            self.store,
            self.provider,
            "review",
            f"unit:{unit_id}",
            assignment,
            unit_id=unit_id,
            state="requested",
            action=action,
            note=note,
        )
        self.settle(current=f"unit:{unit_id}")

    def _send_decision(self, obj: objects.RemoteObject) -> None:
        assignment, action, note = obj.remote_id, obj.data["action"], obj.data.get("note")

        def once() -> None:  # status first: a retry after a lost answer finds the decision made
            status = self._status(obj.unit_id, assignment)
            if action == "approve" and status != "Approved":
                params: dict[str, Any] = {"AssignmentId": assignment, "OverrideRejection": status == "Rejected"}
                if note:
                    params["RequesterFeedback"] = note[:1024]
                self.api.call("ApproveAssignment", **params)
            elif action == "reject" and status == "Approved":
                raise ProviderError(
                    "MTurk", "RejectAssignment", f"the assignment of unit {obj.unit_id} is already approved on MTurk "
                    "(by you, or by itself after the auto-approval delay); MTurk cannot reject it any more",
                )  # fmt: skip
            elif action == "reject" and status != "Rejected":
                feedback = (note or "Your work did not follow the task's instructions.")[:1024]
                self.api.call("RejectAssignment", AssignmentId=assignment, RequesterFeedback=feedback)

        retried(once, base_delay=self.api.retry_delay)
        objects.set_state(self.store, self.provider, "review", obj.key, "done")

    def _status(self, unit_id: int | None, assignment: str) -> str:
        try:
            found = self.api.call("GetAssignment", AssignmentId=assignment)["Assignment"]
        except ProviderError as exc:
            if exc.transient:
                raise
            raise ProviderError(
                "MTurk", exc.call, f"MTurk has no submitted assignment for unit {unit_id} ({exc.message}): the "
                "worker's page never posted it back, so MTurk will not pay it; pay the worker another way",
            ) from exc  # fmt: skip
        return str(found["AssignmentStatus"])

    # --- money ---------------------------------------------------------------------------------
    def bonus(self, worker: str, amount: float, reason: str, token: str, assignment: str) -> None:
        """Record and pay a bonus once per ``token``."""
        key = f"bonus:{token}"
        known = objects.recall(self.store, self.provider, "bonus", key)
        if known is not None:
            if known.state == "requested":
                self.settle()
            return
        objects.remember(
            self.store,
            self.provider,
            "bonus",
            key,
            request_token(self.tag(), key),
            state="requested",
            worker=worker,
            amount=f"{amount:.2f}",
            reason=reason,
            assignment=assignment,
            since=datetime.now(UTC).isoformat(),
        )
        self.settle(current=key)

    def _send_bonus(self, obj: objects.RemoteObject) -> None:
        d = obj.data
        age = (datetime.now(UTC) - datetime.fromisoformat(d["since"])).total_seconds()
        if age > TOKEN_SAFE_FOR and self._paid_before(d["assignment"], d["amount"], d["reason"]):
            objects.set_state(self.store, self.provider, "bonus", obj.key, "paid")
            return
        try:
            self.api.call(
                "SendBonus",
                safe=True,
                WorkerId=d["worker"],
                BonusAmount=d["amount"],
                AssignmentId=d["assignment"],
                Reason=d["reason"],
                UniqueRequestToken=obj.remote_id,
            )
        except ProviderError as exc:
            # the same token again: MTurk paid it the first time (its answer was lost)
            if not (turk_code(exc).endswith("AlreadyExists") or "already exists" in exc.message):
                raise
        objects.set_state(self.store, self.provider, "bonus", obj.key, "paid")
        log.info("bonus $%s paid to %s", d["amount"], short(d["worker"]))

    def _paid_before(self, assignment: str, dollars: str, reason: str) -> bool:
        payments = self.api.pages("ListBonusPayments", "BonusPayments", AssignmentId=assignment)
        return any(p["BonusAmount"] == dollars and p["Reason"] == reason for p in payments)

    # --- sending what is owed ------------------------------------------------------------------
    def pending(self) -> list[objects.RemoteObject]:
        """Decisions and bonuses recorded but not yet confirmed by MTurk, oldest first."""
        found = [
            *objects.listed(self.store, self.provider, "review", state="requested"),
            *objects.listed(self.store, self.provider, "bonus", state="requested"),
        ]
        return sorted(found, key=lambda o: o.key)

    def settle(self, current: str | None = None) -> int:
        """Send every pending decision and bonus; returns how many went through.

        A refusal (not transient) marks that intent failed and is raised only for ``current`` (the key
        just recorded), so one bad assignment never blocks the others; a transient failure stops here and
        is raised, everything left pending.
        """
        done, refused = 0, None
        with self._lock:
            for obj in self.pending():
                try:
                    (self._send_decision if obj.kind == "review" else self._send_bonus)(obj)
                except ProviderError as exc:
                    if exc.transient:
                        raise ProviderError(
                            "MTurk",
                            exc.call,
                            f"{exc.message} — recorded in crowdnb; {len(self.pending())} decision(s)/bonus(es) "
                            "wait and are sent again at the next sync, on resume, or by `crowdnb mturk cleanup`",
                            transient=True,
                            status=exc.status,
                        ) from exc
                    objects.set_state(self.store, self.provider, obj.kind, obj.key, "failed", error=exc.message)
                    log.warning("MTurk refused %s %s: %s", obj.kind, obj.key, exc.message)
                    refused = exc if obj.key == current else refused
                    continue
                done += 1
        if refused is not None:
            raise refused
        return done
