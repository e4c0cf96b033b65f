"""The review table widget: paginated submitted units with filters, per-row and bulk decisions.

Every decision goes through the same functions as the Python API (``run.approve`` … ``run.bonus``),
so the widget adds no logic of its own: it chooses units and shows what the store says.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import pandas as pd

from .. import quality
from ..errors import CrowdError
from ..pages import gallery
from ..router.uploads import notebook_html
from ..store import reports
from ..store import states as S
from ..store.reports import FEEDBACK_COLUMN, META_COLUMNS
from .widgets import categorical_answer

if TYPE_CHECKING:
    from ..run import Run

STATUS_FILTERS = ["completed", "accepted", "rejected", "soft_rejected", "all"]
ACTIONS = {"approve": S.ACCEPTED, "reject": S.REJECTED, "soft-reject": S.SOFT_REJECTED}


class ReviewTable:
    """Review a run's submissions: filter, page, decide per row or for the selected rows."""

    def __init__(self, run: Run, page_size: int = 20) -> None:
        self.run, self.page_size, self.page = run, page_size, 0
        self.status = W.Dropdown(options=STATUS_FILTERS, value="completed", description="status")
        self.worker = W.Text(placeholder="worker contains…", description="worker")
        self.answer = W.Text(placeholder="answer contains…", description="answer")
        self.note = W.Text(placeholder="note to the worker (optional; required for a bonus)", description="note")
        self.amount = W.BoundedFloatText(value=0.05, min=0.01, max=100, step=0.01, description="bonus $")
        self.select_all = W.Checkbox(description="select page", indent=False)
        self.bulk = {name: W.Button(description=f"{name} selected") for name in [*ACTIONS, "bonus"]}
        self.prev, self.next = W.Button(description="◀ previous"), W.Button(description="next ▶")
        self.pager = W.Label()
        self.message = W.HTML()
        self.rows = W.VBox()
        self.checks: dict[int, W.Checkbox] = {}
        self.flags: dict[int, str] = {}
        self.label = categorical_answer(run)
        self.render = gallery.review_for(run.spec)  # a gallery template's review.html, if the page is one
        self.row_buttons: dict[int, dict[str, W.Button]] = {}
        self.talk: dict[int, str] = {}
        self.uploads: dict[int, list[dict[str, Any]]] = {}
        for box in (self.status, self.worker, self.answer):
            box.observe(self._filters_changed, names="value")
        self.select_all.observe(self._select_page, names="value")
        for name, button in self.bulk.items():
            button.on_click(lambda _, name=name: self.apply(name, self.selected()))
        self.prev.on_click(lambda _: self.turn(-1))
        self.next.on_click(lambda _: self.turn(+1))
        self.widget = W.VBox(
            [
                W.HBox([self.status, self.worker, self.answer]),
                W.HBox([self.note, self.amount]),
                W.HBox([self.select_all, *self.bulk.values()]),
                self.rows,
                W.HBox([self.prev, self.pager, self.next]),
                self.message,
            ]
        )
        self.refresh()

    # --- what is shown -------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """The run's submissions that pass the filters, oldest first."""
        frame = self.run.df
        if self.status.value != "all":
            frame = frame[frame["status"] == self.status.value]
        if self.worker.value.strip():
            frame = frame[frame["worker"].astype(str).str.contains(self.worker.value.strip(), case=False, regex=False)]
        if self.answer.value.strip():
            answers = [c for c in frame.columns if c not in META_COLUMNS]
            text = frame[answers].astype(str).agg(" ".join, axis=1) if answers else pd.Series("", index=frame.index)
            frame = frame[text.str.contains(self.answer.value.strip(), case=False, regex=False)]
        return frame

    def refresh(self) -> None:
        """Rebuild the current page from the store."""
        frame = self.filtered()
        pages = max((len(frame) - 1) // self.page_size + 1, 1)
        self.page = min(self.page, pages - 1)
        shown = frame.iloc[self.page * self.page_size : (self.page + 1) * self.page_size]
        stats = reports.worker_stats(self.run.store, sorted(set(shown["worker"])), self.run.config["provider"]["name"])
        self.uploads = reports.uploaded_files(self.run.store, "run", self.run.id)
        self.flags = _flags(self.run.df, shown, self.label)  # agreement with every answer, whatever the filter
        self.checks, self.row_buttons = {}, {}
        self.talk = _conversations(self.run) if self.run.spec.shared else {}  # a shared task's transcripts
        self.rows.children = [self._row(record, stats.get(record["worker"], {})) for record in shown.to_dict("records")]
        self.pager.value = f"page {self.page + 1} of {pages} · {len(frame)} units"
        self.prev.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
        self.select_all.value = False

    def _row(self, record: dict[Any, Any], stats: dict[str, int]) -> W.HBox:
        unit_id = int(record["unit_id"])
        check = W.Checkbox(indent=False, layout=W.Layout(width="28px"))
        self.checks[unit_id] = check
        answers = {k: v for k, v in record.items() if k not in META_COLUMNS}
        files: dict[str, list[dict[str, Any]]] = {}  # by column: what the store says this unit uploaded
        for entry in self.uploads.get(unit_id, []):
            files.setdefault(
                f"answer_{entry['field']}" if entry["field"] in META_COLUMNS else entry["field"], []
            ).append(entry)
        shown = {k: v for k, v in answers.items() if not (k.endswith("_name") and k.removesuffix("_name") in files)}
        content = "<br>".join(_cell(self.run.store.root, k, v, files.get(k)) for k, v in shown.items())
        if self.render is not None:
            content = f"{self.render(record)}<details><summary>every column</summary>{content}</details>"
        content += self.talk.get(int(record["assignment_id"]), "")
        seen = (
            f"✓{stats.get(S.ACCEPTED, 0)} ✗{stats.get(S.REJECTED, 0)} "
            f"~{stats.get(S.SOFT_REJECTED, 0)} …{stats.get(S.COMPLETED, 0)}"
        )
        who = W.HTML(
            f"<b>{html.escape(str(record['worker']))}</b><br><small title='accepted, rejected, soft-rejected, "
            f"awaiting review'>{seen}</small><br><small>{record['duration_s']:.1f} s</small>",
            layout=W.Layout(width="150px"),
        )
        body = W.HTML(f"<div class='crowd-answer'>{content}</div>", layout=W.Layout(flex="1"))
        flag = self.flags.get(unit_id, "")
        status = W.HTML(
            f"<code>{html.escape(str(record['status']))}</code><br><small>{flag}</small>",
            layout=W.Layout(width="130px"),
        )
        buttons = {name: W.Button(description=name, layout=W.Layout(width="95px")) for name in ACTIONS}
        for name, button in buttons.items():
            button.on_click(lambda _, name=name: self.apply(name, [unit_id]))
        self.row_buttons[unit_id] = buttons
        return W.HBox([check, who, body, status, *buttons.values()], layout=W.Layout(border_bottom="1px solid #ddd"))

    # --- what a reviewer does ------------------------------------------------------------------
    def selected(self) -> list[int]:
        """Unit ids ticked on this page."""
        return [unit_id for unit_id, box in self.checks.items() if box.value]

    def apply(self, action: str, unit_ids: list[int]) -> None:
        """Carry out ``action`` (approve, reject, soft-reject, bonus) through the run's review functions."""
        if not unit_ids:
            self.message.value = "<i>Select units first.</i>"
            return
        note = self.note.value.strip() or None
        try:
            if action == "bonus":
                done = self.run.bonus(unit_ids, float(self.amount.value), note or "")
                verb = f"bonus ${self.amount.value:.2f} paid to"
            else:
                decide = {"approve": self.run.approve, "reject": self.run.reject, "soft-reject": self.run.soft_reject}
                done = decide[action](unit_ids, note=note)
                verb = ACTIONS[action].replace("_", "-")
        except CrowdError as exc:
            self.message.value = f"<span style='color:#a00'>{html.escape(str(exc))}</span>"
            return
        self.message.value = f"{verb} {done} of {len(unit_ids)} units"
        self.refresh()

    def _filters_changed(self, _: Any) -> None:
        self.page = 0
        self.refresh()

    def _select_page(self, change: dict[str, Any]) -> None:
        for box in self.checks.values():
            box.value = bool(change["new"])

    def turn(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) page."""
        self.page = max(self.page + step, 0)
        self.refresh()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _conversations(run: Run) -> dict[int, str]:
    """Each shared assignment's transcript as escaped HTML (messages, and the room's events in italics)."""
    found: dict[int, list[str]] = {}
    for line in run.messages_df.to_dict("records"):
        text = html.escape(str(line["text"]))
        if line["kind"] == "message":
            who = html.escape(str(line["role"] or ""))
            text = f"<b>{who}</b>: {text}"
        else:
            text = f"<i>{text}</i>"
        found.setdefault(int(line["assignment_id"]), []).append(f"<li>{text}</li>")
    return {
        assignment: f"<details class='crowd-transcript'><summary>conversation</summary><ol>{''.join(lines)}</ol></details>"
        for assignment, lines in found.items()
    }


def _cell(root: Path, column: str, value: Any, uploads: list[dict[str, Any]] | None = None) -> str:
    """One answer as HTML: the unit's uploads as a thumbnail (or their path), feedback marked as such;
    text that reads like an upload path is shown as the text it is."""
    label = "worker's feedback" if column == FEEDBACK_COLUMN else column
    if uploads:
        return f"<b>{html.escape(label)}</b>: {notebook_html(root, uploads)}"
    return f"<b>{html.escape(label)}</b>: {html.escape(str(value))}"


def _flags(frame: pd.DataFrame, shown: pd.DataFrame, label: str | None) -> dict[int, str]:
    """Per shown unit: agreement with the other workers' majority on ``label`` and a too-fast warning."""
    if shown.empty:
        return {}
    flags = {int(u): "" for u in shown["unit_id"]}
    fast = quality.too_fast(frame)
    for unit_id in shown["unit_id"][fast.loc[shown.index]]:
        flags[int(unit_id)] += "⚡ too fast "
    if label and label in frame.columns:
        for unit_id, agrees in zip(shown["unit_id"], _agrees(frame, shown, label), strict=True):
            if agrees is not None:
                flags[int(unit_id)] += "✓ agrees" if agrees else "✗ differs"
    return flags


def _agrees(frame: pd.DataFrame, shown: pd.DataFrame, label: str) -> list[bool | None]:
    """Whether each shown answer matches the majority of the *other* answers on its item (None: nobody else)."""
    result: list[bool | None] = []
    groups = frame.groupby("assignment_id")[label]
    for item, answer in zip(shown["assignment_id"], shown[label], strict=True):
        others = groups.get_group(item).tolist()
        others.remove(answer)
        if not others:
            result.append(None)
            continue
        top = pd.Series(others).value_counts()
        result.append(answer in set(top[top == top.max()].index))
    return result
