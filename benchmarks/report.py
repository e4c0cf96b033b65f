"""Printing the router-load figures: crowdnb in the kernel and under ``crowdnb serve`` beside the baseline
and the framework-free ceiling."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]

TARGETS = {"throughput": 1000.0, "submit_p99_ms": 100.0, "lag_p99_ms": 250.0}
PRIOR_ART = "Mephisto ≈ 50 units/s and Turkle ≈ 40 units/s were measured on this machine type."


METRICS: list[tuple[str, Getter, str]] = [
    ("submissions/s", lambda s: s["throughput"], "{:,.0f}"),
    ("GET p50 (ms)", lambda s: s["get_ms"]["p50"], "{:.1f}"),
    ("GET p99 (ms)", lambda s: s["get_ms"]["p99"], "{:.1f}"),
    ("heartbeat p50 (ms)", lambda s: s["heartbeat_ms"]["p50"], "{:.1f}"),
    ("heartbeat p99 (ms)", lambda s: s["heartbeat_ms"]["p99"], "{:.1f}"),
    ("submit p50 (ms)", lambda s: s["submit_ms"]["p50"], "{:.1f}"),
    ("submit p99 (ms)", lambda s: s["submit_ms"]["p99"], "{:.1f}"),
    ("submit→frame p50 (ms)", lambda s: s["lag_ms"]["p50"], "{:.1f}"),
    ("submit→frame p99 (ms)", lambda s: s["lag_ms"]["p99"], "{:.1f}"),
    ("errors", lambda s: s["errors"], "{:.0f}"),
    ("listen-queue overflows", lambda s: s["listen_overflows"], "{:.0f}"),
    ("peak RSS (MB)", lambda s: s["peak_rss_mb"], "{:.0f}"),
    ("RSS growth (MB)", lambda s: s["rss_growth_mb"], "{:.0f}"),
    ("router CPU (% core)", lambda s: s["router_cpu_percent"], "{:.0f}"),
    ("router CPU (ms/unit)", lambda s: s["router_cpu_ms_per_unit"], "{:.2f}"),
    ("  of which serving", lambda s: s["serving_cpu_ms_per_unit"], "{:.2f}"),
    ("frame poll (ms/poll)", lambda s: s["poll_ms"], "{:.2f}"),
    ("frame poll CPU (% core)", lambda s: s["poll_cpu_percent"], "{:.0f}"),
    ("load-gen CPU (% core)", lambda s: s["load_cpu_percent"], "{:.0f}"),
    ("others' CPU (% core)", lambda s: s.get("others_cpu_percent"), "{:.0f}"),
]


KINDS = ("crowdnb", "serve", "baseline", "ceiling")  # the targets, in the table's order
SHORT = {"crowdnb": "k", "serve": "s", "ceiling": "c"}  # ratio columns: k÷b, s÷b, c÷b
VALUE_WIDTH, RATIO_WIDTH, LABEL_WIDTH = 8, 7, 23


def cell(value: float | None, fmt: str) -> str:
    """A formatted figure, or a dash."""
    return "—" if value is None else fmt.format(value)


def ratio(ours: float | None, theirs: float | None) -> str:
    """crowdnb ÷ baseline, or a dash when it means nothing."""
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}×"


def columns(group: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The targets measured in a group, in table order, and those that get a ratio to the baseline."""
    kinds = [kind for kind in KINDS if kind in group]
    ratios = [kind for kind in kinds if kind in SHORT] if "baseline" in group else []
    return kinds, ratios


