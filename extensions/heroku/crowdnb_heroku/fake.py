"""A local fake of the Heroku Platform API, for tests and dry runs of the ``heroku`` architect.

It speaks the real paths, bodies and status codes (see the table in the extension's README): a
``Bearer`` token (401 without or with a wrong one), the version-3 ``Accept`` header (406 without it),
app names checked against ``^[a-z][a-z0-9-]{2,29}$`` (422) and unique (409), 404 for an unknown app,
build or process type, errors as ``{"id", "message"}``. Sources get signed-style URLs that point back
at the fake (``/_blob/<uuid>``; like S3, an upload carrying an ``Authorization`` header is refused).
A build stays ``pending`` for ``build_polls`` reads, then fails (not a gzipped tarball, a checksum
that does not match, no ``requirements.txt`` for the Python buildpack) or succeeds and is released.
Scaling a process type the released Procfile lacks is a 404. Test-side controls::

    with FakeHeroku(run_dynos=True) as fake:        # base_url=fake.base_url, api_key=fake.api_key
        fake.fail("POST", "/apps", status=429)      # the next create-app call is throttled, once
        fake.fail_next_build("ERROR: no matching distribution")

A fake cannot build a slug, so with ``run_dynos=True`` it plays the dyno instead: scaling ``web`` up
unpacks the built tarball and runs its Procfile's ``web`` command with this interpreter's environment
(nothing from ``requirements.txt`` is installed), on the port of the app's ``web_url``
(``http://127.0.0.1:<port>/``); scaling down or destroying the app stops it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import re
import secrets
import socket
import tarfile
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

from .dynos import LocalDynos
from .platform import NAME_RULE

ACCEPT = "application/vnd.heroku+json; version=3"
REGIONS = {"us", "eu"}
SIZES = {"eco", "basic", "standard-1x", "standard-2x", "performance-m", "performance-l"}
SINGLE = {"eco", "basic"}  # one dyno per process type at most
ERROR_IDS = {400: "bad_request", 401: "unauthorized", 402: "delinquent", 403: "forbidden", 404: "not_found",
             406: "not_acceptable", 409: "conflict", 422: "invalid_params", 429: "rate_limit",
             500: "internal_server_error", 503: "service_unavailable"}  # fmt: skip


class Refused(Exception):
    """An answer the real API gives as ``{"id", "message"}`` with ``status``."""

    def __init__(self, status: int, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.id = status, message, id or ERROR_IDS.get(status, "error")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class FakeHeroku:
    """The Platform API in a thread on ``host`` (port 0 picks a free port); ``base_url`` stands for api.heroku.com."""

    def __init__(
        self,
        api_key: str = "fake-heroku-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        build_polls: int = 2,
        run_dynos: bool = False,
    ) -> None:
        self.api_key, self.host, self.port = api_key, host, port
        self.build_polls, self.run_dynos = build_polls, run_dynos
        self.lock = threading.RLock()
        self.apps: dict[str, dict[str, Any]] = {}
        self.config: dict[str, dict[str, str]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self.slugs: dict[str, bytes] = {}  # app → the tarball of its released build
        self.formation: dict[str, dict[str, dict[str, Any]]] = {}
        self.blobs: dict[str, bytes | None] = {}
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API request, oldest first
        self.dynos = LocalDynos()  # the web dynos, with run_dynos=True
        self._faults: list[dict[str, Any]] = []
        self._failing_builds: list[str] = []
        self._ports: dict[str, int] = {}
        self._server: BaseWSGIServer | None = None
        self.app = self._build_app()

    # --- running ----------------------------------------------------------------------------------
    def start(self) -> FakeHeroku:
        """Listen in a daemon thread."""
        self._server = make_server(self.host, self.port, self.app, threaded=True)
        self.port = self._server.server_port
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="fake-heroku", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Stop every dyno, stop listening and free the port."""
        with self.lock:
            self.dynos.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeHeroku:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API root."""
        return f"http://{self.host}:{self.port}"

    # --- test-side controls -----------------------------------------------------------------------
    def fail(self, method: str, pattern: str, *, status: int = 429, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``method pattern`` (a glob) with ``status``, doing nothing."""
        with self.lock:
            self._faults.append({"method": method.upper(), "pattern": pattern, "status": status, "times": times})

    def fail_next_build(self, output: str = "ERROR: the build failed (injected by the test)") -> None:
        """The next build to finish fails with ``output`` as its log."""
        with self.lock:
            self._failing_builds.append(output)

    def count(self, method: str, pattern: str = "*") -> int:
        """How many API requests matched ``method pattern``."""
        with self.lock:
            return sum(1 for m, p in self.calls if m == method.upper() and fnmatch.fnmatch(p, pattern))

    # --- the API ----------------------------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("fake_heroku")

        @app.errorhandler(Refused)
        def refused(exc: Refused) -> tuple[Response, int]:
            return jsonify({"id": exc.id, "message": exc.message}), exc.status

        @app.before_request
        def gate() -> None:
            if request.path.startswith(("/_blob/", "/_output/")):
                return  # signed URLs on "another host": no API headers
            with self.lock:
                self.calls.append((request.method, request.path))
                if ACCEPT not in request.headers.get("Accept", ""):
                    raise Refused(406, f"Please specify a version along with Heroku's API MIME type: {ACCEPT}")
                if request.headers.get("Authorization") != f"Bearer {self.api_key}":
                    raise Refused(401, "Invalid credentials provided.")
                for fault in self._faults:
                    if fault["method"] == request.method and fnmatch.fnmatch(request.path, fault["pattern"]):
                        fault["times"] -= 1
                        if fault["times"] <= 0:
                            self._faults.remove(fault)
                        raise Refused(fault["status"], f"injected {fault['status']} for {request.path}")

        @app.post("/apps")
        def create_app() -> tuple[Response, int]:
            body = request.get_json(silent=True) or {}
            with self.lock:
                name = body.get("name") or self._new_name()
                if not isinstance(name, str) or not _matches(name):
                    raise Refused(
                        422,
                        "Name must start with a letter, end with a letter or digit and can only "
                        "contain lowercase letters, digits, and dashes.",
                    )
                if name in self.apps:
                    raise Refused(409, f"Name {name} is already taken", "conflict")
                region = body.get("region") or "us"
                if region not in REGIONS:
                    raise Refused(404, "Couldn't find that region.")
                if self.run_dynos:
                    self._ports[name] = _free_port(self.host)
                    web_url = f"http://{self.host}:{self._ports[name]}/"
                else:
                    web_url = f"https://{name}-{secrets.token_hex(6)}.herokuapp.com/"
                self.apps[name] = {
                    "id": str(uuid.uuid4()), "name": name, "web_url": web_url, "region": {"name": region},
                    "git_url": f"https://git.heroku.com/{name}.git", "stack": {"name": "heroku-24"},
                    "created_at": _stamp(), "updated_at": _stamp(),
                }  # fmt: skip
                self.config[name], self.formation[name] = {}, {}
                return jsonify(self.apps[name]), 201

        @app.get("/apps/<name>")
        def app_info(name: str) -> Response:
            with self.lock:
                return jsonify(self._app(name))

        @app.delete("/apps/<name>")
        def destroy(name: str) -> Response:
            with self.lock:
                found = self._app(name)
                self.dynos.stop(name)
                del self.apps[name], self.config[name], self.formation[name]
                self.slugs.pop(name, None)
                self._ports.pop(name, None)
                for build_id in [b for b, build in self.builds.items() if build["app"]["name"] == name]:
                    del self.builds[build_id]
                return jsonify(found)

        @app.patch("/apps/<name>/config-vars")
        def config_vars(name: str) -> Response:
            body = request.get_json(silent=True)
            with self.lock:
                self._app(name)
                if not isinstance(body, dict) or not all(isinstance(v, str | None) for v in body.values()):
                    raise Refused(422, "Config vars must be a JSON object of strings (null deletes one).")
                for key, value in body.items():
                    if value is None:
                        self.config[name].pop(key, None)
                    else:
                        self.config[name][key] = value
                return jsonify(self.config[name])

        @app.post("/sources")
        def create_source() -> tuple[Response, int]:
            blob = str(uuid.uuid4())
            with self.lock:
                self.blobs[blob] = None
            signed = f"{self.base_url}/_blob/{blob}?X-Amz-Signature={secrets.token_hex(16)}"
            return jsonify({"source_blob": {"get_url": signed, "put_url": signed}}), 201

        @app.put("/_blob/<blob>")
        def put_blob(blob: str) -> tuple[str, int]:
            if "Authorization" in request.headers:  # S3 refuses a second auth mechanism beside the signature
                return "InvalidArgument: Only one auth mechanism allowed", 400
            with self.lock:
                if blob not in self.blobs:
                    return "NoSuchUpload", 404
                self.blobs[blob] = request.get_data()
            return "", 200

        @app.get("/_blob/<blob>")
        def get_blob(blob: str) -> Response | tuple[str, int]:
            with self.lock:
                data = self.blobs.get(blob)
            if data is None:
                return "NoSuchKey", 404
            return Response(data, mimetype="application/octet-stream")

        @app.post("/apps/<name>/builds")
        def create_build(name: str) -> tuple[Response, int]:
            body = request.get_json(silent=True) or {}
            blob = body.get("source_blob")
            with self.lock:
                self._app(name)
                if not isinstance(blob, dict) or not isinstance(blob.get("url"), str):
                    raise Refused(422, "Missing required params: source_blob (with a url).")
                build_id = str(uuid.uuid4())
                self.builds[build_id] = {
                    "id": build_id, "app": {"id": self.apps[name]["id"], "name": name}, "status": "pending",
                    "source_blob": {"url": blob["url"], "version": blob.get("version"), "checksum": blob.get("checksum")},
                    "slug": None, "output_stream_url": f"{self.base_url}/_output/{build_id}",
                    "created_at": _stamp(), "updated_at": _stamp(),
                    "user": {"id": str(uuid.uuid4()), "email": "researcher@example.org"},
                    "_polls": 0, "_output": "-----> Building on the Heroku-24 stack\n",
                }  # fmt: skip
                return jsonify(_public(self.builds[build_id])), 201

        @app.get("/apps/<name>/builds/<build_id>")
        def build_info(name: str, build_id: str) -> Response:
            with self.lock:
                self._app(name)
                build = self.builds.get(build_id)
                if build is None or build["app"]["name"] != name:
                    raise Refused(404, "Couldn't find that build.")
                build["_polls"] += 1
                if build["status"] == "pending" and build["_polls"] > self.build_polls:
                    self._finish(build)
                return jsonify(_public(build))

        @app.get("/_output/<build_id>")
        def output(build_id: str) -> Response | tuple[str, int]:
            with self.lock:
                build = self.builds.get(build_id)
                return (Response(build["_output"], mimetype="text/plain")) if build else ("NoSuchKey", 404)

        @app.patch("/apps/<name>/formation/<process>")
        def scale(name: str, process: str) -> Response:
            body = request.get_json(silent=True) or {}
            with self.lock:
                self._app(name)
                if process not in _process_types(self.slugs.get(name)):
                    raise Refused(404, f"Couldn't find that process type ({process}).")
                current = self.formation[name].get(process, {"quantity": 0, "size": "basic"})
                quantity, size = body.get("quantity", current["quantity"]), body.get("size", current["size"])
                if not isinstance(quantity, int) or quantity < 0:
                    raise Refused(422, f"Invalid quantity: {quantity!r}.")
                if not isinstance(size, str) or size.lower() not in SIZES:
                    raise Refused(422, f"Invalid dyno size: {size!r}.")
                if size.lower() in SINGLE and quantity > 1:
                    raise Refused(422, f"Cannot scale to more than 1 {size} size dynos per process type.")
                command = _process_types(self.slugs.get(name))[process]
                formation = {"id": str(uuid.uuid4()), "type": process, "quantity": quantity, "size": size,
                             "command": command, "created_at": _stamp(), "updated_at": _stamp()}  # fmt: skip
                self.formation[name][process] = formation
                if self.run_dynos and process == "web":
                    self.dynos.stop(name)
                    if quantity:
                        self.dynos.start(name, self.slugs[name], command, self.config[name], self._ports[name])
                return jsonify(formation)

        return app

    # --- inside the fake --------------------------------------------------------------------------
    def _app(self, name: str) -> dict[str, Any]:
        if name not in self.apps:
            raise Refused(404, "Couldn't find that app.")
        return self.apps[name]

    def _new_name(self) -> str:
        words = ("sharp", "rain", "quiet", "river", "bright", "stone", "calm", "field", "swift", "cloud")
        return f"{secrets.choice(words)}-{secrets.choice(words)}-{secrets.randbelow(90000) + 10000}"

    def _finish(self, build: dict[str, Any]) -> None:
        """Decide a build: it fails where Heroku's would, or as a test asked; else its slug is released."""
        blob_url = build["source_blob"]["url"]
        blob = blob_url.split("?")[0].rsplit("/_blob/", 1)[-1] if "/_blob/" in blob_url else None
        data = self.blobs.get(blob) if blob else None
        failure = None
        if data is None:
            failure = f"ERROR: could not download the source from {blob_url.split('?')[0]}"
        elif self._failing_builds:
            failure = self._failing_builds.pop(0)
        elif build["source_blob"]["checksum"] not in (None, f"SHA256:{hashlib.sha256(data).hexdigest()}"):
            failure = "ERROR: the source's checksum does not match source_blob.checksum"
        else:
            names = _tar_names(data)
            if names is None:
                failure = "ERROR: the source is not a gzipped tarball"
            elif "requirements.txt" not in names:
                failure = "ERROR: App not compatible with buildpack: no requirements.txt (heroku/python)"
        build["updated_at"] = _stamp()
        if failure:
            build["status"], build["_output"] = "failed", build["_output"] + failure + "\n"
            return
        build["status"], build["slug"] = "succeeded", {"id": str(uuid.uuid4())}
        build["_output"] += "-----> Installing requirements with pip\n-----> Launching... done\n"
        self.slugs[build["app"]["name"]] = data  # type: ignore[assignment]


def _matches(name: str) -> bool:
    return re.fullmatch(NAME_RULE.strip("^$"), name) is not None


def _public(build: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in build.items() if not key.startswith("_")}


def _tar_names(data: bytes) -> set[str] | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            return {name.removeprefix("./") for name in tar.getnames()}
    except (tarfile.TarError, OSError, EOFError):
        return None


def _process_types(slug: bytes | None) -> dict[str, str]:
    """The Procfile's process types → commands (none before a release)."""
    if slug is None:
        return {}
    with tarfile.open(fileobj=io.BytesIO(slug), mode="r:gz") as tar:
        try:
            member = tar.extractfile("Procfile")
        except KeyError:
            return {}
        text = member.read().decode() if member else ""
    types = {}
    for line in text.splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            kind, command = line.split(":", 1)
            types[kind.strip()] = command.strip()
    return types
