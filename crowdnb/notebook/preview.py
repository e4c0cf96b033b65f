"""The preview widget: a dry run of the worker's page in a frame that fits it, with its controls on one line.

The frame opens ``task.preview_link(row)``: the page as a worker gets it, scripts and files working,
where Submit shows what would be stored and stores nothing. The page reports its height (crowd.js), so
the frame grows with it and Submit is never cut off.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

if TYPE_CHECKING:
    from ..task import Task

HERE = Path(__file__).parent
WIDTHS = {"phone": "375px", "desktop": "100%"}


class PreviewFrame(anywidget.AnyWidget):
    """The dry run of a task's page for any input row, at phone or desktop width."""

    _esm = HERE / "preview.js"
    _css = HERE / "preview.css"
    src = traitlets.Unicode("").tag(sync=True)
    row = traitlets.Int(0).tag(sync=True)
    rows = traitlets.Int(0).tag(sync=True)  # 0: rows come from a generator (only row 0 is known)
    width = traitlets.Unicode("desktop").tag(sync=True)

    def __init__(self, task: Task, row: int = 0) -> None:
        super().__init__(rows=task.row_count(), width="desktop")
        self.task = task
        self.observe(self._follow, names="row")
        self.row = row
        self._follow()

    @traitlets.validate("width")
    def _known_width(self, proposal: dict[str, Any]) -> str:
        value = str(proposal["value"])
        return value if value in WIDTHS else "desktop"

    def _follow(self, _: Any = None) -> None:
        last = max(self.rows - 1, 0)
        if not 0 <= self.row <= last:
            self.row = min(max(self.row, 0), last)  # observed again with the clamped row
            return
        self.src = self.task.preview_link(self.row)

    def __repr__(self) -> str:
        return f"<PreviewFrame of task {self.task.name!r}, row {self.row}: {self.src}>"


def preview_widget(task: Task, row: int = 0) -> PreviewFrame:
    """The worker's page for any input row, at phone or desktop width; Submit is a dry run."""
    return PreviewFrame(task, row)
