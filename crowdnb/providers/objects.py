"""The platform-side objects a provider created (HIT types, HITs, studies, participant groups, bonus
set-ups), each under a key crowdnb chooses.

A provider remembers an object the moment the platform answers, and looks the key up before
creating one, so a retry or a restart after a crash never makes a second HIT or study, and a clean-up
can find every object a run left behind. ``remote_id`` is the platform's id; ``data`` holds what the
provider needs later (never a credential).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..store.db import now

if TYPE_CHECKING:
    from ..store.db import Store


@dataclass(frozen=True)
class RemoteObject:
    """One platform object a provider created."""

    provider: str
    kind: str
    key: str
    remote_id: str
    task_run_id: int | None
    unit_id: int | None
    state: str
    data: dict[str, Any]


def _object(row: Any) -> RemoteObject:
    return RemoteObject(
        row["provider"],
        row["kind"],
        row["key"],
        row["remote_id"],
        row["task_run_id"],
        row["unit_id"],
        row["state"],
        json.loads(row["data"]),
    )


def remember(
    store: Store,
    provider: str,
    kind: str,
    key: str,
    remote_id: str,
    *,
    task_run_id: int | None = None,
    unit_id: int | None = None,
    state: str = "active",
    replace: bool = True,
    **data: Any,
) -> bool:
    """Record (or update) the object ``kind``/``key`` the platform knows as ``remote_id``.

    ``replace=False`` keeps an object already stored under the key (returns False then): an intent
    recorded twice is recorded once.
    """
    stamp = now()
    update = (
        " DO UPDATE SET remote_id = excluded.remote_id, task_run_id = excluded.task_run_id,"
        " unit_id = excluded.unit_id, state = excluded.state, data = excluded.data, updated_at = excluded.updated_at"
        if replace
        else " DO NOTHING"
    )
    with store.write() as conn:
        return bool(
            conn.execute(
                "INSERT INTO provider_objects (provider, kind, key, remote_id, task_run_id, unit_id, state, data,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (provider, kind, key)"
                + update,
                (provider, kind, key, str(remote_id), task_run_id, unit_id, state, json.dumps(data), stamp, stamp),
            ).rowcount
        )


def set_state(store: Store, provider: str, kind: str, key: str, state: str, **data: Any) -> None:
    """Move an object to ``state`` (e.g. "disposed", "paid"), merging ``data`` into what it holds."""
    found = recall(store, provider, kind, key)
    if found is None:
        raise KeyError(f"{provider} has no {kind} {key!r}")
    with store.write() as conn:
        conn.execute(
            "UPDATE provider_objects SET state = ?, data = ?, updated_at = ? WHERE provider = ? AND kind = ? AND key = ?",
            (state, json.dumps({**found.data, **data}), now(), provider, kind, key),
        )


def claim(
    store: Store,
    provider: str,
    kind: str,
    key: str,
    expect: str,
    state: str,
    *,
    remote_id: str | None = None,
    **data: Any,
) -> bool:
    """Move an object from ``expect`` to ``state`` (and ``remote_id``, merging ``data``) only if it is still
    in ``expect``; False if another caller moved it first, so of two threads or processes about to make a
    call that moves money, one makes it."""
    with store.write() as conn:
        row = conn.execute(
            "SELECT remote_id, data FROM provider_objects WHERE provider = ? AND kind = ? AND key = ? AND state = ?",
            (provider, kind, key, expect),
        ).fetchone()
        if row is None:
            return False
        conn.execute(
            "UPDATE provider_objects SET state = ?, remote_id = ?, data = ?, updated_at = ?"
            " WHERE provider = ? AND kind = ? AND key = ?",
            (
                state,
                str(remote_id) if remote_id is not None else row[0],
                json.dumps({**json.loads(row[1]), **data}),
                now(),
                provider,
                kind,
                key,
            ),
        )
        return True


def recall(store: Store, provider: str, kind: str, key: str) -> RemoteObject | None:
    """The object stored under ``kind``/``key``, or None."""
    row = store.query_one(
        "SELECT * FROM provider_objects WHERE provider = ? AND kind = ? AND key = ?", (provider, kind, key)
    )
    return _object(row) if row else None


def listed(
    store: Store, provider: str, kind: str, *, task_run_id: int | None = None, state: str | None = None
) -> list[RemoteObject]:
    """Every ``kind`` object of ``provider``, optionally of one run and in one state, oldest first."""
    sql = "SELECT * FROM provider_objects WHERE provider = ? AND kind = ?"
    params: list[Any] = [provider, kind]
    if task_run_id is not None:
        sql += " AND task_run_id = ?"
        params.append(task_run_id)
    if state is not None:
        sql += " AND state = ?"
        params.append(state)
    return [_object(r) for r in store.query(sql + " ORDER BY created_at, key", params)]


def by_remote_id(store: Store, provider: str, remote_id: str) -> RemoteObject | None:
    """The object the platform knows as ``remote_id`` (e.g. the HIT a returned assignment belonged to)."""
    row = store.query_one(
        "SELECT * FROM provider_objects WHERE provider = ? AND remote_id = ? ORDER BY created_at LIMIT 1",
        (provider, str(remote_id)),
    )
    return _object(row) if row else None
