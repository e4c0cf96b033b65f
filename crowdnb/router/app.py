"""The router: a Flask app (with flask-sock) serving one run's worker pages, submissions and heartbeats.

Routes::

    GET  /              the task page (a preview without a worker identity); JSON with Accept: application/json
    POST /submit        answers (JSON, urlencoded or multipart with files); idempotent by submission id
    WS   /ws?token=…    status pushes and heartbeats (disconnect detection); calls to procedures
    POST /call          a call to a procedure without a socket; answered once per call id (router.calls)
    GET  /static/<p>    files of the task's folder; /_crowd/<p> crowdnb's own page assets
    GET  /<p>           a JS task's bundle files (relative links of a React or Vite build)
    GET  /healthz       liveness and unit counts; /openapi.json describes all of this
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, redirect, request, send_from_directory
from flask_sock import Sock
from markupsafe import escape
from simple_websocket import ConnectionClosed
from werkzeug.datastructures import FileStorage, MIMEAccept
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.http import parse_accept_header

from .. import logs
from ..errors import CrowdError, InvalidAnswers, NotFound, WorkerRefused, http_status
from ..pages.bundle import serve_asset
from ..pages.page import ASSETS, Field, TaskPage, message_page
from ..providers import Completion
from . import limits
from .calls import Calls, Procedures
from .dispatch import Dispatcher, PageSocket
from .metrics import RunMetrics
from .uploads import discard, receive
from .validation import SubmissionCheck

log = logging.getLogger(__name__)
logging.getLogger("werkzeug").setLevel(logging.ERROR)
FEEDBACK_CHARS = 5000
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")  # a proxy's request id is kept; anything else is replaced

_TITLES = {
    "not_qualified": "Not qualified",
    "no_work": "No work left",
    "too_many": "Too many at once",
    "max_reached": "Maximum reached",
    "finished": "Task finished",
    "taken": "Unit no longer yours",
    "bad_submission": "Could not save",
    "too_large": "Upload too large",
    "forbidden": "Not allowed",
    "invalid": "Please check your answers",
}


def create_app(
    dispatcher: Dispatcher,
    page: TaskPage,
    *,
    title: str,
    description: str,
    preview_row: dict[str, Any],
    fields: list[Field],
    static_dir: Path | None = None,
    max_upload_mb: float = 20,
    counts: Callable[[], dict[str, int]] | None = None,
    procedures: Procedures | None = None,
    metrics: RunMetrics | None = None,
    extra_answers: bool = False,
) -> Flask:
    """The WSGI app of one run; ``procedures`` answers pages' calls (``crowd.call``), if the task has any;
    ``metrics`` counts its requests, submissions and refusals (served by ``metrics.blueprint``)."""
    app = Flask("crowdnb.router.app", static_folder=None)
    counted = metrics or RunMetrics()
    counted.instrument(app)
    project, run_id = dispatcher.store.root, dispatcher.run.id
    # request ids: random per app (so per process), then counted: unique without a uuid4 per request
    prefix, sequence = os.urandom(4).hex(), itertools.count(1)

    @app.before_request
    def bind_log() -> None:
        # every line this request logs names the run and the request (and the agent, once known)
        sent = request.headers.get("X-Request-Id", "")
        g.crowdnb_request = sent if sent and _REQUEST_ID.match(sent) else f"{prefix}{next(sequence):08x}"
        g.crowdnb_log = logs.bind(project=project, run=run_id, request=g.crowdnb_request)

    @app.after_request
    def request_id(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("crowdnb_request", "")
        return response

    @app.teardown_request
    def unbind_log(_: BaseException | None) -> None:
        token = g.pop("crowdnb_log", None)
        if token is not None:
            with contextlib.suppress(ValueError):  # bound in another context (a websocket's own thread)
                logs.unbind(token)

    app.config["MAX_CONTENT_LENGTH"] = int(max_upload_mb * 1024 * 1024)
    app.config["SOCK_SERVER_OPTIONS"] = {"ping_interval": 25}
    sock = Sock(app)
    multiple = {f.name for f in fields if f.multiple}
    # every answer against its field's rules and the task's policy on undeclared answers, before anything is stored
    check = SubmissionCheck(dispatcher, page, extra_answers=extra_answers)
    rooms = dispatcher.rooms  # a shared task's lobby and conversations, or None
    calls = Calls(dispatcher.store, procedures, role_of=rooms.role if rooms else None)
    if rooms is not None:
        rooms.calls = calls  # a notebook bot answers through the same calls as a page

    def wants_json() -> bool:
        return _prefers_json(request.headers.get("Accept", ""))

    def refuse(exc: Exception) -> Response | tuple[Any, int]:
        status = http_status(exc)
        if status == 500:
            log.exception("router error")
        reason = exc.reason if isinstance(exc, WorkerRefused) else "error"
        counted.refused(reason)
        text = str(exc) if status != 500 else "Something went wrong on our side; please try again in a moment."
        errors = exc.errors if isinstance(exc, InvalidAnswers) else None
        if wants_json():
            reply = {"status": "refused", "reason": reason, "message": text}
            return jsonify({**reply, "errors": errors} if errors else reply), status
        details = [f"{name}: {message}" for name, message in (errors or {}).items()]
        if details:
            text += " Go back to the task page (your browser's Back button keeps your answers) and fix:"
        html = message_page(_TITLES.get(reason, "Sorry"), text, status="refused", details=details)
        return Response(html, status=status, mimetype="text/html", headers={"X-Crowd-Reason": reason})

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
        if isinstance(exc, HTTPException):
            return exc
        return refuse(exc)

    @app.get("/")
    def task_page() -> Any:
        try:
            entry = dispatcher.enter(request.args)
        except WorkerRefused as exc:
            if not page.serves_refusals or wants_json():
                raise
            # a JS task shows the reason itself (crowd.refusal), in its own look
            refusal = {"reason": exc.reason, "message": exc.message}
            counted.refused(exc.reason)
            html = page.render(preview_row, title=title, description=description, mode="preview", refusal=refusal)
            return _no_store(Response(html, status=exc.http_status, headers={"X-Crowd-Reason": exc.reason}))
        if entry is not None:
            logs.bind(agent=entry.agent_id)
        if entry is None:
            if wants_json():
                return jsonify({"status": "preview", "title": title, "description": description})
            return page.render(preview_row, title=title, description=description, mode="preview")
        if entry.kind == "onboarding":
            return onboarding_page(entry)
        if wants_json():
            return jsonify(
                {
                    "status": "assigned",
                    "token": entry.token,
                    "agent_id": str(entry.agent_id),
                    "submission_id": entry.submission_id,
                    "input": entry.input,
                    "resumed": entry.resumed,
                    "fields": [f.__dict__ for f in check.fields_for(entry.input)],  # this row's page
                }
            )
        notice = "Welcome back: this is the unit you were working on." if entry.resumed else ""
        return _no_store(
            page.render(
                entry.input,
                title=title,
                description=description,
                token=entry.token,
                submission_id=entry.submission_id,
                notice=notice,
                return_to=request.query_string.decode("latin-1"),  # where the next unit is, for a page without JS
            )
        )

    def onboarding_page(entry: Any) -> Any:
        test = dispatcher.onboarder
        assert test is not None
        if wants_json():
            fields = [f.__dict__ for f in test.page.fields(entry.input)]
            return jsonify(
                {
                    "status": "onboarding",
                    "token": entry.token,
                    "submission_id": entry.submission_id,
                    "input": entry.input,
                    "fields": fields,
                }
            )
        return test.page.render(
            entry.input,
            mode="onboarding",
            title=f"Qualification test: {title}",
            token=entry.token,
            submission_id=entry.submission_id,
            description="Before your first unit, please complete this short test.",
            return_to=request.query_string.decode("latin-1"),
        )

    @app.post("/submit")
    def submit() -> Any:
        if request.is_json:
            body = limits.parse(request.get_data(cache=False))
            if not isinstance(body, dict) or not isinstance(body.get("answers", {}), dict):
                raise WorkerRefused("bad_submission", "The submission must be a JSON object with an 'answers' object.")
            token, client_id = str(body.get("token", "")), str(body.get("submission_id", ""))
            raw_meta = body.get("meta") or {}
            if not isinstance(raw_meta, dict):
                raise WorkerRefused("bad_submission", "The submission's 'meta' must be a JSON object.")
            answers, meta, uploads = body.get("answers", {}), _meta(raw_meta.get("feedback")), []
            agent = check(token, answers, {}, request.content_length)
        else:
            token = request.form.get("_crowd_token", "")
            client_id = request.form.get("_crowd_submission_id", "")
            answers = (
                _json_answers(request.form)
                if "_crowd_answers" in request.form
                else _form_answers(request.form, multiple)
            )
            agent = check(token, answers, _file_names(request.files), request.content_length)
            meta, uploads = _meta(request.form.get("_crowd_feedback")), receive(request.files)
        if agent is not None:  # None for an onboarding test
            logs.bind(agent=int(agent["id"]))
        if rooms is not None and agent is not None:
            rooms.check_submit(agent)
        try:
            completion, duplicate = dispatcher.submit(token, client_id, answers, uploads, meta, agent)
        finally:
            discard(uploads)  # whatever was not kept under the project folder: nothing half-stored
        if rooms is not None and agent is not None and not duplicate:
            rooms.submitted(agent)
        counted.submitted(duplicate)
        if wants_json():
            return jsonify({"status": "saved", "duplicate": duplicate, "completion": completion.__dict__})
        return _finish_page(completion, request.form.get("_crowd_return", ""))

    @app.post("/call")
    def call() -> Any:
        body = limits.parse(request.get_data(cache=False), "The call")
        if not isinstance(body, dict):
            raise WorkerRefused("bad_submission", "A call must be a JSON object with a token, an id, a name and args.")
        agent = dispatcher.agent_for(str(body.get("token", "")))
        logs.bind(agent=int(agent["id"]))
        return jsonify(calls.answer(agent, body))

    @app.before_request
    def plain_websocket() -> None:
        # browsers offer permessage-deflate on every socket; accepted, it keeps a zlib compressor and
        # decompressor per page (~100 kB each; benchmarks/connected_workers.py) to shrink ~30-byte heartbeats
        if request.endpoint == "heartbeat":
            request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)

    @sock.route("/ws")
    def heartbeat(raw_ws: Any) -> None:
        ws = PageSocket(raw_ws)
        try:
            agent = dispatcher.agent_for(request.args.get("token", ""))
        except CrowdError as exc:
            ws.send(json.dumps({"type": "error", "message": str(exc)}))
            return
        agent_id = int(agent["id"])
        logs.bind(agent=agent_id)
        dispatcher.sockets.opened(agent_id, ws)
        try:
            if rooms is not None:
                rooms.connected(agent)
            while True:
                raw = ws.receive()
                if raw is None:
                    break
                body = _message(raw)
                if body.get("type") == "call":  # answered here, in order: one call at a time per page
                    ws.send(json.dumps(_call_reply(calls, agent, body)))
                    continue
                if body.get("type") == "say" and rooms is not None:
                    refusal = rooms.say(agent, body)
                    if refusal is not None:
                        ws.send(json.dumps(refusal))
                    continue
                status = dispatcher.seen(agent_id)
                ws.send(json.dumps({"type": "status", "status": status}))
        except ConnectionClosed:  # the browser went away; that is what disconnect detection is for
            log.debug("socket of agent %s closed", agent_id)
        except Exception:
            log.exception("socket of agent %s failed", agent_id)
        finally:
            dispatcher.sockets.closed(agent_id, ws)
            if rooms is not None:
                rooms.closed(agent)

    @app.get("/_crowd/<path:name>")
    def assets(name: str) -> Any:
        return send_from_directory(ASSETS, name, max_age=300)

    @app.get("/static/<path:name>")
    def static_files(name: str) -> Any:
        if static_dir is None:
            raise NotFound(f"this task has no static folder (asked for {name!r})")
        return serve_asset(static_dir, name)  # safe_join: traversal gives 404

    if page.asset_dir is not None:
        bundle = page.asset_dir

        @app.get("/<path:name>")
        def bundle_file(name: str) -> Any:
            return serve_asset(bundle, name)

    @app.get("/openapi.json")
    def openapi() -> Any:
        return send_from_directory(ASSETS, "openapi.json")

    @app.get("/healthz")
    def health() -> Any:
        return jsonify({"ok": True, "run": str(dispatcher.run.id), "units": counts() if counts else {}})

    return app


def _message(raw: str | bytes) -> dict[str, Any]:
    """A page's socket message as a dict (a heartbeat may be anything, even JSON nested too deep)."""
    try:
        body = limits.parse(raw, "The message")
    except WorkerRefused:
        return {}
    return body if isinstance(body, dict) else {}


