"""Small inline SVG charts for the widgets: no plotting library, no JavaScript, safe to update from a thread."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import escape

WIDTH, HEIGHT, PAD = 320, 120, 24


def _frame(title: str, body: str, note: str) -> str:
    return (
        f'<svg class="crowd-chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg" style="font:10px sans-serif">'
        f'<text x="{PAD}" y="12" font-weight="bold">{escape(title)}</text>'
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 4}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f'<line x1="{PAD}" y1="18" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#999"/>'
        f"{body}"
        f'<text x="{PAD}" y="{HEIGHT - 6}" fill="#555">{escape(note)}</text></svg>'
    )


def cumulative(times: Sequence[float], title: str = "completions over time") -> str:
    """A step line of how many submissions had arrived by each moment (``times`` in seconds, any origin)."""
    if not times:
        return _frame(title, "", "no submissions yet")
    ordered = sorted(times)
    start, span = ordered[0], max(ordered[-1] - ordered[0], 1e-9)
    total = len(ordered)
    x0, x1, y0, y1 = PAD, WIDTH - 6, HEIGHT - PAD, 20
    points = [f"{x0},{y0}"]
    step = max(1, total // 200)  # at most ~200 points whatever the size of the run
    for index in range(0, total, step):
        x = x0 + (ordered[index] - start) / span * (x1 - x0)
        y = y0 - (index + 1) / total * (y0 - y1)
        points.append(f"{x:.1f},{y:.1f}")
    points.append(f"{x1},{y1}")
    body = f'<polyline fill="none" stroke="#2557a7" stroke-width="2" points="{" ".join(points)}"/>'
    return _frame(title, body, f"{total} in {span / 60:.1f} min")


def histogram(values: Sequence[float], title: str = "seconds per unit", bins: int = 12) -> str:
    """Bars of how many units took how long."""
    clean = [v for v in values if v == v and v >= 0]  # drop NaN
    if not clean:
        return _frame(title, "", "no submissions yet")
    low, high = min(clean), max(clean)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in clean:
        counts[min(int((value - low) / width), bins - 1)] += 1
    tallest = max(counts)
    x0, y0, usable = PAD + 1, HEIGHT - PAD, HEIGHT - PAD - 20
    bar = (WIDTH - PAD - 8) / bins
    rects = "".join(
        f'<rect x="{x0 + i * bar:.1f}" y="{y0 - c / tallest * usable:.1f}" width="{bar - 2:.1f}" '
        f'height="{c / tallest * usable:.1f}" fill="#5b7bb2"><title>{c}</title></rect>'
        for i, c in enumerate(counts)
    )
    median = sorted(clean)[len(clean) // 2]
    return _frame(title, rects, f"{low:.0f}–{high:.0f} s, median {median:.1f} s")
