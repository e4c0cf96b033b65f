"""A small client of the Heroku Platform API (https://devcenter.heroku.com/articles/platform-api-reference).

Only the calls a deploy needs: create an app, set its config vars, upload a source tarball, build it,
scale its web dyno, read it, destroy it. Every failure is a ``HerokuError`` carrying the call, the HTTP
status and Heroku's ``{"id", "message"}`` body, with a message that says what to do next.

Transient answers (429, 5xx, a dropped connection) are retried with exponential backoff. A POST is
retried only on 429: the API refused it before doing anything, whereas a 503 to ``POST /apps`` may
come after the app was made.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from typing import Any, TypedDict, cast

import requests

from crowdnb.errors import ArchitectError

log = logging.getLogger(__name__)

API = "https://api.heroku.com"
ACCEPT = "application/vnd.heroku+json; version=3"
USER_AGENT = "crowdnb-heroku/0.1"
NAME_RULE = r"^[a-z][a-z0-9-]{2,29}$"  # the published JSON schema's pattern for app names
TRANSIENT = {429, 500, 502, 503, 504}
ATTEMPTS = 5
BACKOFF = 1.0  # seconds before the first retry; doubled each time, with jitter
MAX_DELAY = 30.0


class HerokuApp(TypedDict):
    """The fields of an app object crowdnb reads."""

    id: str
    name: str
    web_url: str


class SourceBlob(TypedDict):
    """Where a source tarball goes (``put_url``) and where a build reads it (``get_url``)."""

    get_url: str
    put_url: str


class Build(TypedDict):
    """The fields of a build object crowdnb reads; ``status`` is pending, succeeded or failed."""

    id: str
    status: str
    output_stream_url: str | None


class Formation(TypedDict):
    """A process type's dynos."""

    type: str
    quantity: int
    size: str


# the next step for each status, after Heroku's own message
NEXT_STEP = {
    401: "set HEROKU_API_KEY (or pass api_key=) to a valid token: `heroku authorizations:create` makes one",
    402: "the Heroku account is delinquent: settle its billing at dashboard.heroku.com/account/billing",
    403: "the token may not do this: check the account or team owns the app",
    404: "check the app name (`heroku apps`); it may have been destroyed already",
    409: "the app name is taken: pass another app_name, or none to let Heroku choose one",
    422: "app names are 3–30 lower-case letters, digits and dashes, starting with a letter",
    429: "the account's API rate limit is spent (it refills at about 75 calls a minute): wait, then try again",
}


class HerokuError(ArchitectError):
    """Heroku refused or failed a call; ``status`` and ``id`` are Heroku's (None without an answer)."""

    def __init__(self, call: str, message: str, status: int | None = None, id: str | None = None) -> None:
        self.call, self.status, self.id, self.heroku_message = call, status, id, message
        step = NEXT_STEP.get(status or 0)
        if status is not None and status >= 500:
            step = "Heroku is having trouble (status.heroku.com); try again later"
        text = message.rstrip(".")
        text = f"Heroku refused {call} ({status} {id}): {text}" if status is not None else f"Heroku {call}: {text}"
        super().__init__(text + (f"; {step}" if step else ""))


