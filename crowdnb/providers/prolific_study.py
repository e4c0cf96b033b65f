"""A crowdnb run's study on Prolific: created once, given places as units launch, published, stopped.

Each step is recorded in ``provider_objects`` (kind ``study``, key ``run:<id>:<n>``) before the call it
leads to: ``creating`` (with a unique internal name, so a create whose answer was lost is found in the
project, not repeated) → ``draft`` → ``published`` → ``stopped``. ``places`` is what crowdnb asked for,
``pushed`` what Prolific confirmed; the places are sent as an absolute number, so a retry never adds twice.
A run stopped and resumed gets a new study (``<n>`` + 1): a stopped study's groups are gone.
"""

from __future__ import annotations

import logging
import math
import secrets
from typing import TYPE_CHECKING, Any

from ..errors import ProviderError, StateError
from ..store import states as S
from . import RunInfo, objects
from .prolific_api import ProlificAPI
from .prolific_groups import Groups, merge
from .retry import retried

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

NAME = "prolific"
LIVE = ("creating", "draft", "published")
# The placeholders exactly as Prolific's API reference writes them (double braces): "The study object",
# https://docs.prolific.com/api-reference/studies/the-study-object, and "Update a study". The
# single-brace form ({%PROLIFIC_PID%}) seen in older tools (the R prolific.api package) is not used.
PLACEHOLDERS = "PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"


