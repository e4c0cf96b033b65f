"""Who may take a crowdnb study on Prolific: participant groups, and the platform objects found by name.

Prolific cannot check crowdnb's qualifications, so they are pushed down as participant groups of the
participants crowdnb knows (Mephisto does the same, with one disposable group per study):

* ``block:<workspace>`` – the workspace's "crowdnb block list": everyone blocked with ``cn.block``; every
  study excludes it (``participant_group_blocklist``);
* ``run:<id>:allow`` – for a run with requirements a newcomer cannot meet (``Exists``, ``GreaterThan``…):
  the known participants meeting all of them (``participant_group_allowlist``);
* ``run:<id>:exclude`` – for "must not have" requirements (``DoesNotExist``: failed onboarding, gold…):
  the known participants failing one of them (a blocklist).

Groups update live on Prolific, so a grant or revoke moves the participant in or out at once; the run
groups are deleted when the run stops. Any other Prolific filter passes through the ``filters`` option.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..quality.requirements import BLOCKED, Requirement, parse
from . import RunInfo, objects
from .prolific_api import ProlificAPI
from .retry import retried

if TYPE_CHECKING:
    from ..store.db import Store

NAME = "prolific"
LIVE = ("creating", "draft", "published")
BLOCK_LIST = "crowdnb block list"


class Groups:
    """Participant groups (and other named objects) of one project on Prolific."""

    def __init__(self, store: Store, api: ProlificAPI) -> None:
        self.store, self.api = store, api

    def named(
        self,
        kind: str,
        key: str,
        path: str,
        field: str,
        title: str,
        create: Callable[[], Any] | None = None,
        **data: Any,
    ) -> str:
        """The id of the object called ``title`` in the list ``path``, created if missing; found once, then
        remembered under ``kind``/``key`` (``data`` as well)."""
        found = objects.recall(self.store, NAME, kind, key)
        if found is not None and found.state == "active":
            return found.remote_id

        def find_or_create() -> Any:  # listed first, so a create whose answer was lost is found, not repeated
            for item in self.api.pages(path):
                if item.get(field) == title:
                    return item
            return create() if create is not None else self.api.post(path, {field: title})

        item = retried(find_or_create)
        objects.remember(self.store, NAME, kind, key, str(item["id"]), **data)
        return str(item["id"])

    def workspace(self, title: str) -> str:
        """The workspace called ``title`` (found or created)."""
        return self.named("workspace", title, "workspaces/", "title", title)

    def block_group(self, workspace: str) -> str:
        """The workspace's block list group, holding every participant blocked in crowdnb."""
        blocked = sorted(w for w, held in self.known().items() if BLOCKED in held)

        def create() -> Any:
            body = {"name": BLOCK_LIST, "workspace_id": workspace, "participant_ids": blocked}
            return self.api.post("participant-groups/", body)

        path = f"participant-groups/?workspace_id={workspace}"
        gid = self.named("group", f"block:{workspace}", path, "name", BLOCK_LIST, create)
        if blocked:  # blocks made while no study ran (adding is idempotent)
            self._members(gid, blocked, add=True)
        return gid

    def block_groups(self, workspace: Callable[[], str]) -> list[str]:
        """Every block list group crowdnb made (one per workspace used), or the default workspace's."""
        made = objects.listed(self.store, NAME, "group", state="active")
        return [g.remote_id for g in made if g.key.startswith("block:")] or [self.block_group(workspace())]

    def run_groups(self, run: RunInfo, workspace: str, study_key: str) -> dict[str, list[str]]:
        """The run's allow and exclude groups (only those its requirements need): kind → [group id]."""
        groups, known = {}, self.known()
        for kind, reqs in split(run.requirements).items():
            if not reqs:
                continue
            members = sorted(w for w, held in known.items() if member(kind, reqs, held))
            key = f"run:{run.id}:{kind}"
            found = objects.recall(self.store, NAME, "group", key)
            mine = found is not None and found.data.get("study") == study_key
            if found is not None and mine and found.state == "active":
                groups[kind] = [found.remote_id]
                continue
            if found is not None and mine and found.state == "creating":
                name = str(found.data["name"])  # a crash mid-creation: look for that very group first
            else:
                name = f"crowdnb run {run.id} {kind} {secrets.token_hex(3)}"
                objects.remember(
                    self.store, NAME, "group", key, "", task_run_id=run.id, state="creating", name=name, study=study_key
                )

            def create(n: str = name, m: list[str] = members) -> Any:
                return self.api.post(
                    "participant-groups/", {"name": n, "workspace_id": workspace, "participant_ids": m}
                )

            path = f"participant-groups/?workspace_id={workspace}"
            gid = self.named("group", key, path, "name", name, create, task_run_id=run.id, study=study_key, name=name)
            groups[kind] = [gid]
        return groups

    def refresh_member(self, worker: str) -> None:
        """Put ``worker`` in or out of every open run's groups, by the qualifications the store holds now."""
        held = self.known().get(worker, {})
        for study in objects.listed(self.store, NAME, "study"):
            if study.state not in LIVE:
                continue
            for kind, reqs in split(parse(study.data.get("requirements", []))).items():
                group = objects.recall(self.store, NAME, "group", f"run:{study.task_run_id}:{kind}")
                if reqs and group is not None and group.state == "active":
                    self._members(group.remote_id, [worker], add=member(kind, reqs, held))

    def block(self, worker: str, workspace: Callable[[], str], add: bool) -> None:
        """Add ``worker`` to (or remove them from) every block list group."""
        for gid in self.block_groups(workspace):
            self._members(gid, [worker], add=add)

    def known(self) -> dict[str, dict[str, int]]:
        """Every Prolific participant crowdnb has seen → their qualifications."""
        held: dict[str, dict[str, int]] = {
            r["name"]: {} for r in self.store.query("SELECT name FROM workers WHERE provider = ?", (NAME,))
        }
        for r in self.store.query(
            "SELECT w.name AS worker, q.name, g.value FROM granted_qualifications g "
            "JOIN workers w ON w.id = g.worker_id JOIN qualifications q ON q.id = g.qualification_id "
            "WHERE w.provider = ?",
            (NAME,),
        ):
            held[r["worker"]][r["name"]] = r["value"]
        return held

    def _members(self, gid: str, workers: list[str], add: bool) -> None:
        path, body = f"participant-groups/{gid}/participants/", {"participant_ids": workers}
        # adding a member twice or removing an absent one changes nothing, so both are retried
        retried(lambda: self.api.post(path, body) if add else self.api.delete(path, body))