class Platform:
    """The Platform API with one token; ``base_url`` points elsewhere for the local fake."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str = API,
        *,
        attempts: int = ATTEMPTS,
        backoff: float = BACKOFF,
        timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts, self.backoff, self.timeout, self.sleep = attempts, backoff, timeout, sleep
        self._key = api_key or os.environ.get("HEROKU_API_KEY") or ""
        self.session = requests.Session()
        self.session.headers.update({"Accept": ACCEPT, "User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"<Platform {self.base_url}>"  # never the token

    # -- the calls -------------------------------------------------------------------------------------

    def create_app(self, name: str | None = None, region: str = "us") -> HerokuApp:
        """Create an app (Heroku picks a name when ``name`` is None)."""
        body: dict[str, str] = {"region": region}
        if name:
            body["name"] = name
        return cast(HerokuApp, self._call("POST", "/apps", f"create app {name or '(any name)'}", body))

    def app_info(self, app: str) -> HerokuApp:
        """The app object."""
        return cast(HerokuApp, self._call("GET", f"/apps/{app}", f"app info of {app}"))

    def set_config(self, app: str, values: dict[str, str | None]) -> dict[str, str]:
        """Set (None: delete) config vars; returns the app's whole config. Values never reach the log."""
        return cast(dict[str, str], self._call("PATCH", f"/apps/{app}/config-vars", f"set config of {app}", values))

    def create_source(self) -> SourceBlob:
        """A place to upload a source tarball (signed URLs, valid for about an hour)."""
        answer = self._call("POST", "/sources", "create source")
        return cast(SourceBlob, answer["source_blob"])

    def upload(self, put_url: str, data: bytes) -> None:
        """PUT the tarball to the signed URL: no token (it is not Heroku's host) and no Content-Type (signed)."""
        self._send("PUT", put_url, "upload source", data=data, auth=False)

    def create_build(self, app: str, get_url: str, version: str, checksum: str) -> Build:
        """Build the uploaded tarball; ``checksum`` is ``SHA256:<hex>`` of it."""
        body = {"source_blob": {"url": get_url, "version": version, "checksum": checksum}}
        return cast(Build, self._call("POST", f"/apps/{app}/builds", f"create build of {app}", body))

    def build_info(self, app: str, build_id: str) -> Build:
        """The build's current state."""
        return cast(Build, self._call("GET", f"/apps/{app}/builds/{build_id}", f"build info of {app}"))

    def build_output(self, build: Build) -> str:
        """The build's log (from its output stream), or "" when there is none."""
        url = build.get("output_stream_url")
        if not url:
            return ""
        try:
            return self._send("GET", url, "read build output", auth=False).text
        except HerokuError as exc:
            log.warning("could not read the output of build %s: %s", build["id"], exc)
            return ""

    def wait_build(self, app: str, build_id: str, *, timeout: float = 900.0, interval: float = 2.0) -> Build:
        """Poll until the build succeeds; a failed build raises with the tail of its output."""
        deadline = time.monotonic() + timeout
        while True:
            build = self.build_info(app, build_id)
            if build["status"] == "succeeded":
                return build
            if build["status"] == "failed":
                tail = "\n".join(self.build_output(build).rstrip().splitlines()[-25:])
                raise HerokuError(
                    f"build {build_id} of {app}",
                    f"failed; its output ends:\n{tail}" if tail else "failed with no output",
                    status=None,
                    id="build_failed",
                )
            if time.monotonic() > deadline:
                raise HerokuError(f"build {build_id} of {app}", f"still {build['status']} after {timeout:g} s")
            self.sleep(interval)

    def scale(self, app: str, process: str = "web", quantity: int = 1, size: str | None = None) -> Formation:
        """Set a process type's dyno count (and size)."""
        body: dict[str, Any] = {"quantity": quantity}
        if size:
            body["size"] = size
        call = f"scale {process} of {app} to {quantity}"
        return cast(Formation, self._call("PATCH", f"/apps/{app}/formation/{process}", call, body))

    def destroy(self, app: str) -> None:
        """Delete the app and everything billable in it."""
        self._call("DELETE", f"/apps/{app}", f"destroy app {app}")

    # -- the wire --------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, call: str, body: Any = None) -> Any:
        if not self._key:
            raise HerokuError(call, "no API key", status=401, id="unauthorized")
        return self._send(method, self.base_url + path, call, json=body).json()

    def _send(self, method: str, url: str, call: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self._key}"} if auth else {}
        # a POST that got a 5xx may have been done: only a 429 (refused up front) makes it safe to repeat
        retry_on = {429} if method == "POST" else TRANSIENT
        for attempt in range(1, self.attempts + 1):
            try:
                if auth:
                    answer = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
                else:  # a signed URL on another host: none of the session's Heroku headers
                    answer = requests.request(method, url, timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if method == "POST" or attempt == self.attempts:
                    raise HerokuError(call, f"{type(exc).__name__}: {exc}") from exc
                self._pause(call, attempt, str(exc), None)
                continue
            if answer.ok:
                return answer
            if answer.status_code in retry_on and attempt < self.attempts:
                self._pause(call, attempt, f"HTTP {answer.status_code}", answer.headers.get("Retry-After"))
                continue
            raise _refusal(call, answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, call: str, attempt: int, why: str, retry_after: str | None) -> None:
        delay = min(MAX_DELAY, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        log.info("Heroku %s: %s; retry %d/%d in %.1f s", call, why, attempt, self.attempts - 1, delay)
        self.sleep(delay)


def _refusal(call: str, answer: requests.Response) -> HerokuError:
    try:
        body = answer.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "message" in body:
        return HerokuError(call, str(body["message"]), answer.status_code, str(body.get("id", "")))
    return HerokuError(call, answer.text[:200] or answer.reason, answer.status_code, None)
