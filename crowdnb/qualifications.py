"""Qualifications: named integer flags on workers, recorded locally and pushed down to the provider."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import providers
from .errors import ConfigError

if TYPE_CHECKING:
    from .project import Project

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def _check(name: str, value: int = 1) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"qualification name {name!r} is not valid; use letters, digits, '_', '-', '.' or ':'")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"qualification value {value!r} must be a whole number")


def grant(project: Project, worker: str, name: str, value: int = 1, provider: str = "mock",
          actor: str = "requester") -> int:  # fmt: skip
    """Give ``worker`` the qualification ``name`` with ``value`` (granting again updates it); returns the value."""
    _check(name, value)
    platform = providers.create(provider, project.store)
    project.store.set_qualification(provider, worker, name, value, actor)
    platform.grant_qualification(worker, name, value)
    return value


def revoke(project: Project, worker: str, name: str, provider: str = "mock", actor: str = "requester") -> bool:
    """Take the qualification ``name`` away from ``worker``; False if they did not have it."""
    _check(name)
    platform = providers.create(provider, project.store)
    removed = project.store.set_qualification(provider, worker, name, None, actor)
    if removed:
        platform.revoke_qualification(worker, name)
    return removed
