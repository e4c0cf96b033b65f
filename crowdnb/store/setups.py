"""What an architect set up once for a project, kept in its database (``architect_setups``), not in a file beside it.

The ec2 architect keeps the ids of a domain's hosted zone, certificate, load balancer, security groups,
bucket and role here (``crowdnb ec2 setup``), by the name ``<region>/<domain>``; a launch reads them back
instead of asking AWS. The rows are the project's, not a run's: a run's copy for its router leaves them out.
"""

from __future__ import annotations

import json
from typing import Any

from .db import Store, now


def keep(store: Store, architect: str, name: str, data: dict[str, Any]) -> None:
    """Store (or replace) the setup ``name`` of ``architect``."""
    stamp = now()
    with store.write() as conn:
        conn.execute(
            "INSERT INTO architect_setups (architect, name, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (architect, name) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            (architect, name, json.dumps(data, sort_keys=True), stamp, stamp),
        )


def get(store: Store, architect: str, name: str) -> dict[str, Any] | None:
    """The setup ``name`` of ``architect``, or None when none is stored."""
    row = store.query_one("SELECT data FROM architect_setups WHERE architect = ? AND name = ?", (architect, name))
    return None if row is None else dict(json.loads(row["data"]))


def listed(store: Store, architect: str) -> dict[str, dict[str, Any]]:
    """Every stored setup of ``architect``, by name."""
    rows = store.query("SELECT name, data FROM architect_setups WHERE architect = ? ORDER BY name", (architect,))
    return {str(row["name"]): dict(json.loads(row["data"])) for row in rows}


def forget(store: Store, architect: str, name: str) -> bool:
    """Remove the setup ``name`` of ``architect``; whether there was one."""
    with store.write() as conn:
        gone = conn.execute("DELETE FROM architect_setups WHERE architect = ? AND name = ?", (architect, name))
        return gone.rowcount > 0
