"""A thin client of Prolific's REST API (``https://api.prolific.com/api/v1/``): one seam for all I/O.

Every call sends ``Authorization: Token <api token>`` and a timeout. Every failure becomes a
``ProviderError`` naming the call (``"POST studies/"``) and Prolific's own message: timeouts, dropped
connections, throttling (429) and server errors (5xx) are ``transient``; a refusal (other 4xx) is not.
A 429 is refused before Prolific processes the call (its docs: contention on the workspace wallet when
paying), and its ``Retry-After``, when sent, becomes ``ProviderError.retry_after``.
``Unreached`` marks a request that never left this machine (the connection could not be opened), which
is the only failure after which a call that is not idempotent may safely be sent again.
The token is never logged and never part of an error message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ..errors import ProviderError
from .meter import Meter

log = logging.getLogger(__name__)

PLATFORM = "Prolific"
DEFAULT_BASE_URL = "https://api.prolific.com/api/v1/"


class Unreached(ProviderError):
    """The request never reached Prolific (no connection), so it certainly had no effect."""


class ProlificAPI:
    """Authenticated JSON calls to one Prolific base URL."""

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.timeout = timeout
        self._http = requests.Session()
        self._http.headers.update({"Authorization": f"Token {token}", "Accept": "application/json"})
        self.meter = Meter()  # every call, for the run's metrics

    def call(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None) -> Any:
        """``method path`` relative to the base URL; the decoded JSON answer (None when empty)."""
        with self.meter.timed(PLATFORM, f"{method} {path}"):
            return self._sent(method, path, json, params)

    def _sent(self, method: str, path: str, json: Any, params: Mapping[str, Any] | None) -> Any:
        name = f"{method} {path}"
        url = path if path.startswith(("http://", "https://")) else self.base_url + path.lstrip("/")
        try:
            reply = self._http.request(method, url, json=json, params=params, timeout=self.timeout)
        except requests.exceptions.ConnectTimeout as exc:
            raise Unreached(PLATFORM, name, f"could not connect within {self.timeout:g} s", transient=True) from exc
        except requests.exceptions.Timeout as exc:
            raise ProviderError(PLATFORM, name, f"no answer within {self.timeout:g} s", transient=True) from exc
        except requests.exceptions.ConnectionError as exc:
            if _never_sent(exc):
                raise Unreached(PLATFORM, name, "could not connect", transient=True) from exc
            raise ProviderError(PLATFORM, name, "the connection broke before an answer", transient=True) from exc
        log.debug("%s → %d", name, reply.status_code)
        if reply.status_code >= 400:
            transient = reply.status_code == 429 or reply.status_code >= 500
            raise ProviderError(
                PLATFORM,
                name,
                _message(reply),
                transient=transient,
                status=reply.status_code,
                retry_after=_retry_after(reply.headers.get("Retry-After")),
            )
        if not reply.content:
            return None
        try:
            return reply.json()
        except ValueError as exc:
            raise ProviderError(PLATFORM, name, f"answered {reply.status_code} with a body that is not JSON") from exc

    def get(self, path: str, **params: Any) -> Any:
        """GET ``path`` with query ``params``."""
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: Any = None) -> Any:
        """POST ``body`` as JSON."""
        return self.call("POST", path, json=body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        """PATCH ``body`` as JSON."""
        return self.call("PATCH", path, json=body)

    def delete(self, path: str, body: Any = None) -> Any:
        """DELETE (with an optional JSON body, as the participant-group membership call takes)."""
        return self.call("DELETE", path, json=body)

    def pages(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``_links.next.href`` (or a plain ``next``)."""
        page: Any = self.call("GET", path, params=params or None)
        while True:
            if isinstance(page, list):  # a few endpoints answer a bare list
                yield from page
                return
            yield from page.get("results", [])
            links = page.get("_links") or {}
            nxt = (links.get("next") or {}).get("href") if isinstance(links.get("next"), dict) else page.get("next")
            if not nxt:
                return
            page = self.call("GET", str(nxt))

    def close(self) -> None:
        """Release pooled connections."""
        self._http.close()


def _never_sent(exc: requests.exceptions.ConnectionError) -> bool:
    """Whether the connection failed while opening (refused, no route): the request was not sent."""
    text = repr(exc.args[0] if exc.args else exc)
    marks = ("NewConnectionError", "NameResolutionError", "Connection refused", "Failed to establish")
    return any(mark in text for mark in marks)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number of seconds or an HTTP date); None when absent or bad."""
    if not value or not value.strip():
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _message(reply: requests.Response) -> str:
    """Prolific's explanation of a refusal: ``error.detail``/``detail``/``title``, else the status."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    detail: Any = None
    if isinstance(body, dict):
        inner: dict[str, Any] = body["error"] if isinstance(body.get("error"), dict) else body
        detail = inner.get("detail") or inner.get("title") or inner.get("message") or inner
    elif isinstance(body, (str, list)):
        detail = body
    text = detail if isinstance(detail, str) else str(detail) if detail else ""
    text = " ".join(text.split())[:500]
    return f"HTTP {reply.status_code}" + (f": {text}" if text else f" {reply.reason or ''}".rstrip())
