"""A run served elsewhere (``crowdnb serve``, an EC2 instance), followed from this notebook.

``cn.attach(url, token)`` mirrors the run's submissions into a small SQLite file in the project folder
(``attached/<host>_<port>_run<id>.db``) and keeps the feed's cursor there, in the same transaction as
the rows. So a notebook that was detached for a while (closed, restarted, off the network) asks for
exactly what it missed when it attaches again: no gap, and no duplicate, because a unit has one row
whatever revision of it arrives.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd
import requests

from .errors import ArchitectError, ConfigError
from .frame.live import LiveFrame
from .pages.page import summary_table
from .router.feed import MAX_LIMIT
from .store.db import Row, project_root

if TYPE_CHECKING:
    from .project import Project

log = logging.getLogger(__name__)

BATCH = MAX_LIMIT  # rows per feed request: all the feed gives (a 100k-row catch-up: 4.7 → 3.4 s)
FOLLOW_WAIT = 25.0  # seconds a follower's long poll waits for news
MAX_BACKOFF = 30.0


class Attached:
    """The submissions of a remote run, mirrored here and kept up to date (see the module docstring)."""

    def __init__(self, url: str, token: str, project: str | Path | Project | None = None) -> None:
        if not urlsplit(url).scheme.startswith("http"):
            raise ConfigError(f"attach needs the server's http(s) URL, e.g. http://host:8000/; got {url!r}")
        self.url = url.rstrip("/") + "/"
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {token}"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.connected = False
        self.received = 0  # rows this object received from the feed
        hello = self._fetch(0, 0.0, limit=1)  # which run, and is the token right
        self.run_id = int(hello["run"])
        self.state: str = hello["state"]
        self.counts: dict[str, int] = hello["counts"]
        self.spend: dict[str, float] = hello.get("spend", {})
        root = project_root(project) if project is None or isinstance(project, (str, Path)) else project.root
        self.path = root / "attached" / f"{_slug(self.url)}_run{self.run_id}.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS rows (unit_id INTEGER PRIMARY KEY, rev INTEGER NOT NULL, row TEXT NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS rows_rev ON rows (rev)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._frame = LiveFrame(None, fetch=self._mirrored_since)
        self.pull()

    # --- the feed ----------------------------------------------------------------------------------
    def _fetch(self, after: int, wait: float, limit: int = BATCH) -> dict[str, Any]:
        try:
            reply = self._http.get(
                f"{self.url}_crowd/feed",
                params={"after": after, "limit": limit, "wait": wait},
                timeout=wait + 15,
            )
        except requests.RequestException as exc:
            self.connected = False
            raise ArchitectError(
                f"the router at {self.url} is unreachable ({type(exc).__name__}); the mirror keeps what arrived"
            ) from exc
        if reply.status_code == 401:
            raise ConfigError(f"the router at {self.url} refused the token; use the one `crowdnb serve` printed")
        if not reply.ok:
            self.connected = False
            raise ArchitectError(
                f"the router at {self.url} answered {reply.status_code} to the feed: {reply.text[:200]}"
            )
        self.connected = True
        body: dict[str, Any] = reply.json()
        return body

    @property
    def cursor(self) -> int:
        """The last revision mirrored here."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0

    def pull(self, wait: float = 0.0) -> int:
        """Fetch everything after the cursor (waiting up to ``wait`` s for news); returns the rows received."""
        received = 0
        while True:
            with self._lock:
                after = self.cursor
            reply = self._fetch(after, wait)
            with self._lock:
                if self.cursor != after:  # another pull moved the cursor meanwhile: ask again from there
                    continue
                self._mirror(reply["rows"], int(reply["cursor"]))
                self.state, self.counts = reply["state"], reply["counts"]
                self.spend = reply.get("spend", self.spend)
            received += len(reply["rows"])
            self.received += len(reply["rows"])
            if not reply["more"]:
                return received
            wait = 0.0

    def _mirror(self, rows: list[dict[str, Any]], cursor: int) -> None:
        # rows and cursor in one transaction: a crash here replays the batch, never skips it
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO rows (unit_id, rev, row) VALUES (?, ?, ?) "
                "ON CONFLICT (unit_id) DO UPDATE SET rev = excluded.rev, row = excluded.row WHERE excluded.rev > rows.rev",
                [(r["unit_id"], r["rev"], json.dumps(r)) for r in rows],
            )
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('cursor', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(cursor),),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _mirrored_since(self, rev: int) -> list[Row]:
        with self._lock:  # one connection: never read a batch that is still being written
            rows = self._db.execute("SELECT row FROM rows WHERE rev > ? ORDER BY rev", (rev,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # --- following ---------------------------------------------------------------------------------
    def follow(self, wait: float = FOLLOW_WAIT) -> Attached:
        """Keep pulling in a background thread (long polls of ``wait`` s; backs off while the router is down)."""
        self._stop.clear()  # a follower still finishing its last long poll carries on
        if self._follower is None or not self._follower.is_alive():
            self._follower = threading.Thread(
                target=self._follow, args=(wait,), name=f"crowdnb-attach-{self.run_id}", daemon=True
            )
            self._follower.start()
        return self

    def _follow(self, wait: float) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                self.pull(wait=wait)
                backoff = 1.0
            except ArchitectError as exc:
                log.warning("%s; retrying in %.0f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # a refused token or a bad reply: stop following rather than spin
                log.exception("stopped following %s", self.url)
                return

    @property
    def following(self) -> bool:
        """Whether a background thread keeps the mirror up to date."""
        return self._follower is not None and self._follower.is_alive()

    def stop(self) -> None:
        """Stop following after the long poll in flight (the mirror and its cursor stay)."""
        self._stop.set()

    def close(self) -> None:
        """Stop following and close the mirror file."""
        self.stop()
        if self._follower is not None:
            self._follower.join()
        self._http.close()
        self._db.close()

    # --- the frame ---------------------------------------------------------------------------------
    @property
    def df(self) -> pd.DataFrame:
        """Every submission mirrored so far (pulled first unless a follower does it; offline: the mirror)."""
        if not self.following:
            try:
                self.pull()
            except ArchitectError as exc:
                log.warning("%s", exc)
        return self._frame.refresh()

    def _repr_html_(self) -> str:
        counts = ", ".join(f"{k}: {v}" for k, v in self.counts.items() if v) or "no units"
        return summary_table(
            f"Attached run {self.run_id}",
            {
                "router": self.url,
                "state": self.state,
                "units": counts,
                "mirrored up to": f"revision {self.cursor}",
                "following": self.following,
                "connected": self.connected,
            },
        )

    def __repr__(self) -> str:
        return f"<Attached run {self.run_id} at {self.url}: {self.state}, revision {self.cursor}>"


def attach(url: str, token: str, project: str | Path | Project | None = None) -> Attached:
    """Follow a run served elsewhere: its submissions replayed from where this project left off."""
    return Attached(url, token, project)


def _slug(url: str) -> str:
    parts = urlsplit(url)
    return re.sub(r"[^A-Za-z0-9.]+", "_", f"{parts.hostname}_{parts.port or ''}{parts.path}").strip("_")
