"""A run's metrics in Prometheus' text format: ``GET /metrics`` for the operator, and the live panel's figures.

Each run has a registry of its own (never prometheus-client's process-wide ``REGISTRY``), so several runs in
one kernel never mix. Two kinds of series live in it:

- counted as things happen, in this process: HTTP requests and their latency by route (the rule, such as
  ``/static/<path:name>``, never the path: labels stay few), submissions stored, refusals by reason,
  platform calls and failures by call;
- read from the store at each scrape (``StateCollector``): units and agents by state, spend, connected
  pages, whether an operator notebook is connected. They agree with ``run.counts`` and ``run.spend``
  because they are the same queries.

Under ``crowdnb serve`` (gunicorn) the counted series are kept in prometheus-client's multiprocess files
(``multiprocess_dir``), so a restarted worker does not reset them. ``read`` turns any scrape (a registry,
or text parsed with prometheus-client's parser) into the figures the live panel shows.

``/metrics`` answers only ``Authorization: Bearer <token>`` with the run's metrics token (``token``:
derived from the run's secret like the feed's and the operator's, and read-only) or its operator token.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, request
from itsdangerous import URLSafeSerializer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

SALT = "crowdnb.router.metrics"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PLATFORM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SPEND_KINDS = ("rewards", "pending", "bonuses", "fees", "total")
_ID = re.compile(r"^(?=.*\d)[A-Za-z0-9_-]{6,}$")  # a path segment that is an id (Prolific's are 24 hex digits)


def token(secret: str, run_id: int) -> str:
    """The bearer token that reads a run's ``/metrics`` (stable for the run's lifetime; reads nothing else)."""
    return str(URLSafeSerializer(secret, salt=SALT).dumps(run_id))


def call_name(call: str) -> str:
    """A platform call as a bounded label: ``GET studies/6578…/submissions/?page=2`` → ``GET studies/{id}/submissions/``."""
    method, _, path = call.partition(" ")
    if not path:
        return method
    path = re.sub(r"^https?://[^/]+", "", path).split("?", 1)[0]
    path = re.sub(r"^/?api/v\d+/", "", path)
    segments = ["{id}" if _ID.match(s) else s for s in path.split("/")]
    return f"{method} {'/'.join(segments)}"


class StateCollector(Collector):
    """Series read from the store at each scrape: units and agents by state, spend, pages, the operator."""

    def __init__(
        self,
        info: dict[str, str],
        units: Callable[[], dict[str, int]],
        agents: Callable[[], dict[str, int]],
        spend: Callable[[], dict[str, float]],
        connected: Callable[[], int] = lambda: 0,
        operator: Callable[[], bool] | None = None,
    ) -> None:
        self.info, self.units, self.agents, self.spend = info, units, agents, spend
        self.connected, self.operator = connected, operator

    def collect(self) -> Iterator[Metric]:
        """The series, read now."""
        info = GaugeMetricFamily("crowdnb_run_info", "The run this router serves.", labels=sorted(self.info))
        info.add_metric([self.info[k] for k in sorted(self.info)], 1)
        yield info
        yield _by("crowdnb_units", "Units of the run by state.", "state", self.units())
        yield _by("crowdnb_agents", "Workers' attempts (agents) of the run by state.", "state", self.agents())
        money = self.spend()
        yield _by("crowdnb_spend_dollars", "Dollars of the run so far, by kind.", "kind",
                  {k: money[k] for k in SPEND_KINDS})  # fmt: skip
        yield GaugeMetricFamily("crowdnb_connected_pages", "Workers with their task page open now (a socket).",
                                value=self.connected())  # fmt: skip
        if self.operator is not None:
            yield GaugeMetricFamily("crowdnb_operator_connected", "1 while an operator notebook is connected.",
                                    value=int(self.operator()))  # fmt: skip


def _by(name: str, text: str, label: str, values: dict[str, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


class RunMetrics:
    """One run's registry: the counted series, the store's series, and the text a scrape gets."""

    def __init__(self, state: StateCollector | None = None, multiprocess_dir: Path | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.state, self.multiprocess_dir = state, multiprocess_dir
        reg = self.registry
        self.requests = Counter("crowdnb_http_requests", "HTTP requests by route (the rule), method and status.",
                                ["route", "method", "status"], registry=reg)  # fmt: skip
        self.latency = Histogram("crowdnb_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=reg)  # fmt: skip
        self._counted: dict[tuple[str, str, int], Any] = {}  # the children of ``requests`` and ``latency``
        self._timed: dict[str, Any] = {}
        self.submissions = Counter("crowdnb_submissions", "Submissions received, by outcome (saved, duplicate).",
                                   ["outcome"], registry=reg)  # fmt: skip
        self.refusals = Counter("crowdnb_refusals", "Worker requests refused, by reason.", ["reason"], registry=reg)
        self.calls = Counter("crowdnb_platform_calls", "Calls to the crowd platform, by platform and call.",
                             ["platform", "call"], registry=reg)  # fmt: skip
        self.failures = Counter("crowdnb_platform_failures",
                                "Platform calls that failed, by platform, call and kind (transient, refused, error).",
                                ["platform", "call", "kind"], registry=reg)  # fmt: skip
        self.call_latency = Histogram("crowdnb_platform_call_duration_seconds", "Time a platform call took.",
                                      ["platform"], buckets=PLATFORM_BUCKETS, registry=reg)  # fmt: skip
        if state is not None:
            reg.register(state)

    # --- counting -------------------------------------------------------------------------------
    def request(self, route: str, method: str, status: int, seconds: float | None) -> None:
        """One HTTP request answered (``seconds`` None: not timed, a websocket)."""
        # ``labels()`` finds its child under a lock on each call: looked up once per series is enough
        counted = self._counted.get((route, method, status))
        if counted is None:
            counted = self._counted[(route, method, status)] = self.requests.labels(route, method, str(status))
        counted.inc()
        if seconds is not None:
            timed = self._timed.get(route)
            if timed is None:
                timed = self._timed[route] = self.latency.labels(route)
            timed.observe(seconds)

    def submitted(self, duplicate: bool) -> None:
        """A submission answered "saved" (a duplicate is a retry of one already stored)."""
        self.submissions.labels("duplicate" if duplicate else "saved").inc()

    def refused(self, reason: str) -> None:
        """A worker's request refused with ``reason`` (WorkerRefused's codes, or "error")."""
        self.refusals.labels(reason).inc()

    def platform_call(self, platform: str, call: str, seconds: float, failure: str | None) -> None:
        """A platform call made (a ``providers.meter.Meter`` listener); ``failure``: "transient", "refused", "error" or None."""
        name = call_name(call)
        self.calls.labels(platform, name).inc()
        self.call_latency.labels(platform).observe(seconds)
        if failure is not None:
            self.failures.labels(platform, name, failure).inc()

    # --- reading --------------------------------------------------------------------------------
    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: this registry, or under gunicorn every process's files plus the store's series."""
        if self.multiprocess_dir is None:
            return self.registry
        merged = CollectorRegistry(auto_describe=True)
        MultiProcessCollector(merged, path=str(self.multiprocess_dir))
        if self.state is not None:
            merged.register(self.state)
        return merged

    def exposition(self) -> bytes:
        """The text format a Prometheus server scrapes."""
        return bytes(generate_latest(self.scrape_registry()))

    def figures(self) -> dict[str, Any]:
        """The figures of a scrape made now (see ``read``)."""
        return read(self.scrape_registry().collect())

    def instrument(self, app: Flask) -> None:
        """Count and time every request of ``app`` by its rule (websockets are counted, not timed)."""

        @app.before_request
        def started() -> None:
            g.crowdnb_started = time.perf_counter()

        @app.after_request
        def answered(response: Response) -> Response:
            rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            socket = request.headers.get("Upgrade", "").lower() == "websocket"
            started = g.get("crowdnb_started")
            seconds = None if socket or started is None else time.perf_counter() - started
            self.request(rule, request.method, response.status_code, seconds)
            return response


