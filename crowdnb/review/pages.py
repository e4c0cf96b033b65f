"""The review web app's pages: tasks, a task's units by worker, stats, qualifications, a worker, export.

Each view builds plain dicts (ids as strings: they exceed JavaScript's safe integers) that the Jinja
templates under ``assets/review/`` render with autoescaping, and that ``/api/…`` returns as JSON.
Numbers come from crowdnb's API (``Project.task_frame``, ``Run.counts``, ``crowdnb.quality.workers`` …).
"""

from __future__ import annotations

import io
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd
from flask import Flask, Response, jsonify, render_template, request, send_file, url_for
from markupsafe import Markup
from werkzeug.routing import PathConverter

from .. import quality
from ..errors import ConfigError, CrowdError
from ..frame.export import export_frame
from ..frame.live import FEEDBACK_COLUMN, META_COLUMNS, flatten
from ..pages import charts, gallery
from ..quality.requirements import BLOCKED
from ..router.uploads import FOLDER, kind_of
from ..store import reports, rooms
from ..store import states as S

if TYPE_CHECKING:
    from ..project import Project
    from ..run import Run

View = dict[str, Any]

WORKERS_PER_PAGE = 50
STATUS_FILTERS = ("all", S.COMPLETED, S.ACCEPTED, S.REJECTED, S.SOFT_REJECTED)
EXPORTS = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
_CATEGORICAL = ("radio", "select")


def tasks_view(project: Project) -> list[View]:
    """Every task: runs, submissions, units by status, spend."""
    rows = []
    for task in project.tasks.to_dict("records"):
        name = str(task["name"])
        runs = project.task_runs(name)
        rows.append(
            {
                "name": name,
                "runs": len(runs),
                "submissions": int(task["submissions"]),
                "units": _sum_counts(runs),
                "spend": project.task_spend(name),
            }
        )
    return rows


def task_view(project: Project, name: str, status: str = "all", page: int = 1) -> View:
    """A task's submitted units grouped by worker (fewest units first), with each worker's record and quality."""
    if status not in STATUS_FILTERS:
        raise ConfigError(f"status {status!r} is not one of {', '.join(STATUS_FILTERS)}")
    runs = project.task_runs(name)
    frame, inputs, categorical = _frame(project, name, runs)
    flags = quality.too_fast(frame) if len(frame) else pd.Series(False, index=frame.index)
    agreement = _agreement(frame, categorical[0]) if categorical else {}
    shown = frame.assign(too_fast=flags)
    if status != "all":
        shown = shown[shown["status"] == status]
    blocked = {
        (r["provider"], r["worker"]) for r in reports.qualification_holders(project.store, BLOCKED) if r["worker"]
    }
    renderers = {run.id: gallery.review_for(run.spec) for run in runs}  # a gallery template's review.html
    conversations = _transcripts(project, runs)
    files = reports.uploaded_files(project.store, "task", int(project.store.get_task(name)["id"]))
    groups = []
    for (provider, worker), rows in shown.groupby(["provider", "worker"], sort=False):
        units = [
            _unit(record, inputs, renderers.get(record["run_id"]), files.get(int(record["unit_id"]), []))
            for record in rows.to_dict("records")
        ]
        for unit, record in zip(units, rows.to_dict("records"), strict=True):
            unit["transcript"] = conversations.get(int(record["assignment_id"]), [])
        groups.append(
            {
                "worker": str(worker),
                "provider": str(provider),
                "key": f"{provider}:{worker}",
                "units": units,
                "agreement": agreement.get(str(worker)),
                "too_fast": sum(u["too_fast"] for u in units),
                "blocked": (provider, worker) in blocked,
            }
        )
    groups.sort(key=lambda g: (len(g["units"]), g["worker"]))  # fewest units first, as Mephisto does
    pages = max(math.ceil(len(groups) / WORKERS_PER_PAGE), 1)
    page = min(max(page, 1), pages)
    groups = groups[(page - 1) * WORKERS_PER_PAGE : page * WORKERS_PER_PAGE]
    for provider in {g["provider"] for g in groups}:
        names = [g["worker"] for g in groups if g["provider"] == provider]
        records = reports.worker_stats(project.store, names, provider)
        for group in groups:
            if group["provider"] == provider:
                group["record"] = {s: records[group["worker"]].get(s, 0) for s in S.UNIT_SUBMITTED}
    return {
        "name": name,
        "runs": len(runs),
        "units": _sum_counts(runs),
        "spend": project.task_spend(name),
        "status": status,
        "statuses": STATUS_FILTERS,
        "quality_column": categorical[0] if categorical else None,
        "page": page,
        "pages": pages,
        "shown": len(shown),
        "workers": groups,
    }


