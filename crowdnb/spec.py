"""A task's specification: everything that defines it, validated, and stored with every run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .forms.page import FormPage
from .frame.bulk import declared_columns
from .pages.bundle import BundlePage
from .pages.dollar import DollarPage
from .pages.page import TaskPage
from .quality.requirements import BLOCKED, Requirement, block_list, parse


@dataclass(frozen=True)
class TaskSpec:
    """Everything that defines a task, validated; stored with every run for resume and reproducibility."""

    name: str
    title: str
    description: str
    reward: float
    tags: tuple[str, ...]
    html: str
    source: str  # where the page came from: "html=", a template name or a path
    static_dir: str | None
    units_per_assignment: int = 1
    assignment_duration: int = 1800
    max_num_concurrent_units: int = 0
    allowed_concurrent: int = 0
    maximum_units_per_worker: int = 0
    disconnect_grace: float = 10.0
    max_upload_mb: float = 20.0
    qualifications: tuple[dict[str, Any], ...] = ()
    budget: float | None = None  # dollars for the whole task (every run), fees included
    onboarding: dict[str, Any] | None = None  # Onboarding.to_dict()
    gold: dict[str, Any] | None = None  # Gold.to_dict()
    screening: dict[str, Any] | None = None  # Screening.to_dict()
    kind: str = "jinja"  # how ``html`` is read: "jinja", "dollar" (${var}, MTurk/Turkle/Mephisto) or "js"
    js_dir: str | None = None  # a JS task's bundle folder (index.html and/or main.js)
    answers: tuple[str, ...] = ()  # a JS task's declared answer names (optional; others are then refused)
    extra_answers: bool = False  # accept answers the page does not declare (a template's script sends them)
    feedback: str = ""  # the worker-feedback box's prompt; "" = no box
    form: dict[str, Any] | None = None  # a form task's versions and insertions (form_source.FormSource.to_dict)
    procedures: tuple[dict[str, Any], ...] = ()  # live procedures pages call: name, timeout, concurrency
    workers_per_assignment: int = 1  # seats of one shared assignment (a live task several workers share)
    roles: tuple[str, ...] = ()  # a shared task's role per seat (and the notebook bot's, last)
    chat: dict[str, Any] | None = None  # a shared task's Chat.to_dict()

    @property
    def shared(self) -> bool:
        """Whether workers share each assignment live (several workers, or a worker and the notebook's bot)."""
        return self.chat is not None

    def requirements(self) -> tuple[Requirement, ...]:
        """The task's qualification requirements, the block list every task has, and failed onboarding."""
        extra = [block_list(f"{self.onboarding['qualification']}-failed")] if self.onboarding else []
        if self.gold:
            extra.append(block_list(f"{self.gold['qualification']}-disqualified"))
        if self.screening:
            extra.append(block_list(f"{self.screening['qualification']}-failed"))
        return (*parse(self.qualifications), block_list(BLOCKED), *extra)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out = dataclasses.asdict(self)
        out["tags"] = list(self.tags)
        out["qualifications"] = list(self.qualifications)
        out["procedures"] = list(self.procedures)
        out["roles"] = list(self.roles)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TaskSpec:
        """The spec stored by ``to_dict``."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["tags"] = tuple(values.get("tags", ()))
        values["qualifications"] = tuple(values.get("qualifications", ()))
        values["answers"] = tuple(values.get("answers", ()))
        values["procedures"] = tuple(values.get("procedures", ()))
        values["roles"] = tuple(values.get("roles", ()))
        return cls(**values)

    def page(self) -> TaskPage:
        """The compiled page: a Jinja template, a ``${var}`` template or a JS bundle."""
        feedback, limit = self.feedback, self.max_upload_mb
        if self.kind == "js":
            folder = Path(self.js_dir or ".")
            return BundlePage(folder, self.source, answers=self.answers, feedback=feedback, max_upload_mb=limit)
        if self.kind == "dollar":
            return DollarPage(self.html, self.source, feedback=feedback, max_upload_mb=limit)
        if self.kind == "form":
            return FormPage(
                self.form or {}, self.source, static_dir=self.static_dir, feedback=feedback, max_upload_mb=limit
            )
        return TaskPage(self.html, self.source, feedback=feedback, max_upload_mb=limit)

    def frame_columns(self, row: dict[str, Any] | None = None) -> list[str]:
        """The input and answer columns of the task's frame, there before any submission: those of
        ``row`` (a run's first input row; default the template's variables) and the page's answer fields."""
        page = self.page()
        row = page.placeholder_row() if row is None else row
        fields = [(f.name, f.kind) for f in page.fields(row)]
        return declared_columns(row, fields, bool(self.feedback))
