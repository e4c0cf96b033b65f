"""A run whose router runs elsewhere (``process``, ``ec2``, ``heroku``), operated from this notebook.

Launch: every unit is stored here first, then the run is deployed as a project folder of its own (a copy of
the database holding only this run, beside ``crowdnb serve``), which becomes its database of record. While
it runs, the notebook is its operator: submissions stream into a local mirror (the feed, from a cursor: no
gap, no duplicate), decisions go over the operator channel and are applied where the data lives, and the
router calls notebook Python through the same channel. At ``run.stop()`` its rows come home into the local
project and the router is torn down. Closing the notebook leaves the router serving; ``run.resume()``
reattaches to it and catches up.

The router's side of the same story (stand-ins for notebook functions, decisions applied there) is
``install_operator`` and ``apply_decision``, called by the run's service in the serving process.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pandas as pd
import requests
from prometheus_client.parser import text_string_to_metric_families

from . import architects, providers
from .architects import RemoteArchitect
from .attach import Attached
from .errors import ArchitectError, ConfigError, ProcedureError, WorkerRefused
from .forms.validators import register, registered
from .operator import Operator
from .procedures import procedure
from .providers import decisions
from .router import feed, metrics, operator
from .router.calls import Caller
from .router.operator import OperatorHub
from .store import copies, lifecycle
from .store import states as S
from .store.db import now

if TYPE_CHECKING:
    from .data import Rows
    from .run import Run

log = logging.getLogger(__name__)

STOP_TIMEOUT = 60.0  # seconds the router has to expire its units and stop
MIRROR_WAIT = 5.0  # the mirror's long polls: short, since closing the notebook (detach, stop) waits for one


def needs(run: Run) -> dict[str, Any]:
    """What of this run needs notebook Python, by kind (stored with the run for the router to stand in for)."""
    kinds, validators = set(), []
    if run.spec.onboarding and run.hooks.get("onboarding_validate") is not None:
        kinds.add("onboarding")
    if run.spec.screening:
        kinds.add("screening")
    if run.spec.form:
        from .forms.source import custom_validator_names

        versions = tuple(run.spec.form.get("versions", ()))
        validators = sorted(name for name in custom_validator_names(versions) if registered(name) is not None)
    if validators or run.spec.procedures:
        kinds.add("unit")
    return {"needs": sorted(kinds), "validators": validators}


def notebook_hooks(run: Run) -> dict[str, Callable[..., Any]]:
    """The notebook functions the router may call, by the names it calls them."""
    hooks = {name: fn for name, fn in run.hooks.items() if callable(fn)}
    for name, proc in run.procedures.items():
        hooks[f"procedure:{name}"] = _procedure(proc.fn)
    for name in run.config.get("operator", {}).get("validators", ()):
        fn = registered(name)
        if fn is not None:
            hooks[f"validator:{name}"] = _validator(fn)
    return hooks


def _procedure(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(args: dict[str, Any], worker: dict[str, Any]) -> Any:
        return fn(args, Caller(**worker))

    return call


def _validator(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(field: dict[str, Any], value: Any, *args: Any) -> Any:
        return fn(SimpleNamespace(**field), value, *args)

    return call


# --- the router's side ----------------------------------------------------------------------------------
def install_operator(run: Run, secret: str) -> OperatorHub:
    """The run's operator hub; notebook functions this process lacks are stood in for by calls over it."""
    declared = run.config.get("operator", {})
    hub = OperatorHub(run.id, secret, lambda action, args: apply_decision(run, action, args),
                      frozenset(declared.get("needs", ())))  # fmt: skip
    for kind, hook in (("onboarding", "onboarding_validate"), ("screening", "screening_validate")):
        if kind in hub.needs and run.hooks.get(hook) is None:
            run.hooks[hook] = hub.remote(hook)
    for name in declared.get("validators", ()):
        if registered(name) is None:
            register(name, hub.remote(f"validator:{name}"))
    for stored in run.spec.procedures:
        if stored["name"] not in run.procedures:
            stand_in = _remote_procedure(hub, stored["name"], float(stored.get("timeout", 10.0)))
            run.procedures[stored["name"]] = procedure(stored["name"], stand_in, stored.get("timeout", 10.0),
                                                       stored.get("concurrency", 4))  # fmt: skip
    return hub


