"""Amazon Mechanical Turk: ``mturk`` (live, real money) and ``mturk_sandbox`` (workersandbox.mturk.com).

A run gets a HIT type from the task (title, description, keywords from ``tags``, reward, assignment
duration, auto-approval delay, requirements as QualificationRequirements — see
``mturk_requirements``) and one HIT per launched unit, an ExternalQuestion showing the run's URL
(``mturk_hits``). MTurk opens it in a frame with ``assignmentId``, ``hitId``, ``workerId`` and
``turkSubmitTo``; ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` is a preview. After a saved submission the
page posts ``assignmentId`` and crowdnb's submission id (``crowdnb_submission_id``: MTurk refuses a form
holding nothing but ``assignmentId``) to ``turkSubmitTo/mturk/externalSubmit`` (``Completion("form_post")``).

Options (``provider_options``; stored with the run, so keys never go here — see ``mturk_api``): each with
its type, default and meaning in ``mturk_options.MTurkOptions`` (``crowdnb describe provider mturk``). A
live run's ``confirm_spend`` covers the rewards and fees of every unit (at least $0.01 of fee each);
bonuses are extra, each asked for explicitly anyway; the sandbox never needs it.

Review: approve (with ``OverrideRejection`` when MTurk has it rejected), reject with the note as
feedback, soft-reject (approved on MTurk), bonus with a ``UniqueRequestToken`` and the intent recorded
first, so it is paid once even when retried, after a crash, or past the token's 24 hours; message
(NotifyWorkers), block/unblock (worker blocks), qualifications by name with integer values.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConfigError, ProviderError
from ..store import states as S
from . import Completion, Identity, Report, RunInfo, UnitRef, mturk_options, objects, settings
from .mturk_api import WORKER_SITE, MTurkAPI, short
from .mturk_hits import Hits, HitSettings
from .mturk_requirements import qualification_requirements
from .mturk_review import Review

if TYPE_CHECKING:
    from ..project import Project
    from ..store.db import Store

log = logging.getLogger(__name__)

PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"


class MTurkProvider:
    """Amazon MTurk, live: real workers, real money (see the module docstring)."""

    name = "mturk"
    sandbox = False
    fee_rate = 0.2  # MTurk's commission on rewards and bonuses (HITs with fewer than 10 assignments)
    # how MTurk is reached: kept per project at launch, read by every later call (``settings``)
    platform_settings = ("endpoint_url", "region", "timeout", "retry_delay")
    Options = mturk_options.MTurkOptions  # what ``provider_options`` may hold (``crowdnb describe``)

    def __init__(self, store: Store, **options: object) -> None:
        self.store = store
        self.options = mturk_options.parse(options)
        self.poll_seconds = float(self.options["poll_seconds"])
        o = self.options
        self.api = MTurkAPI(self.sandbox, o["endpoint_url"], o["region"], float(o["timeout"]), float(o["retry_delay"]))
        self.meter = self.api.meter
        self.hits = Hits(self.api, store, self.name, HitSettings(int(o["hit_lifetime"]), int(o["frame_height"])))
        self.review = Review(self.api, store, self.name, self.hits.tag)

    # --- the worker's page ---------------------------------------------------------------------
    def identify(self, params: Mapping[str, str]) -> Identity | None:
        """The worker MTurk names; None for a preview (``ASSIGNMENT_ID_NOT_AVAILABLE``)."""
        assignment = params.get("assignmentId", "")
        if not assignment or assignment == PREVIEW:
            return None
        ids = {k: params.get(k, "") for k in ("workerId", "assignmentId", "hitId")}
        bad = [k for k, v in ids.items() if not (v.isascii() and v.isalnum() and len(v) <= 64)]
        if bad:
            raise ConfigError(f"this page needs MTurk's {', '.join(bad)}: open it from MTurk")
        external = {"assignmentId": assignment, "hitId": ids["hitId"], "turkSubmitTo": self._submit_to(params)}
        return Identity(worker=ids["workerId"], external=external)

    def _submit_to(self, params: Mapping[str, str]) -> str:
        given = params.get("turkSubmitTo", "")
        if not given:
            return WORKER_SITE[self.sandbox]
        parts = urlsplit(given)
        mturk = parts.scheme == "https" and (parts.hostname or "").endswith(".mturk.com")
        # the page posts the worker's browser there: only MTurk, or the endpoint crowdnb itself talks to
        if mturk or (parts.scheme, parts.netloc) == urlsplit(self.api.endpoint)[:2]:
            return f"{parts.scheme}://{parts.netloc}"
        raise ConfigError(f"turkSubmitTo {given!r} is not an MTurk address")

    def worker_url(self, base_url: str, worker: str) -> str:
        """The MTurk worker-site page of the run's HITs (there is no per-worker link), else ``base_url``."""
        for obj in objects.listed(self.store, self.name, "hit", state="active"):
            if obj.data.get("url") == base_url and obj.data.get("group"):
                return f"{WORKER_SITE[self.sandbox]}/projects/{obj.data['group']}/tasks"
        return base_url

    def completion(self, run: RunInfo, external: Mapping[str, str]) -> Completion:
        """Post the assignment back to MTurk (``turkSubmitTo/mturk/externalSubmit``)."""
        if not external.get("assignmentId"):
            return Completion()
        submit_to = external.get("turkSubmitTo") or WORKER_SITE[self.sandbox]
        return Completion(
            "form_post",
            submit_to.rstrip("/") + "/mturk/externalSubmit",
            {"assignmentId": external["assignmentId"]},
            "Saved. Sending your work to MTurk…",
        )

    # --- a run's HITs --------------------------------------------------------------------------
    def check(self, run: RunInfo) -> None:
        """Refuse a run MTurk would refuse (not HTTPS, part-cents …) or a live run's unconfirmed spend; no call."""
        mturk_options.check_run(run, self.options["allow_http"])
        if not self.sandbox:
            mturk_options.check_spend(self.store, run, self.fee_rate, self.options["confirm_spend"])

    def setup_run(self, run: RunInfo) -> None:
        """Check the run, then the HIT type; on a resumed run, HITs for launched units that have none."""
        self.check(run)
        guard = self.options["actions_guarded"]
        requirements = qualification_requirements(
            run.requirements, self.name, self.sandbox, self._qualification_type, guard
        )
        params: dict[str, Any] = {
            "Title": run.title,
            "Description": run.description or run.title,
            "Reward": f"{run.reward:.2f}",
            "AssignmentDurationInSeconds": int(run.assignment_duration),
            "AutoApprovalDelayInSeconds": int(self.options["auto_approval_delay"]),
            "Keywords": ", ".join(run.tags),
        }
        if requirements:
            params["QualificationRequirements"] = requirements
        # CreateHITType answers the same id for the same properties: safe to repeat
        self.hits.remember_type(run, self.api.call("CreateHITType", safe=True, **params)["HITTypeId"])
        self.hits.top_up(run)
        self._settle_quietly()
        log.info("run %s set up on %s (%d requirements pushed down)", run.id, self.name, len(requirements))

    def publish(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """One HIT per launched unit (never a second one for the same unit)."""
        self.hits.publish(run, unit_ids)

    def sync(self, run: RunInfo) -> Sequence[Report]:
        """Finish HITs whose creation got no answer; report workers whose assignment is gone; send what is owed."""
        reports: Sequence[Report] = []
        try:
            self.hits.finish_creating(run)
            reports = self.hits.reports(run, run.assignment_duration)
        except ProviderError as exc:  # the next poll tries again; the run keeps serving meanwhile
            log.warning("run %s: MTurk not fully read this time: %s", run.id, exc)
        self._settle_quietly()
        return reports

    def _settle_quietly(self) -> None:
        """Send what is owed; a failure is logged (the intents stay recorded for the next try)."""
        try:
            self.review.settle()
        except ProviderError as exc:
            log.warning("MTurk: owed calls not all sent yet: %s", exc)

    def expire(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Withdraw HITs: every live one when the run has nothing on offer any more."""
        remaining = self.store.scalar(
            f"SELECT count(*) FROM units WHERE task_run_id = ? AND status IN {S.sql_in(S.UNIT_LIVE)}", (run.id,)
        )
        try:
            self.hits.expire(run, len(unit_ids) if remaining else None)
        except ProviderError as exc:  # stopping must go on; cleanup_run expires them again
            log.warning("run %s: could not expire HITs now (%s); the clean-up tries again", run.id, exc)

    def cleanup_run(self, run: RunInfo) -> None:
        """Expire and delete the run's HITs MTurk lets go; the rest stay pending for ``crowdnb mturk cleanup``."""
        try:
            disposed, pending = self.hits.dispose(run.id)
        except ProviderError as exc:
            raise ProviderError(
                "MTurk",
                exc.call,
                f"{exc.message}; the run is stopped, its HITs are not all disposed: run `crowdnb mturk cleanup` later",
                transient=exc.transient,
                status=exc.status,
            ) from exc
        log.info("run %s: %d HITs disposed, %d kept until their work is reviewed", run.id, disposed, pending)

    # --- review and money ----------------------------------------------------------------------
    def _assignment(self, unit: UnitRef, call: str) -> str:
        found = unit.external.get("assignmentId")
        if not found:
            raise ProviderError("MTurk", call, f"unit {unit.id} has no MTurk assignment (it was not taken on MTurk)")
        return found

    def approve(self, unit: UnitRef, note: str | None) -> None:
        """Approve the unit's assignment (overriding MTurk's rejection of it); approving twice is harmless."""
        self.review.decide(unit.id, self._assignment(unit, "ApproveAssignment"), "approve", note)

    def soft_reject(self, unit: UnitRef, note: str | None) -> None:
        """Pay on MTurk (approve); crowdnb keeps the work marked unusable."""
        self.approve(unit, note)

    def reject(self, unit: UnitRef, note: str | None) -> None:
        """Reject the unit's assignment with ``note`` as the feedback the worker reads."""
        self.review.decide(unit.id, self._assignment(unit, "RejectAssignment"), "reject", note)

    def bonus(self, worker: str, amount: float, reason: str, token: str, unit: UnitRef | None = None) -> None:
        """Pay a bonus once per ``token`` (against the unit's assignment, or the worker's latest one)."""
        assignment = self._assignment(unit, "SendBonus") if unit else self._latest_assignment(worker)
        self.review.bonus(worker, amount, reason, token, assignment)

    def settle(self) -> int:
        """Send again what MTurk has not confirmed (decisions, bonuses, qualifications, blocks); returns how many went."""
        return self.review.settle()

    def _latest_assignment(self, worker: str) -> str:
        rows = self.store.query(
            "SELECT a.external FROM agents a JOIN workers w ON w.id = a.worker_id WHERE w.provider = ? AND w.name = ? "
            f"AND a.status IN {S.sql_in(S.AGENT_SUBMITTED)} ORDER BY a.id DESC",
            (self.name, worker),
        )
        for row in rows:
            found = json.loads(row["external"]).get("assignmentId")
            if found:
                return str(found)
        raise ProviderError(
            "MTurk", "SendBonus", f"MTurk pays a bonus against an assignment; {short(worker)} has none here"
        )

    def message(self, worker: str, text: str) -> None:
        """NotifyWorkers (not retried: a message sent twice is worse than an error you can repeat)."""
        if len(text) > 4096:
            raise ConfigError(f"MTurk messages hold at most 4096 characters; this one has {len(text)}")
        answer = self.api.call(
            "NotifyWorkers", Subject="A message from your requester", MessageText=text, WorkerIds=[worker]
        )
        failed = answer.get("NotifyWorkersFailureStatuses") or []
        if failed:
            raise ProviderError("MTurk", "NotifyWorkers", str(failed[0].get("NotifyWorkersFailureMessage")))

    def block(self, worker: str, reason: str) -> None:
        """Block the worker from all of this requester's HITs."""
        self.review.block(worker, reason)

    def unblock(self, worker: str) -> None:
        """Lift the block."""
        self.review.block(worker, None)

    def grant_qualification(self, worker: str, name: str, value: int) -> None:
        """Give the worker ``name`` = ``value`` on MTurk (the type is found by name or created)."""
        self.review.qualify(worker, name, int(value))

    def revoke_qualification(self, worker: str, name: str) -> None:
        """Take ``name`` away from the worker on MTurk."""
        self.review.qualify(worker, name, None)

    def _qualification_type(self, name: str) -> str:
        return self.review.qualification_type(name)


class MTurkSandboxProvider(MTurkProvider):
    """MTurk's sandbox: the same calls, no real money, test workers on workersandbox.mturk.com."""

    name = "mturk_sandbox"
    sandbox = True


@dataclass(frozen=True)
class Cleanup:
    """What ``cleanup`` did."""

    disposed: int  # HITs deleted
    pending: int  # HITs MTurk keeps for now: work awaiting review, or a worker still on them
    found: int  # HITs found only by their RequesterAnnotation (a crash before crowdnb remembered them)
    settled: int  # decisions and bonuses sent that MTurk had not confirmed
    running: list[int]  # runs left alone because they are marked running


def cleanup(project: Project, *, sandbox: bool = False, runs: Sequence[int] = ()) -> Cleanup:
    """Dispose of the HITs that stopped or crashed runs left on MTurk, and send unsent decisions and bonuses.

    A run still marked running is left alone (another process may serve it) unless named in ``runs``:
    then it is stopped first — what to do for a run whose process crashed.
    """
    kind = MTurkSandboxProvider if sandbox else MTurkProvider
    provider = kind(project.store, **settings.read(project.store, kind.name))  # the endpoint the runs used
    for run_id in runs:
        project.run(run_id).stop()
    running = [r for r in project.store.run_ids() if project.store.get_run(r)["status"] == "running"]
    settled = provider.settle()
    disposed = pending = 0
    owners = {o.task_run_id for o in objects.listed(project.store, provider.name, "hit")} - set(running)
    for run_id in sorted(r for r in owners if r is not None):
        done, kept = provider.hits.dispose(run_id)
        disposed, pending = disposed + done, pending + kept
    found = provider.hits.leftovers(provider.hits.tag(), set(running))
    for hit in found:
        run_id = int(str(hit["RequesterAnnotation"]).split(":")[3])
        gone = provider.hits.delete(hit["HITId"])
        objects.remember(project.store, provider.name, "hit", f"found:{hit['HITId']}", hit["HITId"],
                         task_run_id=run_id, state="disposed" if gone else "pending")  # fmt: skip
        disposed, pending = disposed + gone, pending + (not gone)
    log.info(
        "%s clean-up: %d HITs disposed, %d pending, %d found by annotation",
        provider.name,
        disposed,
        pending,
        len(found),
    )
    return Cleanup(disposed, pending, len(found), settled, running)
