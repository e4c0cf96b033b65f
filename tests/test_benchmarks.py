"""The benchmark scripts still run: each at its smallest size, every target, figures that add up.

They measure nothing here (a shared 2-core machine; the figures live in the README); these runs only keep
the scripts working as the code they drive changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def bench(tmp_path: Path, script: str, *args: str, timeout: float = 240) -> dict[str, Any]:
    """Run ``benchmarks/<script>`` with ``args``; its JSON output."""
    output = tmp_path / f"{script}.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args, "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result: dict[str, Any] = json.loads(output.read_text())
    return result


@pytest.mark.timeout(300)
def test_router_load_drives_every_target_to_the_end(tmp_path: Path) -> None:
    figures = bench(tmp_path, "router_load.py", "--workers", "3", "--units", "20")
    scenarios = {s["target"]: s for s in figures["scenarios"]}
    assert set(scenarios) == {"crowdnb", "process", "serve", "baseline", "ceiling"}
    for name, scenario in scenarios.items():
        assert (scenario["submitted"], scenario["errors"], scenario["lag_missing"]) == (20, 0, 0), name
        assert scenario["throughput"] > 0 and scenario["submit_ms"]["p99"] is not None, name


@pytest.mark.timeout(120)
def test_router_load_with_a_crowd_at_work(tmp_path: Path) -> None:
    figures = bench(
        tmp_path, "router_load.py", "--workers", "4", "--units", "12", "--think", "0.3", "--targets", "crowdnb,ceiling"
    )
    assert figures["settings"]["think_s"] == 0.3
    for scenario in figures["scenarios"]:
        assert (scenario["submitted"], scenario["errors"]) == (12, 0), scenario["target"]


@pytest.mark.timeout(180)
def test_router_load_with_the_kernel_busy(tmp_path: Path) -> None:
    figures = bench(
        tmp_path, "router_load.py", "--workers", "3", "--units", "12", "--think", "0.2", "--targets",
        "crowdnb,process", "--busy-kernel",
    )  # fmt: skip
    runs = {(s["target"], s["busy_kernel"]): s for s in figures["scenarios"]}
    assert set(runs) == {(kind, busy) for kind in ("crowdnb", "process") for busy in (False, True)}
    for name, scenario in runs.items():
        assert (scenario["submitted"], scenario["errors"], scenario["lag_missing"]) == (12, 0, 0), name
        assert (scenario.get("kernel_rounds_per_s", 0) > 0) == scenario["busy_kernel"], name


@pytest.mark.timeout(120)
def test_dispatch_scale_assigns_on_both_sides(tmp_path: Path) -> None:
    figures = bench(tmp_path, "dispatch_scale.py", "--units", "300", "--workers", "30")
    assert figures["settings"]["launch"]["units"] == 300
    for side in ("crowdnb", "baseline"):
        assert figures[side] and all(level["calls"] > 0 for level in figures[side]), side
    assert any(level["outcomes"].get("assigned") for level in figures["crowdnb"])


@pytest.mark.timeout(120)
def test_export_scale_exports_every_row(tmp_path: Path) -> None:
    figures = bench(tmp_path, "export_scale.py", "--rows", "2000", "--workers", "50", "--extra", "10")
    ours = figures["crowdnb"]
    assert (ours["rows"], ours["rows_after"]) == (2000, 2010)
    assert ours["parquet_mb"] > 0 and ours["csv_mb"] > 0 and figures["baseline"]


@pytest.mark.timeout(180)
def test_connected_workers_holds_every_page(tmp_path: Path) -> None:
    figures = bench(tmp_path, "connected_workers.py", "--workers", "5", "--hold", "1", "--arriving", "5")
    scenarios = figures["scenarios"]
    assert {s["target"] for s in scenarios} == {"crowdnb", "serve", "floor-kernel", "floor-serve"}
    for scenario in scenarios:
        assert (scenario["connected"], scenario["errors"]) == (5, 0), scenario["target"]


@pytest.mark.timeout(120)
def test_procedures_benchmark_calls_both_targets(tmp_path: Path) -> None:
    figures = bench(tmp_path, "procedures.py", "--pages", "3", "--rate", "30", "--seconds", "1")
    scenarios = {s["target"]: s for s in figures["scenarios"]}
    assert set(scenarios) == {"crowdnb", "floor"}
    for name, scenario in scenarios.items():
        assert scenario["calls"] > 0 and scenario["errors"] == 0, name
    assert scenarios["crowdnb"]["stored"]["ok"] == scenarios["crowdnb"]["calls"]


@pytest.mark.timeout(120)
def test_chat_benchmark_relays_on_both_targets(tmp_path: Path) -> None:
    figures = bench(tmp_path, "chat.py", "--chats", "2", "--messages", "3", "--interval", "0.05")
    scenarios = {s["target"]: s for s in figures["scenarios"]}
    assert set(scenarios) == {"crowdnb", "floor"}
    for name, scenario in scenarios.items():
        assert (scenario["messages"], scenario["errors"]) == (6, 0), name
    assert scenarios["crowdnb"]["stored"]["messages"] == 6


@pytest.mark.timeout(120)
def test_review_grid_benchmark_pages_sorts_and_decides(tmp_path: Path) -> None:
    figures = bench(tmp_path, "review_grid.py", "--rows", "300", "--workers", "12", "--repeat", "2")
    ours = figures["crowdnb"]
    assert ours["rows"] == 300 and ours["total"] == 300  # it opened on every unit: all need a decision
    assert ours["page_kb"] > 0 and all(ours[key] > 0 for key in ("open_s", "page_ms", "sort_ms", "decide_ms"))
