"""The review grid: one compact line per submitted unit, sorted by any column, decided by click or key.

It opens on the units that need a decision (status ``completed``) and says why a filter shows nothing.
The kernel holds the filtered, sorted frame and sends only the page on show (small JSON; an anywidget),
so paging through 10,000 units costs one page. A row opens to the template's own review renderer
(``review.html``: boxes, spans, audio) and every column. Each decision goes through the same functions
as the Python API (``run.approve`` … ``run.bonus``): the grid adds no logic of its own.

Keys, once the grid has the focus: ``j``/``k`` move, ``a``/``r``/``s`` approve, reject or soft-reject,
``b`` pays the bonus (the selected rows, else the current one), ``x`` selects, Enter opens the row,
``n``/``p`` turn the page, ``?`` lists the keys.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anywidget
import numpy as np
import pandas as pd
import traitlets

from .. import quality
from ..errors import CrowdError
from ..pages import gallery
from ..store import states as S
from .widgets import categorical_answer

if TYPE_CHECKING:
    from ..run import Run

HERE = Path(__file__).parent
META = frozenset(
    {"run_id", "unit_id", "assignment_id", "unit_index", "row_index", "worker", "status", "started_at"}
    | {"submitted_at", "duration_s", "reward"}
)
FEEDBACK = "_feedback"
STATUSES = {
    S.COMPLETED: "needs a decision",
    S.ACCEPTED: "accepted",
    S.REJECTED: "rejected",
    S.SOFT_REJECTED: "soft-rejected",
    "all": "all",
}
COUNTED = {S.COMPLETED: "awaiting a decision", S.SOFT_REJECTED: "soft-rejected"}  # "12 awaiting a decision"
COLUMNS = [  # key, heading, what it holds (a tooltip)
    ("row_index", "row", "the input row (open the unit for its id)"),
    ("worker", "worker", "who did it"),
    ("record", "record", "the worker's units across the project: ✓ accepted ✗ rejected ~ soft-rejected … awaiting"),
    ("answers", "answers", "what the worker submitted (open the row for all of it)"),
    ("duration_s", "time", "seconds from opening the unit to submitting it"),
    ("checks", "checks", "⚡ faster than a quarter of the median time; ✓ agrees or ✗ differs with the others"),
    ("status", "status", "the unit's status"),
    ("submitted_at", "submitted", "when it was submitted (UTC)"),
]
DECISIONS = {"approve": S.ACCEPTED, "reject": S.REJECTED, "soft-reject": S.SOFT_REJECTED}


class ReviewGrid(anywidget.AnyWidget):
    """Review a run's submissions: filter, sort, page, decide per row or for the selected rows."""

    _esm = HERE / "review_grid.js"
    _css = HERE / "review_grid.css"
    columns = traitlets.List(traitlets.Dict()).tag(sync=True)
    statuses = traitlets.List(traitlets.Dict()).tag(sync=True)  # value, label, how many units
    status = traitlets.Unicode(S.COMPLETED).tag(sync=True)
    worker = traitlets.Unicode("").tag(sync=True)
    answer = traitlets.Unicode("").tag(sync=True)
    sort = traitlets.Unicode("submitted_at").tag(sync=True)
    descending = traitlets.Bool(False).tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)
    pages = traitlets.Int(1).tag(sync=True)
    page_size = traitlets.Int(20).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    # unit ids travel as text: they are 64-bit, and a JavaScript number keeps 53 bits
    opened = traitlets.List(traitlets.Unicode()).tag(sync=True)  # rows showing their renderer and every column
    details = traitlets.Dict().tag(sync=True)  # unit id → HTML, for the opened rows
    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    note = traitlets.Unicode("").tag(sync=True)
    amount = traitlets.Float(0.05).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    empty = traitlets.Unicode("").tag(sync=True)  # why no row is shown
    label = traitlets.Unicode("").tag(sync=True)  # the answer agreement is measured on
    generation = traitlets.Int(0).tag(sync=True)  # counts refreshes: the view waits for the next one after a change

    def __init__(self, run: Run, page_size: int = 20) -> None:
        super().__init__(page_size=max(int(page_size), 1))
        self.run = run
        self.label = categorical_answer(run) or ""
        self.render = gallery.review_for(run.spec)  # a gallery template's review.html, if the page is one
        self.inputs = run.spec.page().variables  # the page's input columns: shown before the answers
        self.columns = [{"key": k, "label": label, "title": title} for k, label, title in COLUMNS]
        self.shown: pd.DataFrame = pd.DataFrame()
        self.records: dict[str, dict[str, int]] = {}
        self._version: tuple[int, int] = (-1, 0)  # the frame the tables below were made from
        self._base = pd.DataFrame()  # one row per submission: the sortable columns
        self._views: dict[tuple[Any, ...], pd.DataFrame] = {}  # filtered and sorted, by filters and order
        self.refresh()
        self.observe(self._filters_changed, names=["status", "worker", "answer"])
        self.observe(lambda _: self.refresh(), names=["sort", "descending", "page"])
        self.observe(self._opened, names="opened")
        self.on_msg(self._message)

    # --- what is shown -------------------------------------------------------------------------
    def filtered(self) -> pd.DataFrame:
        """The run's submissions that pass the filters, in the chosen order, with the grid's own columns.

        What it computes is kept until the frame changes (a submission, a decision): turning a page, or
        coming back to a filter or an order, costs a slice."""
        frame = self.run.df
        version = (len(frame), int(pd.util.hash_pandas_object(frame["status"], index=False).sum()))
        if version != self._version:
            provider = self.run.config["provider"]["name"]
            self.records = self.run.project.worker_records(provider, frame["worker"].astype(str))
            self._base, self._version, self._views = _table(frame, self.records, self.label or None), version, {}
        view = (self.status, self.worker.strip(), self.answer.strip(), self.sort, self.descending)
        if view not in self._views:
            if len(self._views) >= 32:  # a reviewer trying many filters: start again rather than grow
                self._views = {}
            self._views[view] = self._view(frame, *view)
        return self._views[view]

    def _view(self, frame: pd.DataFrame, status: str, worker: str, answer: str, sort: str, down: bool) -> pd.DataFrame:
        table = self._base
        if status != "all":
            table = table[table["status"] == status]
        if worker:
            table = table[table["worker"].str.contains(worker, case=False, regex=False)]
        if answer or sort == "answers":
            if "answers" not in self._base.columns:
                self._base = self._base.assign(answers=_answers_text(frame))
            table = table.assign(answers=self._base.loc[table.index, "answers"])
        if answer:
            table = table[table["answers"].str.contains(answer, case=False, regex=False)]
        key = {"record": "record_rank", "checks": "checks_rank"}.get(sort, sort)
        if key not in table.columns:
            key = "submitted_at"
        return table.sort_values([key, "unit_id"], ascending=not down, kind="stable", na_position="last")

    def refresh(self) -> None:
        """Rebuild the current page from the store."""
        frame = self.run.df
        table = self.filtered()
        pages = max(math.ceil(len(table) / self.page_size), 1)
        page = min(self.page, pages - 1)
        shown = table.iloc[page * self.page_size : (page + 1) * self.page_size]
        self.shown = shown
        records = _records(frame.loc[shown.index])
        cells = self.run.project.upload_cells(records)
        counts = frame["status"].value_counts().to_dict()
        inputs = {f"input_{n}" if f"input_{n}" in frame.columns else n for n in self.inputs}
        with self.hold_sync():
            self.rows = [
                _row(r, self.records.get(str(r["worker"]), {}), line, cells.get(int(r["unit_id"]), {}), inputs)
                for r, line in zip(records, _records(shown), strict=True)
            ]
            self.statuses = [
                {"value": value, "label": label, "count": len(frame) if value == "all" else int(counts.get(value, 0))}
                for value, label in STATUSES.items()
            ]
            self.total, self.pages, self.page = len(table), pages, page
            on_page = {str(u) for u in shown["unit_id"].tolist()}
            self.selected = [u for u in self.selected if u in on_page]
            self.empty = "" if len(table) else self._why_empty(frame)
            self._open()
            self.generation += 1

    def _opened(self, _: Any) -> None:
        with self.hold_sync():
            self._open()
            self.generation += 1

    def _open(self) -> None:
        """The review renderer and every column of the opened rows that are on this page."""
        frame = self.run.df
        on_page = {str(u) for u in self.shown["unit_id"].tolist()}
        records = _records(frame[frame["unit_id"].isin([int(u) for u in self.opened if u in on_page])])
        cells = self.run.project.upload_cells(records)
        talk = _conversations(self.run) if records and self.run.spec.shared else {}  # a shared task's transcripts
        self.details = {
            str(r["unit_id"]): self._detail(r, cells.get(int(r["unit_id"]), {})) + talk.get(int(r["assignment_id"]), "")
            for r in records
        }

    def _detail(self, record: dict[str, Any], files: dict[str, str]) -> str:
        rows = "".join(
            f"<tr><th>{html.escape('worker’s feedback' if k == FEEDBACK else str(k))}</th>"
            f"<td>{files.get(str(k)) or html.escape(_text(v))}</td></tr>"
            for k, v in record.items()
            if k not in META and not (str(k).endswith("_name") and str(k)[:-5] in files)
        )
        ids = (
            f"<p class='crowd-ids'>unit {int(record['unit_id'])} · input row {int(record['row_index'])} · "
            f"worker {html.escape(str(record['worker']))}</p>"
        )
        table = f"<table class='crowd-columns'>{rows}</table>"
        if self.render is None:
            return ids + table
        return f"{ids}{self.render(record)}<details><summary>every column</summary>{table}</details>"

    def _why_empty(self, frame: pd.DataFrame) -> str:
        if frame.empty:
            return "No submissions yet: units show here once workers submit them (run.live() follows the run)."
        counts = frame["status"].value_counts()
        if self.status != "all" and not counts.get(self.status, 0):
            others = ", ".join(f"{n} {COUNTED.get(str(s), s)}" for s, n in counts.items())
            if self.status == S.COMPLETED:
                return (
                    f"No unit needs a decision: every submitted unit is decided ({others}). Choose “all” to see them."
                )
            return f"No unit is {STATUSES[self.status]} ({others})."
        words = [f"a worker containing “{self.worker.strip()}”"] if self.worker.strip() else []
        words += [f"an answer containing “{self.answer.strip()}”"] if self.answer.strip() else []
        scope = {"all": "unit", S.COMPLETED: "unit awaiting a decision"}.get(
            self.status, f"{STATUSES[self.status]} unit"
        )
        matching = len(frame) if self.status == "all" else int(counts.get(self.status, 0))
        return f"No {scope} has {' and '.join(words)}; clear the text filters to see all {matching}."

    # --- what a reviewer does ------------------------------------------------------------------
    def apply(self, action: str, unit_ids: list[int]) -> None:
        """Carry out ``action`` (approve, reject, soft-reject, bonus) through the run's review functions."""
        if not unit_ids:
            self.message = "Select units first (x, or the boxes on the left)."
            return
        note = self.note.strip() or None
        try:
            if action == "bonus":
                done = self.run.bonus(unit_ids, float(self.amount), note or "")
                verb = f"bonus ${self.amount:.2f} paid to"
            elif action in DECISIONS:
                decide = {"approve": self.run.approve, "reject": self.run.reject, "soft-reject": self.run.soft_reject}
                done = decide[action](unit_ids, note=note)
                verb = DECISIONS[action].replace("_", "-")
            else:
                self.message = f"unknown action {action!r}; use approve, reject, soft-reject or bonus"
                return
        except CrowdError as exc:
            self.message = f"⚠ {exc}"
            return
        self.message = f"{verb} {done} of {len(unit_ids)} unit{'s' if len(unit_ids) != 1 else ''}"
        self.refresh()

    def turn(self, step: int) -> None:
        """Go to the next (+1) or previous (-1) page."""
        self.page = min(max(self.page + step, 0), self.pages - 1)

    def _filters_changed(self, _: Any) -> None:
        if self.page:
            self.page = 0  # observed: refreshes
        else:
            self.refresh()

    def selected_units(self) -> list[int]:
        """The unit ids ticked on this page."""
        return [int(u) for u in self.selected]

    def _message(self, _: Any, content: Any, buffers: Any) -> None:
        """What the view asks: a decision ({"action", "units"}) or a fresh look at the store ({"action": "refresh"})."""
        if isinstance(content, dict) and content.get("action") == "refresh":
            self.refresh()
        elif isinstance(content, dict) and isinstance(content.get("units"), list):
            units = [int(u) for u in content["units"] if isinstance(u, str) and u.isdigit()]
            self.apply(str(content.get("action")), units)
        self.generation += 1  # answered, whatever it was: the view stops waiting

    def __repr__(self) -> str:
        return f"<ReviewGrid of run {self.run.id}: {self.total} {STATUSES.get(self.status, self.status)} units>"