def _remote_procedure(hub: OperatorHub, name: str, timeout: float) -> Callable[..., Any]:
    """A procedure that runs in the notebook: the worker reads its ``ProcedureError`` message, or that it is away."""

    def call(args: dict[str, Any], worker: Caller) -> Any:
        try:
            reply = hub.reply(f"procedure:{name}", [args, dataclasses.asdict(worker)], timeout)
        except WorkerRefused as exc:
            raise ProcedureError(exc.message, detail="no notebook is connected to answer") from None
        if not reply.get("ok"):
            message = (
                reply.get("message")
                or f"Something went wrong while the task worked on your request ({name}); please try again."
            )
            raise ProcedureError(message, detail=str(reply.get("error", "")))
        return reply.get("value")

    return call


def apply_decision(run: Run, action: str, args: dict[str, Any]) -> Any:
    """Apply a decision the operator sent (``actor`` "operator"): the same functions as in the notebook."""
    units, actor = [int(u) for u in args.get("unit_ids", ())], "operator"
    if action in ("approve", "reject", "soft_reject"):
        decision = {"approve": S.ACCEPTED, "reject": S.REJECTED, "soft_reject": S.SOFT_REJECTED}[action]
        changed = decisions.decide(run, units, decision, args.get("note"), actor)
        if action == "approve" and args.get("bonus") is not None:
            reason = args.get("note") or "Thank you for your careful work."
            decisions.bonus(run, units, float(args["bonus"]), reason, key="with-approval", actor=actor)
        return changed
    if action == "bonus":
        return decisions.bonus(run, units, float(args["amount"]), str(args["reason"]), args.get("key"), actor)
    worker = run.project.worker(str(args.get("worker")), str(args.get("provider") or run.config["provider"]["name"]))
    worker.actor = actor
    verbs: dict[str, Callable[[], Any]] = {
        "grant": lambda: worker.grant(str(args["name"]), int(args.get("value", 1))),
        "revoke": lambda: worker.revoke(str(args["name"])),
        "block": lambda: worker.block(str(args["reason"])),
        "unblock": worker.unblock,
        "message": lambda: worker.message(str(args["text"])),
        "worker_bonus": lambda: worker.bonus(float(args["amount"]), str(args["reason"]), args.get("key")),
    }
    if action not in verbs:
        raise ConfigError(
            f"unknown operator decision {action!r}; known: approve, reject, soft_reject, bonus, {', '.join(verbs)}"
        )
    return verbs[action]()