def stats_view(project: Project, name: str) -> View:
    """Units by status (task and runs), spend, agreement per categorical answer, timing, worker quality."""
    runs = project.task_runs(name)
    frame, _, categorical = _frame(project, name, runs)
    answers = []
    for column in categorical:
        entry: View = {"column": column, "alpha": None, "note": "", "voted_items": 0, "ties": 0}
        entry["counts"] = {_text(k): int(v) for k, v in frame[column].value_counts(dropna=True).items()}
        try:
            entry["alpha"] = _number(quality.krippendorff_alpha(frame, answer=column, level="nominal"))
            votes = quality.majority_vote(frame, answer=column)
            entry["voted_items"], entry["ties"] = len(votes), int(votes["tie"].sum())
        except CrowdError as exc:
            entry["note"] = str(exc)
        answers.append(entry)
    workers: list[View] = []
    if categorical:
        try:
            table = quality.worker_accuracy(frame, answer=categorical[0])
            workers = [
                {
                    "worker": str(w),
                    "answers": int(r["answers"]),
                    "compared": int(r["compared"]),
                    "agreement": _number(r["agreement"]),
                }
                for w, r in table.iterrows()
            ]
        except CrowdError:
            workers = []
    durations = frame["duration_s"].dropna().astype(float)
    return {
        "name": name,
        "units": _sum_counts(runs),
        "spend": project.task_spend(name),
        "runs": [
            {
                "id": str(run.id),
                "state": run.state,
                "provider": run.config["provider"]["name"],
                "units": run.counts,
                "spend": run.spend,
            }
            for run in runs
        ],
        "submitted": len(frame),
        "median_s": _number(durations.median()) if len(durations) else None,
        "too_fast": int(quality.too_fast(frame).sum()) if len(frame) else 0,
        "answers": answers,
        "workers": workers,
    }


def qualifications_view(project: Project) -> list[View]:
    """Every qualification with the workers holding it and their values."""
    out: dict[str, View] = {}
    for row in reports.qualification_holders(
        project.store,
    ):
        entry = out.setdefault(
            row["qualification"],
            {
                "name": row["qualification"],
                "description": row["description"],
                "holders": [],
                "is_block": row["qualification"] == BLOCKED,
            },
        )
        if row["worker"] is not None:
            entry["holders"].append(
                {
                    "worker": row["worker"],
                    "provider": row["provider"],
                    "value": row["value"],
                    "updated_at": row["updated_at"],
                    "key": f"{row['provider']}:{row['worker']}",
                }
            )
    return list(out.values())


def worker_view(project: Project, provider: str, name: str) -> View:
    """One worker: units by status across the project, qualifications, and the latest review actions."""
    worker = project.worker(name, provider)
    qualifications = worker.qualifications
    reviews = reports.worker_reviews(project.store, provider, name)
    for row in reviews:
        row["unit_id"] = None if row["unit_id"] is None else str(row["unit_id"])
        row["details"] = json.loads(row["details"] or "{}")
    return {
        "worker": name,
        "provider": provider,
        "key": f"{provider}:{name}",
        "units": worker.units,
        "qualifications": qualifications,
        "blocked": BLOCKED in qualifications,
        "reviews": reviews,
    }


