"""The submission feed of a run: every change after a cursor, for a notebook attached to a remote router.

``GET /_crowd/feed?after=<rev>&limit=<n>&wait=<s>`` with ``Authorization: Bearer <token>`` answers the
submissions whose revision is newer than ``after`` (new ones and review decisions), oldest first, and
the cursor to ask from next. Revisions are taken inside the one writer's transactions, so they become
visible in order: a reader that saw revision *n* has seen every revision below it, and replaying from a
cursor leaves no gap. With ``wait`` the request is held until something changes (a long poll), so a
follower costs one idle connection, not a stream of requests.

The token is derived from the run's secret, so it is the same after every restart of the server.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, jsonify, request
from itsdangerous import URLSafeSerializer

from ..store import reports
from ..store.db import Store

SALT = "crowdnb.router.feed"
MAX_LIMIT = 5000
MAX_WAIT = 30.0
POLL_SECONDS = 0.2


def token(secret: str, run_id: int) -> str:
    """The bearer token of a run's feed (stable for the run's lifetime)."""
    return str(URLSafeSerializer(secret, salt=SALT).dumps(run_id))


def changes(store: Store, run_id: int, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` submissions of the run changed after ``after``, and whether more are waiting."""
    rows = reports.submissions_since(store, "run", run_id, after, "data", limit + 1)  # index range on (run, rev)
    return rows[:limit], len(rows) > limit


def blueprint(store: Store, run_id: int, secret: str, state: Callable[[], dict[str, Any]]) -> Blueprint:
    """The ``/_crowd/feed`` route of one run; ``state`` gives its status and unit counts."""
    expected = f"Bearer {token(secret, run_id)}"
    feed = Blueprint("crowdnb_feed", __name__)

    @feed.get("/_crowd/feed")
    def read() -> Any:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
            return jsonify({"error": "the feed needs Authorization: Bearer <token> (printed by crowdnb serve)"}), 401
        try:
            after = int(request.args.get("after", 0))
            limit = min(int(request.args.get("limit", 1000)), MAX_LIMIT)
            wait = min(float(request.args.get("wait", 0)), MAX_WAIT)
        except ValueError:
            return jsonify({"error": "after and limit must be whole numbers, wait a number of seconds"}), 400
        if after < 0 or limit < 1 or not wait >= 0:
            return jsonify({"error": "after must be ≥ 0, limit ≥ 1 and wait ≥ 0"}), 400
        deadline = time.monotonic() + wait
        rows, more = changes(store, run_id, after, limit)
        now = state()  # read after the rows: counts never lag behind the rows they come with
        # a stopped run has no news coming: answer at once, so a follower learns it and can close
        while not rows and time.monotonic() < deadline and now["state"] == "running":
            time.sleep(POLL_SECONDS)  # cooperative under gevent; a thread of its own in the kernel
            rows, more = changes(store, run_id, after, limit)
            now = state()
        cursor = int(rows[-1]["rev"]) if rows else after
        return jsonify({"run": run_id, "cursor": cursor, "more": more, "rows": rows, **now})

    return feed
