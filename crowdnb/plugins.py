"""Finding providers and architects by name through entry points (built-ins register the same way)."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from .errors import ConfigError

GROUPS = {"provider": "crowdnb.providers", "architect": "crowdnb.architects"}


# entry points read once per process: reading them opens every installed distribution's metadata (about
# 0.2 s with a few hundred packages), which every launch paid twice
_found: dict[str, dict[str, Any]] = {}


def installed(kind: str, fresh: bool = False) -> dict[str, Any]:
    """Name → entry point of every installed plugin of ``kind`` ("provider" or "architect").

    Read once per process; ``fresh`` reads again (``load`` does before it calls a name unknown, so a
    plugin installed meanwhile is found)."""
    if fresh or kind not in _found:
        _found[kind] = {ep.name: ep for ep in entry_points(group=GROUPS[kind])}
    return dict(_found[kind])


def load(kind: str, name: str) -> Any:
    """The factory registered as ``name``; the error lists what is installed."""
    found = installed(kind)
    if name not in found:
        found = installed(kind, fresh=True)
    if name not in found:
        raise ConfigError(
            f"unknown {kind} {name!r}; installed: {', '.join(sorted(found)) or 'none'} "
            f"(plugins register under the entry-point group {GROUPS[kind]!r})"
        )
    return found[name].load()
