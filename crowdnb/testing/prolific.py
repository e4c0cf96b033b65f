"""A stateful fake of Prolific's REST API on 127.0.0.1, for tests and dry runs of the ``prolific`` provider.

It speaks the wire shapes of https://docs.prolific.com/api-reference (base path ``/api/v1/``, ``Token``
auth, paginated ``results`` with ``_links.next.href``) and keeps Prolific's state machines: a study goes
UNPUBLISHED → (PUBLISH) ACTIVE → AWAITING REVIEW (stopped, or every place taken) → COMPLETED; places
can only grow, and growing them reopens a study; a returned or timed-out submission frees its place; a
rejection needs a message of 100+ characters and a category; and a bulk bonus payment pays again every
time ``pay`` is called (the real endpoint is not idempotent). Test-side controls make participants take
part, open the study, return, time out and complete, and make chosen endpoints fail or answer late::

    with FakeProlific() as fake:                       # PROLIFIC_BASE_URL=fake.base_url, token fake.token
        someone = fake.take_part(study_id)              # RESERVED; someone.link opens the study (ACTIVE)
        fake.fail("POST", "bulk-bonus-payments/*/pay/", status=None, delay=2)   # pays, answers late
        fake.fail("POST", "bulk-bonus-payments/*/pay/", status=429, retry_after="1")  # busy: not paid
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import Any

from flask import jsonify, request

from . import Listening
from .prolific_routes import build_app
from .prolific_words import API, PENDING, REQUIRED, TAKES_PLACE, Refused, new_id, stamp


@dataclass(frozen=True)
class Participant:
    """A participant who took a place in a study; ``link`` is what their browser opens."""

    id: str
    session_id: str
    study_id: str
    link: str


class FakeProlific:
    """Prolific's API in a thread; ``base_url`` is what the provider's ``base_url`` points at."""

    def __init__(self, token: str = "fake-prolific-token", *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.token, self.host, self.port = token, host, port
        self.lock = threading.RLock()
        self.workspaces: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.studies: dict[str, dict[str, Any]] = {}
        self.submissions: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.members: dict[str, set[str]] = {}
        self.setups: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []
        self.payments: list[dict[str, Any]] = []  # one row per bonus actually paid (a second pay adds rows)
        self.completions: list[tuple[str, str]] = []  # (session id, completion code) seen at the redirect
        self.log: list[dict[str, Any]] = []
        self._faults: list[dict[str, Any]] = []
        self._listening: Listening | None = None
        self.app = build_app(self)

    # --- running ----------------------------------------------------------------------------
    def start(self) -> FakeProlific:
        """Listen (port 0 picks a free port) in a daemon thread."""
        self._listening = Listening(self.app, self.host, self.port, "fake-prolific")
        self.port = self._listening.port
        return self

    def stop(self) -> None:
        """Stop listening and free the port."""
        if self._listening is not None:
            self._listening.close()
            self._listening = None

    def __enter__(self) -> FakeProlific:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The fake's root, standing for https://app.prolific.com/."""
        return f"http://{self.host}:{self.port}/"

    @property
    def base_url(self) -> str:
        """The API root, standing for https://api.prolific.com/api/v1/."""
        return self.url + API.lstrip("/")

    @property
    def completion_url(self) -> str:
        """Where participants are sent back with ``?cc=<code>``."""
        return self.url + "submissions/complete"

    # --- test-side controls -----------------------------------------------------------------
    def fail(self, method: str, pattern: str, *, status: int | None = 500, times: int | None = 1,
             delay: float = 0.0, retry_after: str | None = None) -> None:  # fmt: skip
        """Make ``method pattern`` (a glob under /api/v1/) answer ``status`` without acting, or act and then
        answer ``delay`` seconds late (``status=None``); ``times=None`` keeps failing.

        ``status=429`` is what Prolific answers a payment (approve, pay a bonus) when the workspace's wallet
        is busy: refused before processing, so nothing moved; ``retry_after`` is sent as its Retry-After."""
        with self.lock:
            self._faults.append({"method": method.upper(), "pattern": pattern.strip("/") + "/", "status": status,
                                 "times": times, "delay": delay, "retry_after": retry_after})  # fmt: skip

    def heal(self) -> None:
        """Forget every injected failure."""
        with self.lock:
            self._faults.clear()

    def calls(self, method: str | None = None, pattern: str = "*") -> list[dict[str, Any]]:
        """The API requests received (``method``, ``path`` under /api/v1/, ``json``), oldest first."""
        with self.lock:
            return [c for c in self.log if (method is None or c["method"] == method.upper())
                    and fnmatch.fnmatch(c["path"], pattern.strip("/") + "/")]  # fmt: skip

    def take_part(self, study_id: str, participant: str | None = None) -> Participant:
        """A participant reserves a place (RESERVED), if the study is open to them."""
        with self.lock:
            study = self._get(self.studies, study_id, "study")
            who = participant or new_id()
            if study["status"] != "ACTIVE":
                raise Refused(f"study {study_id} is {study['status']}, not taking participants")
            if not self._eligible(study, who):
                raise Refused(f"participant {who} is not eligible for study {study_id}")
            if any(s["study_id"] == study_id and s["participant"] == who for s in self.submissions.values()):
                raise Refused(f"participant {who} already took part in study {study_id}")
            sid = new_id()
            self.submissions[sid] = {"id": sid, "study_id": study_id, "participant": who, "status": "RESERVED",
                                     "started_at": stamp(), "completed_at": None, "entered_code": None,
                                     "bonus_payments": [], "return_requested": None}  # fmt: skip
            self._refresh(study)
            return Participant(who, sid, study_id, f"{self.url}_fake/go/{sid}")

    def open(self, session_id: str) -> str:
        """The participant opens the study (ACTIVE); the external URL with the placeholders filled in."""
        with self.lock:
            sub = self._get(self.submissions, session_id, "submission")
            if sub["status"] not in ("RESERVED", "ACTIVE"):
                raise Refused(f"submission {session_id} is {sub['status']}")
            sub["status"] = "ACTIVE"
            study = self.studies[sub["study_id"]]
            url = str(study["external_study_url"])
            # exactly the documented double-brace placeholders are replaced (docs: the study object)
            for name, value in (
                ("PROLIFIC_PID", sub["participant"]),
                ("STUDY_ID", study["id"]),
                ("SESSION_ID", session_id),
            ):
                url = url.replace("{{%" + name + "%}}", value)
            return url

    def return_(self, session_id: str) -> None:
        """The participant returns their place (RETURNED): the place is free again."""
        self._end(session_id, "RETURNED")

    def time_out(self, session_id: str) -> None:
        """The participant ran out of time (TIMED-OUT): the place is free again."""
        self._end(session_id, "TIMED-OUT")

    def complete(self, session_id: str, code: str) -> dict[str, Any]:
        """What the completion redirect does: record the code; the submission awaits review."""
        with self.lock:
            sub = self._get(self.submissions, session_id, "submission")
            if sub["status"] != "ACTIVE":
                raise Refused(f"submission {session_id} is {sub['status']}, not active", 409)
            study = self.studies[sub["study_id"]]
            found = [c for c in study["completion_codes"] if c["code"] == code]
            if not found:
                raise Refused(f"{code!r} is not a completion code of this study")
            actions = {a.get("action") for a in found[0].get("actions", [])}
            sub["status"] = "APPROVED" if "AUTOMATICALLY_APPROVE" in actions else "AWAITING REVIEW"
            sub.update(entered_code=code, completed_at=stamp())
            self.completions.append((session_id, code))
            self._refresh(study)
            return dict(sub)

    def paid(self, participant: str | None = None) -> list[int]:
        """Bonus amounts (cents) actually paid, optionally to one participant."""
        with self.lock:
            return [p["cents"] for p in self.payments if participant in (None, p["participant"])]

    def group_members(self, group_id: str) -> set[str]:
        """Participant ids in a participant group."""
        with self.lock:
            return set(self.members.get(group_id, set()))

    # --- state machines ---------------------------------------------------------------------
    def _get(self, table: dict[str, dict[str, Any]], key: str, what: str) -> dict[str, Any]:
        if key not in table:
            raise Refused(f"no {what} {key!r}", 404)
        return table[key]

    def _end(self, session_id: str, status: str) -> None:
        with self.lock:
            sub = self._get(self.submissions, session_id, "submission")
            if sub["status"] not in ("RESERVED", "ACTIVE"):
                raise Refused(f"submission {session_id} is {sub['status']}")
            sub["status"] = status
            self._refresh(self.studies[sub["study_id"]])

    def _eligible(self, study: dict[str, Any], who: str) -> bool:
        for item in study.get("filters") or []:
            groups = item.get("selected_values") or []
            inside = any(who in self.members.get(gid, set()) for gid in groups)
            if item.get("filter_id") == "participant_group_allowlist" and not inside:
                return False
            if item.get("filter_id") == "participant_group_blocklist" and inside:
                return False
        return True

    def _refresh(self, study: dict[str, Any]) -> None:
        """Recompute places taken and the status Prolific derives from them."""
        subs = [s for s in self.submissions.values() if s["study_id"] == study["id"]]
        study["places_taken"] = sum(s["status"] in TAKES_PLACE for s in subs)
        if study["status"] == "UNPUBLISHED":
            return
        if study["_stopped"] or study["places_taken"] >= study["total_available_places"]:
            study["status"] = "AWAITING REVIEW" if any(s["status"] in PENDING for s in subs) else "COMPLETED"
        else:
            study["status"] = "PAUSED" if study["_paused"] else "ACTIVE"

    def _study_out(self, study: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in study.items() if not k.startswith("_")}

    def _page(self, items: list[dict[str, Any]]) -> Any:
        size = max(1, int(request.args.get("page_size", 20)))
        page = max(1, int(request.args.get("page", 1)))
        chunk = items[(page - 1) * size : page * size]
        more = page * size < len(items)
        nxt = request.base_url + f"?{_query(request.args, page + 1)}" if more else None
        return jsonify({"results": chunk, "_links": {"next": {"href": nxt}}, "meta": {"count": len(items)}})

    def _check_study(self, body: dict[str, Any], draft: bool) -> None:
        missing = [k for k in REQUIRED if draft and body.get(k) in (None, "", [])]
        if missing:
            raise Refused(f"missing required fields: {', '.join(missing)}")
        url = body.get("external_study_url")
        if url is not None and not str(url).startswith(("http://", "https://")):
            raise Refused("external_study_url must be a valid URL")
        for key in ("reward", "total_available_places", "estimated_completion_time"):
            if key in body and (not isinstance(body[key], int) or isinstance(body[key], bool) or body[key] < 0):
                raise Refused(f"{key} must be a whole number (the reward is in cents); got {body[key]!r}")
        if "project" in body and body["project"] not in self.projects:
            raise Refused(f"no project {body['project']!r}")
        for code in body.get("completion_codes") or []:
            if not code.get("code") or not code.get("code_type") or not isinstance(code.get("actions"), list):
                raise Refused("each completion code needs code, code_type and actions")
        for item in body.get("filters") or []:
            if item.get("filter_id", "").startswith("participant_group_"):
                for gid in item.get("selected_values") or []:
                    if gid not in self.groups or self.groups[gid]["is_deleted"]:
                        raise Refused(f"participant group {gid!r} does not exist")

    def _group_out(self, item: dict[str, Any]) -> dict[str, Any]:
        return item | {"participant_count": len(self.members.get(item["id"], set()))}


def _query(args: Any, page: int) -> str:
    from urllib.parse import urlencode

    return urlencode({**{k: v for k, v in args.items() if k != "page"}, "page": page})
