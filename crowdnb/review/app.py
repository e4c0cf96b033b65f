"""The review web app: Mephisto's TaskReview, served by Flask over a project's store.

Every route needs the token. A program sends ``Authorization: Bearer <token>``; a person opens the link
``/?token=<token>`` once, which starts a session (an HttpOnly, SameSite=Strict cookie) and drops the token
from the address bar. Every POST made with the session cookie must carry that session's CSRF token (the
``_csrf`` form field, or an ``X-CSRF-Token`` header for JSON); a POST with the Bearer header needs none,
as no other site can make a browser send that header. Routes::

    GET  /                                   tasks: runs, units by status, spend
    GET  /tasks/<name>[?status=&page=]       units grouped by worker, fewest first; record, agreement, too-fast
    GET  /tasks/<name>/stats                 units by status per run, spend, alpha per categorical answer
    GET  /tasks/<name>/export.<csv|jsonl|parquet>   download
    GET  /qualifications                     every qualification with its holders; grant and revoke forms
    GET  /workers/<provider>/<name>          a worker's record, qualifications and review history
    POST /actions/<action>                   a form's decision (see ``review_actions``); redirects back
    GET  /api/tasks, /api/tasks/<name>, /api/tasks/<name>/stats, /api/qualifications,
         /api/workers/<provider>/<name>      the pages as JSON
    POST /api/units/<approve|reject|soft-reject|bonus>                  {"unit_ids": [...], "note": …, "bonus": …}
    POST /api/workers/<block|unblock|message|bonus|grant|revoke>        {"worker": …, "provider": …} or {"unit_ids": …}
    GET  /files/<path>                       a worker's uploaded file (images, audio, video inline; else a download)
    GET  /_review/<asset>                    the app's CSS and JavaScript

A ``CrowdError`` becomes a 4xx answer carrying its message (JSON under ``/api/``), never a traceback.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, flash, jsonify, redirect, render_template, request, send_from_directory, session
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from ..architects.local import listen, unavailable
from ..errors import ArchitectError, ConfigError, CrowdError, NotFound, http_status
from ..pages.page import ASSETS
from ..project import ProjectLike, as_project
from ..router import uploads
from .actions import UNIT_ACTIONS, WORKER_ACTIONS, ask_from_form, ask_from_json, perform
from .pages import register_pages

log = logging.getLogger(__name__)

TEMPLATES = ASSETS / "review"
_ASSET_FILES = {"review.css", "review.js"}
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; media-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_review_app(project: ProjectLike, token: str) -> Flask:
    """The review web app of ``project``, open to whoever presents ``token``."""
    if not isinstance(token, str) or len(token) < 16:
        raise ConfigError("the review app needs a token of at least 16 characters, e.g. secrets.token_urlsafe()")
    where = as_project(project)
    app = Flask("crowdnb.providers.decisions", static_folder=None, template_folder=str(TEMPLATES))
    app.secret_key = secrets.token_bytes(32)  # sessions end when the app does
    app.config.update(
        SESSION_COOKIE_NAME="crowdnb_review",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.jinja_env.globals["csrf_token"] = lambda: session.get("csrf", "")

    @app.before_request
    def guard() -> Any:
        scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":  # other schemes (a proxy's own) fall through to the session
            if not _same(supplied.strip(), token):
                return _refuse(401, "wrong token: send Authorization: Bearer <the token crowdnb review printed>")
            return None  # no browser sends this header on another site's behalf: no CSRF check
        if request.method == "GET" and "token" in request.args:
            if not _same(request.args["token"], token):
                return _refuse(401, "wrong token: open the link crowdnb review printed")
            session.clear()
            session["auth"], session["csrf"] = True, secrets.token_urlsafe(32)
            if not _is_api():
                return _signed_in()
            return None
        if not session.get("auth"):
            return _refuse(401, "this review app needs its token: open the link crowdnb review printed")
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get("X-CSRF-Token") or request.form.get("_csrf", "")
            if not _same(sent, session.get("csrf", "")):
                return _refuse(403, "missing or stale CSRF token: reload the page and try again")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # page URLs may carry the token
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(CrowdError)
    def crowd_error(exc: CrowdError) -> Any:
        return _refuse(http_status(exc), str(exc))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        if isinstance(exc, HTTPException):
            return _refuse(exc.code or 500, exc.description or exc.name) if _is_api() else exc
        log.exception("review app error")
        return _refuse(500, "something went wrong in the review app; the details are in its log")

    @app.get("/_review/<name>")
    def asset(name: str) -> Response:
        if name not in _ASSET_FILES:
            raise NotFound(f"no review asset {name!r}")
        return send_from_directory(TEMPLATES, name, max_age=300)

    @app.get("/files/<path:name>")
    def review_file(name: str) -> Response:
        return uploads.serve(where.root, name)  # workers' uploads: inline media, anything else a download

    @app.post("/actions/<action>")
    def form_action(action: str) -> Any:
        back = _local(request.form.get("next", "/"))
        try:
            outcome = perform(where, action, ask_from_form(request.form))
        except CrowdError as exc:
            return _refuse(http_status(exc), str(exc), back=back)
        flash(outcome.message, "ok")
        return redirect(back, code=303)

    @app.post("/api/units/<action>")
    def api_units(action: str) -> Response:
        if action not in UNIT_ACTIONS:
            raise NotFound(f"no unit action {action!r}; unit actions: {', '.join(UNIT_ACTIONS)}")
        ask = ask_from_json(request.get_json(silent=True))
        if ask.worker is not None:
            raise ConfigError(f"/api/units/{action} takes unit_ids; use /api/workers/{action} for a worker")
        return jsonify({"ok": True, **perform(where, action, ask).__dict__})

    @app.post("/api/workers/<action>")
    def api_workers(action: str) -> Response:
        if action not in WORKER_ACTIONS:
            raise NotFound(f"no worker action {action!r}; worker actions: {', '.join(WORKER_ACTIONS)}")
        ask = ask_from_json(request.get_json(silent=True))
        if action == "bonus" and ask.worker is None:
            raise ConfigError('a worker bonus names the worker: {"worker": …, "provider": …, "bonus": …, "note": …}')
        return jsonify({"ok": True, **perform(where, action, ask).__dict__})

    register_pages(app, where)
    return app


def review_server(project: ProjectLike, token: str, host: str = "127.0.0.1", port: int = 5000) -> BaseWSGIServer:
    """The review app on a threaded server listening on ``host:port`` (0: a free port); ``serve_forever()``
    it. A busy port is one ``ArchitectError`` line, never werkzeug's own lines on stderr and an exit."""
    app = create_review_app(project, token)
    try:
        sock = listen(host, port)
    except OSError as exc:
        raise ArchitectError(
            unavailable(host, port, exc, "choose another --port (--port 0 takes a free one)")
        ) from None
    with sock:  # werkzeug serves a duplicate of it
        return make_server(host, port, app, threaded=True, fd=sock.fileno())


