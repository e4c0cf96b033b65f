"""What a requester does to workers, by name: grant, revoke, block, message and pay them; qualifications.

Each is a thin skin over :class:`crowdnb.worker.Worker` of the project (default: the current folder), so
the notebook, the command line and the review app record and send decisions the same way.
"""

from __future__ import annotations

import pandas as pd

from . import providers
from .errors import NotFound
from .project import ProjectLike, as_project
from .quality.qualifications import check_grantable
from .quality.requirements import check_name
from .store import reports
from .worker import Worker

__all__ = ["Worker", "block", "bonus", "define", "delete", "describe", "grant", "message", "revoke", "unblock"]


def _worker(worker: str, provider: str, project: ProjectLike, actor: str) -> Worker:
    return Worker(as_project(project, create=True), worker, provider, actor)


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
    return _worker(worker, provider, project, actor).grant(name, value)


def revoke(
    worker: str, name: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> bool:
    """Take the qualification ``name`` away from ``worker``; False if they did not have it."""
    return _worker(worker, provider, project, actor).revoke(name)


def block(
    worker: str, reason: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> bool:
    """Stop ``worker`` from getting units of any task (and block them on the provider); False if already blocked."""
    return _worker(worker, provider, project, actor).block(reason)


def unblock(worker: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester") -> bool:
    """Lift a block; False if the worker was not blocked."""
    return _worker(worker, provider, project, actor).unblock()


def message(
    worker: str, text: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> None:
    """Send ``worker`` a message through their provider (kept in the audit log)."""
    _worker(worker, provider, project, actor).message(text)


def bonus(
    worker: str,
    amount: float,
    reason: str,
    *,
    key: str | None = None,
    provider: str = "mock",
    project: ProjectLike = None,
    actor: str = "requester",
) -> bool:
    """Pay ``worker`` a bonus outside any unit (a make-up payment); once per ``key``. False if paid before.

    ``key`` defaults to the worker, amount and reason: the same bonus repeated is paid once.
    """
    return _worker(worker, provider, project, actor).bonus(amount, reason, key)


def define(name: str, description: str = "", *, project: ProjectLike = None, actor: str = "requester") -> bool:
    """Create the qualification ``name`` (or change its description); False if it already read so."""
    check_grantable(name)
    return as_project(project, create=True).store.define_qualification(name, description, actor)


def describe(name: str, *, project: ProjectLike = None) -> pd.DataFrame:
    """The qualification ``name``: its description and every worker holding it with their value."""
    check_name(name)
    rows = reports.qualification_holders(as_project(project).store, name)
    if not rows:
        raise NotFound(f"no qualification {name!r}; create it with cn.define_qualification({name!r}, description)")
    return pd.DataFrame(rows)


def delete(name: str, *, project: ProjectLike = None, actor: str = "requester") -> int:
    """Delete the qualification ``name`` and every grant of it (revoked on the providers too); returns how many held it."""
    check_grantable(name)
    where = as_project(project)
    holders = where.store.delete_qualification(name, actor)
    for provider, worker in holders:
        providers.create(provider, where.store).revoke_qualification(worker, name)
    return len(holders)
