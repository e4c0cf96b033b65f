"""The live panel of a run: progress, rate, time left, cost, quality, the latest submissions, two charts.

No widget ever blocks a cell: the live panel refreshes itself from a daemon thread (ipywidgets sends
trait changes from any thread), and every figure it shows comes from the store, through the same series as
the run's ``/metrics`` (``run.figures``). A trait set to the value it already has sends nothing, so a quiet
second costs no traffic.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from .. import quality
from ..pages import charts
from ..store import states as S

if TYPE_CHECKING:
    from ..run import Run

log = logging.getLogger(__name__)

WINDOW_SECONDS = 300.0  # the rate is measured over the last five minutes
# light rules between rows, none around cells (pandas writes border="1", which browsers draw heavily)
TABLE_STYLE = (
    "<style>.crowd-latest{border-collapse:collapse;font-size:12px;margin-top:4px}"
    ".crowd-latest th,.crowd-latest td{border:0;border-bottom:1px solid #e6e8eb;padding:2px 10px 2px 0;"
    "text-align:left;font-weight:normal}.crowd-latest thead th{color:#555;border-bottom-color:#c9cdd2}</style>"
)


class LivePanel:
    """Progress by unit status, rate, time left, cost, the latest submissions and two charts.

    ``clock`` gives the time in seconds (the rate's window ends now while units are left to submit).
    """

    def __init__(
        self, run: Run, interval: float = 1.0, latest: int = 8, clock: Callable[[], float] = time.time
    ) -> None:
        self.run, self.interval, self.latest, self.clock = run, interval, latest, clock
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
            try:
                self.refresh()
            except Exception:  # a panel that cannot refresh once (the project closing) tries again, quietly
                log.debug("live panel of run %s could not refresh", self.run.id, exc_info=True)
            if not self.run.serving:
                return  # one last refresh after the run stopped

    def stop(self, timeout: float = 10.0) -> None:
        """Stop refreshing and wait for the refreshing thread to end (a refresh under way finishes first)."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    close = stop  # ipywidgets' word for it

    def refresh(self) -> None:
        """Recompute every figure from the store and update the widgets."""
        run = self.run
        # the series the run's /metrics serves (run.figures): a Prometheus dashboard and this panel agree
        figures = run.figures
        counts, money = figures["units"], figures["spend"]
        frame = run.df
        submitted = sum(counts[s] for s in S.UNIT_SUBMITTED)
        total = sum(counts.values()) - counts[S.EXPIRED] if run.serving else sum(counts.values())
        left = total - submitted
        stamps = _seconds(frame["submitted_at"])
        # once nothing is left to submit (or the run stopped) the window ends at the last submission: frozen
        done = not run.serving or (total > 0 and left <= 0)
        end = float(stamps.max()) if done and not stamps.empty else self.clock()
        rate = rate_per_minute(stamps, end)
        self.figures = {"submitted": submitted, "total": total, "per_minute": rate, "left": left, **money,
                        "connected": figures["connected"]}  # fmt: skip
        state = f"{run.state} ({run.monitor_error})" if run.monitor_error else run.state
        self.title.value = f"<b>{html.escape(run.spec.title)}</b> · run {run.id} · {html.escape(state)}" + (
            f' · <a href="{html.escape(run.link())}" target="_blank">worker page (preview)</a>' if run.serving else ""
        )
        if not left:
            eta = "done"
        elif rate:
            eta = f"{left / rate:.1f} min"
        else:
            eta = "—"
        shown_rate = f"{rate:.1f}/min" if rate is not None else "—/min"
        by_status = " · ".join(f"{s.replace('_', '-')} {n}" for s, n in counts.items() if n)
        self.stats.value = (
            f"<div class='crowd-live-stats'>{submitted}/{total} submitted · "
            f"<span title='over the last {WINDOW_SECONDS / 60:.0f} minutes'>{shown_rate}</span> · time left {eta} · "
            f"cost ${money['total']:.2f} paid + ${money['pending']:.2f} pending · {figures['connected']} pages open"
            f"<br><small>{by_status or 'no units yet'}</small><br>{quality_line(frame, self.label)}</div>"
        )
        self.charts.value = charts.cumulative(stamps.tolist()) + " " + charts.histogram(frame["duration_s"].tolist())
        self.table.value = _latest_table(frame, self.latest)
        # the bar last: whoever watches it reach the end (a person, a test) finds the figures beside it current
        self.progress.max = max(total, 1)
        self.progress.value = submitted
        self.progress.bar_style = "success" if total and submitted >= total else "info"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def rate_per_minute(stamps: pd.Series, end: float, window: float = WINDOW_SECONDS) -> float | None:
    """Submissions per minute over the ``window`` seconds before ``end`` (seconds since the epoch).

    The first submission in the window opens it: ``k`` submissions since then make ``k − 1`` intervals
    over ``end − first``. So one submission alone gives no rate (None), a pause lowers the rate as ``end``
    moves on, and an ``end`` fixed at the last submission freezes it.
    """
    recent = stamps[(stamps > end - window) & (stamps <= end)]
    if len(recent) < 2:
        return None
    span = end - float(recent.min())
    return float((len(recent) - 1) / span * 60) if span > 0 else None


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
    table = shown.to_html(index=False, escape=True, border=0, classes="crowd-latest", float_format=lambda v: f"{v:.1f}")
    return TABLE_STYLE + table
