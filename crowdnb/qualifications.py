"""Granting, revoking and blocking: qualification values on workers, recorded locally and on the provider.

Each change is written to the store first (with an audit row) and then pushed to the provider, so the
local record is the truth even when a platform call fails.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from . import providers, reports
from .errors import ConfigError, NotFound, ProviderError
from .project import ProjectLike, as_project
from .requirements import BLOCKED, check_name, platform_of

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)


def apply_qualification(
    store: Store,
    platform: providers.Provider,
    worker: str,
    name: str,
    value: int | None,
    actor: str,
    note: str | None = None,
    best_effort: bool = False,
) -> bool:
    """Set (``value``) or remove (``None``) a qualification in the store, then on the platform if it changed.

    ``best_effort``: inside a worker's request (onboarding, gold, screening) a platform that is down must
    not turn saved answers into an error page; the store holds the value and dispatch enforces it, and a
    provider with an outbox (MTurk) sends the push later.
    """
    changed = store.set_qualification(platform.name, worker, name, value, actor, note=note)
    try:
        if changed and value is None:
            platform.revoke_qualification(worker, name)
        elif changed:
            platform.grant_qualification(worker, name, int(value or 0))
    except ProviderError as exc:
        if not best_effort:
            raise
        log.warning("qualification %s of a worker kept here but not pushed to %s: %s", name, platform.name, exc)
    return changed


def _not_the_block(name: str) -> None:
    check_name(name)
    if name == BLOCKED:  # a block needs a reason and the provider's own block call
        raise ConfigError(f"{BLOCKED!r} is set by cn.block(worker, reason) and lifted by cn.unblock(worker)")
    if platform_of(name) is not None:
        raise ConfigError(
            f"{name!r} is kept by {platform_of(name)} itself; require it in a task, crowdnb cannot grant it"
        )


def grant(
    worker: str,
    name: str,
    value: int = 1,
    *,
    provider: str = "mock",
    project: ProjectLike = None,
    actor: str = "requester",
) -> int:
    """Give ``worker`` the qualification ``name`` with ``value`` (granting again updates it); returns the value."""
    _not_the_block(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"qualification value {value!r} must be a whole number")
    where = as_project(project)
    apply_qualification(where.store, providers.create(provider, where.store), worker, name, value, actor)
    return value


def revoke(
    worker: str, name: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> bool:
    """Take the qualification ``name`` away from ``worker``; False if they did not have it."""
    _not_the_block(name)
    where = as_project(project)
    return apply_qualification(where.store, providers.create(provider, where.store), worker, name, None, actor)


def block(
    worker: str, reason: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> bool:
    """Stop ``worker`` from getting units of any task (and block them on the provider); False if already blocked."""
    if not reason or not reason.strip():
        raise ConfigError("a block needs a reason (it is kept in the audit log)")
    where = as_project(project)
    platform = providers.create(provider, where.store)
    changed = where.store.set_qualification(provider, worker, BLOCKED, 1, actor, note=reason)
    if changed:
        platform.block(worker, reason)
    return changed


def unblock(worker: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester") -> bool:
    """Lift a block; False if the worker was not blocked."""
    where = as_project(project)
    platform = providers.create(provider, where.store)
    changed = where.store.set_qualification(provider, worker, BLOCKED, None, actor)
    if changed:
        platform.unblock(worker)
    return changed


def define(name: str, description: str = "", *, project: ProjectLike = None, actor: str = "requester") -> bool:
    """Create the qualification ``name`` (or change its description); False if it already read so."""
    _not_the_block(name)
    return as_project(project).store.define_qualification(name, description, actor)


def describe(name: str, *, project: ProjectLike = None) -> pd.DataFrame:
    """The qualification ``name``: its description and every worker holding it with their value."""
    check_name(name)
    rows = reports.qualification_holders(as_project(project).store, name)
    if not rows:
        raise NotFound(f"no qualification {name!r}; create it with cn.define_qualification({name!r}, description)")
    return pd.DataFrame(rows)


def delete(name: str, *, project: ProjectLike = None, actor: str = "requester") -> int:
    """Delete the qualification ``name`` and every grant of it (revoked on the providers too); returns how many held it."""
    _not_the_block(name)
    where = as_project(project)
    holders = where.store.delete_qualification(name, actor)
    for provider, worker in holders:
        providers.create(provider, where.store).revoke_qualification(worker, name)
    return len(holders)
