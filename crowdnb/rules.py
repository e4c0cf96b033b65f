"""Rules that act on their own: a Python predicate over a run's submissions or workers, and an action.

>>> run.rule("too-fast", lambda s, df: s.duration_s < df.duration_s.median() / 4, "soft_reject",
...          note="Too quick to have read the sentence.")
>>> run.rule("auto-approve", lambda s: s.age_hours >= 24 and not s.flagged, "approve")
>>> run.rule("accurate", lambda w: w.gold_accuracy >= 0.9, "bonus", on="worker", amount=0.5, note="Thanks!")
>>> run.rule("gold-failures", lambda w: w.gold_wrong >= 3, "block", on="worker", note="Check questions wrong")
>>> run.rules["too-fast"].dry_run()     # what it would have done to the data so far; changes nothing

A submission rule's predicate gets a row of ``run.df`` with two more fields, ``age_hours`` (since it was
submitted) and ``flagged``; a worker rule's gets a row of ``run.worker_df``. If the function takes a second
parameter, it gets the whole frame (for medians and shares). Rules run in the run's monitor thread, never
inside a worker's request: at the first tick after a submission arrives (or a unit's status changes), over
the rows that changed (over every open row if the rule reads the whole frame, whose median or share has
moved), and over every open row each ``every`` seconds (time-based rules such as auto-approval). A row is
open while the action could still change it: a unit awaiting review, a bonus not yet paid, a worker not
yet blocked; the predicate is not called on the others.

Actions: ``approve``, ``reject``, ``soft_reject`` and ``flag`` (submission rules; ``note=`` is what the
worker reads, or the flag's reason); ``bonus`` (``amount=`` dollars, ``note=`` the reason: a submission rule
pays the unit's worker, a worker rule the worker, once per run, booked on their latest unit); ``block``
(``note=`` the reason), ``grant`` and ``revoke`` (``qualification=``, ``value=``) act on a worker: a
submission rule's, the row's worker. A failing predicate or action is logged (and so in ``run.errors``)
and kept in ``rule.errors``; the other rules and the run go on.

Actions go through the same decision functions as ``run.approve`` and ``cn.block``, with the actor
``rule:<name>`` in the audit log, and move money once: a decision applies only to a unit still awaiting
review (a rule never overrides a person), a bonus is keyed by rule and unit (by rule, run and worker for a
worker's bonus), and a block or grant that would change nothing is not sent.

Rules are Python functions, so they are not stored: the run keeps their names and options, and
``run.resume()`` refuses to start until each is registered again (or removed with ``run.remove_rule``).
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from .errors import ConfigError, CrowdError
from .providers import decisions
from .quality.qualifications import check_grantable
from .records import Frames
from .store import audit
from .store import states as S

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

DECISIONS = {"approve": S.ACCEPTED, "reject": S.REJECTED, "soft_reject": S.SOFT_REJECTED}
UNIT_ACTIONS = (*DECISIONS, "flag")  # what only a submission rule can do
WORKER_ACTIONS = ("block", "grant", "revoke")  # done to a worker (a submission rule: the row's worker)
ACTIONS = (*UNIT_ACTIONS, "bonus", *WORKER_ACTIONS)
ON = ("submission", "worker")
EVERY = 60.0  # seconds between two passes of a rule over every row
MAX_ERRORS = 20  # a rule keeps its latest errors
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]{0,63}$")
_OUTPUT = ["rule", "action", "amount", "qualification", "note"]

Predicate = Callable[..., Any]


class Rule:
    """One rule of a run: ``when(row[, frame])`` true → ``action``. Made by ``run.rule(...)``."""

    def __init__(
        self,
        run: Run,
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
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"rule name {name!r} must be 1-64 letters, digits, spaces, '_', '.' or '-'")
        if action not in ACTIONS:
            raise ConfigError(f"rule {name!r}: unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        if on not in ON:
            raise ConfigError(f"rule {name!r}: on={on!r}; use on='submission' (a row of run.df) or on='worker'")
        if on == "worker" and action in UNIT_ACTIONS:
            raise ConfigError(
                f"rule {name!r}: {action!r} acts on a submission; use on='submission', or a worker action "
                f"({', '.join(('bonus', *WORKER_ACTIONS))})"
            )
        self.wants_frame = _wants_frame(name, when)
        if action == "bonus":
            decisions.check_bonus(amount, note or "")
        elif amount is not None:
            raise ConfigError(f"rule {name!r}: amount= is for action 'bonus', not {action!r}")
        if action in ("grant", "revoke"):
            if qualification is None:
                raise ConfigError(f"rule {name!r}: action {action!r} needs qualification='NAME'")
            check_grantable(qualification)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"rule {name!r}: value={value!r} must be a whole number")
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
            raise ConfigError(f"rule {name!r}: every={every!r} must be a positive number of seconds")
        self.run, self.name, self.when, self.action, self.on = run, name, when, action, on
        self.note = note if note is not None or action != "block" else f"blocked by rule {name}"
        self.amount, self.qualification, self.value, self.every = amount, qualification, value, float(every)
        self.active = bool(active)  # False: only dry_run and apply act (set it True to let the monitor run it)
        self.errors: list[str] = []  # the latest problems met while the rule ran on its own
        self.next_pass = 0.0  # time.monotonic() of the next pass over every row

    @property
    def actor(self) -> str:
        """Who the audit log says did it."""
        return f"rule:{self.name}"

    def dry_run(self, at: datetime | str | None = None) -> pd.DataFrame:
        """The rows this rule would act on now (or ``at`` a later time, for time-based rules), with the
        action; nothing is changed."""
        return self.plan(Frames(self.run, when=at))

    def apply(self) -> pd.DataFrame:
        """Run the rule once now over every row (as the monitor does); the rows acted on, with ``done``
        (whether it changed something) and ``error``."""
        return self.act(self.plan(Frames(self.run)))

    @property
    def history(self) -> pd.DataFrame:
        """What this rule did in this run (from the audit log), oldest first."""
        return pd.DataFrame(
            audit.history(self.run.store, self.run.id, self.actor),
            columns=["at", "action", "unit_id", "worker", "amount", "note", "details"],
        )

    # --- planning ------------------------------------------------------------------------------
    def plan(
        self, frames: Frames, units: Collection[int] | None = None, workers: Collection[str] | None = None
    ) -> pd.DataFrame:
        """The rows (all, or those of ``units``/``workers``) the rule would act on, with the action columns."""
        frame = frames.submissions if self.on == "submission" else frames.workers
        rows = frame
        if self.on == "submission" and units is not None:
            rows = frame[frame["unit_id"].isin(units)]
        elif self.on == "worker" and workers is not None:
            rows = frame[frame["worker"].isin(workers)]
        rows = rows[self._open(rows, frames)]
        hits = [self._test(row, frame) for _, row in rows.iterrows()]
        chosen = rows[pd.Series(hits, index=rows.index, dtype=bool)] if len(rows) else rows
        if self.on == "submission" and self.action in WORKER_ACTIONS:
            chosen = chosen.drop_duplicates("worker")  # once per worker
        extra = pd.DataFrame(
            {
                "rule": self.name,
                "action": self.action,
                "amount": self.amount,
                "qualification": self.qualification,
                "note": self.note,
            },
            index=chosen.index,
        )
        return pd.concat([extra, chosen], axis=1)[[*_OUTPUT, *chosen.columns]].reset_index(drop=True)

    def _test(self, row: pd.Series, frame: pd.DataFrame) -> bool:
        where = f"unit {row['unit_id']}" if self.on == "submission" else f"worker {row['worker']}"
        try:
            return bool(self.when(row, frame) if self.wants_frame else self.when(row))
        except Exception as exc:
            raise RuleError(f"rule {self.name!r} failed on {where}: {type(exc).__name__}: {exc}") from exc

    def _open(self, rows: pd.DataFrame, frames: Frames) -> pd.Series:
        """Which rows the action could still change (the rest are left out before the predicate runs)."""
        action, store = self.action, self.run.store
        if action in DECISIONS:
            return rows["status"] == S.COMPLETED
        if action == "flag":
            taken = audit.keys_used(store, (f"flag:{u}:{self.actor}" for u in rows["unit_id"]))
            return ~rows["unit_id"].map(lambda u: f"flag:{u}:{self.actor}" in taken).astype(bool)
        if action == "bonus":
            keys = (
                rows["unit_id"].map(self._bonus_key) if self.on == "submission" else rows["worker"].map(self._bonus_key)
            )
            taken = audit.keys_used(store, keys)
            return ~keys.isin(taken).astype(bool)
        held = frames.qualifications(rows["worker"])
        if action == "block":
            return ~rows["worker"].map(lambda w: held[w].get(frames.blocked_name) is not None).astype(bool)
        if action == "grant":
            return rows["worker"].map(lambda w: held[w].get(str(self.qualification)) != self.value).astype(bool)
        return rows["worker"].map(lambda w: self.qualification in held[w]).astype(bool)  # revoke

    def _bonus_key(self, target: Any) -> str:
        if self.on == "submission":
            return decisions.bonus_key(int(target), self.actor)
        return decisions.worker_bonus_key(self.run.provider_name, str(target), self._worker_key)

    @property
    def _worker_key(self) -> str:
        return f"{self.actor}:run{self.run.id}"  # a worker's bonus: once per rule and run

    # --- acting --------------------------------------------------------------------------------
    def act(self, plan: pd.DataFrame) -> pd.DataFrame:
        """Carry out a plan; adds ``done`` and ``error`` columns (an error is also kept in ``errors``)."""
        done: list[bool] = []
        failed: list[str | None] = []
        provider = self.run.provider_client() if len(plan) else None
        for _, row in plan.iterrows():
            try:
                done.append(self._do(row, provider))
                failed.append(None)
            except CrowdError as exc:
                message = f"rule {self.name!r}: {self.action} {_target(row)} failed: {exc}"
                log.warning("%s", message)
                self._remember(message)
                done.append(False)
                failed.append(str(exc))
        errors = pd.Series(failed, index=plan.index, dtype=object)
        return plan.assign(done=pd.Series(done, index=plan.index, dtype=bool), error=errors)

    def _do(self, row: pd.Series, provider: Any) -> bool:
        run, actor, action = self.run, self.actor, self.action
        if action in DECISIONS:
            return (
                decisions.decide(run, [int(row["unit_id"])], DECISIONS[action], self.note, actor, pending_only=True) > 0
            )
        if action == "flag":
            return audit.flag(run.store, int(row["unit_id"]), actor, self.note)
        if action == "bonus" and self.on == "submission":
            amount, reason = float(self.amount or 0), str(self.note)
            return decisions.bonus(run, [int(row["unit_id"])], amount, reason, key=actor, actor=actor) > 0
        worker, store = str(row["worker"]), run.store
        if action == "bonus":
            return decisions.run_bonus(run, worker, float(self.amount or 0), str(self.note), self._worker_key, actor)
        if action == "block":
            return decisions.block(store, provider, worker, str(self.note), actor)
        if action == "grant":
            decisions.grant(store, provider, worker, str(self.qualification), self.value, actor)
            return True  # only workers who did not hold the value are planned
        return decisions.revoke(store, provider, worker, str(self.qualification), actor)

    def _remember(self, message: str) -> None:
        self.errors = [*self.errors[-(MAX_ERRORS - 1) :], message]

    def to_dict(self) -> dict[str, Any]:
        """What the run stores about the rule (not its function: the source text, when it can be read)."""
        return {
            "name": self.name, "on": self.on, "action": self.action, "note": self.note, "amount": self.amount,
            "qualification": self.qualification, "value": self.value, "every": self.every, "when": _source(self.when),
        }  # fmt: skip

    def __repr__(self) -> str:
        return f"<Rule {self.name!r} of run {self.run.id}: on each {self.on}, {self.action} when {_source(self.when) or self.when!r}>"


class RuleError(ConfigError):
    """A rule's predicate raised (``dry_run`` and ``apply`` raise it; the monitor logs it)."""