def _same(supplied: str, expected: str) -> bool:
    """Constant-time comparison (bytes: ``compare_digest`` refuses non-ASCII text)."""
    return bool(expected) and secrets.compare_digest(supplied.encode(), expected.encode())


def _is_api() -> bool:
    return request.path.startswith("/api/")


def _local(target: str) -> str:
    """``target`` if it is a path on this app, else ``/`` (no open redirects)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _refuse(status: int, message: str, back: str | None = None) -> Any:
    """A short error answer: JSON under /api/, else a small page."""
    if _is_api():
        return jsonify({"ok": False, "error": message}), status
    page = render_template("message.html", title=_TITLES.get(status, "Refused"), message=message, back=back)
    return Response(page, status=status, mimetype="text/html")


def _signed_in() -> Any:
    """After ``?token=``: a page that reloads itself without the token (a same-site navigation, unlike
    a redirect, so the SameSite=Strict cookie is sent even when the link was opened from a notebook)."""
    rest = urlencode([(k, v) for k, v in request.args.items(multi=True) if k != "token"])
    target = _local(request.path + (f"?{rest}" if rest else ""))
    return render_template("signed_in.html", title="Signed in", target=target)


_TITLES = {
    400: "Not done",
    401: "Token needed",
    403: "Refused",
    404: "Not found",
    409: "Not possible now",
    424: "Provider failed",
    500: "Error",
}