def _conversations(run: Run) -> dict[int, str]:
    """Each shared assignment's transcript as escaped HTML (messages, and the room's events in italics)."""
    found: dict[int, list[str]] = {}
    for line in _records(run.messages_df):
        text = html.escape(str(line["text"]))
        if line["kind"] == "message":
            text = f"<b>{html.escape(str(line['role'] or ''))}</b>: {text}"
        else:
            text = f"<i>{text}</i>"
        found.setdefault(int(line["assignment_id"]), []).append(f"<li>{text}</li>")
    return {
        assignment: f"<details class='crowd-transcript' open><summary>conversation</summary><ol>{''.join(lines)}</ol></details>"
        for assignment, lines in found.items()
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts keyed by column name (run.df's columns are all text)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _text(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def _answer_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in META and not str(c).endswith("_name")]


def _answers_text(frame: pd.DataFrame) -> pd.Series:
    """Each submission's answers on one line ("label=pos · why=…"), empty ones left out; column by column."""
    text = pd.Series("", index=frame.index, dtype=object)
    for column in _answer_columns(frame):
        values = frame[column]
        part = (f"{'feedback' if column == FEEDBACK else column}=" + values.astype(str)).where(values.notna(), "")
        part = part.where(values.astype(str) != "", "")
        text = text + np.where((text != "") & (part != ""), " · ", "") + part
    return text


def _table(frame: pd.DataFrame, records: dict[str, dict[str, int]], label: str | None) -> pd.DataFrame:
    """The grid's sortable columns, one row per submission (same index as ``frame``): vectorised, so a
    run of 10,000 units is filtered and sorted in milliseconds."""
    table = frame[["unit_id", "row_index", "worker", "status", "duration_s", "submitted_at"]].copy()
    table["worker"] = table["worker"].astype(str)
    # the share of a worker's decided units that were refused (-1: none decided yet)
    share = {}
    for name, units in records.items():
        decided = units.get(S.ACCEPTED, 0) + units.get(S.REJECTED, 0) + units.get(S.SOFT_REJECTED, 0)
        refused = units.get(S.REJECTED, 0) + units.get(S.SOFT_REJECTED, 0)
        share[name] = refused / decided if decided else -1.0
    table["record_rank"] = table["worker"].map(share).fillna(-1.0)
    table["fast"] = quality.too_fast(frame) if len(frame) else False
    if label and label in frame.columns:
        table["agrees"] = agreement(frame, label)
    else:
        table["agrees"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    table["checks_rank"] = table["fast"].astype(int) * 2 + table["agrees"].map(lambda a: a is False).astype(int)
    return table


def agreement(frame: pd.DataFrame, label: str) -> pd.Series:
    """Whether each answer on ``label`` matches the majority of the *other* answers on its item (a tie
    counts as a match); None when nobody else answered the item. Vectorised: one pass over the frame."""
    result = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    answered = frame.loc[frame[label].notna(), ["assignment_id", label]]
    if answered.empty:
        return result
    item = answered["assignment_id"]
    own = answered.groupby(["assignment_id", label])[label].transform("size")  # this answer's count, itself included
    pairs = answered.groupby(["assignment_id", label]).size().sort_values(ascending=False, kind="stable")
    place = pairs.groupby(level=0).cumcount()
    top = item.map(pairs[place == 0].droplevel(1))
    runner_up = item.map(pairs[place == 1].droplevel(1)).fillna(0)
    best_other = runner_up.where(own == top, top)  # the most answers any *other* label has on the item
    agrees = ((own - 1) >= best_other) & (own >= 2)
    others = item.map(item.value_counts()) > 1
    result.loc[agrees.index[others]] = agrees[others].astype(bool).tolist()
    return result


def _row(
    record: dict[str, Any], units: dict[str, int], line: dict[str, Any], files: dict[str, str], inputs: set[str]
) -> dict[str, Any]:
    """One compact line of the grid: what the view needs, as JSON. The answers ("label=pos · why=…") come
    first, then the input they answer (shown dimmed)."""
    shown = [k for k, v in record.items() if k not in META and not str(k).endswith("_name") and _text(v) != ""]
    given = " · ".join(_text(record[k]) for k in shown if k in inputs)
    answered = " · ".join(
        f"{'feedback' if k == FEEDBACK else k}={'📎 ' + _file_names(record, str(k)) if str(k) in files else _text(record[k])}"
        for k in shown
        if k not in inputs
    )
    stamp = record["submitted_at"]
    return {
        "id": str(record["unit_id"]),
        "worker": str(record["worker"]),
        "record": {s: int(units.get(s, 0)) for s in (S.ACCEPTED, S.REJECTED, S.SOFT_REJECTED, S.COMPLETED)},
        "answers": answered,
        "inputs": given,
        "time": None if pd.isna(record["duration_s"]) else round(float(record["duration_s"]), 1),
        "fast": bool(line["fast"]),
        "agrees": line["agrees"],
        "status": str(record["status"]),
        "row": int(record["row_index"]),
        "submitted": "" if pd.isna(stamp) else pd.Timestamp(stamp).strftime("%m-%d %H:%M"),
        "submitted_at": "" if pd.isna(stamp) else pd.Timestamp(stamp).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def _file_names(record: dict[str, Any], column: str) -> str:
    names = record.get(f"{column}_name")
    return ", ".join(map(str, names)) if isinstance(names, list) else _text(names) or "file"