def export_file(project: Project, name: str, fmt: str) -> tuple[bytes, str]:
    """A task's submissions as a CSV, JSONL or Parquet file (written by ``export_frame`` to a temp folder)."""
    if fmt not in EXPORTS:
        raise ConfigError(f"cannot export to {fmt!r}; use one of {', '.join(EXPORTS)}")
    frame = project.task_frame(name)
    with tempfile.TemporaryDirectory(prefix="crowdnb-review-") as folder:  # only the table is sent: no files copied
        written = export_frame(frame, Path(folder) / f"{name}.{fmt}", project.root)
        return written.read_bytes(), f"{name}.{fmt}"


class WorkerName(PathConverter):
    """A worker's name in a path: matched with any "/" it holds, linked with every character that could end
    the segment or climb out of it quoted ("../x" is one segment, not a way to another page)."""

    def to_url(self, value: str) -> str:
        return quote(str(value), safe="")


def register_pages(app: Flask, project: Project) -> None:
    """Add the HTML pages, the export download and their JSON mirrors to ``app``."""
    app.url_map.converters["worker"] = WorkerName

    def render(template: str, **context: Any) -> str:
        return render_template(template, project_root=str(project.root), **context)

    @app.get("/")
    def tasks_page() -> str:
        return render("tasks.html", title="Tasks", tasks=tasks_view(project))

    @app.get("/tasks/<name>")
    def task_page(name: str) -> str:
        view = task_view(project, name, request.args.get("status", "all"), request.args.get("page", 1, type=int))
        return render("task.html", title=f"Task {name}", task=view, next=request.full_path.rstrip("?"))

    @app.get("/tasks/<name>/stats")
    def stats_page(name: str) -> str:
        view = stats_view(project, name)
        durations = project.task_frame(name)["duration_s"].dropna().astype(float).tolist()
        chart = Markup(charts.histogram(durations))  # built from numbers only; its text is escaped
        return render("stats.html", title=f"Stats of {name}", stats=view, chart=chart)

    @app.get("/tasks/<name>/export.<fmt>")
    def export_page(name: str, fmt: str) -> Response:
        data, filename = export_file(project, name, fmt)
        return send_file(io.BytesIO(data), mimetype=EXPORTS[fmt], as_attachment=True, download_name=filename)

    @app.get("/qualifications")
    def qualifications_page() -> str:
        return render("qualifications.html", title="Qualifications", qualifications=qualifications_view(project))

    @app.get("/workers/<provider>/<worker:name>")
    def worker_page(provider: str, name: str) -> str:
        view = worker_view(project, provider, name)
        return render("worker.html", title=f"Worker {name}", worker=view, next=request.full_path.rstrip("?"))

    @app.get("/api/tasks")
    def api_tasks() -> Response:
        return jsonify({"tasks": tasks_view(project)})

    @app.get("/api/tasks/<name>")
    def api_task(name: str) -> Response:
        view = task_view(project, name, request.args.get("status", "all"), request.args.get("page", 1, type=int))
        return jsonify(view)

    @app.get("/api/tasks/<name>/stats")
    def api_stats(name: str) -> Response:
        return jsonify(stats_view(project, name))

    @app.get("/api/qualifications")
    def api_qualifications() -> Response:
        return jsonify({"qualifications": qualifications_view(project)})

    @app.get("/api/workers/<provider>/<worker:name>")
    def api_worker(provider: str, name: str) -> Response:
        return jsonify(worker_view(project, provider, name))