class Rules:
    """The rules of one run, in the order they were added, and the monitor's pass over them."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self._rules: dict[str, Rule] = {}
        self._lock = threading.Lock()
        self._cursor = 0  # the newest submission revision the rules have seen
        self.elsewhere = False  # True: served by a process that cannot have the functions (crowdnb serve)

    def add(self, rule: Rule) -> Rule:
        """Register ``rule`` (replacing one of the same name) and keep its description with the run."""
        self.check_here()
        with self._lock:
            self._rules[rule.name] = rule
            stored = [r for r in self.stored() if r["name"] != rule.name]
            self._store([*stored, rule.to_dict()])
        return rule

    def remove(self, name: str) -> None:
        """Forget the rule ``name`` here and in the run's stored configuration."""
        with self._lock:
            stored = self.stored()
            if name not in self._rules and name not in {r["name"] for r in stored}:
                known = ", ".join(repr(r["name"]) for r in stored) or "none"
                raise ConfigError(f"run {self.run.id} has no rule {name!r}; its rules: {known}")
            self._rules.pop(name, None)
            self._store([r for r in stored if r["name"] != name])

    def all(self) -> list[Rule]:
        """The registered rules, in the order they were added."""
        with self._lock:
            return list(self._rules.values())

    def by_name(self) -> dict[str, Rule]:
        """The registered rules by name."""
        with self._lock:
            return dict(self._rules)

    def stored(self) -> list[dict[str, Any]]:
        """The rules the run's stored configuration names (functions or not registered here)."""
        rules: list[dict[str, Any]] = self._config().get("rules", [])
        return rules

    def check_here(self, remote: bool = False) -> None:
        """Refuse rules for a run whose router (and so its data) runs elsewhere (``remote``: about to): there
        they would never act."""
        stored = [r["name"] for r in self.stored()] if remote else []
        if self.run.operated or stored:
            raise ConfigError(
                f"run {self.run.id} is served by a router elsewhere, where rules cannot act yet: serve it with "
                "architect='local', or stop it (its rows come home) and use rule.apply()"
                + (f"; or remove its rules first: run.remove_rule({stored[0]!r})" if stored else "")
            )

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.run.store.get_run(self.run.id)["config"])
        return config

    def check_registered(self) -> None:
        """Refuse to resume while a stored rule has no function in this process."""
        if self.elsewhere:
            return
        missing = [r["name"] for r in self.stored() if r["name"] not in self.by_name()]
        if missing:
            names = ", ".join(map(repr, missing))
            raise ConfigError(
                f"run {self.run.id} has rules whose functions are not stored: {names}; register each again with "
                f"run.rule(name, when, action, …) before run.resume(), or run.remove_rule({missing[0]!r}) to go on without it"
            )

    def _store(self, rules: list[dict[str, Any]]) -> None:
        config = self._config()  # the run's whole configuration, rules being one entry of it
        self.run.store.update_run(self.run.id, config=json.dumps({**config, "rules": rules}))

    def tick(self, clock: Callable[[], float] = time.monotonic) -> None:
        """The monitor's turn: rules over what changed since the last tick, and full passes that are due."""
        rules = [rule for rule in self.all() if rule.active]
        if not rules:
            return
        changes = audit.changes_since(self.run.store, self.run.id, self._cursor)
        moment = clock()
        due = {r.name for r in rules if moment >= r.next_pass}
        if not changes and not due:
            return
        if changes:
            self._cursor = max(int(c["rev"]) for c in changes)
        units = {int(c["unit_id"]) for c in changes}
        workers = {str(c["worker"]) for c in changes}
        frames = Frames(self.run)
        for rule in rules:
            whole = rule.name in due
            if whole:
                rule.next_pass = moment + rule.every
            # a rule that reads the whole frame (a median, a share) may see any open row anew after a change
            whole = whole or (rule.wants_frame and bool(changes))
            try:
                plan = rule.plan(frames) if whole else rule.plan(frames, units, workers)
            except CrowdError as exc:
                log.warning("%s", exc)
                rule._remember(str(exc))
                continue
            if len(plan):
                rule.act(plan)


def _wants_frame(name: str, when: object) -> bool:
    """Whether ``when`` takes the whole frame as a second argument; ``ConfigError`` if it is no predicate."""
    usage = f"rule {name!r}: when= must be a function of a row, or of a row and the whole frame: when(row[, frame])"
    if not callable(when):
        raise ConfigError(f"{usage}; got {when!r}")
    try:
        parameters = list(inspect.signature(when).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: give it the row only
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return len(required) <= 2
    if not positional or len(required) > 2:
        raise ConfigError(f"{usage}; it takes {len(required)} arguments")
    return len(positional) >= 2


def _source(fn: object) -> str | None:
    try:
        text = inspect.getsource(fn)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None
    return text.strip()[:2000]


def _target(row: pd.Series) -> str:
    return f"unit {row['unit_id']}" if "unit_id" in row.index else f"worker {row['worker']}"
