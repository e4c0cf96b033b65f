"""A Task: a named study (its page, its data and its rules). Launching it adds a TaskRun."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .data import DataSource, load
from .errors import ConfigError, CrowdError, NotFound
from .frame.bulk import typed_empty, with_columns
from .pages.page import Field, Preview, find_template, summary_table
from .previews import link
from .procedures import Procedure, procedure
from .project import Project, open_project
from .quality.gold import Gold
from .quality.onboarding import Onboarding
from .quality.requirements import Requirement, parse
from .quality.screening import Screening
from .router.rooms import Chat, seating
from .spec import TaskSpec
from .views import views
from .workers import revoke

if TYPE_CHECKING:
    import pandas as pd

    from .run import Run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
DEFAULT_FEEDBACK = "Anything we should know about this task? (optional)"


class Task:
    """A named study. Re-launching the same name adds a run; results, quotas and data collate by name.

    ``html=`` is a Jinja template string, ``template=`` a shipped template name or a path; the page's
    variables are the input columns of ``data`` and its named form inputs are the answers. A template
    with ``${var}`` placeholders and no Jinja markup (MTurk, Turkle, Mephisto static tasks) works as is;
    ``syntax="dollar"`` or ``"jinja"`` says which when the guess is wrong. ``js=`` is a folder with a
    prebuilt JS bundle that talks to ``window.crowd``; its answers are whatever it submits (``answers=``
    declares them, and then only those are accepted). A template's answers are the fields its page declares:
    others are refused unless ``extra_answers=True`` (a page whose script sends answers of its own).
    ``feedback=True`` (or a prompt) adds an optional comment box, stored apart from
    the answers (the ``_feedback`` column).
    """

    def __init__(
        self,
        name: str,
        *,
        title: str,
        reward: float,
        description: str = "",
        tags: Sequence[str] = (),
        html: str | None = None,
        template: str | None = None,
        js: str | Path | None = None,
        form: str | Path | dict[str, Any] | list[Any] | None = None,
        data: DataSource = None,
        units_per_assignment: int = 1,
        assignment_duration: int = 1800,
        max_num_concurrent_units: int = 0,
        allowed_concurrent: int = 0,
        maximum_units_per_worker: int = 0,
        disconnect_grace: float = 10.0,
        max_upload_mb: float = 20.0,
        qualifications: Sequence[Requirement | dict[str, Any]] = (),
        budget: float | None = None,
        onboarding: Onboarding | None = None,
        gold: Gold | None = None,
        screening: Screening | None = None,
        project: str | Path | Project | None = None,
        syntax: str = "auto",
        answers: Sequence[str] = (),
        feedback: bool | str = False,
        workers_per_assignment: int | None = None,
        roles: Sequence[str] = (),
        chat: Chat | None = None,
        extra_answers: bool = False,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"task name {name!r} is not valid; use 1–100 letters, digits, '_', '-' or '.', starting with a letter or digit"
            )
        if not isinstance(title, str) or not title.strip():
            raise ConfigError("title is empty; give the task a title workers will see in listings")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)) or reward < 0:
            raise ConfigError(f"reward {reward!r} must be a number of dollars, 0 or more")
        if isinstance(tags, str):
            tags = [t.strip() for t in tags.split(",") if t.strip()]
        for label, value, low in [
            ("units_per_assignment", units_per_assignment, 1),
            ("assignment_duration", assignment_duration, 1),
            ("max_num_concurrent_units", max_num_concurrent_units, 0),
            ("allowed_concurrent", allowed_concurrent, 0),
            ("maximum_units_per_worker", maximum_units_per_worker, 0),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{label}={value!r} must be a whole number ≥ {low}")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0):
            raise ConfigError(f"budget {budget!r} must be a positive number of dollars (or None for no cap)")
        pages = {"html": html, "template": template, "js": js, "form": form}
        if sum(v is not None for v in pages.values()) != 1:
            raise ConfigError(
                "give exactly one of html= (a Jinja or ${var} template string), template= (a name or path), "
                "js= (a folder with a prebuilt bundle) or form= (a form config: a JSON file, its folder or a dict)"
            )
        static_dir, js_dir, kind, stored_form = None, None, "jinja", None
        if form is not None:
            from .forms.page import form_task

            stored_form, form_rows, static_dir, source = form_task(form, data_given=data is not None)
            html, kind, data = "", "form", data if data is not None else form_rows
        elif js is not None:
            from .pages.bundle import find_bundle

            folder = find_bundle(js)
            html, source, kind, js_dir = "", str(js), "js", str(folder)
            static_dir = str(folder / "static") if (folder / "static").is_dir() else None
        elif html is not None:
            source = "html="
        else:
            path = find_template(str(template))
            html, source = path.read_text(encoding="utf-8"), str(template)
            static_dir = str(path.parent / "static") if (path.parent / "static").is_dir() else None
        if kind not in ("js", "form"):
            from .pages.dollar import detect_syntax

            kind = detect_syntax(html, syntax)
        if answers and kind != "js":
            raise ConfigError("answers= declares a JS task's answers; an HTML page's answers are its named inputs")
        if isinstance(answers, str) or not all(isinstance(a, str) and a for a in answers):
            raise ConfigError(f"answers= takes a list of answer names; got {answers!r}")
        if not isinstance(feedback, (bool, str)):
            raise ConfigError(
                f"feedback= takes True (a box with the default prompt), False or a prompt; got {feedback!r}"
            )
        if not isinstance(extra_answers, bool):
            raise ConfigError(f"extra_answers= takes True or False; got {extra_answers!r}")
        prompt = DEFAULT_FEEDBACK if feedback is True else (feedback or "")
        if workers_per_assignment is None and template is not None:  # a gallery chat declares its seats
            workers_per_assignment, roles = _declared_seats(str(template), roles)
        seats = 1 if workers_per_assignment is None else workers_per_assignment
        workers, role_names, chat_rules = seating(seats, roles, chat, units_per_assignment)
        if chat_rules is not None and (gold is not None or screening is not None):
            raise ConfigError("gold= and screening= replace a worker's unit; a shared assignment's seats cannot be")
        self.spec = TaskSpec(
            name=name,
            title=title.strip(),
            description=description,
            reward=float(reward),
            tags=tuple(str(t) for t in tags),
            html=html,
            source=source,
            static_dir=static_dir,
            units_per_assignment=workers if chat_rules is not None else units_per_assignment,
            assignment_duration=assignment_duration,
            max_num_concurrent_units=max_num_concurrent_units,
            allowed_concurrent=allowed_concurrent,
            maximum_units_per_worker=maximum_units_per_worker,
            disconnect_grace=float(disconnect_grace),
            max_upload_mb=float(max_upload_mb),
            qualifications=tuple(r.to_dict() for r in parse(qualifications)),
            budget=float(budget) if budget is not None else None,
            onboarding=onboarding.to_dict(name) if onboarding is not None else None,
            gold=gold.to_dict(name) if gold is not None else None,
            screening=screening.to_dict(name) if screening is not None else None,
            kind=kind,
            js_dir=js_dir,
            answers=tuple(answers),
            extra_answers=extra_answers,
            feedback=prompt.strip(),
            form=stored_form,
            workers_per_assignment=workers,
            roles=role_names,
            chat=chat_rules,
        )
        if onboarding is not None and not isinstance(onboarding, Onboarding):
            raise ConfigError(f"onboarding= takes a cn.Onboarding(...); got {type(onboarding).__name__}")
        self.onboarding_validate = onboarding.validate if onboarding is not None else None
        if gold is not None and not isinstance(gold, Gold):
            raise ConfigError(f"gold= takes a cn.Gold(...); got {type(gold).__name__}")
        if screening is not None and not isinstance(screening, Screening):
            raise ConfigError(f"screening= takes a cn.Screening(...); got {type(screening).__name__}")
        if screening is not None and gold is not None:
            raise ConfigError("use screening= or gold=, not both: both replace a worker's unit with a check")
        self.screening_validate = screening.validate if screening is not None else None
        self.page = self.spec.page()
        self._rows = load(data, self.page.required)
        # finite data is read (and checked) now, so a bad row fails before anything is written
        self._loaded: list[dict[str, Any]] | None = self._rows.take() if self._rows.finite else None
        if self._loaded is not None and not self._loaded:
            raise ConfigError(f"data from {self._rows.source} has no rows; a task needs at least one unit of work")
        if kind == "form" and self._loaded is not None:
            from .forms.page import check_rows

            check_rows(self.page, self._loaded, self._rows.source)
        self._project = project
        self.procedures: dict[str, Procedure] = {}
        self._preview_key: str | None = None  # where this task's dry run is mounted (crowdnb.previews)

    def procedure(self, fn: Any = None, *, name: str | None = None, timeout: float = 10.0, concurrency: int = 4) -> Any:
        """Register ``fn(args, worker) -> dict`` as a procedure the task's pages call: ``crowd.call(name, args)``.

        A decorator, bare or with options: ``@task.procedure`` or ``@task.procedure(timeout=5)``. The name is
        the function's unless given; a call longer than ``timeout`` seconds is answered with an apology; at
        most ``concurrency`` calls of it run at once. ``worker`` says who calls (name, unit, input row, role).
        """

        def register(function: Any) -> Any:
            found = procedure(name, function, timeout, concurrency)
            self.procedures[found.name] = found
            stored = tuple(p.to_dict() for p in self.procedures.values())
            self.spec = dataclasses.replace(self.spec, procedures=stored)
            return function

        return register(fn) if fn is not None else register

    @property
    def name(self) -> str:
        """The task's name."""
        return self.spec.name

    @property
    def project(self) -> Project:
        """The project this task launches into."""
        if not isinstance(self._project, Project):
            self._project = open_project(self._project, create=True)  # launching makes the project
        return self._project

    @property
    def fields(self) -> list[Field]:
        """The answer fields of the page (for the first row)."""
        return self.page.fields(self._sample_row(0))

    def _sample_row(self, row: int) -> dict[str, Any]:
        if self._loaded is None:
            return self.page.placeholder_row()
        if not -len(self._loaded) <= row < len(self._loaded):
            raise ConfigError(f"row {row} is out of range; the data has {len(self._loaded)} rows")
        return self._loaded[row]

    def rows(self) -> list[dict[str, Any]]:
        """The input rows as workers will get them (a copy); empty for a generator, which is read when served."""
        return [dict(row) for row in self._loaded or []]

    def row_count(self) -> int:
        """How many input rows the task has (0 for a generator: unknown until it is read)."""
        return len(self._loaded) if self._loaded is not None else 0

    def preview(self, row: int = 0) -> Preview:
        """The exact HTML a worker receives for input row ``row`` (without a live token); shows inline."""
        return Preview(
            self.page.preview_html(self._sample_row(row), title=self.spec.title, description=self.spec.description)
        )

    def preview_link(self, row: int = 0) -> str:
        """A dry run of the page for input ``row`` that a browser opens: its scripts and files work, and
        Submit shows what would be stored (or what is wrong) and stores nothing."""
        return link(self, row)

    def preview_widget(self, row: int = 0) -> Any:
        """A widget: the dry run of the page for any row, at phone or desktop width."""
        return views().preview(self, row)

    def launch(
        self,
        provider: Any = "mock",
        architect: Any = "local",
        *,
        port: int | None = None,
        provider_options: dict[str, Any] | None = None,
        architect_options: dict[str, Any] | None = None,
    ) -> Run:
        """Start a run: store the data, start the router, publish to the crowd. Returns at once.

        ``port`` is where the local router listens (0, the default, picks a free one): the same as
        ``architect_options={"port": …}``. A launch that fails leaves no run behind.
        """
        from .run import Run

        bot = (self.spec.chat or {}).get("bot")
        if bot is not None and bot not in self.procedures:
            raise ConfigError(
                f"chat=cn.Chat(bot={bot!r}) names a procedure the task does not have: @task.procedure def {bot}(args, worker)"
            )
        options = dict(architect_options or {})
        if port is not None:
            if options.get("port", port) != port:
                raise ConfigError(
                    f"port={port!r} and architect_options['port']={options['port']!r} disagree; give the port once"
                )
            options["port"] = port
        rows = self._loaded if self._loaded is not None else self._rows
        hooks = {
            "onboarding_validate": self.onboarding_validate,
            "screening_validate": self.screening_validate,
            "procedures": dict(self.procedures),
        }
        return Run.launch(self.project, self.spec, rows, provider, architect, provider_options or {}, options, hooks)

    def _launched_into(self) -> Project | None:
        """The project, if this task was ever launched into it (reading makes no project and no task)."""
        try:
            project = self._project if isinstance(self._project, Project) else open_project(self._project)
        except NotFound:
            return None
        return project if project.store.find_task(self.name) is not None else None

    @property
    def runs(self) -> list[Run]:
        """Every run of this task in the project, oldest first (none before the first launch)."""
        project = self._launched_into()
        return [] if project is None else project.task_runs(self.name)

    def reset_onboarding(self, worker: str, provider: str = "mock") -> bool:
        """Let ``worker`` take the onboarding test again (their pass or fail is forgotten)."""
        if not self.spec.onboarding:
            raise ConfigError(f"task {self.name!r} has no onboarding")
        name = str(self.spec.onboarding["qualification"])
        failed = revoke(worker, f"{name}-failed", provider=provider, project=self.project)
        return revoke(worker, name, provider=provider, project=self.project) or failed

    @property
    def spend(self) -> dict[str, float]:
        """Dollars of every run of this task: rewards paid, pending review, bonuses, fees, total (0 before a launch)."""
        project = self._launched_into()
        if project is None:
            return dict.fromkeys(("rewards", "pending", "bonuses", "fees", "total"), 0.0)
        return project.task_spend(self.name)

    @property
    def df(self) -> pd.DataFrame:
        """Every submission of every run of this task (results of re-runs collate); before a launch, no rows
        but the columns the task declares."""
        project = self._launched_into()
        if project is None:
            row = self._loaded[0] if self._loaded else None
            return with_columns(typed_empty(), self.spec.frame_columns(row))
        return project.task_frame(self.name)

    def _repr_html_(self) -> str:
        spec = self.spec
        rows = self.row_count() or "a generator"
        return summary_table(
            f"Task {spec.name}",
            {
                "title": spec.title,
                "reward": f"${spec.reward:.2f} per unit",
                "rows": rows,
                "workers per row": spec.units_per_assignment,
                "inputs": ", ".join(self.page.required) or "none",
                "answers": ", ".join(f.name for f in self.fields) or "none",
                "page": spec.source,
            },
        )

    def __repr__(self) -> str:
        size = len(self._loaded) if self._loaded is not None else "a generator of"
        return f"<Task {self.name!r}: {self.spec.title!r}, {size} rows × {self.spec.units_per_assignment}, ${self.spec.reward:.2f}>"


def _declared_seats(template: str, roles: Sequence[str]) -> tuple[int | None, Sequence[str]]:
    """The seats and roles a gallery template declares (``Workers: 2``, ``Roles: …``), unless roles are given."""
    from .pages.gallery import describe

    try:
        described = describe(template)
    except CrowdError:  # a template without a header comment declares nothing
        return None, roles
    return (described.workers if described.workers > 1 else None), (roles or described.roles)
