"""How a run comes to be served: launched (validated, stored, started) or resumed, here or elsewhere.

A router in this process is a ``Service``; one elsewhere (``process``, ``ec2`` …) is deployed and operated
through ``Remote``. A launch that fails before the provider was told leaves no run behind: its rows (and a
remote router's folder) are deleted. One that fails later is kept, stopped, so that nothing on the platform
is forgotten.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import architects, logs, providers
from .data import Rows, load, rows_of
from .errors import ConfigError
from .procedures import check_registered
from .quality.onboarding import check_validate
from .remote import Remote, needs
from .service import Service
from .store import lifecycle
from .store.db import now

if TYPE_CHECKING:
    from .project import Project
    from .run import Run
    from .spec import TaskSpec

log = logging.getLogger(__name__)


def launch(
    cls: type[Run],
    project: Project,
    spec: TaskSpec,
    rows: list[dict[str, Any]] | Rows,
    provider: Any,
    architect: Any,
    provider_options: dict[str, Any],
    architect_options: dict[str, Any],
    hooks: dict[str, Any] | None = None,
) -> Run:
    """Create, store and start a run of ``spec`` (see ``Task.launch``)."""
    prov = providers.for_launch(provider, project.store, **provider_options)
    arch = architects.create(architect, **architect_options)
    task_id = project.store.upsert_task(spec.name, spec.to_dict())
    requester = project.store.requester(prov.name, "default")
    config = {
        "task": spec.to_dict(),
        "provider": {"name": prov.name, "options": provider_options},
        "architect": {"name": arch.name, "options": arch.options()},
    }
    run_id = project.store.create_run(task_id, requester, prov.name, arch.name, config, secrets.token_urlsafe(32))
    run = cls(project, run_id)
    run.hooks.update(hooks or {})
    run.hooks.setdefault("procedures", {})
    start(run, prov, arch, rows_of(rows), fresh=True)
    if isinstance(provider, str):  # where this run went is where the project's later calls go
        providers.settings.keep(project.store, prov, provider_options)
    return run


def resume(
    run: Run,
    data: Any,
    provider: providers.Provider | None,
    architect: architects.Architect | None,
    onboarding_validate: Callable[[dict[str, Any]], bool] | None,
    screening_validate: Callable[[dict[str, Any], dict[str, Any]], bool] | None,
) -> None:
    """Serve a stopped (or crashed) run again with its stored configuration (see ``Run.resume``)."""
    if screening_validate is not None:
        run.hooks["screening_validate"] = screening_validate
    if run.spec.screening and run.hooks.get("screening_validate") is None:
        raise ConfigError(
            "this task's screening function is not stored; pass it again: run.resume(screening_validate=fn)"
        )
    if onboarding_validate is not None:
        run.hooks["onboarding_validate"] = onboarding_validate
    if run.spec.onboarding:  # before anything is written
        check_validate(run.spec.onboarding, run.hooks.get("onboarding_validate"))
    check_registered([p["name"] for p in run.spec.procedures], run.procedures)
    run.rulebook.check_registered()
    if run.serving:
        raise ConfigError(f"run {run.id} is already live at {run.url}")
    run.config = json.loads(run.store.get_run(run.id)["config"])
    if provider is None:
        provider = providers.create(run.config["provider"]["name"], run.store, **run.config["provider"]["options"])
    # workers' open pages point at the old address: come back on it when it is free
    if architect is None:
        architect = architects.create(
            run.config["architect"]["name"], **run.config["architect"]["options"], resume=True
        )
    if architects.is_remote(architect):  # the router kept serving (or its folder kept its rows): reattach
        run.rulebook.check_here(remote=True)
        if data is not None:
            raise ConfigError("a router that runs elsewhere keeps the data it was launched with; launch a new run")
        start_remote(run, architect, Rows(iter(()), "resume", True), provider, reattach=True)
        return
    rows = load(data, run.spec.page().required) if data is not None else Rows(iter(()), "resume", True)
    rows.exhausted = data is None
    lifecycle.relaunch_expired(run.store, run.id)
    run.store.update_run(run.id, status="running", data_exhausted=int(data is None))
    start(run, provider, architect, rows)


def start(run: Run, provider: providers.Provider, architect: Any, rows: Rows, fresh: bool = False) -> None:
    """Serve ``run`` with a router in this process, or deploy it to one elsewhere."""
    if architects.is_remote(architect):
        start_remote(run, architect, rows, provider)
        return
    service = Service(run, provider, architect, rows)
    try:
        service.start()
    except BaseException:
        architect.shutdown()
        if fresh and not service.told_provider:
            _remove(run)
        else:
            run.store.update_run(run.id, status="stopped", stopped_at=now())
        raise
    run._service = service
    run.project.served[run.id] = run
    with logs.bound(project=run.project.root, run=run.id):
        log.info("run %s of task %r live at %s", run.id, run.task_name, run.url)


def start_remote(
    run: Run, architect: Any, rows: Rows, provider: providers.Provider | None, reattach: bool = False
) -> None:
    """Deploy ``run`` to a router elsewhere (or find the one a previous kernel left) and operate it."""
    remote = Remote(run, architect, provider)
    config = json.loads(run.store.get_run(run.id)["config"])
    if not reattach:
        config["operator"] = {**needs(run), "held": True}  # until this notebook publishes (remote.py)
        run.store.update_run(run.id, config=json.dumps(config))
        run.config = config
    try:
        url = remote.reattach() if reattach else remote.deploy(rows)
    except BaseException:
        remote.detach()
        if not reattach:
            architect.teardown()
            if remote.told_provider():
                run.store.update_run(run.id, status="stopped", stopped_at=now())
            else:
                remote.discard()
                _remove(run)
        raise
    config["architect"]["options"] = architect.options()
    config.get("operator", {}).pop("held", None)  # published: only the router's own copy was held
    run.store.update_run(run.id, url=url, status="running", config=json.dumps(config), stopped_at=None)
    run.config = config
    run._remote = remote
    run.project.served[run.id] = run
    with logs.bound(project=run.project.root, run=run.id):
        log.info("run %s of task %r served by %s at %s", run.id, run.task_name, architect.name, url)


def _remove(run: Run) -> None:
    """A launch that failed before the provider was told leaves no run behind."""
    run.store.delete_run(run.id)
    log.info("run %s failed to start and was removed", run.id)
