"""What the machine says: memory and CPU of a process, its children, listen-queue overflows, disk speed.

The process helpers take a pid (``"self"`` for this process) so the router can be measured whether it
runs in this process (the kernel's case) or in another one (the gunicorn worker of ``crowdnb serve``).
"""

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

Pid = int | str  # a process id, or "self"


def status_kb(name: str, pid: Pid = "self") -> int:
    """A ``VmXXX`` figure of /proc/<pid>/status in kB (0 where /proc or the process is missing)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(rf"^{name}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def open_files(pid: int) -> int:
    """How many file descriptors a process holds (0 where unknown)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def thread_count(pid: int) -> int:
    """The thread count of a process (0 where unknown)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: Pid = "self") -> float:
    """User + system CPU seconds of a process so far (clock-tick resolution; 0.0 where unknown).

    For this process ``time.process_time()`` is finer; this is for another process.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), counted from 1
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: Pid = "self") -> bool:
    """Reset a process's VmHWM to its current RSS (Linux ≥ 4.0), so each scenario reports its own peak."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        logging.getLogger(__name__).warning("cannot reset the peak RSS of %s; peaks accumulate over scenarios", pid)
        return False
    return True


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (through /proc/<pid>/task/*/children, else a scan of /proc)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(child) for child in (task / "children").read_text().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: look for processes whose parent is pid
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(child for child in set(found) if alive(child))


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling since boot (from /proc/stat; 0.0 where unknown)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    ticks = [int(n) for n in first[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


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


def environment() -> dict[str, Any]:
    """Where the figures were taken."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
    }
