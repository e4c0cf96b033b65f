"""A run's snapshot, taken on its instance: ``python -m crowdnb.architects.ec2_snapshot PROJECT s3://bucket/prefix/``.

The uploaded files go first (each once: they never change), then a copy of the database made with SQLite's
online backup, so the router goes on writing meanwhile and the copy never names a file S3 lacks.
The instance's role allows writes under the bucket's ``runs/`` prefix only. boto3 finds the credentials
(the instance role) and honours ``AWS_ENDPOINT_URL``, which is how a test points it at moto.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DB_NAME = "crowdnb.db"
FILES = "files"


def backup(db: Path, copy: Path) -> None:
    """A consistent copy of the live database ``db`` (SQLite's online backup API)."""
    # not mode=ro: a read-only connection cannot open a WAL database whose -shm file is gone (router stopped)
    source = sqlite3.connect(db, timeout=30)
    target = sqlite3.connect(copy)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix/`` as (bucket, "prefix/")."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix/ address")
    bucket, prefix = uri[5:].split("/", 1)
    return bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"


def snapshot(project: Path, uri: str, s3: Any = None) -> int:
    """Upload the files S3 lacks and a fresh copy of the database; returns how many objects were written."""
    import boto3

    s3 = s3 or boto3.client("s3")
    bucket, prefix = split_uri(uri)
    have = {
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + FILES + "/")
        for item in page.get("Contents", [])
    }
    written = 0
    folder = project / FILES
    for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
        key = prefix + path.relative_to(project).as_posix()
        if key not in have:
            s3.upload_file(str(path), bucket, key)
            written += 1
    with tempfile.TemporaryDirectory(prefix="crowdnb-snapshot-") as scratch:
        copy = Path(scratch) / DB_NAME
        backup(project / DB_NAME, copy)
        s3.upload_file(str(copy), bucket, prefix + DB_NAME)
    log.info("snapshot of %s: %d new file(s) and the database to %s", project, written, uri)
    return written + 1


def main(argv: list[str] | None = None) -> None:
    """The command line of the snapshot timer."""
    parser = argparse.ArgumentParser(prog="python -m crowdnb.architects.ec2_snapshot", description=__doc__)
    parser.add_argument("project", type=Path, help="the project folder holding crowdnb.db")
    parser.add_argument("uri", help="where the snapshot goes: s3://bucket/runs/<run id>/snapshot/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a command, not the library
    snapshot(args.project, args.uri)


if __name__ == "__main__":
    main()
