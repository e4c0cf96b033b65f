"""A project's platform settings: how each provider reaches its platform (endpoint, region, workspace …).

They are kept in the project database, one entry per provider name (so ``mturk`` and ``mturk_sandbox``,
live and sandbox, each have their own), and every provider built for the project reads them through
``providers.create``: ``cn.block``, ``cn.grant``, ``cn.message``, ``cn.bonus``, a ``Worker``'s verbs, the
review app, a stopped run's review and ``crowdnb mturk cleanup`` reach the platform the run was launched
against, not the public endpoint. A launch with a provider name writes them: the options its provider
names in ``platform_settings`` (MTurk: ``endpoint_url``, ``region``, ``timeout``, ``retry_delay``;
Prolific: ``base_url``, ``workspace``, ``timeout``), taken as given — a setting left out is no longer
set, so launching without ``endpoint_url`` goes back to MTurk's own endpoint. Never a secret: keys stay
in ``credentials``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

_SECRETISH = ("key", "secret", "token", "password")


def _meta_key(provider: str) -> str:
    return f"provider_settings:{provider}"


def declared(provider: object) -> tuple[str, ...]:
    """The option names ``provider`` (an instance or its class) counts as platform settings (none if it names none)."""
    names = getattr(provider, "platform_settings", ())
    return tuple(str(n) for n in names)


def read(store: Store, provider: str) -> dict[str, Any]:
    """The settings last launched with for ``provider`` ({} when none were)."""
    row = store.query_one("SELECT value FROM meta WHERE key = ?", (_meta_key(provider),))
    return dict(json.loads(row["value"])) if row else {}


def keep(store: Store, provider: object, options: Mapping[str, Any]) -> dict[str, Any]:
    """Make the platform settings among ``options`` the project's settings of ``provider``; returns them."""
    name = str(getattr(provider, "name", ""))
    settings = {k: options[k] for k in declared(provider) if k in options}
    secret = [k for k in settings if any(s in k.lower() for s in _SECRETISH)]
    if secret or not name:
        raise ConfigError(f"provider {name!r} names {', '.join(secret)} as settings: secrets are never stored")
    value = json.dumps(settings, sort_keys=True)
    with store.write() as conn:
        before = conn.execute("SELECT value FROM meta WHERE key = ?", (_meta_key(name),)).fetchone()
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (_meta_key(name), value),
        )
    if before is None or before[0] != value:
        log.info("%s settings of this project are now %s", name, value)
    return settings
