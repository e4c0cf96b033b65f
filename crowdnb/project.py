"""A project: one folder holding the SQLite database and uploaded files, shared by every task and run."""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Generator, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import pandas as pd

from . import logs
from .errors import DataError, NotFound, StateError
from .frame.export import export_frame
from .frame.live import LiveFrame
from .quality.requirements import BLOCKED
from .router import uploads
from .spec import TaskSpec
from .store import archive, reports
from .store.archive import Imported
from .store.db import DB_NAME, Store, holds_project, project_root
from .worker import Worker

if TYPE_CHECKING:
    from .run import Run

log = logging.getLogger(__name__)

_open: dict[Path, Project] = {}  # one object per folder, so live runs are shared; closed at interpreter exit
_open_lock = threading.Lock()


ProjectLike = Union["Project", str, os.PathLike[str], None]


def as_project(project: ProjectLike, *, create: bool = False) -> Project:
    """A Project from a Project, a folder, or None (the default folder); see ``open_project``."""
    return project if isinstance(project, Project) else open_project(project, create=create)


def open_project(path: str | os.PathLike[str] | None = None, *, create: bool = False) -> Project:
    """The project at ``path`` (default ``$CROWDNB_HOME`` or ``./crowdnb_data``).

    A folder without a project is ``NotFound`` (a typo must not make an empty project), unless
    ``create=True``. Opening the same folder twice in one process returns the same object, so live
    runs are shared (until ``project.close()``; every open project is closed at interpreter exit).
    """
    root = project_root(path)
    with _open_lock:
        if root not in _open:
            if not holds_project(root):
                if not create:
                    shown = repr(str(path)) if path else ""
                    raise NotFound(
                        missing_project(path, f"cn.open({shown}{', ' if shown else ''}create=True) starts one")
                    )
                log.info("new crowdnb project at %s", root)
            _open[root] = Project(root)
        return _open[root]


def restore(
    path: str | os.PathLike[str], into: str | os.PathLike[str] | None = None, *, force: bool = False
) -> Project:
    """Replace the project at ``into`` (default as ``cn.open``) by the backup ``path``; returns it opened.

    Refused while that project has runs marked running (they would lose what they write), unless ``force``.
    """
    root = project_root(into)
    with _open_lock:
        current = _open.get(root)
        if current is not None and current.served:
            ids = ", ".join(map(str, current.served))
            raise StateError(f"run(s) {ids} of {root} are served by this process; stop them before restoring")
        if current is not None:  # its connections would keep the replaced file: the next open starts afresh
            current.store.close()
            del _open[root]
        archive.restore(Path(path), root, force=force)
    return open_project(root)


