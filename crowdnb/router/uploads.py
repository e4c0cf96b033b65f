"""Uploaded files: received into a temporary file (hashed on the way), moved under the project folder
just before the database commit that references them, listed in ``run.df`` and shown to reviewers.

A submission's files live in ``files/<run id>/<agent id>/<random>/<n><.ext>`` under the project: every
part is chosen by crowdnb, never by the worker, whose file name is kept only as metadata. The
submission's ``files`` column holds ``{field: [{"path", "name", "type", "size", "sha256"}, …]}``; in
``run.df`` a file field's column is the path relative to the project folder (a list for several
files) and ``<field>_name`` the worker's file name. A submission refused or stored twice leaves no file
behind, and ``sweep`` removes what a crash between the move and the commit left.

What a browser gets is decided here from the stored name's extension, never from what the worker
declared: images, audio and video inline, everything else as a download in a sandbox.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from flask import Response, send_from_directory
from markupsafe import escape
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound as NoSuchFile

from ..errors import NotFound

if TYPE_CHECKING:
    from ..store.db import Store

log = logging.getLogger(__name__)

FOLDER = "files"
_EXTENSION = re.compile(r"^\.[a-z0-9]{1,10}$")
_CHUNK = 1024 * 1024
# shown inline; SVG (it can hold scripts) and everything else is a download
INLINE = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".bmp": "image/bmp",
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".m4a": "audio/mp4",
    ".flac": "audio/flac",
    ".weba": "audio/webm",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".ogv": "video/ogg",
}
THUMBNAIL_BYTES = 512 * 1024  # larger images are shown by path in a notebook, not inlined


@dataclass(frozen=True)
class Upload:
    """One uploaded file, already streamed to a temporary path by the router."""

    field: str
    filename: str  # the worker's name for it: metadata only
    content_type: str
    temp_path: Path
    size: int
    sha256: str = ""


def receive(files: Any) -> list[Upload]:
    """Stream every uploaded file of a request to a temporary file, hashing it on the way."""
    uploads = []
    for field in files:
        for storage in files.getlist(field):
            if not isinstance(storage, FileStorage) or not storage.filename:
                continue
            digest, size = hashlib.sha256(), 0
            with tempfile.NamedTemporaryFile(delete=False, prefix="crowdnb-upload-") as handle:
                while chunk := storage.stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    handle.write(chunk)
            # the worker's own name, as metadata: printable, without any folders a client may send
            base = PurePosixPath(storage.filename.replace("\\", "/")).name
            name = "".join(c for c in base if c.isprintable())[-255:] or "upload"
            uploads.append(Upload(field, name, storage.mimetype or "", Path(handle.name), size, digest.hexdigest()))
    return uploads


def discard(uploads: list[Upload]) -> None:
    """Remove the temporary files of uploads that were not kept (a refused or failed submission)."""
    for upload in uploads:
        upload.temp_path.unlink(missing_ok=True)


def keep(store: Store, run_id: int, agent_id: int, uploads: list[Upload]) -> tuple[dict[str, Any], Path | None]:
    """Move uploads under the project folder; returns the submission's ``files`` and the folder made."""
    if not uploads:
        return {}, None
    folder = store.files_dir / str(run_id) / str(agent_id) / secrets.token_hex(8)
    folder.mkdir(parents=True)
    files: dict[str, list[dict[str, Any]]] = {}
    for number, upload in enumerate(uploads):
        suffix = Path(upload.filename).suffix.lower()
        target = folder / f"{number}{suffix if _EXTENSION.match(suffix) else ''}"
        shutil.move(upload.temp_path, target)
        files.setdefault(upload.field, []).append(
            {
                "path": target.relative_to(store.root).as_posix(),
                "name": upload.filename,
                "type": upload.content_type,
                "size": upload.size,
                "sha256": upload.sha256,
            }
        )
    return files, folder


def sweep(store: Store, run_id: int) -> int:
    """Delete the upload folders of a run that no stored submission references; returns how many."""
    run_dir = store.files_dir / str(run_id)
    if not run_dir.is_dir():
        return 0
    kept = set()
    for row in store.query("SELECT files FROM submissions WHERE task_run_id = ? AND files != '{}'", (run_id,)):
        for entry in (e for entries in _entries(json.loads(row["files"])).values() for e in entries):
            kept.add(Path(entry["path"]).parts[:4])  # files/<run>/<agent>/<folder>
    removed = 0
    for folder in (f for agent in run_dir.iterdir() if agent.is_dir() for f in agent.iterdir()):
        if folder.relative_to(store.root).parts[:4] not in kept:
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)
            removed += 1
    if removed:
        log.info("run %s: removed %d upload folders no submission references", run_id, removed)
    return removed


def _entries(files: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``files`` with one list per field (rows stored before lists held one dict per field)."""
    return {field: value if isinstance(value, list) else [value] for field, value in files.items()}


def frame_columns(files: dict[str, Any]) -> dict[str, Any]:
    """A submission's file columns for ``run.df``: ``field`` → path(s), ``field_name`` → the worker's name(s)."""
    out: dict[str, Any] = {}
    for field, entries in _entries(files).items():
        paths, names = [e["path"] for e in entries], [e["name"] for e in entries]
        out[field] = paths[0] if len(paths) == 1 else paths
        out[f"{field}_name"] = names[0] if len(names) == 1 else names
    return out


def kind_of(path: str) -> str:
    """How a reviewer is shown a stored file: "image", "audio", "video" or "download"."""
    media = INLINE.get(Path(path).suffix.lower(), "")
    return media.split("/")[0] if media else "download"


def serve(root: Path, name: str) -> Response:
    """A stored file for the review app: inline media with its true type, anything else as a download."""
    folder = root / FOLDER
    try:
        response = send_from_directory(folder, name, mimetype=INLINE.get(Path(name).suffix.lower()))
    except NoSuchFile as exc:  # safe_join refuses traversal the same way
        raise NotFound(f"no uploaded file {name!r}") from exc
    if kind_of(name) == "download":
        response.headers["Content-Type"] = "application/octet-stream"
        response.headers["Content-Disposition"] = f'attachment; filename="{Path(name).name}"'
    # never a document of the review app's origin, whatever the file holds
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'; media-src 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def notebook_html(root: Path, entries: list[dict[str, Any]]) -> str:
    """A unit's uploads of one field (``reports.uploaded_files``) as HTML for the notebook's review table:
    small images and sounds inline, anything else its name and path."""
    parts = []
    for entry in entries:
        path = str(entry["path"])
        file = (root / path).resolve()
        text = escape(entry.get("name") or Path(path).name)
        kind = kind_of(path)
        if not file.is_file() or not file.is_relative_to(root.resolve()):
            parts.append(f"<code>{escape(path)}</code> (missing)")
        elif kind in ("image", "audio") and file.stat().st_size <= THUMBNAIL_BYTES:
            uri = f"data:{INLINE[file.suffix.lower()]};base64,{base64.b64encode(file.read_bytes()).decode()}"
            if kind == "image":
                parts.append(f'<img src="{uri}" alt="{text}" title="{text}" style="max-height:80px;max-width:160px">')
            else:
                parts.append(f'<audio controls src="{uri}" title="{text}"></audio>')
        else:
            parts.append(f"{text} <code>{escape(path)}</code>")
    return " ".join(parts)
