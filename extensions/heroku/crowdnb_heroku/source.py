"""The source tarball a Heroku build turns into a slug: a crowdnb project that serves one run.

::

    Procfile            web: crowdnb serve project --run <RUN_ID> --host 0.0.0.0 --port $PORT [--public-url …]
    requirements.txt    ./wheels/crowdnb-<version>-py3-none-any.whl[serve]
    .python-version     this interpreter's X.Y (the Python buildpack's recommended pin)
    wheels/             a wheel of the crowdnb that is running now, so the dyno serves with the same code
    project/            the run's project folder: crowdnb.db (a consistent copy) and its files

The dyno's disk is ephemeral: whatever ``project/crowdnb.db`` gains while serving is lost when the dyno
restarts (at least once a day). The notebook operator keeps the mirror; see the README.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import sqlite3
import sys
import tarfile
import tempfile
from pathlib import Path

from crowdnb.architects.wheel import crowdnb_wheel
from crowdnb.errors import ConfigError

log = logging.getLogger(__name__)

DB_NAME = "crowdnb.db"
PROJECT = "project"
SKIPPED = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}
# SQLite's side files: the copy is made through the backup API instead
DB_SIDE_FILES = {DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal"}


def procfile(run_id: str, public_url: str | None = None) -> str:
    """The Procfile's one line: the run's router on Heroku's ``$PORT``."""
    command = f"crowdnb serve {PROJECT} --run {shlex.quote(str(run_id))} --host 0.0.0.0 --port $PORT"
    if public_url:
        command += f" --public-url {shlex.quote(public_url)}"
    return f"web: {command}\n"


def build_source(
    bundle: Path, run_id: str, out: Path, *, public_url: str | None = None, wheel: Path | None = None
) -> Path:
    """Write the gzipped source tarball for ``run_id`` of the project folder ``bundle`` to ``out``."""
    bundle = Path(bundle)
    if not (bundle / DB_NAME).is_file():
        raise ConfigError(f"{bundle} is not a crowdnb project folder (no {DB_NAME}); pass the run's project folder")
    if not str(run_id).isdigit():
        raise ConfigError(f"run id {run_id!r} is not a run number")
    with tempfile.TemporaryDirectory(prefix="crowdnb-heroku-") as tmp:
        root = Path(tmp) / "app"
        _copy_project(bundle, root / PROJECT)
        wheel = Path(wheel) if wheel else crowdnb_wheel(Path(tmp) / "dist")
        (root / "wheels").mkdir()
        shutil.copy2(wheel, root / "wheels" / wheel.name)
        (root / "requirements.txt").write_text(f"./wheels/{wheel.name}[serve]\n")
        (root / ".python-version").write_text(f"{sys.version_info.major}.{sys.version_info.minor}\n")
        (root / "Procfile").write_text(procfile(run_id, public_url))
        with tarfile.open(out, "w:gz") as tar:
            for path in sorted(root.rglob("*")):
                tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False, filter=_anonymous)
    log.info("source for run %s: %s (%.1f MB)", run_id, out, out.stat().st_size / 1e6)
    return out


def sha256(path: Path) -> str:
    """``SHA256:<hex>`` of a file, as a build's ``source_blob.checksum`` wants it."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return f"SHA256:{digest.hexdigest()}"


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""  # the local user's name stays local
    return info


def _copy_project(bundle: Path, target: Path) -> None:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {name for name in names if name in SKIPPED}
        return skip | (DB_SIDE_FILES & set(names) if Path(folder) == bundle else set())

    shutil.copytree(bundle, target, ignore=ignore)
    # the backup API gives a consistent copy even while the router writes (WAL pages included)
    source = sqlite3.connect(f"file:{bundle / DB_NAME}?mode=ro", uri=True)
    copy = sqlite3.connect(target / DB_NAME)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one file in the slug, no -wal beside it
    finally:
        copy.close()
        source.close()
