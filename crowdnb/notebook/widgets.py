"""Notebook widgets: the task preview and the live panel of a run.

No widget ever blocks a cell: the live panel refreshes itself from a daemon thread (ipywidgets sends
trait changes from any thread), and every figure it shows comes from the store, through the same series as
the run's ``/metrics`` (``run.figures``).
"""

from __future__ import annotations

import html
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from .. import quality
from ..pages import charts
from ..pages.page import iframe
from ..store import states as S

if TYPE_CHECKING:
    from ..run import Run
    from ..task import Task

WIDTHS = {"phone": "375px", "desktop": "100%"}


def preview_widget(task: Task) -> W.VBox:
    """The worker's page for any input row, at phone or desktop width."""
    rows = task.row_count()
    row = W.BoundedIntText(value=0, min=0, max=max(rows - 1, 0), description="row", layout=W.Layout(width="160px"))
    width = W.ToggleButtons(options=list(WIDTHS), value="desktop", description="width")
    frame = W.HTML()

    def show(_: Any = None) -> None:
        frame.value = iframe(task.preview(row.value), WIDTHS[width.value])

    row.observe(show, names="value")
    width.observe(show, names="value")
    show()
    note = W.HTML(f"<small>{rows} input rows</small>" if rows else "<small>rows come from a generator</small>")
    return W.VBox([W.HBox([row, width, note]), frame])


class LivePanel:
    """Progress by unit status, rate, time left, cost, the latest submissions and two charts."""

    def __init__(self, run: Run, interval: float = 1.0, latest: int = 8) -> None:
        self.run, self.interval, self.latest = run, interval, latest
        self.title = W.HTML()
        self.progress = W.IntProgress(value=0, min=0, max=1, description="submitted", bar_style="info")
        self.stats = W.HTML()
        self.table = W.HTML()
        self.charts = W.HTML()
        self.widget = W.VBox([self.title, self.progress, self.stats, self.charts, self.table])
        self.figures: dict[str, Any] = {}
        self.label = categorical_answer(run)
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name=f"crowdnb-live-{run.id}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()
            if not self.run.serving:
                return  # one last refresh after the run stopped

    def close(self) -> None:
        """Stop refreshing."""
        self._stop.set()

    def refresh(self) -> None:
        """Recompute every figure from the store and update the widgets."""
        run = self.run
        # the series the run's /metrics serves (run.figures): a Prometheus dashboard and this panel agree
        figures = run.figures
        counts, money = figures["units"], figures["spend"]
        frame = run.df
        submitted = sum(counts[s] for s in S.UNIT_SUBMITTED)
        total = sum(counts.values()) - counts[S.EXPIRED] if run.serving else sum(counts.values())
        rate = _per_minute(frame)
        left = total - submitted
        self.figures = {"submitted": submitted, "total": total, "per_minute": rate, "left": left, **money,
                        "connected": figures["connected"]}  # fmt: skip
        self.title.value = f"<b>{html.escape(run.spec.title)}</b> · run {run.id} · {html.escape(run.state)}" + (
            f' · <a href="{html.escape(run.link())}" target="_blank">worker page (preview)</a>' if run.serving else ""
        )
        eta = f"{left / rate:.1f} min" if rate > 0 and left else ("done" if not left else "—")
        by_status = " · ".join(f"{s.replace('_', '-')} {n}" for s, n in counts.items() if n)
        self.stats.value = (
            f"<div class='crowd-live-stats'>{submitted}/{total} submitted · {rate:.1f}/min · time left {eta} · "
            f"cost ${money['total']:.2f} paid + ${money['pending']:.2f} pending · {figures['connected']} pages open"
            f"<br><small>{by_status or 'no units yet'}</small><br>{quality_line(frame, self.label)}</div>"
        )
        times = _seconds(frame["submitted_at"]).tolist()
        self.charts.value = charts.cumulative(times) + " " + charts.histogram(frame["duration_s"].tolist())
        self.table.value = _latest_table(frame, self.latest)
        # the bar last: whoever watches it reach the end (a person, a test) finds the figures beside it current
        self.progress.max = max(total, 1)
        self.progress.value = submitted
        self.progress.bar_style = "success" if total and submitted >= total else "info"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _per_minute(frame: pd.DataFrame, window: float = 300.0) -> float:
    """Submissions per minute over the last ``window`` seconds (or since the first, if sooner)."""
    if frame.empty:
        return 0.0
    stamps = _seconds(frame["submitted_at"])
    now = time.time()
    recent = stamps[stamps > now - window]
    if recent.empty:
        return 0.0
    span = max(now - max(recent.min(), now - window), 1.0)
    return float(len(recent) / span * 60)


def categorical_answer(run: Run) -> str | None:
    """The first answer field with fixed options (radio, select): the one agreement is measured on."""
    page = run.spec.page()
    row = run.store.first_input(run.id) or page.placeholder_row()
    return next((f.name for f in page.fields(row) if f.options and not f.multiple), None)


def quality_line(frame: pd.DataFrame, label: str | None) -> str:
    """Agreement and speed figures for the live panel (empty until there is something to measure)."""
    if frame.empty:
        return ""
    parts = []
    fast = int(quality.too_fast(frame).sum())
    parts.append(f"{fast} too fast (&lt; ¼ of the median time)")
    if label and label in frame.columns and frame["assignment_id"].duplicated().any():
        alpha = quality.krippendorff_alpha(frame, answer=label)
        parts.insert(0, f"agreement on {html.escape(label)}: α = {alpha:.2f}" if alpha == alpha else "agreement: —")
    return "<small>" + " · ".join(parts) + "</small>"


def _seconds(stamps: pd.Series) -> pd.Series:
    """UTC timestamps as seconds since the epoch, whatever the resolution pandas chose."""
    return (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()


def _latest_table(frame: pd.DataFrame, latest: int) -> str:
    if frame.empty:
        return "<i>No submissions yet.</i>"
    hidden = {"run_id", "unit_id", "assignment_id", "unit_index", "row_index", "started_at", "reward"}
    shown = frame.sort_values("submitted_at").tail(latest)[[c for c in frame.columns if c not in hidden]]
    return shown.to_html(index=False, escape=True, classes="crowd-latest", float_format=lambda v: f"{v:.1f}")