def _call_reply(calls: Calls, agent: Any, body: dict[str, Any]) -> dict[str, Any]:
    """The answer to a call made over a socket; a malformed call is answered too (never stored)."""
    try:
        return calls.answer(agent, body)
    except WorkerRefused as exc:
        return {"type": "result", "id": body.get("id"), "ok": False, "message": exc.message}


def _form_answers(form: Any, multiple: set[str]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for name in form:
        if name.startswith("_crowd"):
            continue
        values = form.getlist(name)
        answers[name] = values if (name in multiple or len(values) > 1) else values[0]
    return answers


def _file_names(files: Any) -> dict[str, list[tuple[str, str]]]:
    """The name and type of each uploaded file, by field (what the rules need; nothing is saved yet)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for name in files:
        for storage in files.getlist(name):
            if isinstance(storage, FileStorage) and storage.filename:
                found.setdefault(name, []).append((storage.filename, storage.mimetype or ""))
    return found


def _json_answers(form: Any) -> dict[str, Any]:
    """The answers of a JS task sending files: a JSON object in ``_crowd_answers``."""
    answers = limits.parse(form["_crowd_answers"], "_crowd_answers")
    if not isinstance(answers, dict):
        raise WorkerRefused("bad_submission", "_crowd_answers must be a JSON object of answers.")
    return answers


def _meta(feedback: Any) -> dict[str, Any]:
    """Submission metadata: the worker's feedback, kept apart from the answers (``_feedback`` in run.df)."""
    if feedback is None:  # the page has no feedback box
        return {}
    if not isinstance(feedback, str):
        raise WorkerRefused("bad_submission", "The feedback must be text.")
    if len(feedback) > FEEDBACK_CHARS:
        raise InvalidAnswers({"_feedback": f"Please keep your feedback under {FEEDBACK_CHARS} characters."})
    return {"feedback": feedback.strip()}


@functools.lru_cache(maxsize=64)
def _prefers_json(accept: str) -> bool:
    """Whether an Accept header prefers JSON to HTML (clients send a handful of distinct ones: parsed once each)."""
    return parse_accept_header(accept, MIMEAccept).best_match(["text/html", "application/json"]) == "application/json"


def _no_store(page: str | Response) -> Response:
    """A worker page: it carries the worker's token, so no cache may keep it."""
    response = page if isinstance(page, Response) else Response(page, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _finish_page(completion: Completion, return_to: str) -> Any:
    """What a browser without JavaScript sees after a saved submission."""
    if completion.kind == "reload":  # back to the task page, on this server only
        return redirect("./?" + return_to.lstrip("?/"), code=303)
    if completion.kind == "next":  # "Saved", then the next unit by itself (this server only)
        return message_page("Saved", completion.message, status="ok", next_url="./?" + return_to.lstrip("?/"))
    if completion.kind == "redirect":
        return redirect(completion.url, code=303)
    if completion.kind == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{_attr(k)}" value="{_attr(v)}">' for k, v in completion.fields.items()
        )
        return (
            f'<!doctype html><form method="post" action="{_attr(completion.url)}">{inputs}'
            '<button type="submit">Finish</button></form><script>document.forms[0].submit()</script>'
        )
    return message_page("Saved", completion.message, status="ok")


def _attr(value: str) -> str:
    return str(escape(value))
