"""The dry run behind a notebook's preview: a task's page for any input row, served with its files.

The page is the one a worker gets, in mode ``dry_run``: its scripts run, its files load, and Submit
sends the answers here, where they meet the same checks as on the router; the reply says what would be
stored (or, with status 422, what is wrong, field by field). Nothing is ever stored: no unit, agent,
submission or file. Routes, under wherever the app is mounted::

    GET  /?row=N        the page for input row N (default 0)
    POST /submit        the answers of the row named by the token (``row:N``): what would be stored
    GET  /_crowd/<p>    crowdnb's page assets; /static/<p> the task's folder; /<p> a JS task's bundle
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, jsonify, request, send_from_directory
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..errors import ConfigError, CrowdError, InvalidAnswers, NotFound, WorkerRefused, http_status
from ..pages.bundle import serve_asset
from ..pages.page import ASSETS, TaskPage, message_page
from . import limits
from .app import _file_names, _form_answers, _json_answers, _meta
from .validation import answer_errors, undeclared_errors

log = logging.getLogger(__name__)

DRY_RUN = "Dry run: nothing was stored. A worker's submission would store this:"
TOKEN_PREFIX = "row:"


def create_preview_app(
    page: TaskPage,
    row: Callable[[int], dict[str, Any]],
    *,
    title: str,
    description: str,
    static_dir: Path | None = None,
    max_upload_mb: float = 20,
    extra_answers: bool = False,
) -> Flask:
    """The dry-run app of one task; ``row(n)`` is input row ``n`` (a ``ConfigError`` when there is none).
    ``extra_answers`` is the task's: whether answers its page does not declare are taken."""
    app = Flask("crowdnb.router.preview", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)

    def input_row(text: str) -> tuple[int, dict[str, Any]]:
        if not text.strip().isdigit():
            raise NotFound(f"row {text[:20]!r} is not a row number; open ?row=0")
        number = int(text)
        try:
            return number, row(number)
        except ConfigError as exc:
            raise NotFound(str(exc)) from exc

    def refuse(exc: Exception) -> Any:
        status = http_status(exc)
        if status == 500:
            log.exception("preview error")
        text = str(exc) if status != 500 else "Something went wrong in the preview; see the notebook's log."
        if request.path.endswith("/submit") or request.accept_mimetypes.best == "application/json":
            reason = exc.reason if isinstance(exc, WorkerRefused) else "error"
            errors = exc.errors if isinstance(exc, InvalidAnswers) else None
            reply = {"status": "refused", "reason": reason, "message": text}
            return jsonify({**reply, "errors": errors} if errors else reply), status
        return Response(message_page("Preview", text, status="refused"), status=status, mimetype="text/html")

    @app.errorhandler(CrowdError)
    def crowd_error(exc: CrowdError) -> Any:
        return refuse(exc)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Any:
        return refuse(
            WorkerRefused("too_large", f"The upload is larger than the {max_upload_mb:g} MB this task accepts.")
        )

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        return exc if isinstance(exc, HTTPException) else refuse(exc)

    @app.get("/")
    def task_page() -> Any:
        number, values = input_row(request.args.get("row", "0"))
        html = page.render(
            values, title=title, description=description, mode="dry_run", token=f"{TOKEN_PREFIX}{number}"
        )
        return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})

    @app.post("/submit")
    def submit() -> Any:
        body = limits.parse(request.get_data(cache=False)) if request.is_json else None
        if request.is_json and (not isinstance(body, dict) or not isinstance(body.get("answers", {}), dict)):
            raise WorkerRefused("bad_submission", "The submission must be a JSON object with an 'answers' object.")
        token = str(body.get("token", "")) if isinstance(body, dict) else request.form.get("_crowd_token", "")
        if not token.startswith(TOKEN_PREFIX):
            raise WorkerRefused("bad_submission", f"token {token[:40]!r} is not a preview's (row:N); reload the page")
        fields = page.fields(input_row(token.removeprefix(TOKEN_PREFIX))[1])
        if isinstance(body, dict):
            raw_meta = body.get("meta") or {}
            answers, files = body.get("answers", {}), {}  # as on the router: JSON carries no files
            meta = _meta(raw_meta.get("feedback") if isinstance(raw_meta, dict) else None)
        else:
            if "_crowd_answers" in request.form:
                answers = _json_answers(request.form)
            else:
                answers = _form_answers(request.form, {f.name for f in fields if f.multiple})
            files, meta = _file_names(request.files), _meta(request.form.get("_crowd_feedback"))
        limits.check(answers, request.content_length)
        # the router's policy: a JS page declaring no answers takes whatever it sends
        open_answers = extra_answers or (page.kind == "js" and not fields)
        errors = undeclared_errors(fields, answers, files, open_answers, page.kind)
        errors.update(answer_errors(fields, answers, files))
        if errors:
            raise InvalidAnswers(errors)
        return jsonify(
            {
                "status": "dry_run",
                "stored": False,
                "message": DRY_RUN,
                "answers": answers,
                "files": _described(request.files) if files else {},
                "feedback": meta.get("feedback"),
            }
        )

    @app.get("/_crowd/<path:name>")
    def assets(name: str) -> Any:
        return send_from_directory(ASSETS, name, max_age=300)

    @app.get("/static/<path:name>")
    def static_files(name: str) -> Any:
        if static_dir is None:
            raise NotFound(f"this task has no static folder (asked for {name!r})")
        return serve_asset(static_dir, name)

    if page.asset_dir is not None:
        bundle = page.asset_dir

        @app.get("/<path:name>")
        def bundle_file(name: str) -> Any:
            return serve_asset(bundle, name)

    return app


def _described(files: Any) -> dict[str, list[dict[str, Any]]]:
    """Each uploaded file's name, type and size, by field: what would be kept (the bytes are not)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name in files:
        for storage in files.getlist(name):
            if isinstance(storage, FileStorage) and storage.filename:
                storage.stream.seek(0, 2)
                size = storage.stream.tell()
                found.setdefault(name, []).append({"name": storage.filename, "type": storage.mimetype, "size": size})
    return found
