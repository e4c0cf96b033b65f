"""What the machine says: memory of this process, the kernel's listen-queue overflows, disk speed."""

from __future__ import annotations

import logging
import os
import platform
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from loadgen import elapsed_ms
from report import percentile


def status_kb(name: str) -> int:
    """A ``VmXXX`` figure of /proc/self/status in kB (0 where /proc is missing)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen backlog was full (0 where unknown)."""
    try:
        lines = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()]
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names and names[0] == "TcpExt:" and "ListenOverflows" in names:
            return int(values[names.index("ListenOverflows")])
    return 0


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0), so each scenario reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        logging.getLogger(__name__).warning("cannot reset the peak RSS; peaks accumulate over scenarios")


# =============================================================================================
# Scenarios and figures
# =============================================================================================


def durable_insert_ms(folder: Path, count: int = 300) -> float:
    """p50 of one durable SQLite insert (WAL, synchronous=FULL) here: how fast this disk syncs."""
    db = sqlite3.connect(folder / "probe.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE probe (n INTEGER)")
    times = []
    for n in range(count):
        started = time.perf_counter()
        db.execute("INSERT INTO probe VALUES (?)", (n,))
        times.append(elapsed_ms(started))
    db.close()
    return percentile(times, 50) or 0.0


# --- the table --------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """Where the figures were taken."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
    }
