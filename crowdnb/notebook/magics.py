"""``%crowd`` and ``%%crowd``: a thin notebook skin over the Python API.

Every subcommand returns the Python object it made or found (``run = %crowd launch sentiment``), takes
``--help``, and reports a bad value as one line without a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..errors import CrowdError
from ..pages.gallery import Gallery, templates
from ..project import Project, missing_project, open_project, project_exists
from ..run import Run
from ..simulate import simulate
from ..task import Task
from ..workers import grant, revoke


class _HelpShown(Exception):
    """argparse printed the help text; nothing else to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%crowd {self.prog.split()[-1]}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise _HelpShown


def _parsers() -> dict[str, _Parser]:
    def parser(name: str, help_text: str, task: bool = True) -> _Parser:
        p = _Parser(prog=f"%crowd {name}", description=help_text, add_help=True)
        if task:
            p.add_argument("name", nargs="?", help="task name (default: the last one used)")
        return p

    made = {
        "template": parser("template", "%%crowd template NAME: the cell body is the task page (Jinja HTML)."),
        "form": parser("form", "%%crowd form NAME: the cell body is a form config (Mephisto JSON); or --config PATH."),
        "preview": parser(
            "preview",
            "Try the worker's page inline (a dry run: Submit stores nothing), any row, phone or desktop width.",
        ),
        "launch": parser("launch", "Launch a run of the task; returns the Run."),
        "status": parser("status", "Units of the latest run by status."),
        "live": parser("live", "A live panel: progress, rate, time left, cost, latest submissions, charts."),
        "review": parser("review", "A review table: approve, reject, soft-reject, bonus."),
        "export": parser("export", "Write the task's submissions (every run) to CSV, Parquet or JSONL."),
        "stop": parser("stop", "Stop the latest run of the task."),
        "resume": parser("resume", "Resume the latest run of the task (after a stop or a crash)."),
        "runs": parser("runs", "Every run of the project.", task=False),
        "workers": parser("workers", "Every worker of the project with their units by status.", task=False),
        "simulate": parser("simulate", "Simulated workers through the real HTTP path (in the background)."),
        "qualify": parser("qualify", "Grant (or --revoke) a qualification to a worker.", task=False),
        "open": parser(
            "open", "Use the project folder PATH for the following commands (--create: a new one).", task=False
        ),
        "templates": parser("templates", "The template gallery: thumbnails, inputs and answers.", task=False),
    }
    for t in (made["template"], made["form"]):
        t.add_argument("--title", required=True)
        t.add_argument("--reward", type=float, required=True, help="dollars per unit")
        t.add_argument("--description", default="")
        t.add_argument("--data", help="CSV, JSON or JSONL file of input rows")
        t.add_argument("--units", type=int, default=1, help="workers per row (units_per_assignment)")
        t.add_argument("--duration", type=int, default=1800, help="assignment_duration in seconds")
        t.add_argument("--tags", default="")
    made["form"].add_argument("--config", help="a form folder, unit_config.json or task_data.json (instead of a cell)")
    made["preview"].add_argument("--row", type=int, default=0, help="the input row it opens on (default 0)")
    made["launch"].add_argument("--provider", default="mock")
    made["launch"].add_argument("--architect", default="local")
    made["launch"].add_argument("--port", type=int, default=None)
    made["export"].add_argument("path", help="a .csv, .parquet or .jsonl file")
    made["export"].set_defaults()
    made["simulate"].add_argument("--workers", type=int, default=5)
    made["simulate"].add_argument("--wait", action="store_true", help="block until the bots are done")
    q = made["qualify"]
    q.add_argument("worker")
    q.add_argument("qualification")
    q.add_argument("--value", type=int, default=1)
    q.add_argument("--revoke", action="store_true")
    q.add_argument("--provider", default="mock")
    made["open"].add_argument("path")
    made["open"].add_argument("--create", action="store_true", help="start a project there if there is none")
    return made


