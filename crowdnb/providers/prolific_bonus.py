"""Prolific bonuses, paid at most once although Prolific's pay call is not idempotent.

A bonus takes two calls: ``POST submissions/bonus-payments/`` sets it up (no money moves) and
``POST bulk-bonus-payments/{id}/pay/`` pays it; the docs warn that every pay call pays again. So each
bonus is a ``provider_objects`` row (kind ``bonus``, key = crowdnb's bonus token) walked through states,
each written before the call that follows it::

    intent ──set-up──▶ set_up ──claim──▶ paying ──answer──▶ paid
                                            └─ no answer: look at the submission's bonus_payments ─▶ paid
                                               (still not there after ``confirm_seconds``: unconfirmed)

* ``intent`` → ``set_up``: the set-up is retried freely; a set-up whose answer was lost is never paid,
  because crowdnb never learns its id.
* ``set_up`` → ``paying`` is a compare-and-set in SQLite, so of two threads or processes only one sends
  the pay call, and a crash after it leaves ``paying``, never ``set_up``.
* a pay call Prolific answers 429 (its wallet busy: refused before processing, nothing paid) goes back to
  ``set_up`` and is sent again after a backoff that honours ``Retry-After``, up to ``ATTEMPTS`` times; then
  (or when Prolific asks to wait longer than ``retry.MAX_DELAY``) a later sync sends it, not before the
  time Prolific named.
* ``paying`` is only resolved by reading the submission (``GET submissions/{id}/``: ``bonus_payments``,
  in cents): a payment that appeared since the snapshot taken just before paying means paid. A bonus
  is never paid while another bonus of the same submission is ``paying``, so the snapshot is exact.
* ``unconfirmed`` is never paid again automatically: a person checks the study on Prolific (payments are
  asynchronous, "in the following minutes", so the window defaults to an hour).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from . import objects
from .prolific_api import PLATFORM, ProlificAPI, Unreached
from .retry import MAX_DELAY, backoff, retried

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

NAME = "prolific"
KIND = "bonus"
OPEN = ("intent", "set_up", "paying")
ATTEMPTS = 4  # pay calls refused with 429 in a row before the bonus waits for a later sync


def decimal(cents: int) -> str:
    """``1234`` → ``"12.34"``: Prolific's set-up takes the amount in the study currency, not in cents."""
    return f"{cents // 100}.{cents % 100:02d}"


