"""Custom JS tasks: a folder with a prebuilt bundle (``index.html`` and/or ``main.js`` plus assets, e.g. a
React or Vite build) served by the router, with crowdnb's small SDK (``window.crowd``, in ``crowd.js``).

The page is the bundle's ``index.html`` with the SDK put first in its ``<head>`` (so ``window.crowd``
exists before the bundle runs), or, without one, a page that loads ``main.js`` into ``<div id="root">``.
The bundle's files are served from the router's root, so relative links (``./assets/x.js``,
``./static/js/x.js``; build with ``homepage: "."`` or Vite's ``base: "./"``) work behind any proxy.
Its answers are whatever it passes to ``crowd.submit``; there is no HTML to read them from.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from flask import Response, send_from_directory
from werkzeug.exceptions import NotFound as NoSuchFile

from ..errors import ConfigError, NotFound
from .page import ASSETS, Field, TaskPage, script_json

ENTRY_FILES = ("index.html", "main.js")
# content types a browser must get right for a bundle (the system's mime table may lack some)
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".ico": "image/x-icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".txt": "text/plain",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
}
# a build tool's content hash in a file name (main.4f3a2b1c.js, index-BZ3x9aQ2.js): safe to cache for good
_HASHED = re.compile(r"[.-](?=[A-Za-z0-9_]*\d)[A-Za-z0-9_]{8,}\.[A-Za-z0-9]+$")
_HEAD = re.compile(r"<head\b[^>]*>", re.IGNORECASE)
_HTML = re.compile(r"<html\b[^>]*>", re.IGNORECASE)
_SCRIPT_SRC = re.compile(r"<script\b([^>]*?)\ssrc=[\"']([^\"':]+)[\"']([^>]*)>\s*</script>", re.IGNORECASE)
_STYLESHEET = re.compile(r"<link\b[^>]*\brel=[\"']?stylesheet[\"']?[^>]*>", re.IGNORECASE)
_HREF = re.compile(r"\bhref=[\"']([^\"':]+)[\"']", re.IGNORECASE)


def find_bundle(js: str | Path) -> Path:
    """The bundle folder ``js`` names, checked: it holds ``index.html`` or ``main.js``."""
    folder = Path(js).expanduser()
    if folder.is_file():
        raise ConfigError(f"js={str(js)!r} is a file; pass the folder holding it (with index.html or main.js)")
    if not folder.is_dir():
        raise ConfigError(f"js={str(js)!r}: no such folder; pass the folder of a prebuilt JS bundle")
    if not any((folder / name).is_file() for name in ENTRY_FILES):
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise ConfigError(
            f"js={str(js)!r} has neither index.html nor main.js (it holds {found}); "
            "pass the build output folder (e.g. build/ or dist/)"
        )
    return folder.resolve()


class BundlePage(TaskPage):
    """A JS task's page: the bundle with the SDK, told its input row, mode and any refusal."""

    kind = "js"
    serves_refusals = True

    def __init__(
        self,
        folder: Path,
        origin: str,
        *,
        answers: tuple[str, ...] = (),
        feedback: str = "",
        max_upload_mb: float = 0.0,
    ) -> None:
        super().__init__("", origin, feedback=feedback, max_upload_mb=max_upload_mb)
        self.folder = folder
        self.asset_dir = folder
        self.answers = answers

    def fields(self, row: dict[str, Any]) -> list[Field]:
        """The declared answers (``Task(answers=…)``); a JS page has no inputs to read them from."""
        return [Field(name, "js") for name in self.answers]

    def config(self, row: dict[str, Any], mode: str, token: str, submission_id: str, base: str) -> dict[str, Any]:
        """The SDK's configuration; a JS task is given its whole input row (``crowd.data``)."""
        return {**super().config(row, mode, token, submission_id, base), "data": row}

    def render(
        self,
        row: dict[str, Any],
        *,
        title: str,
        description: str,
        mode: str = "task",
        token: str = "",
        submission_id: str = "",
        base: str = "",
        notice: str = "",
        return_to: str = "",
        refusal: dict[str, str] | None = None,
    ) -> str:
        """The bundle's page with the SDK first in its head."""
        config = {**self.config(row, mode, token, submission_id, base), "refusal": refusal, "notice": notice}
        sdk = (
            f'<script id="crowd-config" type="application/json">{script_json(config)}</script>'
            f'<script src="{html.escape(base)}_crowd/crowd.js"></script>'
        )
        return _inject(self._entry(title), sdk)

    def preview_html(self, row: dict[str, Any], *, title: str, description: str) -> str:
        """The page with its local scripts and stylesheets inlined, for a notebook preview (no server)."""
        page = self.render(row, title=title, description=description, mode="preview")
        page = _SCRIPT_SRC.sub(lambda m: self._inline_script(m), page)
        return _STYLESHEET.sub(lambda m: self._inline_style(m.group(0)), page)

    def _entry(self, title: str) -> str:
        index = self.folder / "index.html"
        if index.is_file():
            return index.read_text(encoding="utf-8")
        styles = "".join(
            f'<link rel="stylesheet" href="{html.escape(p.name)}">' for p in sorted(self.folder.glob("*.css"))
        )
        return (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n<link rel="icon" href="data:,">\n{styles}\n</head>\n'
            '<body>\n<div id="root"></div>\n<script src="main.js"></script>\n</body>\n</html>\n'
        )

    def _local(self, name: str) -> Path | None:
        path = (self.folder / name.split("?")[0].lstrip("/")).resolve()
        return path if path.is_file() and path.is_relative_to(self.folder) else None

    def _inline_script(self, match: re.Match[str]) -> str:
        name = match.group(2)
        path = self._local(name) or (ASSETS / "crowd.js" if name.endswith("_crowd/crowd.js") else None)
        if path is None:
            return match.group(0)
        code = path.read_text(encoding="utf-8").replace("</script", "<\\/script")
        return f"<script{match.group(1)}{match.group(3)}>{code}</script>"

    def _inline_style(self, tag: str) -> str:
        href = _HREF.search(tag)
        path = self._local(href.group(1)) if href else None
        if path is None:
            return tag
        return "<style>" + path.read_text(encoding="utf-8").replace("</style", "<\\/style") + "</style>"


def _inject(page: str, sdk: str) -> str:
    """``sdk`` first inside the page's head (or right after ``<html>``, or at the very start)."""
    for pattern in (_HEAD, _HTML):
        found = pattern.search(page)
        if found:
            return page[: found.end()] + sdk + page[found.end() :]
    return sdk + page


def serve_asset(folder: Path, name: str) -> Response:
    """A file of a JS bundle (or a template's static folder): the right content type, content-hashed names
    cached for good, others revalidated."""
    if any(part.startswith(".") for part in Path(name).parts):
        raise NotFound(f"no file {name!r} in this task's files")
    suffix = Path(name).suffix.lower()
    try:
        response = send_from_directory(folder, name, mimetype=CONTENT_TYPES.get(suffix))  # safe_join: no traversal
    except NoSuchFile as exc:
        raise NotFound(f"no file {name!r} in this task's files") from exc
    if _HASHED.search(name):
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    else:
        response.headers["Cache-Control"] = "no-cache"  # revalidate: a rebuilt bundle reaches the next page
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
