"""A TaskRun's life: launch, feed and throttle units, time out abandoned ones, stop and resume."""

from __future__ import annotations

import json
import logging
import numbers
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import architects, logs, providers, starting
from .data import Rows
from .errors import ConfigError
from .frame.events import calls_frame, messages_frame
from .frame.live import LiveFrame
from .pages.page import summary_table
from .procedures import Procedure, procedure
from .providers import decisions
from .records import Frames
from .remote import Remote, left_serving
from .router import feed, metrics
from .router.dispatch import Listener
from .router.operator import OperatorHub
from .rules import EVERY, Predicate, Rule, Rules
from .service import Service, figures
from .spec import TaskSpec
from .store import calls, lifecycle, reports, rooms
from .store import states as S
from .store.db import now
from .views import views

if TYPE_CHECKING:
    from .project import Project

log = logging.getLogger(__name__)


class Run:
    """One launch of a task. Live while this process serves it; otherwise a stored record you can resume."""

    def __init__(self, project: Project, run_id: int) -> None:
        self.project = project
        self.store = project.store
        self.id = run_id
        row = self.store.get_run(run_id)
        self.config: dict[str, Any] = json.loads(row["config"])
        self.spec = TaskSpec.from_dict(self.config["task"])
        self.task_name: str = row["task_name"]
        self.task_id: int = row["task_id"]
        # warnings and errors logged for this run by this process, latest last ("ERROR crowdnb.service: …")
        self.errors: list[str] = project.problems.setdefault(run_id, [])
        # Python functions of the task (not storable): onboarding_validate, screening_validate, procedures
        self.hooks: dict[str, Any] = {"procedures": {}}
        self._listeners: list[Listener] = []
        self._frame = LiveFrame(
            self.store, "run", run_id, columns=lambda: self.spec.frame_columns(self.store.first_input(run_id))
        )
        self._gold = LiveFrame(self.store, "run", run_id, kind="gold")
        self.rulebook = Rules(self)
        self._service: Service | None = None
        self._remote: Remote | None = None  # the router runs elsewhere and this notebook operates it
        self.operator_hub: OperatorHub | None = None  # set by `crowdnb serve` before resuming

    # --- starting (crowdnb.starting) --------------------------------------------------------------
    @classmethod
    def launch(
        cls,
        project: Project,
        spec: TaskSpec,
        rows: list[dict[str, Any]] | Rows,
        provider: Any,
        architect: Any,
        provider_options: dict[str, Any],
        architect_options: dict[str, Any],
        hooks: dict[str, Any] | None = None,
    ) -> Run:
        """Create, store and start a run (see ``Task.launch``); a launch that fails leaves no run behind."""
        return starting.launch(
            cls, project, spec, rows, provider, architect, provider_options, architect_options, hooks
        )

    # --- what a user reads ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The address workers open (mock workers add ``?worker_id=NAME``)."""
        return str(self.store.get_run(self.id)["url"] or "")

    def worker_url(self, worker: str) -> str:
        """The link a given (mock) worker opens."""
        return self.provider_client().worker_url(self.url, worker)

    def link(self, worker: str | None = None) -> str:
        """The link to show a person in a notebook: through the Jupyter server's proxy when the kernel is remote.

        Without ``worker`` it opens the preview; with it, that (mock) worker's page.
        """
        from urllib.parse import urlsplit

        from .architects.links import browser_base

        base = browser_base(self.url)
        if worker is None:
            return base
        query = urlsplit(self.worker_url(worker)).query
        return f"{base}?{query}"

    @property
    def state(self) -> str:
        """running, completed or stopped."""
        if self._remote is not None:
            return self._remote.state
        return str(self.store.get_run(self.id)["status"])

    @property
    def monitor_error(self) -> str | None:
        """Why this run's monitor keeps failing and since when (``"monitor failing since 12:03:05 (4 ticks): …"``),
        or None while it works. Workers are served meanwhile; the monitor retries with a growing pause."""
        failing = self._service.monitor.failing if self._service and self._service.monitor else None
        return failing.describe() if failing else None

    def monitor_tick(self) -> None:
        """Do a round of the run's monitor now, in this thread, and raise what it raises: queued ``on_submit``
        callbacks and platform calls, then feed and launch units (within the caps and the budget), sync with
        the platform, release abandoned units and mark the run completed. The monitor does this by itself
        every half second; call it to see the effect of a change at once (a rejection that frees budget)."""
        if self._remote is not None:
            raise ConfigError(f"run {self.id} is served at {self.url}; its monitor runs there, not in this process")
        if self._service is None or self._service.monitor is None:
            raise ConfigError(f"run {self.id} is not served by this process; serve it again with run.resume()")
        self._service.monitor.tick()

    @property
    def serving(self) -> bool:
        """Whether this process serves the run, or operates the router that does."""
        return self._service is not None or self._remote is not None

    @property
    def operated(self) -> bool:
        """Whether the router runs elsewhere and this notebook operates it (``architect="process"``, ``ec2`` …)."""
        return self._remote is not None

    def decide_remotely(self, action: str, **args: Any) -> Any:
        """Apply a decision (``approve`` … ``grant``, ``block``, ``message``, ``worker_bonus``) on the router of a run
        this notebook operates, where its data lives; ``cn.grant`` and friends call this for you."""
        if self._remote is None:
            raise ConfigError(f"run {self.id} is not served elsewhere; decide here (run.approve, cn.grant …)")
        return self._remote.decide(action, **args)

    @property
    def counts(self) -> dict[str, int]:
        """Units by status."""
        if self._remote is not None:
            return self._remote.counts
        return self.store.unit_counts(self.id)

    @property
    def feed_token(self) -> str:
        """The token that lets a notebook elsewhere follow this run's submissions (``cn.attach``)."""
        return feed.token(self.store.get_run(self.id)["secret"], self.id)

    @property
    def metrics_token(self) -> str:
        """The bearer token that reads ``run.url + "metrics"`` (Prometheus' text format; it reads nothing else)."""
        return metrics.token(self.store.get_run(self.id)["secret"], self.id)

    @property
    def figures(self) -> dict[str, Any]:
        """Units and agents by state, spend, submissions, refusals by reason, connected pages: read from the
        series the run's ``/metrics`` serves (the live panel shows these)."""
        return self._remote.figures() if self._remote is not None else figures(self, self._service)

    @property
    def gold_df(self) -> pd.DataFrame:
        """The gold units workers submitted in this run (they are not in ``run.df``)."""
        return self._gold.refresh()

    @property
    def screening_df(self) -> pd.DataFrame:
        """The screening units workers submitted in this run (they are not in ``run.df``)."""
        return LiveFrame(self.store, "run", self.id, kind="screening").refresh()

    @property
    def spend(self) -> dict[str, float]:
        """Dollars so far: rewards paid, rewards pending review, bonuses, the provider's fees, total."""
        if self._remote is not None:
            return self._remote.spend
        return reports.spend(self.store, "run", self.id, self.provider_client().fee_rate)

    @property
    def provider_name(self) -> str:
        """The name of the run's provider (its workers' names are that provider's)."""
        return str(self.config["provider"]["name"])

    def provider_client(self) -> providers.Provider:
        """The live provider, or a new client of the stored one (for review after a stop)."""
        if self._service is not None:
            return self._service.provider
        return providers.create(self.config["provider"]["name"], self.store, **self.config["provider"]["options"])

    @property
    def df(self) -> pd.DataFrame:
        """One row per submitted unit so far: ids, worker, status, timing, inputs, answers (and ``calls``,
        how many calls its worker's page made, when the task has procedures; ``messages``, how many messages
        its worker sent, in a shared task)."""
        if self._remote is not None:
            return self._remote.df
        frame = self._frame.refresh()
        if self.spec.procedures or self.procedures:
            made = calls.per_unit(self.store, self.id)
            frame = frame.assign(calls=frame["unit_id"].map(made).fillna(0).astype("int64"))
        if self.spec.shared:
            said = rooms.per_unit(self.store, self.id)
            frame = frame.assign(messages=frame["unit_id"].map(said).fillna(0).astype("int64"))
        return frame

    @property
    def procedures(self) -> dict[str, Procedure]:
        """The procedures pages of this run can call, by name (register more with ``procedure``)."""
        registry: dict[str, Procedure] = self.hooks["procedures"]
        return registry

    def procedure(self, name: str, fn: Any, *, timeout: float = 10.0, concurrency: int = 4) -> None:
        """Register ``fn(args, worker) -> dict`` as procedure ``name`` (live at once; see ``Task.procedure``)."""
        found = procedure(name, fn, timeout, concurrency)
        self.procedures[found.name] = found

    @property
    def calls_df(self) -> pd.DataFrame:
        """Every call workers' pages made to procedures: who, which unit, args, result or error, timing."""
        return calls_frame(calls.of_run(self.store, self.id))

    @property
    def messages_df(self) -> pd.DataFrame:
        """Every message and event of the run's shared assignments, room by room in order (the transcripts)."""
        return messages_frame(rooms.of_run(self.store, self.id))

    def transcript(self, assignment_id: int) -> pd.DataFrame:
        """The messages and events of one shared assignment, in order."""
        frame = self.messages_df
        return frame[frame["assignment_id"] == int(assignment_id)].reset_index(drop=True)

    # --- rules ---------------------------------------------------------------------------------
    def rule(
        self,
        name: str,
        when: Predicate,
        action: str,
        *,
        on: str = "submission",
        note: str | None = None,
        amount: float | None = None,
        qualification: str | None = None,
        value: int = 1,
        every: float = EVERY,
        active: bool = True,
    ) -> Rule:
        """Act on its own: when ``when(row[, frame])`` is true, do ``action`` (to a row of ``run.df``, or with
        ``on="worker"`` of ``run.worker_df``); the monitor runs it on each submission and every ``every`` s.
        ``active=False`` holds it back for ``rule.dry_run()``. Not stored: register it again before
        ``run.resume()``. Actions and options: ``crowdnb.rules``."""
        found = Rule(self, name, when, action, on=on, note=note, amount=amount, qualification=qualification,
                     value=value, every=every, active=active)  # fmt: skip
        return self.rulebook.add(found)

    @property
    def rules(self) -> dict[str, Rule]:
        """The rules registered in this process, by name (``rule.dry_run()``, ``rule.history`` …)."""
        return self.rulebook.by_name()

    def remove_rule(self, name: str) -> None:
        """Stop and forget the rule ``name`` (also one stored by an earlier process that was not registered again)."""
        self.rulebook.remove(name)

    @property
    def worker_df(self) -> pd.DataFrame:
        """One record per worker who submitted in this run: units by status, time, gold accuracy,
        qualifications, blocked (what worker rules see; see ``crowdnb.records``)."""
        return Frames(self).workers

    def on_submit(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call ``callback(event)`` after each new submission is stored.

        Callbacks run on the run's monitor thread, soon after the submission (a worker's request never waits
        for them); ``event`` holds ``submission_id``, ``unit_id``, ``agent_id``, ``run_id`` and ``answers``.
        """
        if not callable(callback):
            raise ConfigError(f"on_submit needs a function; got {callback!r}")
        self._listeners.append(callback)

    def wait(self, timeout: float | None = None, poll: float = 0.2) -> bool:
        """Block until the run is completed or stopped (scripts only: never in a notebook cell)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.state == "running":
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    # --- stopping and resuming -----------------------------------------------------------------
    def stop(self) -> None:
        """Stop cleanly: expire outstanding units, close worker sockets, free the port."""
        with logs.bound(project=self.project.root, run=self.id):
            self._stop()

    def detach(self) -> None:
        """Leave a run served elsewhere going without this notebook (``run.resume()`` reattaches to it)."""
        remote, self._remote = self._remote, None
        if remote is None:
            raise ConfigError(f"run {self.id} is not served elsewhere; run.stop() stops it")
        remote.detach()
        self.project.served.pop(self.id, None)

    def _stop(self) -> None:
        service, self._service = self._service, None
        remote, self._remote = self._remote, None
        if remote is None and service is None:
            remote = left_serving(self)  # an earlier kernel left it serving elsewhere: it is stopped there
        if remote is not None:
            try:
                remote.stop()
            except BaseException:
                self._remote = remote  # still serving there: stop() again later
                raise
            self.project.served.pop(self.id, None)
            log.info("run %s stopped; its rows are home", self.id)
            return
        self.project.served.pop(self.id, None)
        if service is not None:
            self.store.update_run(self.id, status="stopped", stopped_at=now())
            service.stop()
        elif self.state == "running":  # a crashed process left it "running"
            lifecycle.expire_run(self.store, self.id)
            self.store.update_run(self.id, status="stopped", stopped_at=now())
        log.info("run %s stopped", self.id)

    def resume(
        self,
        data: Any = None,
        provider: providers.Provider | None = None,
        architect: architects.Architect | None = None,
        onboarding_validate: Callable[[dict[str, Any]], bool] | None = None,
        screening_validate: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None,
    ) -> Run:
        """Serve a stopped (or crashed) run again with its stored configuration.

        ``data`` feeds more rows; ``provider`` is needed only for a provider that was passed as an object,
        ``architect`` serves the run somewhere else than it was (``crowdnb serve``),
        ``onboarding_validate`` / ``screening_validate`` for an onboarding judged by a function and for
        screening (functions are not stored).
        """
        starting.resume(self, data, provider, architect, onboarding_validate, screening_validate)
        return self

    # --- review and export ---------------------------------------------------------------------
    def approve(self, unit_ids: int | Iterable[int], note: str | None = None, bonus: float | None = None) -> int:
        """Accept and pay submitted units, optionally with a bonus each; approving twice pays once.

        Returns how many units changed. A run served elsewhere applies it there, over the operator channel.
        """
        ids = _ids(unit_ids)
        if self._remote is not None:
            return int(self._remote.decide("approve", unit_ids=list(ids), note=note, bonus=bonus))
        changed = decisions.decide(self, ids, S.ACCEPTED, note)
        if bonus is not None:
            decisions.bonus(self, ids, bonus, note or "Thank you for your careful work.", key="with-approval")
        return changed

    def reject(self, unit_ids: int | Iterable[int], note: str | None = None) -> int:
        """Reject submitted units (not paid); the note is what the worker reads."""
        if self._remote is not None:
            return int(self._remote.decide("reject", unit_ids=list(_ids(unit_ids)), note=note))
        return decisions.decide(self, _ids(unit_ids), S.REJECTED, note)

    def soft_reject(self, unit_ids: int | Iterable[int], note: str | None = None) -> int:
        """Pay for units but mark the work as unusable."""
        if self._remote is not None:
            return int(self._remote.decide("soft_reject", unit_ids=list(_ids(unit_ids)), note=note))
        return decisions.decide(self, _ids(unit_ids), S.SOFT_REJECTED, note)

    def flag(self, unit_ids: int | Iterable[int], note: str | None = None) -> int:
        """Hold submitted units for a person's review: rules see them as ``flagged``; returns how many were new."""
        from .store.audit import flag

        return sum(flag(self.store, unit_id, "requester", note) for unit_id in _ids(unit_ids))

    def bonus(self, unit_ids: int | Iterable[int], amount: float, reason: str, key: str | None = None) -> int:
        """Pay the workers of submitted units a bonus; the same bonus repeated is paid once (see ``key``)."""
        if self._remote is not None:
            return int(
                self._remote.decide("bonus", unit_ids=list(_ids(unit_ids)), amount=amount, reason=reason, key=key)
            )
        return decisions.bonus(self, _ids(unit_ids), amount, reason, key)

    def export(self, path: str | Path) -> Path:
        """Write this run's submissions to CSV, Parquet or JSONL (by suffix), uploaded files alongside; a live
        task's messages and calls go beside it in the same format (``<name>.messages.csv``, ``<name>.calls.csv``)."""
        from .frame.export import export_frame

        written = export_frame(self.df, Path(path), self.store.root, reports.uploaded_files(self.store, "run", self.id))
        beside = {
            "messages": self.messages_df if self.spec.shared else None,
            "calls": self.calls_df if self.spec.procedures or self.procedures else None,
        }
        for part, frame in beside.items():
            if frame is not None and len(frame):
                export_frame(frame, written.with_name(f"{written.stem}.{part}{written.suffix}"), self.store.root)
        return written

    def live(self, interval: float = 1.0) -> Any:
        """A widget that follows the run: progress, rate, time left, cost, latest submissions, charts."""
        return views().live(self, interval)

    def review(self, page_size: int = 20) -> Any:
        """A widget table to approve, reject, soft-reject and bonus submitted units."""
        return views().review(self, page_size)

    def _repr_html_(self) -> str:
        counts = self.counts
        rows: dict[str, object] = {"state": self._state_shown(), "url": self.url if self.serving else "(not served)"}
        rows.update({status.replace("_", "-"): n for status, n in counts.items() if n})
        return summary_table(f"Run {self.id} of {self.task_name}", rows)

    def __repr__(self) -> str:
        counts = self.counts
        done = sum(counts[s] for s in S.UNIT_SUBMITTED)
        return f"<Run {self.id} of {self.task_name!r}: {self._state_shown()}, {done}/{sum(counts.values())} units submitted, {self.url}>"

    def _state_shown(self) -> str:
        error = self.monitor_error
        return f"{self.state} ({error})" if error else self.state


def _ids(unit_ids: int | Iterable[int]) -> Sequence[int]:
    """Unit ids from an int, a numpy integer, a Series or any iterable of them."""
    if isinstance(unit_ids, (int, numbers.Integral)):  # numpy integers from a DataFrame too
        return [int(unit_ids)]
    return [int(u) for u in unit_ids]