class Studies:
    """The studies of a project's runs on Prolific."""

    def __init__(self, store: Store, api: ProlificAPI, groups: Groups, **settings: Any) -> None:
        self.store, self.api, self.groups = store, api, groups
        self.minutes: int = settings["estimated_minutes"]
        self.study_url: str | None = settings["study_url"]
        self.filters: list[dict[str, Any]] = settings["filters"]

    def current(self, run_id: int) -> objects.RemoteObject | None:
        """The run's current study (the last one not stopped), or None."""
        live = [s for s in objects.listed(self.store, NAME, "study", task_run_id=run_id) if s.state in LIVE]
        return live[-1] if live else None

    def latest_id(self, run_id: int) -> str:
        """Prolific's id of the run's latest study, stopped or not."""
        made = [s.remote_id for s in objects.listed(self.store, NAME, "study", task_run_id=run_id) if s.remote_id]
        if not made:
            raise StateError(f"run {run_id} has no Prolific study")
        return made[-1]

    def ensure(self, run: RunInfo, workspace: str, project: str, block: str, cents: int) -> None:
        """The run's study, created (as a draft, with its groups) unless one is open; places pushed."""
        study = self.current(run.id)
        if study is None or study.state == "creating":
            study = self._create(run, workspace, project, block, cents, study)
        self.push(study)

    def add_places(self, run_id: int, count: int) -> None:
        """``count`` more places (recorded first, then pushed); the first places publish the study."""
        study = self.current(run_id)
        if study is None or study.state == "creating":
            raise StateError(f"run {run_id} has no Prolific study to publish to; set the run up first")
        places = int(study.data["places"]) + count
        objects.set_state(self.store, NAME, "study", study.key, study.state, places=places)
        self.push(self._recall(study.key))

    def push(self, study: objects.RemoteObject) -> None:
        """Bring the platform's places up to what crowdnb asked for, and publish a draft with places."""
        target, pushed = int(study.data["places"]), int(study.data.get("pushed", 0))
        if target > pushed:
            retried(lambda: self.api.patch(f"studies/{study.remote_id}/", {"total_available_places": target}))
            objects.set_state(self.store, NAME, "study", study.key, study.state, pushed=target)
        if study.state == "draft" and target > 0:
            self._transition(study.remote_id, "PUBLISH")
            objects.set_state(self.store, NAME, "study", study.key, "published")
            log.info("Prolific study published with %d place(s)", target)

    def close(self, task_run_id: int | None) -> tuple[int, ProviderError | None]:
        """Stop every published study (delete every draft) of a run, or of all runs: (how many, a failure)."""
        done, failure = 0, None
        for item in objects.listed(self.store, NAME, "study", task_run_id=task_run_id):
            if item.state not in ("draft", "published"):
                continue
            try:
                if item.state == "draft":
                    retried(lambda i=item: self.api.delete(f"studies/{i.remote_id}/"))  # type: ignore[misc]
                else:
                    self._transition(item.remote_id, "STOP")
                objects.set_state(self.store, NAME, "study", item.key, "stopped")
                done += 1
            except ProviderError as exc:
                failure = failure or exc
        return done, failure

    def _recall(self, key: str) -> objects.RemoteObject:
        found = objects.recall(self.store, NAME, "study", key)
        if found is None:
            raise StateError(f"Prolific study {key!r} is not recorded")
        return found

    def _create(
        self, run: RunInfo, workspace: str, project: str, block: str, cents: int, pending: objects.RemoteObject | None
    ) -> objects.RemoteObject:
        """Create the draft study (and its groups) once, even when an answer is lost or the process dies."""
        if pending is None:
            number = len(objects.listed(self.store, NAME, "study", task_run_id=run.id)) + 1
            key = f"run:{run.id}:{number}"
            name = f"crowdnb run {run.id} #{number} {secrets.token_hex(3)}"  # unique: found again after a crash
            # units relaunched by a resume need places from the start
            places = self.store.scalar(
                f"SELECT count(*) FROM units WHERE task_run_id = ? AND status = {S.sql(S.LAUNCHED)}", (run.id,)
            )
            code = secrets.token_hex(4).upper()
            objects.remember(self.store, NAME, "study", key, "", task_run_id=run.id, state="creating",
                             internal_name=name, code=code, places=int(places))  # fmt: skip
            pending = self._recall(key)
        groups = self.groups.run_groups(run, workspace, pending.key)
        filters = merge(self.filters, [("participant_group_blocklist", [block, *groups.get("exclude", [])]),
                                       ("participant_group_allowlist", groups.get("allow", []))])  # fmt: skip
        data = pending.data
        completion = {"code": data["code"], "code_type": "COMPLETED", "actions": [{"action": "MANUALLY_REVIEW"}]}
        body = {
            "name": run.title, "internal_name": data["internal_name"], "description": run.description or run.title,
            "external_study_url": self._external_url(run), "prolific_id_option": "url_parameters",
            "completion_codes": [completion], "total_available_places": max(int(data["places"]), 1),
            "estimated_completion_time": self.minutes, "reward": cents, "project": project, "filters": filters,
        }  # fmt: skip
        if run.assignment_duration:  # Prolific times a participant out with crowdnb, not later
            body["maximum_allowed_time"] = max(self.minutes, math.ceil(run.assignment_duration / 60))
        extra = {"pushed": body["total_available_places"], "requirements": [r.to_dict() for r in run.requirements]}
        self.groups.named(
            "study", pending.key, f"projects/{project}/studies/", "internal_name", data["internal_name"],
            lambda: self.api.post("studies/", body), task_run_id=run.id, state="draft", **data | extra,
        )  # fmt: skip
        log.info("run %s: Prolific study created (draft)", run.id)
        return self._recall(pending.key)

    def _external_url(self, run: RunInfo) -> str:
        base = self.study_url or run.url
        return f"{base}{'&' if '?' in base else '?'}{PLACEHOLDERS}"

    def _transition(self, study_id: str, action: str) -> None:
        """PUBLISH or STOP; a refusal because it already happened (a lost answer) counts as done."""
        try:
            retried(lambda: self.api.post(f"studies/{study_id}/transition/", {"action": action}))
        except ProviderError as exc:
            if exc.transient:
                raise
            status = retried(lambda: self.api.get(f"studies/{study_id}/"))["status"]
            if (action == "PUBLISH" and status != "UNPUBLISHED") or (
                action == "STOP" and status in ("AWAITING REVIEW", "COMPLETED")
            ):
                return
            raise
