"""Printing the router-load figures: a table side by side with the baseline, and the targets."""

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
    ("router CPU (ms/unit)", lambda s: s["router_cpu_ms_per_unit"], "{:.2f}"),
    ("  of which serving", lambda s: s["serving_cpu_ms_per_unit"], "{:.2f}"),
    ("frame poll (ms/poll)", lambda s: s["poll_ms"], "{:.2f}"),
    ("frame poll CPU (% core)", lambda s: s["poll_cpu_percent"], "{:.0f}"),
    ("load-gen CPU (% core)", lambda s: s["load_cpu_percent"], "{:.0f}"),
]


def cell(value: float | None, fmt: str) -> str:
    """A formatted figure, or a dash."""
    return "—" if value is None else fmt.format(value)


def ratio(ours: float | None, theirs: float | None) -> str:
    """crowdnb ÷ baseline, or a dash when it means nothing."""
    if ours is None or theirs is None or theirs == 0:
        return "—"
    return f"{ours / theirs:.2f}×"


def table(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """Metric rows; for each worker count, crowdnb, baseline and their ratio."""
    widths = (23, 10, 10, 8)
    span = sum(widths[1:]) + 3
    header = "".join(f"{str(c['workers']) + ' workers':^{span}}" for c, _ in pairs)
    sub = "".join(f"{'crowdnb':>{widths[1]}}{'baseline':>{widths[2] + 1}}{'ratio':>{widths[3] + 1}} " for _ in pairs)
    lines = [f"{'':<{widths[0]}}{header}", f"{'metric':<{widths[0]}}{sub}", "-" * (widths[0] + len(sub))]
    for label, get, fmt in METRICS:
        row = "".join(
            f"{cell(get(c), fmt):>{widths[1]}} {cell(get(b), fmt):>{widths[2]}} {ratio(get(c), get(b)):>{widths[3]}} "
            for c, b in pairs
        )
        lines.append(f"{label:<{widths[0]}}{row}")
    return "\n".join(lines)


def target_check(scenario: dict[str, Any]) -> list[str]:
    """The targets, each against the given crowdnb scenario."""
    checks = [
        ("≥ 1,000 submissions/s", scenario["throughput"], TARGETS["throughput"], True, "{:,.0f}/s"),
        ("p99 submit < 100 ms", scenario["submit_ms"]["p99"], TARGETS["submit_p99_ms"], False, "{:.1f} ms"),
        ("submit→frame p99 < 250 ms", scenario["lag_ms"]["p99"], TARGETS["lag_p99_ms"], False, "{:.1f} ms"),
    ]
    lines = []
    for label, value, goal, higher, fmt in checks:
        met = value is not None and (value >= goal if higher else value < goal)
        lines.append(f"  {label:<28} {cell(value, fmt):>12}   {'met' if met else 'NOT met'}")
    return lines


def report(pairs: list[tuple[dict[str, Any], dict[str, Any]]], settings: dict[str, Any]) -> str:
    """The whole printed report."""
    busiest = max((c for c, _ in pairs), key=lambda c: c["workers"])
    heartbeats = "1 websocket + 1 heartbeat per unit" if settings["heartbeats"] else "no websockets/heartbeats"
    lines = [
        f"router load: {settings['units']} units per scenario; {heartbeats}; run.df polled every "
        f"{settings['poll_ms']:g} ms; {settings['cpus']} CPUs; one durable SQLite insert here takes "
        f"{settings['durable_insert_ms']:.2f} ms (p50)",
        "ratio = crowdnb ÷ baseline (bare Flask + werkzeug threaded, one durable insert per POST)",
        "",
        table(pairs),
        "",
        f"targets (crowdnb with {busiest['workers']} workers):",
        *target_check(busiest),
        f"for context: {PRIOR_ART}",
    ]
    samples = [f"  {c['target']} {c['workers']}: {e}" for pair in pairs for c in pair for e in c["error_samples"]]
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
