"""Review decisions, money, qualifications and blocks on MTurk: each recorded as an intent before it is
sent, sent again until MTurk confirms it, and never carried out twice.

crowdnb writes a decision to its store first and then asks the provider once; if MTurk is down, the
intent stays here in state ``requested`` (``provider_objects`` kinds ``review``, ``bonus``,
``qualification``, ``block``; a later intent for the same unit, worker or qualification replaces it) and
``settle`` sends it again — at every sync of a served run, when a run resumes, before the next review
call, and from ``crowdnb mturk cleanup``. Sending again is safe:

- approve / reject read the assignment's status first (GetAssignment) and do nothing when MTurk already
  has the decision; approving a rejected assignment sets ``OverrideRejection``;
- a bonus carries a ``UniqueRequestToken`` derived from crowdnb's bonus key, so MTurk pays it once; the
  token lasts 24 hours, so past 23 hours from the first attempt ListBonusPayments is read first. MTurk
  refuses a token it already paid with no error code and no fixed wording, so after any refusal of
  ``SendBonus`` ListBonusPayments of the assignment decides: the bonus is paid when MTurk lists more
  payments of its worker, amount and reason than crowdnb recorded as paid under other keys.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from . import objects
from .mturk_api import MTurkAPI, request_token, short
from .retry import retried

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

TOKEN_SAFE_FOR = 23 * 3600  # seconds: MTurk remembers a UniqueRequestToken for 24 hours
# what is owed, by provider_objects kind → the method sending one
SENDERS = {
    "review": "_send_decision",
    "bonus": "_send_bonus",
    "qualification": "_send_qualification",
    "block": "_send_block",
}


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

        try:
            retried(once, base_delay=self.api.retry_delay)
        except ProviderError as exc:
            # another crowdnb process may have sent the same decision a moment before: MTurk then has it
            wanted = "Approved" if action == "approve" else "Rejected"
            if exc.transient or exc.call == "GetAssignment" or self._status(obj.unit_id, assignment) != wanted:
                raise
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
        if age > TOKEN_SAFE_FOR and self._in_ledger(obj):
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
            # MTurk refuses a token it already paid (the first answer lost, or another process sent it) with
            # no error code and no wording to rely on: only its ledger tells that refusal from a real one
            if exc.transient or not self._in_ledger(obj, refused=exc):
                raise
            log.info("bonus $%s to %s: MTurk's ledger shows it paid", d["amount"], short(d["worker"]))
        objects.set_state(self.store, self.provider, "bonus", obj.key, "paid")
        log.info("bonus $%s paid to %s", d["amount"], short(d["worker"]))

    def _in_ledger(self, obj: objects.RemoteObject, refused: ProviderError | None = None) -> bool:
        """Whether MTurk's ListBonusPayments shows this bonus: more payments of its amount and reason to its
        worker on its assignment than crowdnb recorded as paid under other keys."""
        d = obj.data
        try:
            payments = self.api.pages("ListBonusPayments", "BonusPayments", AssignmentId=d["assignment"])
        except ProviderError as exc:
            if refused is None or exc.transient:
                raise
            raise refused from exc  # the assignment cannot be read either: the refusal is the news

        wanted = _payment(d["worker"], d["amount"], d["reason"])
        listed = sum(_payment(p.get("WorkerId"), p.get("BonusAmount"), p.get("Reason")) == wanted for p in payments)
        known = sum(
            o.key != obj.key
            and o.data.get("assignment") == d["assignment"]
            and _payment(o.data.get("worker"), o.data.get("amount"), o.data.get("reason")) == wanted
            for o in objects.listed(self.store, self.provider, "bonus", state="paid")
        )
        return listed > known

    # --- qualifications and blocks ------------------------------------------------------------
    def qualify(self, worker: str, name: str, value: int | None) -> None:
        """Record and send a qualification value for the worker (None: take it away)."""
        key = f"qualification:{name}:{worker}"
        objects.remember(
            self.store, self.provider, "qualification", key, worker, state="requested", name=name, value=value
        )
        self.settle(current=key)

    def _send_qualification(self, obj: objects.RemoteObject) -> None:
        worker, name, value = obj.remote_id, obj.data["name"], obj.data["value"]
        type_id = self.qualification_type(name)
        if value is None:
            self.api.call(
                "DisassociateQualificationFromWorker",
                safe=True,
                QualificationTypeId=type_id,
                WorkerId=worker,
                Reason="Revoked by the requester",
            )
        else:
            self.api.call(
                "AssociateQualificationWithWorker",
                safe=True,
                QualificationTypeId=type_id,
                WorkerId=worker,
                IntegerValue=int(value),
                SendNotification=False,
            )
        objects.set_state(self.store, self.provider, "qualification", obj.key, "done")

    def block(self, worker: str, reason: str | None) -> None:
        """Record and send a worker block (``reason``) or its lifting (None)."""
        key = f"block:{worker}"
        objects.remember(self.store, self.provider, "block", key, worker, state="requested", reason=reason)
        self.settle(current=key)

    def _send_block(self, obj: objects.RemoteObject) -> None:
        reason = obj.data["reason"]
        if reason is None:
            self.api.call("DeleteWorkerBlock", safe=True, WorkerId=obj.remote_id, Reason="Unblocked by the requester")
        else:
            self.api.call("CreateWorkerBlock", safe=True, WorkerId=obj.remote_id, Reason=reason[:1024])
        objects.set_state(self.store, self.provider, "block", obj.key, "done")

    def qualification_type(self, name: str) -> str:
        """The MTurk qualification type called ``name``: remembered, found on MTurk, or created."""
        known = objects.recall(self.store, self.provider, "qualification_type", name)
        if known is not None:
            return known.remote_id

        def find_or_create() -> str:  # finding first makes a retried creation safe
            found = self.api.pages(
                "ListQualificationTypes",
                "QualificationTypes",
                Query=name,
                MustBeRequestable=False,
                MustBeOwnedByCaller=True,
            )
            for qual in found:
                if qual["Name"] == name:
                    return str(qual["QualificationTypeId"])
            description = self.store.scalar("SELECT description FROM qualifications WHERE name = ?", (name,))
            created = self.api.call(
                "CreateQualificationType",
                Name=name,
                Description=description or f"Granted by the requester through crowdnb ({name})",
                QualificationTypeStatus="Active",
            )
            return str(created["QualificationType"]["QualificationTypeId"])

        type_id = retried(find_or_create, base_delay=self.api.retry_delay)
        objects.remember(self.store, self.provider, "qualification_type", name, type_id)
        return type_id

    # --- sending what is owed ------------------------------------------------------------------
    def pending(self) -> list[objects.RemoteObject]:
        """Decisions, bonuses, qualifications and blocks recorded but not yet confirmed by MTurk."""
        found = [o for kind in SENDERS for o in objects.listed(self.store, self.provider, kind, state="requested")]
        return sorted(found, key=lambda o: (o.kind, o.key))

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
                    getattr(self, SENDERS[obj.kind])(obj)
                except ProviderError as exc:
                    if exc.transient:
                        raise ProviderError(
                            "MTurk",
                            exc.call,
                            f"{exc.message} — recorded in crowdnb; {len(self.pending())} call(s) wait and are "
                            "sent again at the next sync, on resume, or by `crowdnb mturk cleanup`",
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


def _payment(worker: object, dollars: object, reason: object) -> tuple[str, int, str]:
    """A bonus as MTurk's ledger and crowdnb's intents can both be compared by: worker, cents, reason."""
    try:
        cents = int(Decimal(str(dollars)) * 100)
    except InvalidOperation:
        cents = -1
    return str(worker), cents, str(reason)
