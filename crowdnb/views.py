"""The seam between the facade and the notebook skin.

``Task.preview_widget()``, ``Run.live()`` and ``Run.review()`` return widgets that :mod:`crowdnb.notebook`
makes. The notebook sits above the facade (it is a skin over the public API), so the facade reaches it
through this one hook, which ``import crowdnb`` fills with :mod:`crowdnb.notebook.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError

if TYPE_CHECKING:
    from .run import Run
    from .task import Task


class Views(Protocol):
    """What the facade asks of a widget toolkit."""

    def preview(self, task: Task, row: int) -> Any:
        """A dry run of the worker's page for any input row, at phone or desktop width."""

    def live(self, run: Run, interval: float) -> Any:
        """A panel that follows a run."""

    def review(self, run: Run, page_size: int) -> Any:
        """A table to review a run's submissions."""


_views: Views | None = None


def install(views: Views) -> None:
    """Make ``views`` the widgets the facade returns."""
    global _views
    _views = views


def views() -> Views:
    """The installed widgets; a clear error when none are (crowdnb imported without its notebook skin)."""
    if _views is None:
        raise ConfigError("no notebook widgets are installed; `import crowdnb` installs them (needs ipywidgets)")
    return _views
