"""Finding providers and architects by name through entry points (built-ins register the same way)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError

GROUPS = {"provider": "crowdnb.providers", "architect": "crowdnb.architects"}


def installed(kind: str) -> dict[str, Any]:
    """Name → entry point of every installed plugin of ``kind`` ("provider" or "architect")."""
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def load(kind: str, name: str) -> Any:
    """The factory registered as ``name``; the error lists what is installed."""
    found = installed(kind)
    if name not in found:
        raise ConfigError(
            f"unknown {kind} {name!r}; installed: {', '.join(sorted(found)) or 'none'} "
            f"(plugins register under the entry-point group {GROUPS[kind]!r})"
        )
    return found[name].load()
