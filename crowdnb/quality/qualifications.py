"""Qualification values on workers, recorded locally and then on the provider.

Each change is written to the store first (with an audit row) and then pushed to the provider, so the
local record is the truth even when a platform call fails. The requester's verbs (``cn.grant``,
``cn.block`` …) live in :mod:`crowdnb.workers`; onboarding, screening and gold call this directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConfigError, ProviderError
from .requirements import BLOCKED, check_name, platform_of

if TYPE_CHECKING:
    from ..providers import Provider
    from ..store.db import Store

log = logging.getLogger(__name__)

# later(what, job): run ``job`` outside the worker's request (the run's backlog, drained by its monitor);
# ``what`` names the job in logs. Onboarding, screening and gold are given one by the run.
Later = Callable[[str, Callable[[], None]], None]


def apply_qualification(
    store: Store,
    platform: Provider,
    worker: str,
    name: str,
    value: int | None,
    actor: str,
    note: str | None = None,
    best_effort: bool = False,
    later: Later | None = None,
) -> bool:
    """Set (``value``) or remove (``None``) a qualification in the store, then on the platform if it changed.

    ``best_effort``: inside a worker's request (onboarding, gold, screening) a platform that is down must
    not turn saved answers into an error page; the store holds the value and dispatch enforces it, and a
    provider with an outbox (MTurk) sends the push later. ``later``: push to the platform through it (out
    of the worker's request) instead of now; the store is written at once either way.
    """
    changed = store.set_qualification(platform.name, worker, name, value, actor, note=note)
    if not changed:
        return False

    def push() -> None:
        try:
            if value is None:
                platform.revoke_qualification(worker, name)
            else:
                platform.grant_qualification(worker, name, int(value))
        except ProviderError as exc:
            if not best_effort:
                raise
            log.warning("qualification %s of a worker kept here but not pushed to %s: %s", name, platform.name, exc)

    if later is None:
        push()
    else:
        later(f"pushing qualification {name} to {platform.name}", push)
    return True


def check_grantable(name: str) -> None:
    """Refuse a name the requester cannot grant: malformed, the block, or a platform's own qualification."""
    check_name(name)
    if name == BLOCKED:  # a block needs a reason and the provider's own block call
        raise ConfigError(f"{BLOCKED!r} is set by cn.block(worker, reason) and lifted by cn.unblock(worker)")
    if platform_of(name) is not None:
        raise ConfigError(
            f"{name!r} is kept by {platform_of(name)} itself; require it in a task, crowdnb cannot grant it"
        )