class BonusLedger:
    """Bonuses of one project on Prolific: recorded, set up, paid and confirmed."""

    def __init__(
        self,
        store: Store,
        api: ProlificAPI,
        confirm_seconds: float = 3600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store, self.api, self.confirm_seconds, self.sleep = store, api, confirm_seconds, sleep

    def give(self, token: str, cents: int, session: str, study: str, run_id: int | None, unit_id: int | None) -> str:
        """Pay ``cents`` on submission ``session`` once per ``token``; returns the bonus's final state."""
        objects.remember(
            self.store,
            NAME,
            KIND,
            token,
            "",
            task_run_id=run_id,
            unit_id=unit_id,
            state="intent",
            replace=False,
            cents=cents,
            session=session,
            study=study,
        )  # fmt: skip  (a bonus already recorded under this token keeps its state: it is never set up again)
        return self.settle(token)

    def settle(self, token: str) -> str:
        """Drive one bonus as far as it can go now; returns its state."""
        busy = 0  # pay calls Prolific refused with 429 (before processing them) so far
        while True:
            found = objects.recall(self.store, NAME, KIND, token)
            if found is None:
                raise KeyError(f"no Prolific bonus {token!r}")
            if found.state == "intent":
                self._set_up(found)
            elif found.state == "set_up":
                try:
                    if not self._pay(found):
                        return "set_up"
                except ProviderError as exc:
                    if exc.status != 429:
                        raise
                    busy += 1
                    if busy >= ATTEMPTS or (exc.retry_after or 0.0) > MAX_DELAY:
                        raise ProviderError(
                            PLATFORM, exc.call, f"{exc.message}; Prolific refused the pay call before processing "
                            "it, so nothing was paid: the bonus stays set up and is paid at a later sync",
                            transient=True, status=exc.status, retry_after=exc.retry_after,
                        ) from exc  # fmt: skip
                    self.sleep(backoff(busy, exc=exc))
            elif found.state == "paying":
                return self._confirm(found)
            else:
                return found.state

    def settle_all(self) -> dict[str, int]:
        """Finish every bonus a failure or a crash left half-done; a count of bonuses by state."""
        for item in objects.listed(self.store, NAME, KIND):
            if item.state in OPEN:
                try:
                    self.settle(item.key)
                except ProviderError as exc:
                    log.warning("a Prolific bonus is still %s: %s", item.state, exc)
        counts: dict[str, int] = {}
        for item in objects.listed(self.store, NAME, KIND):
            counts[item.state] = counts.get(item.state, 0) + 1
        return counts

    # --- the steps --------------------------------------------------------------------------
    def _set_up(self, item: objects.RemoteObject) -> None:
        data = item.data
        body = {"study_id": data["study"], "csv_bonuses": f"{data['session']},{decimal(int(data['cents']))}"}
        # retried freely: a set-up whose answer is lost is never paid (crowdnb never learns its id)
        reply = retried(lambda: self.api.post("submissions/bonus-payments/", body))
        # only the first of two concurrent set-ups is kept; the other is never paid
        objects.claim(
            self.store, NAME, KIND, item.key, "intent", "set_up", remote_id=str(reply["id"]), fees=reply.get("fees")
        )

    def _pay(self, item: objects.RemoteObject) -> bool:
        """Send the pay call once; False when it must wait (another bonus of the submission is in flight)."""
        session = item.data["session"]
        busy = [o for o in objects.listed(self.store, NAME, KIND, state="paying") if o.data["session"] == session]
        if busy:
            return False
        if time.time() < float(item.data.get("retry_at") or 0):
            return False  # Prolific asked to wait (Retry-After)
        before = self._paid_on(session)
        if not objects.claim(self.store, NAME, KIND, item.key, "set_up", "paying", before=before, since=time.time()):
            return False  # someone else claimed it: they send the one pay call
        call = f"bulk-bonus-payments/{item.remote_id}/pay/"
        try:
            self.api.post(call)  # never retried blindly: every call Prolific processes pays again
        except ProviderError as exc:
            if isinstance(exc, Unreached) or not exc.transient or exc.status == 429:
                # never sent, refused, or refused before processing (429): nothing was paid, so it may be
                # paid later — after the wait Prolific asked for
                retry_at = time.time() + (exc.retry_after or 0.0)
                objects.set_state(self.store, NAME, KIND, item.key, "set_up", error=exc.message, retry_at=retry_at)
                raise
            raise ProviderError(
                PLATFORM,
                exc.call,
                f"{exc.message}; Prolific may or may not have paid the bonus. crowdnb will not send the pay call "
                "again: it checks the submission's bonus payments (run.provider_client().settle_bonuses())",
                status=exc.status,
            ) from exc
        objects.set_state(self.store, NAME, KIND, item.key, "paid", paid_at=time.time())
        log.info("Prolific bonus of %s paid", decimal(int(item.data["cents"])))
        return True

    def _confirm(self, item: objects.RemoteObject) -> str:
        """A pay call without an answer: paid if the submission shows a payment made since the snapshot."""
        cents = int(item.data["cents"])
        now = self._paid_on(item.data["session"])
        if _count(now, cents) > _count(item.data.get("before", []), cents):
            objects.set_state(self.store, NAME, KIND, item.key, "paid", paid_at=time.time(), confirmed=True)
            return "paid"
        if time.time() - float(item.data.get("since", 0)) > self.confirm_seconds:
            objects.set_state(self.store, NAME, KIND, item.key, "unconfirmed")
            log.warning(
                "a Prolific bonus of %s sent to study %s is not shown as paid after %.0f s; crowdnb will not pay "
                "it again: check the study's bonus payments on Prolific",
                decimal(cents),
                item.data["study"],
                self.confirm_seconds,
            )
            return "unconfirmed"
        return "paying"

    def _paid_on(self, session: str) -> list[Any]:
        reply = retried(lambda: self.api.get(f"submissions/{session}/"))
        return list(reply.get("bonus_payments") or [])


def _count(payments: list[Any], cents: int) -> int:
    return sum(1 for p in payments if round(float(p)) == cents)