def table(groups: list[dict[str, dict[str, Any]]]) -> str:
    """Metric rows; for each worker count, each target's figure and each crowdnb target ÷ the baseline."""
    heads, subs = [], []
    for group in groups:
        kinds, ratios = columns(group)
        sub = "".join(f" {kind:>{VALUE_WIDTH}}" for kind in kinds)
        sub += "".join(f" {SHORT[kind] + '÷b':>{RATIO_WIDTH}}" for kind in ratios) + "  "
        workers = next(iter(group.values()))["workers"]
        heads.append(f"{f'{workers} workers':^{len(sub)}}")
        subs.append(sub)
    lines = [f"{'':<{LABEL_WIDTH}}{''.join(heads)}", f"{'metric':<{LABEL_WIDTH}}{''.join(subs)}".rstrip()]
    lines.append("-" * len(lines[-1]))
    for label, get, fmt in METRICS:
        row = ""
        for group in groups:
            kinds, ratios = columns(group)
            row += "".join(f" {cell(get(group[kind]), fmt):>{VALUE_WIDTH}}" for kind in kinds)
            baseline = group.get("baseline")
            for kind in ratios:
                assert baseline is not None
                row += f" {ratio(get(group[kind]), get(baseline)):>{RATIO_WIDTH}}"
            row += "  "
        lines.append(f"{label:<{LABEL_WIDTH}}{row}".rstrip())
    return "\n".join(lines)


def target_check(group: dict[str, dict[str, Any]]) -> list[str]:
    """The targets, each against every crowdnb target of the group (the baseline has none to meet)."""
    kinds = [kind for kind in KINDS if kind in group and kind != "baseline"]
    checks: list[tuple[str, Getter, float, bool, str]] = [
        ("≥ 1,000 submissions/s", lambda s: s["throughput"], TARGETS["throughput"], True, "{:,.0f}/s"),
        ("p99 submit < 100 ms", lambda s: s["submit_ms"]["p99"], TARGETS["submit_p99_ms"], False, "{:.1f} ms"),
        ("submit→frame p99 < 250 ms", lambda s: s["lag_ms"]["p99"], TARGETS["lag_p99_ms"], False, "{:.1f} ms"),
    ]
    lines = [f"  {'':<28}" + "".join(f"{kind:>22}" for kind in kinds)]
    for label, get, goal, higher, fmt in checks:
        row = f"  {label:<28}"
        for kind in kinds:
            value = get(group[kind])
            met = value is not None and (value >= goal if higher else value < goal)
            row += f"{cell(value, fmt):>13} {'met' if met else 'NOT met':>8}"
        lines.append(row)
    return lines


def report(groups: list[dict[str, dict[str, Any]]], settings: dict[str, Any]) -> str:
    """The whole printed report."""
    busiest = max(groups, key=lambda group: next(iter(group.values()))["workers"])
    heartbeats = "1 websocket + 1 heartbeat per unit" if settings["heartbeats"] else "no websockets/heartbeats"
    if settings.get("think_s"):
        heartbeats += f"; workers think {settings['think_s']:g} s per unit on average (exponential), page open"
    else:
        heartbeats += "; no think time"
    lines = [
        f"router load: {settings['units']} units per scenario; {heartbeats}; run.df polled every "
        f"{settings['poll_ms']:g} ms; {settings['cpus']} CPUs; one durable SQLite insert here takes "
        f"{settings['durable_insert_ms']:.2f} ms (p50)",
        "crowdnb = in-kernel router (werkzeug threaded, in the benchmark process); serve = `crowdnb serve` "
        "(gunicorn + gevent, 1 worker, own process)",
        "baseline = bare Flask + werkzeug threaded, one durable insert per POST; k÷b = crowdnb ÷ baseline, "
        "s÷b = serve ÷ baseline",
        "ceiling = no framework: a raw ASGI app on uvicorn + uvloop + httptools in a thread, the same durable "
        "insert (benchmarks/ceiling.py); c÷b = ceiling ÷ baseline",
        "router CPU/RSS: the benchmark process for crowdnb and baseline, the gunicorn worker for serve "
        "(whose run.df poller runs outside it)",
        "",
        table(groups),
    ]
    if any(kind in busiest for kind in SHORT):
        workers = next(iter(busiest.values()))["workers"]
        lines += ["", f"targets ({workers} workers):", *target_check(busiest)]
    lines.append(f"for context: {PRIOR_ART}")
    samples = [
        f"  {s['target']} {s['workers']}: {e}" for group in groups for s in group.values() for e in s["error_samples"]
    ]
    if samples:
        lines += ["", "error samples:", *samples]
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def spread(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of a list of milliseconds."""
    return {"p50": percentile(values, 50), "p99": percentile(values, 99), "max": max(values, default=None)}
