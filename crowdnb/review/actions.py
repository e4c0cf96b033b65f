"""What a reviewer asks the review web app to do, carried out by crowdnb's own functions.

Unit actions (``approve``, ``reject``, ``soft-reject``, ``bonus``) go through the unit's run
(``Run.approve`` …); worker actions (``block``, ``unblock``, ``message``, ``bonus``, ``grant``,
``revoke``) go through ``cn.block`` … on a named worker or on the workers of the given units. The app
adds no decision logic of its own, so approving twice still pays once.

One vocabulary serves the HTML forms and the JSON API::

    unit_ids       the units to act on (ids as numbers or strings: they exceed JavaScript's safe integers)
    worker         the worker to act on ("provider:name" in a form; "worker" + "provider" in JSON)
    note           what the worker reads: approve/reject note, bonus reason, block reason, message text
    bonus          dollars: an optional bonus with approve, the amount of a bonus
    qualification  the qualification to grant or revoke, and its integer ``value`` (default 1)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotFound
from ..quality.requirements import BLOCKED
from ..workers import block, grant, message, revoke, unblock
from ..workers import bonus as worker_bonus

if TYPE_CHECKING:
    from werkzeug.datastructures import MultiDict

    from ..project import Project
    from ..run import Run

UNIT_ACTIONS = ("approve", "reject", "soft-reject", "bonus")
WORKER_ACTIONS = ("block", "unblock", "message", "bonus", "grant", "revoke")
ACTIONS = tuple(dict.fromkeys(UNIT_ACTIONS + WORKER_ACTIONS))


@dataclass(frozen=True)
class Ask:
    """One reviewer request: which units or worker, and the note, amount and qualification it carries."""

    unit_ids: tuple[int, ...] = ()
    worker: tuple[str, str] | None = None  # (provider, name)
    note: str | None = None
    bonus: float | None = None
    qualification: str = ""
    value: int = 1


@dataclass(frozen=True)
class Outcome:
    """What an action changed: how many of how many, and a sentence for the reviewer."""

    action: str
    changed: int
    asked: int
    message: str


def ask_from_form(form: MultiDict[str, str]) -> Ask:
    """An ``Ask`` from a review page's form: a row's own button (``unit``) wins over the ticked boxes."""
    single = form.get("unit", "").strip()
    ids = _unit_ids([single] if single else form.getlist("unit_ids"))
    worker = None
    if form.get("worker", "").strip():
        provider, _, name = form["worker"].partition(":")
        if not name:
            raise ConfigError(f"worker {form['worker']!r} must be written provider:name, e.g. mock:alice")
        worker = (provider, name)
    elif form.get("worker_name", "").strip():  # typed into a grant form
        worker = (form.get("provider_name", "").strip() or "mock", form["worker_name"].strip())
    return Ask(
        ids,
        worker,
        form.get("note", "").strip() or None,
        _dollars(form.get("bonus", "")),
        form.get("qualification", "").strip(),
        _whole(form.get("value", "") or 1),
    )


def ask_from_json(body: object) -> Ask:
    """An ``Ask`` from a JSON API body (see the module docstring for the keys)."""
    if not isinstance(body, Mapping):
        raise ConfigError('send a JSON object, e.g. {"unit_ids": ["123"], "note": "Thanks!"}')
    raw_ids = body.get("unit_ids", [])
    if not isinstance(raw_ids, list):
        raise ConfigError(f"unit_ids must be a list of unit ids; got {raw_ids!r}")
    worker = None
    if body.get("worker") is not None:
        name, provider = body["worker"], body.get("provider", "mock")
        if not isinstance(name, str) or not name or not isinstance(provider, str) or not provider:
            raise ConfigError(f"worker and provider must be non-empty strings; got {name!r} and {provider!r}")
        worker = (provider, name)
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise ConfigError(f"note must be a string; got {note!r}")
    qualification = body.get("qualification") or ""
    if not isinstance(qualification, str):
        raise ConfigError(f"qualification must be a string; got {qualification!r}")
    return Ask(
        _unit_ids(raw_ids),
        worker,
        (note or "").strip() or None,
        _dollars(body.get("bonus")),
        qualification.strip(),
        _whole(body.get("value", 1)),
    )


def perform(project: Project, action: str, ask: Ask) -> Outcome:
    """Carry out ``action``: on the worker if one is named (worker actions), else on the units."""
    if action not in ACTIONS:
        raise NotFound(f"no review action {action!r}; actions: {', '.join(ACTIONS)}")
    if action in ("grant", "revoke") and ask.qualification == BLOCKED:
        if action == "grant":  # a block carries a reason and reaches the provider: cn.block does both
            raise ConfigError(f"{BLOCKED!r} is granted by blocking: use Block, with the reason as the note")
        action = "unblock"
    if action in WORKER_ACTIONS and (ask.worker is not None or action not in UNIT_ACTIONS):
        return _on_workers(project, action, ask)
    return _on_units(project, action, ask)


def _on_units(project: Project, action: str, ask: Ask) -> Outcome:
    if ask.worker is not None:
        raise ConfigError(f"{action} acts on units: tick units instead of naming a worker")
    if not ask.unit_ids:
        raise ConfigError(f"select the units to {action} first")
    by_run: dict[int, list[int]] = {}
    for unit_id in ask.unit_ids:
        by_run.setdefault(int(project.store.get_unit(unit_id)["task_run_id"]), []).append(unit_id)
    changed = 0
    for run_id, ids in by_run.items():
        run = project.run(run_id)
        if action == "approve":
            changed += run.approve(ids, note=ask.note, bonus=ask.bonus)
        elif action == "reject":
            changed += run.reject(ids, note=ask.note)
        elif action == "soft-reject":
            changed += run.soft_reject(ids, note=ask.note)
        else:
            if ask.bonus is None:
                raise ConfigError("a bonus needs an amount in dollars, e.g. 0.25")
            changed += run.bonus(ids, ask.bonus, ask.note or "")
    done = {"approve": "approved", "reject": "rejected", "soft-reject": "soft-rejected"}.get(action)
    verb = done or f"bonus ${ask.bonus:.2f} paid for"
    extra = f" (with a ${ask.bonus:.2f} bonus each)" if action == "approve" and ask.bonus else ""
    skipped = len(ask.unit_ids) - changed
    already = f" ({skipped} unchanged: done before)" if skipped else ""
    message = f"{verb} {changed} of {len(ask.unit_ids)} units{extra}{already}"
    return Outcome(action, changed, len(ask.unit_ids), message)


def _on_workers(project: Project, action: str, ask: Ask) -> Outcome:
    targets = [ask.worker] if ask.worker is not None else _workers_of(project, ask.unit_ids)
    if not targets:
        raise ConfigError(f"name a worker, or select units whose workers to {action}")
    note, changed = ask.note or "", 0
    for provider, name in targets:
        if action == "block":
            changed += block(name, note, provider=provider, project=project)
        elif action == "unblock":
            changed += unblock(name, provider=provider, project=project)
        elif action == "message":
            message(name, note, provider=provider, project=project)
            changed += 1
        elif action == "bonus":
            if ask.bonus is None:
                raise ConfigError("a bonus needs an amount in dollars, e.g. 0.25")
            changed += worker_bonus(name, ask.bonus, note, provider=provider, project=project)
        elif action == "grant":
            grant(name, ask.qualification, ask.value, provider=provider, project=project)
            changed += 1
        else:
            changed += revoke(name, ask.qualification, provider=provider, project=project)
    verb = {
        "block": "blocked",
        "unblock": "unblocked",
        "message": "messaged",
        "bonus": f"bonus ${ask.bonus or 0:.2f} paid to",
        "grant": f"granted {ask.qualification}={ask.value} to",
        "revoke": f"revoked {ask.qualification} from",
    }[action]
    names = ", ".join(name for _, name in targets[:5]) + (" …" if len(targets) > 5 else "")
    return Outcome(action, changed, len(targets), f"{verb} {changed} of {len(targets)} workers ({names})")


def _workers_of(project: Project, unit_ids: tuple[int, ...]) -> list[tuple[str, str]]:
    """The distinct (provider, worker) of the given units, in order."""
    runs: dict[int, Run] = {}
    found: dict[tuple[str, str], None] = {}
    for unit_id in unit_ids:
        unit = project.store.get_unit(unit_id)
        if unit["worker_id"] is None:
            raise ConfigError(f"unit {unit_id} has no worker yet")
        run_id = int(unit["task_run_id"])
        run = runs.setdefault(run_id, project.run(run_id))
        found[(str(run.config["provider"]["name"]), project.store.worker_name(int(unit["worker_id"])))] = None
    return list(found)


def _unit_ids(values: list[Any]) -> tuple[int, ...]:
    ids: list[int] = []
    for value in values:
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit():
            raise ConfigError(f"unit id {value!r} is not a unit id (a whole number, as a number or a string)")
        ids.append(int(text))
    return tuple(dict.fromkeys(ids))


def _dollars(value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ConfigError(f"bonus {value!r} must be a number of dollars")
    try:
        amount = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bonus {value!r} must be a number of dollars, e.g. 0.25") from exc
    if not math.isfinite(amount) or amount <= 0:
        raise ConfigError(f"bonus {value!r} must be a positive number of dollars")
    return amount


def _whole(value: object) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"qualification value {value!r} must be a whole number")
    try:
        number = int(str(value).strip())
    except ValueError as exc:
        raise ConfigError(f"qualification value {value!r} must be a whole number") from exc
    return number