def project_exists(path: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``path`` (default ``$CROWDNB_HOME`` or ``./crowdnb_data``) holds a crowdnb project."""
    return project_root(path) in _open or holds_project(project_root(path))


def missing_project(path: str | os.PathLike[str] | None, remedy: str) -> str:
    """The one line for a folder that holds no project, ending with ``remedy`` (how to make one there)."""
    source = " (from $CROWDNB_HOME)" if not path and os.environ.get("CROWDNB_HOME") else ""
    return f"no crowdnb project at {project_root(path)}{source} (no {DB_NAME} there); check the path, or {remedy}"


class Project:
    """Every task, run, worker and submission of one project folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root)
        self.served: dict[int, Run] = {}  # runs served by this process
        self._frames: dict[str, LiveFrame] = {}
        # the latest warnings and errors logged for each run by this process (``run.errors``)
        self.problems: dict[int, list[str]] = {}
        self.log_path = logs.install().attach(root, self._problem)

    def _problem(self, run_id: int, text: str) -> None:
        kept = self.problems.setdefault(run_id, [])
        kept.append(text)
        del kept[: -logs.KEPT]

    def logs(self, run: int | None = None, follow: bool = False) -> Generator[dict[str, Any], None, None]:
        """The project's log lines as dicts, oldest first (``run``: only that run's; ``follow``: and every
        line written later, until the iterator is closed). See ``crowdnb.logs`` for the fields."""
        return logs.lines(self.root, run, follow)

    def close(self) -> None:
        """Stop the runs this process serves (as ``run.stop()`` does) and close the database; a run served
        elsewhere goes on without this notebook (``run.resume()`` reattaches to it, ``run.stop()`` stops it).

        Called for every open project at interpreter exit; ``cn.open`` afterwards opens the folder afresh.
        """
        with _open_lock:
            if _open.get(self.root) is self:
                del _open[self.root]
        for run in list(self.served.values()):
            try:
                run.detach() if run.operated else run.stop()
            except Exception:  # the other runs still stop and the database still closes
                log.exception("run %s did not stop cleanly", run.id)
        self.store.close()

    @property
    def db_path(self) -> Path:
        """The SQLite file."""
        return self.store.path

    def run(self, run_id: int) -> Run:
        """A run by id: the live object if this process serves it, else a stored (stopped) one."""
        from .run import Run

        if run_id in self.served:
            return self.served[run_id]
        return Run(self, run_id)

    @property
    def runs(self) -> dict[int, Run]:
        """Every run, oldest first, by id."""
        return {run_id: self.run(run_id) for run_id in self.store.run_ids()}

    def task_runs(self, name: str) -> list[Run]:
        """The runs of task ``name``, oldest first (none for a task never launched here)."""
        task = self.store.find_task(name)
        return [] if task is None else [self.run(run_id) for run_id in self.store.run_ids(int(task["id"]))]

    @property
    def tasks(self) -> pd.DataFrame:
        """One row per task: runs, units by outcome, submissions."""
        return pd.DataFrame(
            reports.task_summary(
                self.store,
            ),
            columns=["name", "runs", "submissions", "created_at"],
        )

    def worker(self, name: str, provider: str = "mock") -> Worker:
        """A worker of this project (their units and qualifications)."""
        return Worker(self, name, provider)

    def worker_records(self, provider: str = "mock", names: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """Per worker of ``provider`` (those ``names``, or all): their units by status, across every task and run."""
        return reports.worker_stats(self.store, None if names is None else sorted(set(names)), provider)

    def upload_cells(self, records: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, str]]:
        """Per ``run.df`` record (by unit id): its uploaded files by column, as HTML for a notebook (small
        images and sounds inline, anything else its name and path). A file is what the store recorded for
        the unit (``reports.uploaded_files``); an answer whose text reads like an upload path stays text.
        Records without files are left out."""
        records = list(records)
        cells: dict[int, dict[str, str]] = {}
        for run_id in {int(r["run_id"]) for r in records}:
            stored = reports.uploaded_files(self.store, "run", run_id)
            for record in records:
                unit = int(record["unit_id"])
                if int(record["run_id"]) != run_id or unit not in stored:
                    continue
                by_column: dict[str, list[dict[str, Any]]] = {}
                for entry in stored[unit]:
                    field = str(entry["field"])
                    by_column.setdefault(f"answer_{field}" if f"answer_{field}" in record else field, []).append(entry)
                cells[unit] = {column: uploads.notebook_html(self.root, found) for column, found in by_column.items()}
        return cells

    def run_table(self) -> pd.DataFrame:
        """One row per run: task, state, provider, address, units, submitted, accepted."""
        return pd.DataFrame(
            reports.runs_overview(
                self.store,
            )
        )

    def worker_table(self) -> pd.DataFrame:
        """One row per worker: units submitted, accepted, rejected, qualifications, and whether blocked."""
        columns = ["provider", "worker", "submitted", "accepted", "rejected", "qualifications"]
        frame = pd.DataFrame(reports.workers_overview(self.store), columns=columns)
        held = {(r["provider"], r["worker"]) for r in reports.qualification_holders(self.store, BLOCKED)}
        return frame.assign(blocked=[(p, w) in held for p, w in zip(frame["provider"], frame["worker"], strict=True)])

    def qualification_table(self) -> pd.DataFrame:
        """One row per qualification: its name, description and how many workers hold it."""
        rows = reports.qualification_holders(self.store)
        frame = pd.DataFrame(
            rows, columns=["qualification", "description", "provider", "worker", "value", "updated_at"]
        )
        grouped = frame.groupby(["qualification", "description"], sort=True, dropna=False)["worker"].count()
        return grouped.rename("holders").reset_index()

    def task_spend(self, name: str) -> dict[str, float]:
        """Dollars of every run of task ``name``, each with its provider's fees (see ``Run.spend``)."""
        return reports.added(run.spend for run in self.task_runs(name))

    def task_frame(self, name: str) -> pd.DataFrame:
        """Every submission of every run of task ``name``."""
        if name not in self._frames:
            task = self.store.get_task(name)
            spec = TaskSpec.from_dict(json.loads(task["config"]))
            self._frames[name] = LiveFrame(self.store, "task", int(task["id"]), columns=spec.frame_columns)
        return self._frames[name].refresh()

    def frame(self, what: str | int) -> pd.DataFrame:
        """The submissions of a task (by name) or of a run (by id)."""
        return self.run(what).df if isinstance(what, int) else self.task_frame(what)

    def export(self, what: str | int, path: str | os.PathLike[str]) -> Path:
        """Write a task's submissions (by name) or a run's (by id) to CSV, Parquet or JSONL, by suffix."""
        frame = self.frame(what)
        if isinstance(what, int):
            files = reports.uploaded_files(self.store, "run", what)
        else:
            files = reports.uploaded_files(self.store, "task", int(self.store.get_task(what)["id"]))
        return export_frame(frame, Path(path), self.root, files)

    def export_db(
        self,
        path: str | os.PathLike[str],
        *,
        task: str | None = None,
        run: int | None = None,
        since: str | datetime | None = None,
    ) -> Path:
        """Write runs with their tasks, workers, answers, audit rows and uploads to one archive (``.tar.gz``)
        that ``import_db`` merges into another project. Filters (together): a task's runs, one run, runs
        started on or after ``since`` (a date); none: every run. Works while runs are live."""
        selection = {"task": task, "run": run, "since": None if since is None else archive.since_stamp(since)}
        runs = None if selection == {"task": None, "run": None, "since": None} else self._selected(task, run, since)
        return archive.export(self.store, Path(path), selection, runs)

    def _selected(self, task: str | None, run: int | None, since: str | datetime | None) -> list[int]:
        runs = archive.select_runs(self.store, task, run, since)
        if not runs:
            raise DataError(f"no run matches task={task!r} run={run!r} since={since!r}; see project.run_table()")
        return runs

    def import_db(self, path: str | os.PathLike[str]) -> Imported:
        """Merge an archive written by ``export_db`` (another machine's, say) into this project.

        Checksums are verified first (a damaged archive changes nothing); tasks, workers and qualifications
        are matched by name; conflicts (a task of that name with another config …) are reported in the
        result's ``conflicts``; importing the same archive twice writes nothing."""
        return archive.import_into(self.store, Path(path))

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """A consistent copy of the whole project (database and uploads) in one archive, made while runs
        keep running (SQLite's online backup); ``cn.restore(path, into=...)`` brings it back."""
        return archive.export(self.store, Path(path), {}, None, kind="backup")

    def __repr__(self) -> str:
        return f"<crowdnb project {str(self.root)!r}: {len(self.store.run_ids())} runs>"


@atexit.register
def _close_all() -> None:
    """Close every open project when the interpreter exits: runs served here stop, databases close."""
    with _open_lock:
        projects = list(_open.values())
    for project in projects:
        project.close()