@magics_class
class CrowdMagics(Magics):
    """The ``%crowd`` magics; keeps the tasks and runs of this notebook session."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self.project: Project | None = None
        self.tasks: dict[str, Task] = {}
        self.runs: dict[str, Run] = {}
        self.current: str | None = None
        self.parsers = _parsers()

    @line_cell_magic
    def crowd(self, line: str, cell: str | None = None) -> Any:
        """``%crowd SUBCOMMAND …`` (``%crowd --help`` lists them); ``%%crowd template NAME …``."""
        words = shlex.split(line)
        if not words or words[0] in ("-h", "--help", "help"):
            print(self.usage())
            return None
        action, rest = words[0], words[1:]
        if action not in self.parsers:
            raise UsageError(f"%crowd: unknown subcommand {action!r}; one of {', '.join(self.parsers)}")
        wants_help = "-h" in rest or "--help" in rest
        if action != "form" and (action == "template") != (cell is not None) and not wants_help:
            raise UsageError(
                "%%crowd template NAME … takes the page as the cell body; the other subcommands are %crowd"
            )
        try:
            args = self.parsers[action].parse_args(rest)
        except _HelpShown:
            return None
        try:
            return getattr(self, f"_{action}")(args, cell)
        except CrowdError as exc:
            raise UsageError(str(exc)) from None

    def usage(self) -> str:
        """One line per subcommand."""
        lines = ["%crowd SUBCOMMAND [--help]"]
        lines += [f"  {name:<9} {p.description}" for name, p in self.parsers.items()]
        return "\n".join(lines)

    # --- helpers -------------------------------------------------------------------------------
    def _project(self) -> Project:
        if self.project is None:
            if not project_exists():
                raise UsageError(missing_project(None, "%crowd open PATH [--create] names the project folder"))
            self.project = open_project()
        return self.project

    def _name(self, args: argparse.Namespace) -> str:
        name = getattr(args, "name", None) or self.current
        if not name:
            raise UsageError("name a task: no task has been used in this notebook yet")
        self.current = name
        return str(name)

    def _task(self, args: argparse.Namespace) -> Task:
        name = self._name(args)
        if name not in self.tasks:
            raise UsageError(f"task {name!r} is not defined in this notebook; define it with %%crowd template {name}")
        return self.tasks[name]

    def _run(self, args: argparse.Namespace) -> Run:
        name = self._name(args)
        if name in self.runs:
            return self.runs[name]
        runs = self._project().task_runs(name)  # after a kernel restart: the stored runs
        if not runs:
            raise UsageError(f"task {name!r} has no run yet; %crowd launch {name}")
        self.runs[name] = runs[-1]
        return runs[-1]

    # --- subcommands ---------------------------------------------------------------------------
    def _template(self, args: argparse.Namespace, cell: str | None) -> Task:
        task = Task(
            self._name(args),
            title=args.title,
            reward=args.reward,
            description=args.description,
            tags=args.tags,
            html=cell or "",
            data=args.data,
            units_per_assignment=args.units,
            assignment_duration=args.duration,
            project=self.project,  # None: the default folder, made at the first launch
        )
        self.tasks[task.name] = task
        return task

    def _form(self, args: argparse.Namespace, cell: str | None) -> Task:
        if (cell is None or not cell.strip()) == (args.config is None):
            raise UsageError("%%crowd form NAME … takes the form config as the cell body, or --config PATH on one line")
        try:
            config = args.config or json.loads(cell or "")
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"%%crowd form: the cell is not JSON ({exc.msg}, line {exc.lineno} column {exc.colno})"
            ) from None
        options = {"units_per_assignment": args.units, "assignment_duration": args.duration, "tags": args.tags}
        task = Task(self._name(args), title=args.title, reward=args.reward, description=args.description,
                    form=config, data=args.data, project=self.project, **options)  # fmt: skip
        self.tasks[task.name] = task
        return task

    def _preview(self, args: argparse.Namespace, cell: str | None) -> Any:
        task = self._task(args)
        return task.preview_widget(args.row)

    def _launch(self, args: argparse.Namespace, cell: str | None) -> Run:
        options = {"port": args.port} if args.port is not None else {}
        run = self._task(args).launch(args.provider, args.architect, architect_options=options)
        self.runs[run.task_name] = run
        return run

    def _status(self, args: argparse.Namespace, cell: str | None) -> Run:
        return self._run(args)

    def _live(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self._run(args).live()

    def _review(self, args: argparse.Namespace, cell: str | None) -> Any:
        return self._run(args).review()

    def _export(self, args: argparse.Namespace, cell: str | None) -> Path:
        return self._project().export(self._name(args), args.path)

    def _stop(self, args: argparse.Namespace, cell: str | None) -> Run:
        run = self._run(args)
        run.stop()
        return run

    def _resume(self, args: argparse.Namespace, cell: str | None) -> Run:
        return self._run(args).resume()

    def _runs(self, args: argparse.Namespace, cell: str | None) -> pd.DataFrame:
        return self._project().run_table()

    def _workers(self, args: argparse.Namespace, cell: str | None) -> pd.DataFrame:
        return self._project().worker_table()

    def _simulate(self, args: argparse.Namespace, cell: str | None) -> Any:
        return simulate(self._run(args), workers=args.workers, wait=args.wait)

    def _qualify(self, args: argparse.Namespace, cell: str | None) -> int | None:
        if args.revoke:
            revoke(args.worker, args.qualification, provider=args.provider, project=self.project)
            return None
        return grant(args.worker, args.qualification, args.value, provider=args.provider, project=self.project)

    def _templates(self, args: argparse.Namespace, cell: str | None) -> Gallery:
        return templates()

    def _open(self, args: argparse.Namespace, cell: str | None) -> Project:
        if not args.create and not project_exists(args.path):
            raise UsageError(missing_project(args.path, f"start one there: %crowd open {args.path} --create"))
        self.project = open_project(args.path, create=True)
        return self.project


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%crowd`` / ``%%crowd`` (``%load_ext crowdnb``)."""
    ipython.register_magics(CrowdMagics)