def read(families: Iterable[Metric]) -> dict[str, Any]:
    """The figures of a scrape: units and agents by state, spend by kind, submissions saved, refusals by
    reason, connected pages and requests answered. ``families`` come from a registry's ``collect()`` or from
    ``prometheus_client.parser.text_string_to_metric_families`` (a scrape of a router elsewhere)."""
    found: dict[str, Any] = {"units": {}, "agents": {}, "spend": {}, "refusals": {}, "submissions": 0,
                             "duplicates": 0, "connected": 0, "requests": 0}  # fmt: skip
    for family in families:
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == "crowdnb_units":
                found["units"][labels["state"]] = int(value)
            elif name == "crowdnb_agents":
                found["agents"][labels["state"]] = int(value)
            elif name == "crowdnb_spend_dollars":
                found["spend"][labels["kind"]] = float(value)
            elif name == "crowdnb_submissions_total":
                found["submissions" if labels.get("outcome") == "saved" else "duplicates"] += int(value)
            elif name == "crowdnb_refusals_total":
                found["refusals"][labels["reason"]] = found["refusals"].get(labels["reason"], 0) + int(value)
            elif name == "crowdnb_connected_pages":
                found["connected"] = int(value)
            elif name == "crowdnb_http_requests_total":
                found["requests"] += int(value)
    return found


def blueprint(metrics: RunMetrics, secret: str, run_id: int, operator: Callable[[str], bool]) -> Blueprint:
    """``GET /metrics`` for whoever holds the run's metrics token, or its operator token (``operator``)."""
    expected = f"Bearer {token(secret, run_id)}"
    bp = Blueprint("crowdnb_metrics", __name__)

    @bp.get("/metrics")
    def scrape() -> Any:
        header = request.headers.get("Authorization", "")
        if not (hmac.compare_digest(header, expected) or operator(header)):
            return jsonify(
                {"error": "/metrics needs Authorization: Bearer <run.metrics_token> (crowdnb serve prints it)"}
            ), 401
        # content_type, not mimetype: Flask would add a second "; charset=utf-8"
        return Response(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)

    return bp