def split(requirements: Sequence[Requirement]) -> dict[str, list[Requirement]]:
    """Requirements a newcomer fails (→ the allow group) and "must not have" ones (→ the exclude group);
    the block of ``cn.block`` is the workspace's own group."""
    mine = [r for r in requirements if r.applies_to(NAME) and r.name != BLOCKED]
    return {"allow": [r for r in mine if not r.allows(None)], "exclude": [r for r in mine if r.allows(None)]}


def member(kind: str, reqs: Sequence[Requirement], held: Mapping[str, int]) -> bool:
    """Whether a participant holding ``held`` belongs in the ``kind`` group of ``reqs``."""
    if kind == "allow":
        return all(r.allows(held.get(r.name)) for r in reqs)
    return any(not r.allows(held.get(r.name)) for r in reqs)


def merge(filters: list[dict[str, Any]], groups: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """The user's filters plus crowdnb's group filters (one filter per id, the group ids united)."""
    out = [dict(f) for f in filters]
    for filter_id, ids in groups:
        if not ids:
            continue
        same = [f for f in out if f.get("filter_id") == filter_id]
        if same:
            same[0]["selected_values"] = [*same[0].get("selected_values", []), *ids]
        else:
            out.append({"filter_id": filter_id, "selected_values": list(ids)})
    return out


def check_filters(filters: Any) -> list[dict[str, Any]]:
    """Prolific filter dicts as given in the ``filters`` option; ``ConfigError`` naming a bad one."""
    if not isinstance(filters, list):
        raise ConfigError(f"filters must be a list of Prolific filter dicts; got {type(filters).__name__}")
    for index, item in enumerate(filters):
        ok = isinstance(item, dict) and isinstance(item.get("filter_id"), str)
        if not ok or not (
            isinstance(item.get("selected_values"), list) or isinstance(item.get("selected_range"), dict)
        ):
            raise ConfigError(
                f"filters[{index}] = {item!r} is not a Prolific filter; use {{'filter_id': ..., 'selected_values': "
                "[...]} or {'filter_id': ..., 'selected_range': {'lower': ..., 'upper': ...}} (GET filters/ lists them)"
            )
    return [dict(f) for f in filters]
