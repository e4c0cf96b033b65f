"""The Prolific provider: one study per run, a place per launched unit, review and bonuses through
Prolific's REST API. Its parts: ``prolific_api`` (the HTTP client), ``prolific_study`` (the run's study),
``prolific_groups`` (eligibility as participant groups), ``prolific_bonus`` (bonuses paid at most once).

Credentials: the API token comes from ``PROLIFIC_API_TOKEN`` or ``crowdnb register prolific`` (never from
options: those are stored with the run). The base URL is the ``base_url`` option, ``PROLIFIC_BASE_URL``,
the registered ``base_url``, or https://api.prolific.com/api/v1/ (``crowdnb.testing.prolific`` for dry runs).

What a run does on Prolific:

* set-up: the workspace (option ``workspace``, default "crowdnb") and project (option ``project``, default
  the task's name) are found by name or created, and remembered; a workspace-wide participant group
  "crowdnb block list" holds every participant blocked in crowdnb; the run's qualification requirements
  become two disposable participant groups of known participants (an allowlist of those who meet every
  requirement a newcomer cannot meet, a blocklist of those failing a "must not have" one); one study is
  created (a draft) with the router's URL plus the documented ``{{%PROLIFIC_PID%}}``, ``{{%STUDY_ID%}}``
  and ``{{%SESSION_ID%}}`` placeholders, the reward in cents and a random completion code per study;
* publish: each launched unit adds a place (``PATCH total_available_places``, absolute, so retries are
  safe); the first places publish the draft;
* the worker: ``PROLIFIC_PID`` names them, ``STUDY_ID`` and ``SESSION_ID`` are bound to their unit; after
  submitting they are redirected to ``https://app.prolific.com/submissions/complete?cc=<code>`` (option
  ``completion_url``), which moves their submission to AWAITING REVIEW;
* sync (every ``poll_seconds``, default 30): RETURNED and TIMED-OUT submissions are reported, so crowdnb
  offers the unit again; places the platform has not taken yet are pushed; half-done bonuses are settled;
* stop: Prolific studies never expire by themselves, so crowdnb stops the study when the run stops
  (``cleanup_run``) and deletes the run's groups. After a crash, resume the run or call
  ``run.provider_client().cleanup(run.id)``: until then the study stays open on Prolific. Places only
  grow, and a rejection frees one: a participant who takes it finds no unit left and returns.

Options: ``ProlificOptions`` names each with its type, default and meaning (``crowdnb describe provider
prolific``).

Amounts are in the account's currency (USD or GBP) and must be whole cents/pence: crowdnb refuses an
amount with a fraction of a cent rather than round money.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import credentials
from ..errors import ConfigError, ProviderError, StateError
from . import Completion, Identity, Report, RunInfo, UnitRef, objects
from .prolific_api import DEFAULT_BASE_URL, PLATFORM, ProlificAPI
from .prolific_bonus import BonusLedger
from .prolific_groups import Groups, check_filters
from .prolific_study import Studies
from .retry import retried

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

NAME = "prolific"
COMPLETION_URL = "https://app.prolific.com/submissions/complete"
# Prolific's service fee on rewards and bonuses: 42.8% for companies, 33.3% for academic and non-profit
# accounts (prolific.com/pricing, as transcribed on 2026-09-20); VAT comes on top where it applies.
FEE_RATE = 0.428
CATEGORIES = (
    "BAD_CODE", "FAILED_CHECK", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "LOW_EFFORT", "MALINGERING",
    "NO_CODE", "NO_DATA", "OTHER", "TOO_QUICKLY", "TOO_SLOWLY", "UNSUPP_DEVICE",
)  # fmt: skip
# Prolific refuses a rejection whose message is shorter than 100 characters; a shorter note gets this after it.
REJECTION = (
    "Your submission was rejected because it did not meet the requirements described in the study "
    "instructions. If you think this is a mistake, please send us a message on Prolific."
)
RELEASED = {"RETURNED": "returned", "TIMED-OUT": "timeout"}


@dataclass(frozen=True)
class ProlificOptions:
    """The ``provider_options`` of ``prolific`` (stored with the run: never the API token).

    Args:
        base_url: Prolific's API address, such as a local fake's (``crowdnb.testing.prolific``); None: PROLIFIC_BASE_URL, the registered one, else https://api.prolific.com/api/v1/
        workspace: the Prolific workspace the studies go in, found by name or created
        project: the Prolific project the studies go in, found by name or created; None: the task's name
        completion_url: where a participant is sent after submitting, with ``?cc=<the study's completion code>``
        study_url: the public address participants open, when it is not the router's URL
        estimated_minutes: how long a unit takes, as Prolific shows participants (whole minutes)
        filters: Prolific's own screeners, passed through as filter dicts (e.g. age, or your participant_group_allowlist)
        rejection_category: why a rejection is made, in Prolific's words (LOW_EFFORT, FAILED_CHECK, TOO_QUICKLY, …)
        fee_rate: Prolific's service fee on rewards and bonuses, counted in run.spend (academic accounts: 0.333)
        poll_seconds: how often returned and timed-out submissions are read from Prolific (their units are offered again)
        timeout: seconds each Prolific API call may take
        bonus_confirm_seconds: how long a bonus whose pay call got no answer is looked for before it is called unconfirmed
    """

    base_url: str | None = None
    workspace: str = "crowdnb"
    project: str | None = None
    completion_url: str = COMPLETION_URL
    study_url: str | None = None
    estimated_minutes: int = 5
    filters: list[dict[str, Any]] | None = None
    rejection_category: str = "LOW_EFFORT"
    fee_rate: float = FEE_RATE
    poll_seconds: float = 30.0
    timeout: float = 30.0
    bonus_confirm_seconds: float = 3600.0


OPTIONS = {f.name for f in dataclasses.fields(ProlificOptions)}
_D = ProlificOptions  # the defaults


def minor(amount: float, what: str) -> int:
    """Dollars (or pounds) → whole cents; ``ConfigError`` for a fraction of a cent (money is not rounded)."""
    cents = round(float(amount) * 100)
    if abs(float(amount) * 100 - cents) > 1e-6 or cents < 0:
        raise ConfigError(f"{what} {amount!r} is not a whole number of cents; Prolific pays whole cents/pence")
    return cents


def rejection_message(note: str | None) -> str:
    """The note, made long enough for Prolific (≥ 100 characters) by appending ``REJECTION``."""
    text = " ".join((note or "").split())
    return text if len(text) >= 100 else f"{text} {REJECTION}".strip()


class ProlificProvider:
    """Participants from Prolific; see the module docstring for what each call does on the platform."""

    name = NAME
    fee_rate = FEE_RATE
    poll_seconds = 30.0
    # how Prolific is reached: kept per project at launch, read by every later call (``settings``)
    platform_settings = ("base_url", "workspace", "timeout")
    Options = ProlificOptions  # what ``provider_options`` may hold (``crowdnb describe``)

    def __init__(self, store: Store, **options: Any) -> None:
        secret = sorted(k for k in options if "token" in k.lower() or "key" in k.lower())
        if secret:
            raise ConfigError(
                f"provider option {secret[0]!r} would be stored with the run; give the Prolific token with "
                "`crowdnb register prolific` or the PROLIFIC_API_TOKEN environment variable"
            )
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ConfigError(f"unknown Prolific option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}")
        stored = credentials.lookup("prolific")
        token = os.environ.get("PROLIFIC_API_TOKEN") or stored.get("api_token")
        if not token:
            raise ConfigError(
                "no Prolific API token: run `crowdnb register prolific` or set PROLIFIC_API_TOKEN "
                "(create one at https://app.prolific.com/researcher/tokens/)"
            )
        base = options.get("base_url") or os.environ.get("PROLIFIC_BASE_URL") or stored.get("base_url")
        base = str(base or DEFAULT_BASE_URL)
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"base_url {base!r} must start with https:// (or http:// for a local fake)")
        self.store = store
        self.api = ProlificAPI(token, base, _number(options, "timeout", _D.timeout, low=0.1))
        self.meter = self.api.meter
        self.workspace_name = str(options.get("workspace") or _D.workspace)
        self.project_name = str(options["project"]) if options.get("project") else None
        self.completion_url = str(options.get("completion_url") or _D.completion_url)
        self.category = str(options.get("rejection_category") or _D.rejection_category)
        if self.category not in CATEGORIES:
            raise ConfigError(f"rejection_category {self.category!r} is not one of {', '.join(CATEGORIES)}")
        self.fee_rate = _number(options, "fee_rate", _D.fee_rate, low=0.0, high=0.99)
        self.poll_seconds = _number(options, "poll_seconds", _D.poll_seconds, low=0.0)
        confirm = _number(options, "bonus_confirm_seconds", _D.bonus_confirm_seconds, low=0.0)
        self.bonuses = BonusLedger(store, self.api, confirm)
        self.groups = Groups(store, self.api)
        self.studies = Studies(
            store, self.api, self.groups, estimated_minutes=int(_number(options, "estimated_minutes", _D.estimated_minutes, low=1)),
            study_url=str(options["study_url"]) if options.get("study_url") else None,
            filters=check_filters(options.get("filters") or []),
        )  # fmt: skip
        self._reported: set[str] = set()

    # --- the worker's side -------------------------------------------------------------------
    def identify(self, params: Mapping[str, str]) -> Identity | None:
        """``PROLIFIC_PID`` is the worker; ``STUDY_ID``/``SESSION_ID`` are bound to their unit; none: preview."""
        worker = (params.get("PROLIFIC_PID") or "").strip()
        if not worker or "%" in worker:  # an unfilled placeholder: Prolific's own preview of the study
            return None
        if len(worker) > 128:
            raise ConfigError("PROLIFIC_PID is longer than 128 characters")
        external = {
            key: value.strip()
            for key, value in (("study_id", params.get("STUDY_ID", "")), ("session_id", params.get("SESSION_ID", "")))
            if value.strip() and "%" not in value
        }
        return Identity(worker=worker, external=external)

    def worker_url(self, base_url: str, worker: str) -> str:
        """The study link with only the participant filled in (Prolific fills in the study and session)."""
        return f"{base_url}{'&' if '?' in base_url else '?'}PROLIFIC_PID={quote(worker, safe='')}"

    def completion(self, run: RunInfo, external: Mapping[str, str]) -> Completion:
        """Back to Prolific with the study's completion code (the submission then awaits review)."""
        found = objects.by_remote_id(self.store, NAME, external.get("study_id", "")) if external else None
        study = found if found is not None and found.kind == "study" else self.studies.current(run.id)
        if study is None:
            raise StateError(f"run {run.id} has no Prolific study; it was not set up")
        return Completion(
            kind="redirect",
            url=f"{self.completion_url}?cc={study.data['code']}",
            message="Thank you! Your answers are saved. You are being sent back to Prolific.",
        )

    # --- a run's study -----------------------------------------------------------------------
    def setup_run(self, run: RunInfo) -> None:
        """Workspace, project, groups and the run's study (found again on a resume, never made twice)."""
        retried(lambda: self.api.get("users/me/"))  # a bad token fails here, before anything is created
        workspace = self.groups.workspace(self.workspace_name)
        title = self.project_name or run.task
        project = self.groups.named(
            "project", f"{workspace}/{title}", f"workspaces/{workspace}/projects/", "title", title
        )
        block = self.groups.block_group(workspace)
        self.studies.ensure(run, workspace, project, block, minor(run.reward, "reward"))
        self._pending_decisions(run.id)
        self.bonuses.settle_all()

    def publish(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """One more place per unit; the first places publish the study."""
        self.studies.add_places(run.id, len(unit_ids))

    def sync(self, run: RunInfo) -> Sequence[Report]:
        """Returned and timed-out submissions (their units are offered again); pending places and bonuses."""
        study = self.studies.current(run.id)
        if study is None or study.state == "creating":
            return []
        self.studies.push(study)
        reports = []
        for sub in retried(lambda: list(self.api.pages(f"studies/{study.remote_id}/submissions/"))):
            if sub.get("status") in RELEASED and sub["id"] not in self._reported:
                self._reported.add(sub["id"])
                reports.append(Report(sub["participant_id"], RELEASED[sub["status"]], {"session_id": sub["id"]}))
        self._pending_decisions(run.id)
        self.bonuses.settle_all()
        return reports

    def expire(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Nothing per unit: Prolific places only grow. The study is stopped by ``cleanup_run``."""
        log.info("run %s: %d unit(s) withdrawn; the Prolific study is stopped at clean-up", run.id, len(unit_ids))

    def cleanup_run(self, run: RunInfo) -> None:
        """Stop the run's study and delete its participant groups (Prolific studies never expire)."""
        self.cleanup(run.id)

    def cleanup(self, task_run_id: int | None = None) -> int:
        """Stop every open study and delete every run group crowdnb left (of one run, or all); returns how
        many. Each is tried; the first failure is raised at the end, and calling again finishes the job."""
        done, failure = self.studies.close(task_run_id)
        for item in objects.listed(self.store, NAME, "group", task_run_id=task_run_id, state="active"):
            if item.key.startswith("run:"):
                try:
                    retried(lambda i=item: self.api.delete(f"participant-groups/{i.remote_id}/"))  # type: ignore[misc]
                    objects.set_state(self.store, NAME, "group", item.key, "deleted")
                    done += 1
                except ProviderError as exc:
                    failure = failure or exc
        if failure is not None:
            raise ProviderError(PLATFORM, failure.call, f"{failure.message}; a study or group may still be open: "
                                "call run.provider_client().cleanup(run.id) again")  # fmt: skip
        return done

    # --- review ------------------------------------------------------------------------------
    def approve(self, unit: UnitRef, note: str | None) -> None:
        """APPROVE the unit's submission (Prolific pays the reward)."""
        self._decide(unit, {"action": "APPROVE"}, "APPROVED")

    def reject(self, unit: UnitRef, note: str | None) -> None:
        """REJECT with the note (made ≥ 100 characters, see ``REJECTION``) and the configured category."""
        body = {"action": "REJECT", "message": rejection_message(note), "rejection_category": self.category}
        self._decide(unit, body, "REJECTED")

    def soft_reject(self, unit: UnitRef, note: str | None) -> None:
        """Approved on Prolific (the worker is paid); unusable only in crowdnb."""
        self.approve(unit, note)

    def bonus(self, worker: str, amount: float, reason: str, token: str, unit: UnitRef | None = None) -> None:
        """Set up and pay a bonus once per ``token`` (see ``prolific_bonus``); the reason stays in crowdnb."""
        cents = minor(amount, "bonus")
        if unit is not None:
            session, study = self._session(unit), unit.external.get("study_id") or self.studies.latest_id(unit.run_id)
        else:
            study, session = self._where(worker)
        state = self.bonuses.give(
            token, cents, session, study, unit.run_id if unit else None, unit.id if unit else None
        )
        if state not in ("paid", "paying"):
            log.info("a Prolific bonus is %s; the next sync finishes it", state)

    def study(self, run_id: int) -> dict[str, Any]:
        """The run's latest study as Prolific shows it (status, places, filters …)."""
        return dict(retried(lambda: self.api.get(f"studies/{self.studies.latest_id(run_id)}/")))

    def settle_bonuses(self) -> dict[str, int]:
        """Finish bonuses a failure or crash left half-done (never paying one twice); counts by state."""
        return self.bonuses.settle_all()

    def message(self, worker: str, text: str) -> None:
        """Message a participant about the latest study they took part in (not retried: it would repeat)."""
        study, _ = self._where(worker)
        self.api.post("messages/", {"recipient_id": worker, "body": text, "study_id": study})

    # --- eligibility -------------------------------------------------------------------------
    def block(self, worker: str, reason: str) -> None:
        """Add the participant to the block list group every crowdnb study excludes."""
        self.groups.block(worker, self._workspace, add=True)

    def unblock(self, worker: str) -> None:
        """Take the participant out of the block list group."""
        self.groups.block(worker, self._workspace, add=False)

    def grant_qualification(self, worker: str, name: str, value: int) -> None:
        """Re-evaluate the worker against the requirements of open runs: join or leave their groups."""
        self.groups.refresh_member(worker)

    def revoke_qualification(self, worker: str, name: str) -> None:
        """Like ``grant_qualification``: membership follows the store."""
        self.groups.refresh_member(worker)

    # --- helpers -----------------------------------------------------------------------------
    def _workspace(self) -> str:
        return self.groups.workspace(self.workspace_name)

    def _decide(self, unit: UnitRef, body: dict[str, Any], done: str) -> None:
        """A review decision carried out on Prolific, recorded first: one the platform could not take now
        (an outage) is finished by a later sync; Prolific refuses a repeat, so nothing is done twice."""
        key = f"unit:{unit.id}"
        objects.remember(self.store, NAME, "decision", key, unit.external.get("session_id", ""),
                         task_run_id=unit.run_id, unit_id=unit.id, state="pending", body=body, done=done,
                         worker=unit.worker)  # fmt: skip
        self._carry_out(objects.recall(self.store, NAME, "decision", key))

    def _carry_out(self, item: objects.RemoteObject | None) -> None:
        if item is None or item.state != "pending":
            return
        session = item.remote_id or self._session(UnitRef(int(item.unit_id or 0), int(item.task_run_id or 0),
                                                          str(item.data["worker"]), 0.0))  # fmt: skip
        path = f"submissions/{session}/transition/"
        try:
            retried(lambda: self.api.post(path, item.data["body"]))
        except ProviderError as exc:
            if exc.transient:
                raise ProviderError(PLATFORM, exc.call, f"{exc.message}; the decision is kept and sent again at "
                                    "the next sync", status=exc.status) from exc  # fmt: skip
            if retried(lambda: self.api.get(f"submissions/{session}/"))["status"] != item.data["done"]:
                objects.set_state(self.store, NAME, "decision", item.key, "refused", error=exc.message)
                raise
        objects.set_state(self.store, NAME, "decision", item.key, "done")

    def _pending_decisions(self, run_id: int) -> None:
        for item in objects.listed(self.store, NAME, "decision", task_run_id=run_id, state="pending"):
            try:
                self._carry_out(item)
            except ProviderError as exc:
                log.warning("a Prolific review decision is still pending: %s", exc)

    def _session(self, unit: UnitRef) -> str:
        """The unit's Prolific submission id (``SESSION_ID``), looked up when the page did not carry it."""
        if unit.external.get("session_id"):
            return unit.external["session_id"]
        for study in objects.listed(self.store, NAME, "study", task_run_id=unit.run_id):
            if study.remote_id:
                for sub in retried(lambda s=study: list(self.api.pages(f"studies/{s.remote_id}/submissions/"))):  # type: ignore[misc]
                    if sub.get("participant_id") == unit.worker:
                        return str(sub["id"])
        raise StateError(f"no Prolific submission of unit {unit.id} (participant {unit.worker[:6]}…)")

    def _where(self, worker: str) -> tuple[str, str]:
        """(study id, session id) of the worker's latest Prolific submission (bonuses and messages need one)."""
        for row in self.store.query(
            "SELECT a.external FROM agents a JOIN workers w ON w.id = a.worker_id WHERE w.provider = ? AND w.name = ? "
            "ORDER BY a.started_at DESC", (NAME, worker),
        ):  # fmt: skip
            ext = json.loads(row["external"])
            if ext.get("study_id") and ext.get("session_id"):
                return ext["study_id"], ext["session_id"]
        raise ConfigError(f"participant {worker[:6]}… has no Prolific submission crowdnb knows; Prolific only "
                          "pays bonuses and delivers messages to participants of your studies")  # fmt: skip


def _number(options: Mapping[str, Any], key: str, default: float, low: float, high: float | None = None) -> float:
    value = options.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise ConfigError(f"Prolific option {key}={value!r} must be a number {bound}")
    return float(value)