# --- the notebook's side --------------------------------------------------------------------------------
class Remote:
    """The live parts of a run served elsewhere, as seen from the notebook: architect, operator, mirror."""

    def __init__(self, run: Run, architect: RemoteArchitect, provider: providers.Provider | None) -> None:
        self.run, self.architect, self.provider = run, architect, provider
        self.published = False  # whether this notebook told the router to publish (and so the provider)
        self.operator: Operator | None = None
        self.mirror: Attached | None = None

    def deploy(self, rows: Rows) -> str:
        """Store every unit here, deploy the run's folder, and connect to it; returns the workers' URL."""
        run = self.run
        if not rows.finite:
            raise ConfigError(
                "a router that runs elsewhere needs its data up front: pass a list, a file or a DataFrame"
            )
        batch = rows.take(None)
        if rows.error is not None:
            raise ConfigError(f"could not read the task's data: {rows.error}")
        spec = run.spec
        lifecycle.add_assignments(run.store, run.id, run.task_id, batch, 0, spec.units_per_assignment, spec.reward)
        run.store.update_run(run.id, data_exhausted=1)
        folder = self.folder
        copies.backup(run.store, folder / "crowdnb.db")
        copies.keep_only(folder / "crowdnb.db", run.id)
        self._bind()
        url = self.architect.deploy_bundle(folder, str(run.id), {})  # once it answers at its public address
        self._connected(url)
        if self.provider is not None:
            providers.check(self.provider, self.info(url))  # MTurk: HTTPS only, whatever the architect
        assert self.operator is not None
        self.published = True
        self.operator.decide("publish")  # the router tells the provider now: nothing was made there before
        return url

    def reattach(self) -> str:
        """Connect to the router a previous kernel left serving (``run.resume()``). A ``process`` router that died
        is started again on its own folder, which holds the run's rows; one on another machine keeps them there."""
        self._bind()
        url = str(self.run.store.get_run(self.run.id)["url"])
        if not self.architect.healthy():
            if not getattr(self.architect, "serves_in_place", False):
                raise ArchitectError(
                    f"the router of run {self.run.id} ({self.architect.name}) at {url} is not answering; it keeps the "
                    "run's data: try run.resume() again in a few minutes (a restarting router answers by then)"
                )
            folder = self.folder
            if not (folder / "crowdnb.db").is_file():
                raise ArchitectError(
                    f"the router of run {self.run.id} is not answering and its folder {folder} is gone"
                )
            url = self.architect.deploy_bundle(folder, str(self.run.id), {})
        self._connected(url)
        assert self.operator is not None
        self.operator.decide("publish")  # a router whose notebook died before it published
        return url

    def info(self, url: str) -> providers.RunInfo:
        """The run as its provider sees it, served at ``url``."""
        spec = self.run.spec
        return providers.RunInfo(self.run.id, spec.name, spec.title, spec.description, spec.reward, spec.tags, url,
                                 spec.assignment_duration, spec.requirements())  # fmt: skip

    def _bind(self) -> None:
        """An architect that keeps what it set up in the project (``ec2``: its domain's setup) is given the store."""
        bind = getattr(self.architect, "bind", None)
        if callable(bind):
            bind(self.run.store)

    @property
    def folder(self) -> Path:
        """The run's project folder: what ``process`` serves on this machine, what the others take a copy of."""
        return self.run.project.root / "routers" / f"run{self.run.id}"

    def _connected(self, url: str) -> None:
        secret = str(self.run.store.get_run(self.run.id)["secret"])
        self.mirror = Attached(url, feed.token(secret, self.run.id), self.run.project).follow(MIRROR_WAIT)
        self.operator = Operator(url, operator.token(secret, self.run.id), notebook_hooks(self.run)).start()

    # --- what the run reads ------------------------------------------------------------------------
    @property
    def df(self) -> pd.DataFrame:
        """Every submission so far: what the router holds now is pulled first (one short request), so a
        submission a worker was told is saved is in the frame read after it."""
        assert self.mirror is not None
        try:
            self.mirror.pull()
        except ArchitectError as exc:  # the router is unreachable: the mirror is what we have
            log.warning("%s", exc)
        return self.mirror.df

    @property
    def counts(self) -> dict[str, int]:
        """Unit counts as the router last reported them."""
        assert self.mirror is not None
        return dict(self.mirror.counts)

    @property
    def spend(self) -> dict[str, float]:
        """Dollars as the router last reported them."""
        assert self.mirror is not None
        return dict(self.mirror.spend)

    @property
    def state(self) -> str:
        """The run's state as the router last reported it."""
        assert self.mirror is not None
        return self.mirror.state

    def figures(self) -> dict[str, Any]:
        """The router's figures, scraped from its ``/metrics``; the mirror's last report while it does not answer."""
        secret, url = (
            str(self.run.store.get_run(self.run.id)["secret"]),
            str(self.run.store.get_run(self.run.id)["url"]),
        )
        try:
            reply = requests.get(url + "metrics", timeout=10,
                                 headers={"Authorization": f"Bearer {metrics.token(secret, self.run.id)}"})  # fmt: skip
            reply.raise_for_status()
            return metrics.read(text_string_to_metric_families(reply.text))
        except requests.RequestException as exc:
            log.debug("run %s: /metrics did not answer (%s); figures from the mirror", self.run.id, exc)
            return {**metrics.read(()), "units": self.counts, "spend": self.spend}

    def decide(self, action: str, **args: Any) -> Any:
        """Apply a decision on the router; the mirror sees its effect on the next pull."""
        assert self.operator is not None and self.mirror is not None
        result = self.operator.decide(action, **args)
        self.mirror.pull()
        return result

    # --- leaving --------------------------------------------------------------------------------
    def detach(self) -> None:
        """Close this notebook's connections; the router keeps serving."""
        if self.operator is not None:
            self.operator.stop()
        if self.mirror is not None:
            self.mirror.close()
        self.operator = self.mirror = None

    def told_provider(self) -> bool:
        """Whether the provider may have been told of the run before a failed start: only once this notebook sent
        ``publish`` (a router deployed from here is held until then, whatever the architect)."""
        return self.published

    def discard(self) -> None:
        """Remove the router's folder (a launch that failed before the provider was told)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> dict[str, int]:
        """Stop the router's run, bring its rows home, tear the router down; returns the rows brought home."""
        url = str(self.run.store.get_run(self.run.id)["url"])
        secret = str(self.run.store.get_run(self.run.id)["secret"])
        headers = {"Authorization": f"Bearer {operator.token(secret, self.run.id)}"}
        try:
            requests.post(url + "_crowd/operator/stop", headers=headers, timeout=10).raise_for_status()
            deadline = time.monotonic() + STOP_TIMEOUT
            while self._remote_state(url, secret) == "running" and time.monotonic() < deadline:
                time.sleep(0.2)
            home = self._bring_home(url, headers)
        except requests.RequestException as exc:
            raise ArchitectError(
                f"could not stop the router of run {self.run.id} at {url} ({exc}); it keeps serving and its rows "
                "stay there: try run.stop() again"
            ) from exc
        self.detach()
        self.architect.teardown()
        self.run.store.update_run(self.run.id, status="stopped", stopped_at=now())
        return home

    def _remote_state(self, url: str, secret: str) -> str:
        reply = requests.get(url + "_crowd/feed", params={"after": 0, "limit": 1},
                             headers={"Authorization": f"Bearer {feed.token(secret, self.run.id)}"}, timeout=10)  # fmt: skip
        reply.raise_for_status()
        return str(reply.json()["state"])

    def _bring_home(self, url: str, headers: dict[str, str]) -> dict[str, int]:
        with tempfile.TemporaryDirectory(prefix="crowdnb-home-") as folder:
            copy = Path(folder) / "crowdnb.db"
            with requests.get(url + "_crowd/operator/database", headers=headers, timeout=120, stream=True) as reply:
                reply.raise_for_status()
                with open(copy, "wb") as out:
                    for chunk in reply.iter_content(1 << 16):
                        out.write(chunk)
            home = copies.bring_home(self.run.store, copy, self.run.id)
            files = self._files_home(url, headers, Path(folder) / "files.tar")
        log.info("run %s: rows brought home %s, and %d uploaded file(s)", self.run.id, home, files)
        return {**home, "files": files} if files else home

    def _files_home(self, url: str, headers: dict[str, str], archive: Path) -> int:
        """The run's uploads, into this project's ``files/<run id>/`` (where the rows say they are)."""
        with requests.get(url + "_crowd/operator/files", headers=headers, timeout=600, stream=True) as reply:
            reply.raise_for_status()
            with open(archive, "wb") as out:
                for chunk in reply.iter_content(1 << 16):
                    out.write(chunk)
        prefix = f"files/{self.run.id}/"
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(prefix)]
            tar.extractall(self.run.store.root, members=members, filter="data")
        return len(members)


def left_serving(run: Run) -> Remote | None:
    """The router an earlier kernel of this project left serving ``run`` elsewhere, reattached (so that it can be
    stopped there); None when this project deployed no such router (or this process is that router)."""
    deployed = "operator" in run.config and (run.project.root / "routers" / f"run{run.id}" / "crowdnb.db").is_file()
    if not deployed or run.state != "running":
        return None
    architect: Any = architects.create(run.config["architect"]["name"], **run.config["architect"]["options"],
                                       resume=True)  # fmt: skip
    remote = Remote(run, architect, None)
    remote.reattach()
    return remote
