"""Printing the router-load figures: crowdnb in the kernel, in a child process and under ``crowdnb serve``
beside the baseline and the framework-free ceiling; and each with the kernel idle against busy."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]

TARGETS = {
    "throughput": 1000.0,
    "submit_p99_ms": 100.0,
    "lag_p99_ms": 250.0,
    "busy_over_idle": 1.5,
    "serve_of_ceiling": 0.6,
}
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


KINDS = ("crowdnb", "process", "serve", "baseline", "ceiling")  # the targets, in the table's order
SHORT = {"crowdnb": "k", "process": "p", "serve": "s", "ceiling": "c"}  # ratio columns: k÷b, p÷b, s÷b, c÷b
NAMES = {"crowdnb": "local"}  # the architect's name, where the busy-kernel table says which router it is
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


def report(
    groups: list[dict[str, dict[str, Any]]],
    settings: dict[str, Any],
    busy_groups: list[dict[str, dict[str, Any]]] | None = None,
) -> str:
    """The whole printed report; ``busy_groups``: the same scenarios run with the kernel busy."""
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
        "crowdnb = in-kernel router (architect local: werkzeug threaded, in the benchmark process); process = "
        "architect process (`crowdnb serve` in a child, run.df through the mirror); serve = `crowdnb serve` "
        "(gunicorn + gevent, 1 worker, own process)",
        "baseline = bare Flask + werkzeug threaded, one durable insert per POST; k÷b = crowdnb ÷ baseline, "
        "p÷b = process ÷ baseline, s÷b = serve ÷ baseline",
        "ceiling = no framework: a raw ASGI app on uvicorn + uvloop + httptools in a thread, the same durable "
        "insert (benchmarks/ceiling.py); c÷b = ceiling ÷ baseline",
        "router CPU/RSS: the benchmark process for crowdnb and baseline, the gunicorn worker for process and "
        "serve (whose run.df poller runs outside it)",
        "",
        table(groups),
    ]
    if any(kind in busiest for kind in SHORT):
        workers = next(iter(busiest.values()))["workers"]
        lines += ["", f"targets ({workers} workers):", *target_check(busiest)]
        if "serve" in busiest and "ceiling" in busiest:
            share = busiest["serve"]["throughput"] / (busiest["ceiling"]["throughput"] or 1.0)
            goal = TARGETS["serve_of_ceiling"]
            lines.append(
                f"  serve ≥ {goal:g}× the ceiling's submissions/s: {share:.2f}× {'met' if share >= goal else 'NOT met'}"
            )
    for idle, busy in zip(groups, busy_groups or [], strict=False):
        if busy:
            lines += ["", *busy_table(idle, busy)]
    lines.append(f"for context: {PRIOR_ART}")
    samples = [
        f"  {s['target']}{' (busy kernel)' if s.get('busy_kernel') else ''} {s['workers']}: {e}"
        for group in groups + (busy_groups or [])
        for s in group.values()
        for e in s["error_samples"]
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


BUSY_METRICS: list[tuple[str, Getter, str]] = [
    ("submissions/s", lambda s: s["throughput"], "{:,.0f}"),
    ("GET p50 (ms)", lambda s: s["get_ms"]["p50"], "{:.1f}"),
    ("GET p99 (ms)", lambda s: s["get_ms"]["p99"], "{:.1f}"),
    ("submit p50 (ms)", lambda s: s["submit_ms"]["p50"], "{:.1f}"),
    ("submit p99 (ms)", lambda s: s["submit_ms"]["p99"], "{:.1f}"),
    ("submit→frame p50 (ms)", lambda s: s["lag_ms"]["p50"], "{:.1f}"),
    ("submit→frame p99 (ms)", lambda s: s["lag_ms"]["p99"], "{:.1f}"),
    ("errors", lambda s: s["errors"], "{:.0f}"),
    ("router CPU (ms/unit)", lambda s: s["router_cpu_ms_per_unit"], "{:.2f}"),
    ("kernel loop (% core)", lambda s: s.get("kernel_cpu_percent"), "{:.0f}"),
    ("others' CPU (% core)", lambda s: s.get("others_cpu_percent"), "{:.0f}"),
]


def busy_table(idle: dict[str, dict[str, Any]], busy: dict[str, dict[str, Any]]) -> list[str]:
    """Each target with the kernel idle, then busy (a pure-Python loop in a thread), and busy ÷ idle; then
    the target: a router away from the kernel within 1.5× of its idle submit p50 and p99."""
    kinds = [kind for kind in KINDS if kind in idle and kind in busy]
    workers = idle[kinds[0]]["workers"]
    heads = "".join(f" {NAMES.get(kind, kind) + ' idle':>14} {'busy':>8} {'÷':>6}" for kind in kinds)
    lines = [
        f"kernel idle vs busy ({workers} workers; busy: a pure-Python loop in a thread of the benchmark process)",
        f"{'metric':<{LABEL_WIDTH}}{heads}",
    ]
    lines.append("-" * len(lines[-1]))
    for label, get, fmt in BUSY_METRICS:
        row = ""
        for kind in kinds:
            calm, loaded = get(idle[kind]), get(busy[kind])
            row += f" {cell(calm, fmt):>14} {cell(loaded, fmt):>8} {ratio(loaded, calm):>6}"
        lines.append(f"{label:<{LABEL_WIDTH}}{row}")
    goal = TARGETS["busy_over_idle"]
    for kind in kinds:
        if kind != "process":
            continue
        for name in ("p50", "p99"):
            calm, loaded = idle[kind]["submit_ms"][name], busy[kind]["submit_ms"][name]
            met = calm is not None and loaded is not None and loaded <= goal * calm
            lines.append(
                f"  target: {kind} busy submit {name} within {goal:g}× of idle: {cell(loaded, '{:.1f}')} vs "
                f"{cell(calm, '{:.1f}')} ms ({ratio(loaded, calm)}) {'met' if met else 'NOT met'}"
            )
    return lines
