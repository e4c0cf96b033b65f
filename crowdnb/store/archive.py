"""A project's data in one file: ``crowdnb db export|import|backup|restore``.

An archive is a gzipped tar holding ``crowdnb.db`` (an online-backup copy of the database, cut down to the
selected runs for an export), ``files/<run id>/…`` (those runs' uploads) and ``manifest.json``: the crowdnb
and schema versions, what was selected, rows per table and the sha256 of every other member. Reading one
checks every checksum before anything is written, so a damaged archive changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from ..errors import DataError, StateError
from . import copies
from .db import DB_NAME, Store

MANIFEST = "manifest.json"
FORMAT = "crowdnb-archive/1"


@dataclass
class Imported:
    """What ``import_db`` wrote: rows per table, uploaded files, and the conflicts it found (one sentence each)."""

    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    conflicts: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return bool(self.rows or self.files)


def since_stamp(since: str | datetime) -> str:
    """``since`` (an ISO date or time, or a datetime) as a stored timestamp; a one-line error when it is not one."""
    try:
        moment = since if isinstance(since, datetime) else datetime.fromisoformat(str(since).replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"--since {since!r} is not a date; write it like 2026-12-01 or 2026-12-01T09:30") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def select_runs(store: Store, task: str | None, run: int | None, since: str | datetime | None) -> list[int]:
    """The ids of the runs an export's filters select (all of them together; none given: every run)."""
    where, params = ["1"], []
    if task is not None:
        where.append("task_id = ?")
        params.append(store.get_task(task)["id"])  # NotFound names the known tasks
    if run is not None:
        store.get_run(run)  # NotFound
        where.append("id = ?")
        params.append(run)
    if since is not None:
        where.append("created_at >= ?")
        params.append(since_stamp(since))
    rows = store.query(f"SELECT id FROM task_runs WHERE {' AND '.join(where)} ORDER BY id", params)
    return [r["id"] for r in rows]


def export(store: Store, dest: Path, selection: dict[str, Any], runs: list[int] | None, kind: str = "export") -> Path:
    """Write the runs ``runs`` (None: the whole project) of ``store`` to the archive ``dest``."""
    with tempfile.TemporaryDirectory(prefix="crowdnb-export-") as scratch:
        db = copies.backup(store, Path(scratch) / DB_NAME)
        if runs is not None:
            copies.keep_runs(db, runs)
        members = {DB_NAME: db}
        for run_id in _run_ids(db):
            folder = store.files_dir / str(run_id)
            for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
                members[path.relative_to(store.root).as_posix()] = path
        manifest = {
            "format": FORMAT,
            "kind": kind,
            "crowdnb": version("crowdnb"),
            "schema": _schema(db),
            "created_at": since_stamp(datetime.now(UTC)),
            "selection": selection,
            "runs": _run_ids(db),
            "rows": _counts(db),
            "sha256": {name: _sha256(path) for name, path in members.items()},
        }
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        with tarfile.open(partial, "w:gz") as tar:
            body = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
            for name, path in members.items():
                tar.add(path, arcname=name, recursive=False)
        partial.replace(dest)
    return dest


@contextmanager
def opened(path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """The manifest of archive ``path`` and a folder holding its members, every checksum verified first."""
    if not path.is_file():
        raise DataError(f"no archive at {path}; give the path of a file written by `crowdnb db export` or `db backup`")
    with tempfile.TemporaryDirectory(prefix="crowdnb-import-") as scratch:
        folder = Path(scratch)
        try:
            with tarfile.open(path, "r:gz") as tar:
                tar.extractall(folder, filter="data")
            manifest = json.loads((folder / MANIFEST).read_text())
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            raise DataError(f"{path} is not a readable crowdnb archive ({exc}); nothing was changed") from None
        if manifest.get("format") != FORMAT:
            raise DataError(f"{path} is not a crowdnb archive (format {manifest.get('format')!r}); nothing was changed")
        found = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
        expected: dict[str, str] = manifest["sha256"]
        for name in sorted(found | set(expected)):
            if name not in expected or name not in found or _sha256(folder / name) != expected[name]:
                raise DataError(
                    f"{path} is damaged: {name} does not match the archive's manifest; nothing was changed "
                    "(export it again from its source)"
                )
        yield manifest, folder


def import_into(store: Store, path: Path) -> Imported:
    """Merge archive ``path`` into ``store``: rows by id (tasks, workers, qualifications by name), files by path."""
    with opened(path) as (manifest, folder):
        Store(folder).close()  # an archive from an older crowdnb is migrated forward (a newer one is refused)
        merged = copies.merge(store, folder / DB_NAME, list(manifest["runs"]))
        files = 0
        for name in manifest["sha256"]:
            target = store.root / name
            if name == DB_NAME or (target.is_file() and _sha256(target) == manifest["sha256"][name]):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / name, target)
            files += 1
    return Imported(rows=merged.written, files=files, conflicts=merged.conflicts)


def live_runs(root: Path) -> list[int]:
    """The runs of the project at ``root`` still marked running."""
    db = root / DB_NAME
    if not db.is_file():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT id FROM task_runs WHERE status = 'running' ORDER BY id")]
    finally:
        conn.close()


def restore(path: Path, root: Path, force: bool = False) -> Path:
    """Replace the project at ``root`` by the backup ``path`` (its database and files); refused while the
    project there has runs marked running, unless ``force``."""
    with opened(path) as (manifest, folder):
        if manifest["kind"] != "backup":
            raise DataError(f"{path} is an export, not a backup; merge it with `crowdnb db import {path}` instead")
        running = live_runs(root)
        if running and not force:
            ids = ", ".join(map(str, running))
            raise StateError(
                f"the project at {root} has live run(s) {ids}; stop them first, or pass --force (force=True) "
                "to overwrite it anyway"
            )
        Store(folder).close()
        root.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm"):
            (root / (DB_NAME + suffix)).unlink(missing_ok=True)
        shutil.copyfile(folder / DB_NAME, root / (DB_NAME + ".restoring"))
        (root / (DB_NAME + ".restoring")).replace(root / DB_NAME)
        shutil.rmtree(root / "files", ignore_errors=True)
        if (folder / "files").is_dir():
            shutil.copytree(folder / "files", root / "files")
    return root


def _run_ids(db: Path) -> list[int]:
    return [int(r[0]) for r in _read(db, "SELECT id FROM task_runs ORDER BY id")]


def _schema(db: Path) -> int:
    return int(_read(db, "PRAGMA user_version")[0][0])


def _counts(db: Path) -> dict[str, int]:
    names = [r[0] for r in _read(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    return {n: int(_read(db, f"SELECT count(*) FROM {n}")[0][0]) for n in names if not n.startswith("sqlite_")}


def _read(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
