"""The widgets the facade returns (see :mod:`crowdnb.views`): a module that is a ``Views``.

ipywidgets and anywidget are imported on first use, so a process that only serves workers (``crowdnb serve``)
never loads them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import Run
    from ..task import Task


def preview(task: Task, row: int) -> Any:
    """A dry run of the worker's page for any input row, at phone or desktop width."""
    from .preview import preview_widget

    return preview_widget(task, row)


def live(run: Run, interval: float) -> Any:
    """A panel that follows a run: progress, rate, time left, cost, latest submissions, charts."""
    from .widgets import LivePanel

    return LivePanel(run, interval=interval)


def review(run: Run, page_size: int) -> Any:
    """A grid to approve, reject, soft-reject and bonus submitted units: sortable, by click or key."""
    from .review_grid import ReviewGrid

    return ReviewGrid(run, page_size=page_size)
