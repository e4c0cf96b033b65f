"""The HITs of a run: one per launched unit, created once, re-offered on resume, withdrawn, disposed.

HITs are fungible: a worker who accepts any HIT of the run gets the unit crowdnb dispatches, and their
agent keeps that HIT's ``hitId`` and ``assignmentId``. What must hold is a count: every launched unit
has one Assignable HIT. Each HIT is remembered in ``provider_objects`` under ``unit:<id>`` (a later
offer for the same unit ``unit:<id>#2`` …) in state ``creating`` *before* CreateHIT is sent, with a
``UniqueRequestToken`` derived from that key, so a retry or a restart gets the same HIT back (MTurk
answers ``HitAlreadyExists`` for 24 hours), never a second one; unfinished ones are retried at every
sync and at resume. States: creating → active → expired → disposed, or pending when MTurk will not
delete it yet (a submission awaiting review, a worker still on it). The RequesterAnnotation
``crowdnb:<project tag>:run:<id>:<key>`` lets a clean-up find HITs even a crash forgot.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError
from ..store import states as S
from . import Report, RunInfo, objects
from .mturk_api import MTurkAPI, external_question, request_token, short, turk_code

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

PAST = datetime(2015, 1, 1, tzinfo=UTC)  # UpdateExpirationForHIT to a past time expires a HIT at once
_HIT_ID = re.compile(r"\b([A-Z0-9]{30})\b")


@dataclass(frozen=True)
class HitSettings:
    """How HITs are made: lifetime on offer and frame height of the ExternalQuestion."""

    lifetime: int
    frame_height: int


class Hits:
    """The HITs crowdnb made on one MTurk account (live or sandbox) for one project."""

    def __init__(self, api: MTurkAPI, store: Store, provider: str, settings: HitSettings) -> None:
        self.api, self.store, self.provider, self.settings = api, store, provider, settings

    # --- making them ---------------------------------------------------------------------------
    def tag(self) -> str:
        """This project's tag in RequesterAnnotations (made once, kept in the project)."""
        found = objects.recall(self.store, self.provider, "project", "tag")
        if found is None:  # two threads at once keep the first one's tag
            objects.remember(self.store, self.provider, "project", "tag", uuid.uuid4().hex[:12], replace=False)
            found = objects.recall(self.store, self.provider, "project", "tag")
        assert found is not None
        return found.remote_id

    def publish(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """One HIT per unit (nothing new for a unit whose HIT was already made)."""
        hit_type = self._hit_type(run.id)
        for unit_id in unit_ids:  # every intent first: if MTurk fails midway, the next sync makes the rest
            objects.remember(self.store, self.provider, "hit", f"unit:{unit_id}", "", task_run_id=run.id,
                             unit_id=unit_id, state="creating", replace=False)  # fmt: skip
        for unit_id in unit_ids:
            self._create(run, hit_type, f"unit:{unit_id}", unit_id)

    def finish_creating(self, run: RunInfo) -> int:
        """Send again every CreateHIT whose answer never came (same token: same HIT); returns the count."""
        pending = objects.listed(self.store, self.provider, "hit", task_run_id=run.id, state="creating")
        if pending:
            hit_type = self._hit_type(run.id)
            for obj in pending:
                self._create(run, hit_type, obj.key, obj.unit_id)
        return len(pending)

    def top_up(self, run: RunInfo) -> int:
        """Make sure every launched unit has an Assignable HIT (a resumed run); returns how many were made."""
        self.finish_creating(run)
        launched = [
            r["id"]
            for r in self.store.query(
                f"SELECT id FROM units WHERE task_run_id = ? AND status = {S.sql(S.LAUNCHED)} ORDER BY id", (run.id,)
            )
        ]
        if not launched:
            return 0
        active = objects.listed(self.store, self.provider, "hit", task_run_id=run.id, state="active")
        open_ = 0
        for obj in active:
            hit = self.api.call("GetHIT", safe=True, HITId=obj.remote_id)["HIT"]
            if obj.data.get("url") != run.url:  # the run came back on another address: that HIT leads nowhere
                self.api.call("UpdateExpirationForHIT", safe=True, HITId=obj.remote_id, ExpireAt=PAST)
                objects.set_state(self.store, self.provider, "hit", obj.key, "expired")
            elif hit["HITStatus"] == "Assignable":
                open_ += 1
        missing = len(launched) - open_
        if missing <= 0:
            return 0
        keys = {o.key for o in objects.listed(self.store, self.provider, "hit", task_run_id=run.id)}
        hit_type = self._hit_type(run.id)
        for unit_id in launched[:missing]:
            key, n = f"unit:{unit_id}", 1
            while key in keys:
                n += 1
                key = f"unit:{unit_id}#{n}"
            self._create(run, hit_type, key, unit_id)
        log.info("run %s: %d HITs made to re-offer launched units", run.id, missing)
        return missing

    def remember_type(self, run: RunInfo, hit_type: str) -> None:
        """Keep the run's HIT type id (CreateHITType answers the same id for the same properties)."""
        objects.remember(self.store, self.provider, "hit_type", f"run:{run.id}", hit_type, task_run_id=run.id)

    def _hit_type(self, run_id: int) -> str:
        found = objects.recall(self.store, self.provider, "hit_type", f"run:{run_id}")
        if found is None:
            raise ProviderError("MTurk", "CreateHITWithHITType", f"run {run_id} has no HIT type: set it up first")
        return found.remote_id

    def _create(self, run: RunInfo, hit_type: str, key: str, unit_id: int | None) -> str:
        known = objects.recall(self.store, self.provider, "hit", key)
        if known is not None and known.state != "creating":
            return known.remote_id  # made before: never a second HIT for one key
        tag = self.tag()
        annotation = f"crowdnb:{tag}:run:{run.id}:{key}"
        objects.remember(
            self.store, self.provider, "hit", key, "", task_run_id=run.id, unit_id=unit_id, state="creating"
        )
        params = {
            "HITTypeId": hit_type,
            "MaxAssignments": 1,
            "LifetimeInSeconds": self.settings.lifetime,
            "Question": external_question(run.url, self.settings.frame_height),
            "RequesterAnnotation": annotation,
            "UniqueRequestToken": request_token(tag, run.id, key),
        }
        try:
            hit = self.api.call("CreateHITWithHITType", safe=True, **params)["HIT"]
            hit_id, group = hit["HITId"], hit.get("HITGroupId", "")
        except ProviderError as exc:
            if not turk_code(exc).endswith("HitAlreadyExists"):
                raise
            hit_id, group = self._made_before(exc, annotation), ""
        objects.remember(
            self.store,
            self.provider,
            "hit",
            key,
            hit_id,
            task_run_id=run.id,
            unit_id=unit_id,
            state="active",
            url=run.url,
            group=group,
        )
        return str(hit_id)

    def _made_before(self, exc: ProviderError, annotation: str) -> str:
        """The HIT an earlier CreateHIT with the same token made: named in MTurk's answer, or found by annotation."""
        named = _HIT_ID.search(exc.message)
        if named:
            return named.group(1)
        for hit in self.api.pages("ListHITs", "HITs"):
            if hit.get("RequesterAnnotation") == annotation:
                return str(hit["HITId"])
        raise ProviderError("MTurk", "CreateHITWithHITType", f"MTurk says the HIT exists but it was not found: {exc}")

    # --- what workers did ----------------------------------------------------------------------
    def reports(self, run: RunInfo, duration: float) -> list[Report]:
        """Agents crowdnb thinks are working whose MTurk assignment is gone (returned, abandoned, or
        submitted on MTurk without a crowdnb submission)."""
        live = self.store.query(
            "SELECT a.id, a.external, a.started_at, a.unit_id, w.name FROM agents a JOIN workers w ON w.id = a.worker_id "
            f"WHERE a.task_run_id = ? AND w.provider = ? AND a.status IN {S.sql_in(S.AGENT_LIVE)} ORDER BY a.id",
            (run.id, self.provider),
        )
        by_hit: dict[str, list[dict[str, Any]]] = {}
        for agent in live:
            external = json.loads(agent["external"])
            if external.get("hitId") and external.get("assignmentId"):
                by_hit.setdefault(external["hitId"], []).append({**agent, **external})
        out: list[Report] = []
        for hit_id, agents in by_hit.items():
            hit = self.api.call("GetHIT", safe=True, HITId=hit_id)["HIT"]
            # a HIT takes one worker at a time: only the newest agent on it can still hold it
            gone = agents[:-1] if hit["NumberOfAssignmentsPending"] else agents
            if not gone:
                continue
            done = self.api.pages("ListAssignmentsForHIT", "Assignments", HITId=hit_id)
            submitted = {a["AssignmentId"] for a in done}
            for agent in gone:
                if agent["assignmentId"] in submitted:
                    # posted to externalSubmit without saving in crowdnb: nothing to pay for; re-offer the unit
                    log.warning("run %s: assignment on HIT %s was submitted on MTurk with no crowdnb submission; "
                                "review it there (reject it) — the unit is offered again", run.id, hit_id)  # fmt: skip
                    self._create(run, self._hit_type(run.id), f"replace:{hit_id}", agent["unit_id"])
                started = datetime.fromisoformat(agent["started_at"]).timestamp()
                status = "timeout" if time.time() - started >= duration else "returned"
                out.append(Report(agent["name"], status, {"assignmentId": agent["assignmentId"]}))
                log.info("run %s: worker %s %s HIT %s", run.id, short(agent["name"]), status, hit_id)
        return out

    # --- withdrawing and disposing -------------------------------------------------------------
    def expire(self, run: RunInfo, count: int | None = None) -> int:
        """Withdraw ``count`` Assignable HITs of the run (None: every HIT still live); returns how many."""
        self.finish_creating(run)
        done = 0
        for obj in objects.listed(self.store, self.provider, "hit", task_run_id=run.id, state="active"):
            if count is not None:
                if done >= count:
                    break
                if self.api.call("GetHIT", safe=True, HITId=obj.remote_id)["HIT"]["HITStatus"] != "Assignable":
                    continue
            self.api.call("UpdateExpirationForHIT", safe=True, HITId=obj.remote_id, ExpireAt=PAST)
            objects.set_state(self.store, self.provider, "hit", obj.key, "expired")
            done += 1
        return done

    def dispose(self, run_id: int | None = None) -> tuple[int, int]:
        """Expire and delete the HITs of a run (None: of every run) that MTurk lets go; the rest stay pending.

        Returns ``(disposed, pending)``. A deleted HIT's rejected assignments can no longer be approved.
        """
        disposed = pending = 0
        for state in ("creating", "active", "expired", "pending"):
            for obj in objects.listed(self.store, self.provider, "hit", task_run_id=run_id, state=state):
                if not obj.remote_id:  # CreateHIT never answered: a clean-up by annotation finds it
                    continue
                if self.delete(obj.remote_id):
                    objects.set_state(self.store, self.provider, "hit", obj.key, "disposed")
                    disposed += 1
                else:
                    objects.set_state(self.store, self.provider, "hit", obj.key, "pending")
                    pending += 1
        return disposed, pending

    def delete(self, hit_id: str) -> bool:
        """Expire and delete one HIT; False when MTurk must keep it for now."""
        try:
            hit = self.api.call("GetHIT", safe=True, HITId=hit_id)["HIT"]
        except ProviderError as exc:
            if exc.transient:
                raise
            return True  # MTurk no longer knows it: deleted already (or disposed after 120 days)
        if hit["HITStatus"] == "Disposed":
            return True
        if hit["HITStatus"] in ("Assignable", "Unassignable"):
            self.api.call("UpdateExpirationForHIT", safe=True, HITId=hit_id, ExpireAt=PAST)
            hit = self.api.call("GetHIT", safe=True, HITId=hit_id)["HIT"]
        if hit["HITStatus"] != "Reviewable":
            return False
        waiting = self.api.pages("ListAssignmentsForHIT", "Assignments", HITId=hit_id, AssignmentStatuses=["Submitted"])
        if waiting:
            return False
        try:
            self.api.call("DeleteHIT", safe=True, HITId=hit_id)
        except ProviderError as exc:
            if exc.transient:
                raise
            return "does not exist" in exc.message  # a retried DeleteHIT whose first answer was lost
        return True

    def leftovers(self, tag: str, skip_runs: set[int]) -> list[dict[str, Any]]:
        """HITs on MTurk carrying this project's tag that crowdnb does not know of (a crash before it remembered them)."""
        known = {o.remote_id for o in objects.listed(self.store, self.provider, "hit")}
        found = []
        for hit in self.api.pages("ListHITs", "HITs"):
            parts = str(hit.get("RequesterAnnotation") or "").split(":")
            ours = len(parts) >= 4 and parts[:3] == ["crowdnb", tag, "run"] and parts[3].isdigit()
            if ours and hit["HITId"] not in known and int(parts[3]) not in skip_runs:
                found.append(hit)
        return found
