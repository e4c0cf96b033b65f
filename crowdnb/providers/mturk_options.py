"""The MTurk provider's options (``MTurkOptions``: each one's type, default and meaning, which
``crowdnb describe provider mturk`` shows), and the checks before a run goes to MTurk (HTTPS, whole
cents, spend)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..store import states as S
from . import RunInfo
from .mturk_requirements import GUARDS

if TYPE_CHECKING:
    from ..store.db import Store

DAY = 24 * 3600


@dataclass(frozen=True)
class MTurkOptions:
    """The ``provider_options`` of ``mturk`` and ``mturk_sandbox`` (stored with the run: never keys).

    Args:
        endpoint_url: another MTurk API address, such as a local fake's (``crowdnb.testing.mturk``); None: MTurk's own
        region: the AWS region of the MTurk API; None: us-east-1, the only one MTurk has
        allow_http: accept an http:// router URL, for a local fake endpoint only (MTurk shows HTTPS pages only)
        confirm_spend: live MTurk only: dollars that must cover the run's maximum cost (every unit not yet paid × (reward + MTurk's 20% fee), or the task's budget for generated data) before it is set up; the error states the figure
        poll_seconds: how often returned and abandoned assignments are read from MTurk (their units are offered again)
        auto_approval_delay: seconds after which MTurk approves work nobody reviewed (0 to 30 days)
        hit_lifetime: seconds each HIT stays listed on MTurk (30 s to a year)
        frame_height: height in pixels of the frame MTurk shows the page in; 0: the page's own height
        actions_guarded: what a worker who does not meet the requirements may not do: Accept, PreviewAndAccept or DiscoverPreviewAndAccept (the HIT is hidden from them)
        timeout: seconds each MTurk API call may take
        retry_delay: seconds before a failed call is tried again (doubled per retry)
    """

    endpoint_url: str | None = None
    region: str | None = None
    allow_http: bool = False
    confirm_spend: float | None = None
    poll_seconds: float = 30.0
    auto_approval_delay: int = 7 * DAY
    hit_lifetime: int = 7 * DAY
    frame_height: int = 0
    actions_guarded: str = "DiscoverPreviewAndAccept"
    timeout: float = 20.0
    retry_delay: float = 0.5


DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(MTurkOptions)}
_SECRETISH = ("key", "secret", "token", "password")


def parse(given: Mapping[str, object]) -> dict[str, Any]:
    """The options with their defaults; ``ConfigError`` for an unknown, bad or secret-looking one."""
    secret = [k for k in given if any(s in k.lower() for s in _SECRETISH)]
    if secret:
        raise ConfigError(
            f"MTurk keys are never taken from provider_options (they are stored with the run): got {', '.join(secret)}; "
            "run `crowdnb register mturk` or use the AWS credential chain"
        )
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown MTurk options {', '.join(unknown)}; known: {', '.join(DEFAULTS)}")
    out = {**DEFAULTS, **given}
    for name in ("poll_seconds", "timeout", "retry_delay", "auto_approval_delay", "hit_lifetime", "frame_height"):
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"MTurk option {name}={value!r} must be a number ≥ 0")
    if not 0 <= out["auto_approval_delay"] <= 30 * DAY:
        raise ConfigError(f"auto_approval_delay={out['auto_approval_delay']!r} must be 0 to 2592000 s (30 days)")
    if not 30 <= out["hit_lifetime"] <= 365 * DAY:
        raise ConfigError(f"hit_lifetime={out['hit_lifetime']!r} must be 30 to 31536000 s (a year)")
    if out["actions_guarded"] not in GUARDS:
        raise ConfigError(f"actions_guarded={out['actions_guarded']!r}; use one of {', '.join(GUARDS)}")
    spend = out["confirm_spend"]
    if spend is not None and (isinstance(spend, bool) or not isinstance(spend, (int, float)) or spend <= 0):
        raise ConfigError(f"confirm_spend={spend!r} must be a positive number of dollars")
    return out


def whole_cents(dollars: float) -> bool:
    """Whether ``dollars`` is a whole number of cents."""
    return abs(round(dollars * 100) - dollars * 100) < 1e-6


def check_run(run: RunInfo, allow_http: bool) -> None:
    """Refuse a run MTurk would refuse: not HTTPS, a reward in part-cents, a too long title …."""
    if not run.url.startswith("https://") and not allow_http:
        raise ConfigError(
            f"MTurk shows tasks only from HTTPS addresses and the run's URL is {run.url}: serve the router "
            "behind HTTPS (architect_options={'public_url': 'https://…'} with a tunnel or proxy). "
            "For a local fake endpoint only, pass provider_options={'allow_http': True}."
        )
    if run.reward < 0.01 or not whole_cents(run.reward):
        raise ConfigError(f"MTurk pays whole cents from $0.01; reward={run.reward!r} is not")
    if not 30 <= run.assignment_duration <= 365 * DAY:
        raise ConfigError(f"MTurk needs assignment_duration from 30 s to a year; got {run.assignment_duration}")
    for what, text, most in (("title", run.title, 128), ("description", run.description, 2000)):
        if len(text) > most:
            raise ConfigError(f"MTurk takes a {what} of at most {most} characters; this one has {len(text)}")
    if len(", ".join(run.tags)) > 1000:
        raise ConfigError("MTurk takes at most 1000 characters of keywords; shorten the task's tags")


def check_spend(store: Store, run: RunInfo, fee_rate: float, confirmed: float | None) -> None:
    """Refuse a live run whose maximum cost ``confirmed`` (the ``confirm_spend`` option) does not cover."""
    row = store.get_run(run.id)
    budget = json.loads(row["config"])["task"].get("budget")
    units = store.scalar(
        f"SELECT count(*) FROM units WHERE task_run_id = ? AND status IN {S.sql_in(S.UNIT_UNSETTLED)}",
        (run.id,),
    )
    per_unit = run.reward + max(run.reward * fee_rate, 0.01)
    cost = units * per_unit
    basis = f"{units} units × (${run.reward:.2f} reward + MTurk's fee)"
    if not row["data_exhausted"]:
        if budget is None:
            raise ConfigError(
                "live MTurk needs a maximum cost, and a task fed by a generator has none: set budget= on the Task"
            )
        cost, basis = float(budget), "the task's budget"
    elif budget is not None and budget < cost:
        cost, basis = float(budget), "the task's budget"
    if confirmed is None or confirmed + 1e-9 < cost:
        raise ConfigError(
            f"live MTurk spends real money: run {run.id} may cost up to ${cost:.2f} ({basis}; bonuses extra). "
            f"Launch again with provider_options={{'confirm_spend': {cost:.2f}}} to confirm, "
            "or try it first with provider='mturk_sandbox'."
        )