# --- building blocks ---------------------------------------------------------------------------------
def _frame(project: Project, name: str, runs: Sequence[Run]) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The task's frame with a provider column, its input columns and its categorical answer columns."""
    frame = project.task_frame(name)
    providers = {run.id: str(run.config["provider"]["name"]) for run in runs}
    frame = frame.assign(provider=frame["run_id"].map(providers))
    inputs: dict[str, None] = {}
    categorical: dict[str, None] = {}
    for run in runs:
        first = project.store.first_input(run.id) or {}
        flat: dict[str, Any] = {}
        flatten("", first, flat)
        for key in flat:
            inputs[f"input_{key}" if f"input_{key}" in frame.columns else key] = None
        try:
            page = run.spec.page()
            fields = page.fields(first or page.placeholder_row())
        except CrowdError:  # a page that no longer compiles still has reviewable answers
            fields = []
        for field in fields:
            column = f"answer_{field.name}" if field.name in META_COLUMNS else field.name
            if field.kind in _CATEGORICAL and not field.multiple and column in frame.columns:
                categorical[column] = None
    return frame, [c for c in inputs if c in frame.columns], list(categorical)


def _unit(
    record: dict[Any, Any],
    inputs: list[str],
    render: Callable[[dict[str, Any]], Markup] | None = None,
    uploads: Sequence[dict[str, Any]] = (),
) -> View:
    files = _files(uploads)
    skip = {*META_COLUMNS, "provider", "too_fast", FEEDBACK_COLUMN, *(f["column"] for f in files)}
    skip.update(f"{f['column']}_name" for f in files)
    return {
        "review": render({k: v for k, v in record.items() if k not in ("provider", "too_fast")}) if render else None,
        "id": str(record["unit_id"]),
        "run_id": str(record["run_id"]),
        "status": record["status"],
        "submitted_at": _text(record["submitted_at"]),
        "duration_s": _number(record["duration_s"]),
        "too_fast": bool(record["too_fast"]),
        "inputs": {c: _text(record[c]) for c in inputs},
        "answers": {c: _text(v) for c, v in record.items() if c not in skip and c not in inputs},
        "files": files,
        "feedback": _text(record.get(FEEDBACK_COLUMN)),
    }


def _transcripts(project: Project, runs: Sequence[Run]) -> dict[int, list[View]]:
    """The conversation of every shared assignment of these runs (who said what, and what happened), by assignment."""
    found: dict[int, list[View]] = {}
    for run in runs:
        if run.spec.shared:
            for row in rooms.of_run(project.store, run.id):
                line = {
                    "kind": row["kind"],
                    "role": row["role"] or "",
                    "worker": row["worker"] or "",
                    "text": row["text"],
                }
                found.setdefault(int(row["assignment_id"]), []).append(line)
    return found


def _files(uploads: Sequence[dict[str, Any]]) -> list[View]:
    """The unit's uploaded files (as the store recorded them, never an answer that reads like a path):
    the field's column, the worker's file name, the app's link to it and how to show it."""
    return [
        {
            "column": f"answer_{entry['field']}" if entry["field"] in META_COLUMNS else str(entry["field"]),
            "name": str(entry.get("name") or Path(entry["path"]).name),
            "url": url_for("review_file", name=str(entry["path"]).removeprefix(f"{FOLDER}/")),
            "kind": kind_of(str(entry["path"])),
        }
        for entry in uploads
    ]


def _agreement(frame: pd.DataFrame, column: str) -> dict[str, float | None]:
    """Each worker's leave-one-out agreement with the others' majority on ``column``."""
    try:
        table = quality.worker_accuracy(frame, answer=column)
    except CrowdError:
        return {}
    return {str(worker): _number(value) for worker, value in table["agreement"].items()}


def _sum_counts(runs: Sequence[Run]) -> dict[str, int]:
    total = dict.fromkeys(S.UNIT_STATES, 0)
    for run in runs:
        for status, n in run.counts.items():
            total[status] += n
    return total


def _number(value: Any) -> float | None:
    """A float for JSON and templates; None for NaN or missing."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _text(value: Any) -> str:
    """What a cell shows: lists and dicts as JSON, timestamps to the second, nothing for missing values."""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return ""  # None, NaN, NaT, pd.NA
    return str(value)
