"""The live parts of a run served by this process: provider, architect, dispatcher, rooms, operator hub, monitor.

``Run`` (the facade) starts a ``Service`` when the router runs here (``architect="local"``, or under
``crowdnb serve``); a router that runs elsewhere is operated through ``crowdnb.remote`` instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import architects, logs, providers
from .data import Rows
from .monitor import TICK_SECONDS as TICK_SECONDS  # the tick (simulate.py reads it here)
from .monitor import Monitor
from .procedures import Executor
from .providers import RunInfo
from .providers.meter import Meter
from .quality.gold import GoldKeeper
from .quality.onboarding import Onboarder
from .quality.screening import Screener
from .remote import install_operator
from .router import feed, metrics, uploads
from .router import operator as operator_routes
from .router.app import create_app
from .router.dispatch import Dispatcher
from .router.operator import OperatorHub
from .router.rooms import Chat, Rooms
from .store import lifecycle, reports
from .store import states as S
from .store.offers import Quota

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 15.0  # crowd.js retries a lost socket at least this often
FEED_BATCH = 100  # rows pulled from a generator whenever fewer units than this are on offer


class Service:
    """The live parts of a run served by this process: provider, architect, dispatcher, monitor thread."""

    def __init__(self, run: Run, provider: providers.Provider, architect: architects.Architect, rows: Rows) -> None:
        self.run, self.provider, self.architect, self.rows = run, provider, architect, rows
        self.dispatcher: Dispatcher | None = None
        self.hub: OperatorHub | None = None
        self.executor = Executor(run.procedures)  # runs the notebook's procedures for the router
        self.info: RunInfo | None = None
        self.next_sync = 0.0
        self.monitor: Monitor | None = None
        self.metrics: metrics.RunMetrics | None = None
        self.told_provider = False
        self._publishing = threading.Lock()

    def start(self) -> str:
        """Serve the run: store its first rows, build and deploy its router, publish, start the monitor."""
        with logs.bound(project=self.run.project.root, run=self.run.id):
            return self._start()

    def _start(self) -> str:
        run, spec = self.run, self.run.spec
        uploads.sweep(run.store, run.id)  # files a crash left between their move and the commit
        self.feed()
        page = spec.page()
        stored = run.store.get_run(run.id)
        preview = run.store.first_input(run.id) or page.placeholder_row()
        quota = Quota(spec.allowed_concurrent, spec.maximum_units_per_worker)
        info = RunInfo(
            run.id,
            spec.name,
            spec.title,
            spec.description,
            spec.reward,
            spec.tags,
            "",
            spec.assignment_duration,
            spec.requirements(),
        )
        self.dispatcher = Dispatcher(run.store, info, self.provider, quota, stored["secret"], spec.assignment_duration)
        self.dispatcher.listeners = run._listeners
        # units held when a previous process died (a kernel restart): kept for pages that reconnect
        self.dispatcher.sockets.expect(reports.live_agents(run.store, run.id), RECONNECT_SECONDS)
        later = self.dispatcher.backlog.later  # platform calls leave the worker's request
        if spec.gold:
            self.dispatcher.gold = GoldKeeper(run.store, self.provider, spec.gold, run.task_id, later)
        # the operator channel; in `crowdnb serve` notebook functions are stood in for by calls over it
        self.hub = run.operator_hub or install_operator(run, stored["secret"])
        self.dispatcher.operator = self.hub
        decide = self.hub.apply  # the notebook that deployed this router says when to publish (``publish``)
        self.hub.apply = lambda action, args: self.publish() if action == "publish" else decide(action, args)
        if spec.shared:
            seats = spec.workers_per_assignment
            rules = Chat(**(spec.chat or {}))
            self.dispatcher.rooms = Rooms(run.store, self.dispatcher.sockets, self.provider, spec.roles, seats, rules)
        self.metrics = self._metrics(spec.name)
        if spec.screening:
            self.dispatcher.screener = Screener(
                run.store, self.provider, spec.screening, run.hooks.get("screening_validate"), run.task_id, later
            )
        if spec.onboarding:
            self.dispatcher.onboarder = Onboarder(
                run.store, self.provider, spec.onboarding, run.hooks.get("onboarding_validate"), stored["secret"], later
            )
        app = create_app(
            self.dispatcher,
            page,
            title=spec.title,
            description=spec.description,
            preview_row=preview,
            fields=page.fields(preview),
            static_dir=Path(spec.static_dir) if spec.static_dir else None,
            max_upload_mb=spec.max_upload_mb,
            counts=lambda: run.store.unit_counts(run.id),
            procedures=self.executor,
            metrics=self.metrics,
            extra_answers=spec.extra_answers,
        )
        app.register_blueprint(
            feed.blueprint(
                run.store,
                run.id,
                stored["secret"],
                lambda: {"state": run.state, "counts": run.counts, "spend": run.spend},
            )
        )
        app.register_blueprint(operator_routes.blueprint(self.hub, run.store, run.stop))
        app.register_blueprint(metrics.blueprint(self.metrics, stored["secret"], run.id, self.hub.authorized))
        url = self.architect.deploy(app)
        self.info = self.dispatcher.run = dataclasses.replace(info, url=url)
        config = json.loads(stored["config"])
        if self.architect.name == config["architect"]["name"]:  # a hosted server keeps the run's own options
            config["architect"]["options"] = self.architect.options()
        run.store.update_run(run.id, url=url, status="running", config=json.dumps(config), stopped_at=None)
        if not config.get("operator", {}).get("held"):
            self.publish()
        root = run.project.root  # what the monitor's thread logs is about its run
        self.monitor = Monitor(run.id, self.tick, self.dispatcher.backlog, lambda: logs.bind(project=root, run=run.id))
        self.monitor.start()
        return url

    def publish(self) -> bool:
        """Tell the provider the run's URL and put units on offer; False when it was done already.

        A router a notebook deployed elsewhere is held until the notebook has seen it answer at its public
        address and checked that address against the provider's rules (MTurk: HTTPS); then it sends ``publish``.
        """
        assert self.info is not None
        with self._publishing:
            if self.told_provider:
                return False
            self.told_provider = True  # from here a failed launch may have left something on the platform
            self.provider.setup_run(self.info)
            self.launch()
        config = json.loads(self.run.store.get_run(self.run.id)["config"])
        if config.get("operator", {}).pop("held", None) is not None:  # a restarted router publishes at once
            self.run.store.update_run(self.run.id, config=json.dumps(config))
        return True

    def _metrics(self, task: str) -> metrics.RunMetrics:
        """The run's registry: the store's series read at each scrape, the platform's calls as they happen."""
        run, dispatcher, hub = self.run, self.dispatcher, self.hub
        assert dispatcher is not None and hub is not None
        info = {"run": str(run.id), "task": task, "provider": self.provider.name, "architect": self.architect.name}
        state = metrics.StateCollector(
            info,
            units=lambda: run.store.unit_counts(run.id),
            agents=lambda: reports.agent_counts(run.store, run.id),
            spend=lambda: reports.spend(run.store, "run", run.id, self.provider.fee_rate),
            connected=dispatcher.sockets.connected,
            operator=lambda: hub.connected,
        )
        # under gunicorn (`crowdnb serve`) the counted series live in files that outlast a worker
        found = metrics.RunMetrics(state, getattr(self.architect, "metrics_dir", None))
        meter = getattr(self.provider, "meter", None)  # a provider made elsewhere may not report its calls
        if isinstance(meter, Meter):
            meter.listen(found.platform_call)
        return found

    # --- the monitor ---------------------------------------------------------------------------
    def tick(self) -> None:
        """One round: feed, launch, release abandoned units, detect completion."""
        if not self.told_provider:  # held until the notebook publishes: nothing is on offer yet
            return
        self.feed()
        self.launch()
        assert self.dispatcher is not None
        if self.provider.poll_seconds and time.monotonic() >= self.next_sync:
            self.next_sync = time.monotonic() + self.provider.poll_seconds
            assert self.info is not None
            lifecycle.apply_reports(self.run.store, self.run.id, self.provider.name, self.provider.sync(self.info))
        self.dispatcher.flush_seen()
        gone = self.dispatcher.sockets.gone_for(self.run.spec.disconnect_grace)
        rooms = self.dispatcher.rooms
        if rooms is not None:
            rooms.tick()
            gone = [agent for agent in gone if not rooms.holds(agent)]  # a room gives them partner_grace
        lifecycle.release_stale(self.run.store, self.run.id, self.run.spec.assignment_duration, gone)
        counts = self.run.store.unit_counts(self.run.id)
        finished = self.rows.exhausted and not any(counts[s] for s in S.UNIT_INCOMPLETE)
        if finished and self.run.store.get_run(self.run.id)["status"] == "running":
            log.info("run %s is complete", self.run.id)
            self.run.store.update_run(self.run.id, status="completed")
        self.run.rulebook.tick()  # rules act here, on the monitor thread, never in a worker's request

    def feed(self) -> None:
        """Store more input rows when a generator's units run low (lists are stored at once)."""
        if self.rows.exhausted:
            return
        store, run = self.run.store, self.run
        if not self.rows.finite:
            counts = store.unit_counts(run.id)
            if counts[S.CREATED] + counts[S.LAUNCHED] >= FEED_BATCH:
                return
        loaded = int(store.get_run(run.id)["rows_loaded"])
        batch = self.rows.take(None if self.rows.finite else FEED_BATCH)
        if self.rows.error is not None:  # the log line lands in run.errors too
            log.error("run %s: stopped reading data: %s", run.id, self.rows.error)
        if batch:
            spec = run.spec
            lifecycle.add_assignments(store, run.id, run.task_id, batch, loaded, spec.units_per_assignment, spec.reward)
        if self.rows.exhausted:
            store.update_run(run.id, data_exhausted=1)

    def launch(self) -> None:
        """Put created units on offer, within ``max_num_concurrent_units`` and the task's budget."""
        spec, fee = self.run.spec, self.provider.fee_rate
        budget = None
        if spec.budget is not None:
            budget = lifecycle.Budget(self.run.task_id, spec.budget, spec.reward * (1 + fee), fee)
        launched = lifecycle.launch_units(self.run.store, self.run.id, spec.max_num_concurrent_units, budget)
        if launched and self.info is not None:
            self.provider.publish(self.info, launched)

    def stop(self) -> None:
        """Stop the monitor, expire what is outstanding, close sockets, shut the router down."""
        with logs.bound(project=self.run.project.root, run=self.run.id):
            self._stop()

    def _stop(self) -> None:
        """Join the monitor, expire what is outstanding, stop the router, then do what its requests left."""
        assert self.dispatcher is not None and self.info is not None and self.monitor is not None
        self.monitor.stop()
        expired = lifecycle.expire_run(self.run.store, self.run.id)
        if expired and self.told_provider:
            self.provider.expire(self.info, expired)
        self.dispatcher.sockets.close_all(json.dumps({"type": "status", "status": S.A_EXPIRED}))
        self.executor.close()
        if self.hub is not None:
            self.hub.close()
        self.architect.shutdown()
        self.dispatcher.backlog.drain()  # no request can queue more now; nothing queued is dropped
        if self.told_provider:
            self.provider.cleanup_run(self.info)


def figures(run: Run, service: Service | None) -> dict[str, Any]:
    """The run's figures as its ``/metrics`` would serve them now (``metrics.read``): from the live registry
    while this process serves the run, else from the store alone (no requests counted)."""
    if service is not None and service.metrics is not None:
        return service.metrics.figures()
    info = {"run": str(run.id), "task": run.task_name, "provider": str(run.config["provider"]["name"]),
            "architect": str(run.config["architect"]["name"])}  # fmt: skip
    state = metrics.StateCollector(info, lambda: run.store.unit_counts(run.id),
                                   lambda: reports.agent_counts(run.store, run.id), lambda: run.spend)  # fmt: skip
    return metrics.read(state.collect())
