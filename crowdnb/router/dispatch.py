"""A worker's session with a run: who they are, which unit they hold, and saving what they submit.

The router turns HTTP into calls here; the store makes each step one atomic transaction. A worker holds
a signed token naming their agent, so nobody can submit for someone else's unit.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..errors import AuthError, WorkerRefused
from ..providers import Completion, Provider, RunInfo
from ..quality.gold import GoldKeeper
from ..quality.onboarding import PREFIX as ONBOARDING_PREFIX
from ..quality.onboarding import Onboarder
from ..quality.requirements import BLOCKED, first_unmet
from ..quality.screening import Screener
from ..store import lifecycle, offers
from ..store import states as S
from ..store.db import Row, Store
from ..store.offers import Quota
from .backlog import Backlog
from .operator import OperatorHub
from .uploads import Upload, keep

if TYPE_CHECKING:
    from .rooms import Rooms

log = logging.getLogger(__name__)

_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{8,80}$")
SUBMISSION_FIELD = "crowdnb_submission_id"  # posted back to the platform beside its own fields (``form_post``)
Listener = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Entry:
    """What a worker gets on opening the task: their agent, its token and the unit's input row."""

    agent_id: int
    token: str
    input: dict[str, Any]
    submission_id: str
    resumed: bool
    kind: str = "unit"  # or "onboarding": the worker must pass the test first


class PageSocket:
    """A page's websocket that several threads may send on (its own handler, a partner's message)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._lock = threading.Lock()

    def send(self, text: str) -> None:
        with self._lock:
            self.ws.send(text)

    def receive(self, timeout: float | None = None) -> Any:
        return self.ws.receive(timeout)

    def close(self) -> None:
        self.ws.close()


class Sockets:
    """Open websockets per agent, and when each agent's last one closed (for disconnect detection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, set[Any]] = {}
        self._closed_at: dict[int, float] = {}

    def opened(self, agent_id: int, ws: Any) -> None:
        with self._lock:
            self._open.setdefault(agent_id, set()).add(ws)
            self._closed_at.pop(agent_id, None)

    def closed(self, agent_id: int, ws: Any) -> None:
        with self._lock:
            held = self._open.get(agent_id, set())
            held.discard(ws)
            if not held:
                self._open.pop(agent_id, None)
                self._closed_at[agent_id] = time.monotonic()

    def expect(self, agent_ids: Iterable[int], allowance: float) -> None:
        """Agents whose page was open when the previous process died: counted as gone ``allowance``
        seconds from now, so they keep their unit only if their page reconnects by then (plus the grace)."""
        at = time.monotonic() + allowance
        with self._lock:
            for agent_id in agent_ids:
                if agent_id not in self._open:
                    self._closed_at[agent_id] = at

    def gone_for(self, seconds: float) -> list[int]:
        """Agents whose last socket closed more than ``seconds`` ago (each reported once)."""
        limit = time.monotonic() - seconds
        with self._lock:
            gone = [a for a, t in self._closed_at.items() if t < limit]
            for agent_id in gone:
                del self._closed_at[agent_id]
        return gone

    def is_open(self, agent_id: int) -> bool:
        """Whether the agent has a page open right now."""
        with self._lock:
            return bool(self._open.get(agent_id))

    def connected(self) -> int:
        """How many agents have a page open right now."""
        with self._lock:
            return len(self._open)

    def send(self, agent_id: int, message: str) -> None:
        """Push a message to every open page of an agent (best effort)."""
        with self._lock:
            targets = list(self._open.get(agent_id, ()))
        for ws in targets:
            try:
                ws.send(message)
            except Exception:  # a socket closing under us is not an error worth raising
                log.debug("could not push to agent %s", agent_id)

    def close_all(self, farewell: str) -> None:
        """Tell every open page ``farewell`` and close its socket (the run is stopping)."""
        with self._lock:
            targets = [ws for held in self._open.values() for ws in held]
            self._open.clear()
            self._closed_at.clear()
        for ws in targets:
            try:
                ws.send(farewell)
                ws.close()
            except Exception:
                log.debug("socket already closed")


class VerifiedTokens:
    """Tokens whose signature was checked, with when they were signed (the most recent ``size``)."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[tuple[int, int], float]] = OrderedDict()

    def get(self, token: str) -> tuple[tuple[int, int], float] | None:
        with self._lock:
            return self._known.get(token)

    def put(self, token: str, ids: tuple[int, int], signed_at: float) -> None:
        with self._lock:
            self._known[token] = (ids, signed_at)
            if len(self._known) > self.size:
                self._known.popitem(last=False)


class Dispatcher:
    """Worker sessions of one run: enter, heartbeat, submit."""

    def __init__(
        self, store: Store, run: RunInfo, provider: Provider, quota: Quota, secret: str, duration: int
    ) -> None:
        self.store = store
        self.run = run
        self.provider = provider
        self.quota = quota
        self.duration = duration
        self._tokens = URLSafeTimedSerializer(secret, salt="crowdnb.agent")
        self._verified_tokens = VerifiedTokens()
        self.sockets = Sockets()
        self.listeners: list[Listener] = []
        self.backlog = Backlog()  # listeners and platform calls leave the worker's request through it
        self._seen: set[int] = set()
        self._seen_lock = threading.Lock()
        self.onboarder: Onboarder | None = None
        self.gold: GoldKeeper | None = None
        self.screener: Screener | None = None
        self.rooms: Rooms | None = None  # a shared task's lobby and conversations, set by the run
        self.operator: OperatorHub | None = None  # the notebook operating this run, if it runs elsewhere

    # --- entering ------------------------------------------------------------------------------
    def enter(self, params: Mapping[str, str]) -> Entry | None:
        """The unit for the worker named by the provider parameters; None means a preview."""
        identity = self.provider.identify(params)
        if identity is None:
            return None
        if self.operator is not None:
            self.operator.hold("unit")  # every unit needs notebook Python (validators, procedures) while it is away
        worker_id = self.store.worker(self.provider.name, identity.worker)
        held = self.store.qualifications_of(worker_id)
        unmet = first_unmet(self.run.requirements, held, self.provider.name)
        if unmet is not None:
            raise WorkerRefused(
                "not_qualified",
                self._refusal(unmet.name) or f"You are not qualified for this task: it needs {unmet.describe()}.",
            )
        if self.onboarder is not None and self.onboarder.needed(held):
            if self.operator is not None:
                self.operator.hold("onboarding")
            token = self.onboarder.token(worker_id)
            return Entry(0, token, dict(self.onboarder.test.data), uuid.uuid4().hex, False, kind="onboarding")
        special = self.gold.pick(worker_id, held) if self.gold is not None else None
        if self.screener is not None and not self._holds_unit(worker_id):
            special = self.screener.pick(self.run.id, held)
            if special is not None and self.operator is not None:
                self.operator.hold("screening")
        agent, resumed = lifecycle.reserve(self.store, self.run.id, worker_id, self.quota, identity.external, special)
        full = self.store.get_agent(int(agent["id"]))
        return Entry(
            agent_id=int(agent["id"]),
            token=self._tokens.dumps([int(agent["id"]), worker_id]),
            input=json.loads(full["input"]),
            submission_id=uuid.uuid4().hex,
            resumed=resumed,
        )

    def _refusal(self, qualification: str) -> str | None:
        """What a worker reads when ``qualification`` closed the task to them (None: the generic text)."""
        if qualification == BLOCKED:
            return "You can no longer take this requester's tasks."
        for check in (self.onboarder, self.screener, self.gold):
            if check is not None and qualification == check.closed_by:
                return check.refusal
        return None

    def _holds_unit(self, worker_id: int) -> bool:
        """Whether the worker has a live unit of this run (a refresh gets it back, not a new screening)."""
        return self.store.live_agent_count(self.run.id, worker_id) > 0

    def agent_for(self, token: str) -> Row:
        """The agent a token names; ``AuthError`` when it is forged, expired or for another run."""
        agent_id, worker_id = self._verified(token)
        agent = self.store.get_agent(int(agent_id))
        if agent["worker_id"] != worker_id or agent["task_run_id"] != self.run.id:
            raise AuthError("This page's credentials are not valid for this task.")
        return agent

    def _verified(self, token: str) -> tuple[int, int]:
        """``(agent_id, worker_id)`` of a genuine, unexpired token. A page presents its token on its socket
        and on submit: its signature is checked once, then only its age (``VerifiedTokens``)."""
        max_age = self.duration * 2 + 600
        known = self._verified_tokens.get(token)
        if known is not None:
            ids, signed_at = known
            if time.time() - signed_at > max_age:
                raise AuthError("This task page has expired; reopen the task to continue.")
            return ids
        try:
            (agent_id, worker_id), signed = self._tokens.loads(token, max_age=max_age, return_timestamp=True)
            ids = (int(agent_id), int(worker_id))
        except SignatureExpired as exc:
            raise AuthError("This task page has expired; reopen the task to continue.") from exc
        except (BadSignature, ValueError, TypeError) as exc:
            raise AuthError("This page's credentials are not valid for this task.") from exc
        self._verified_tokens.put(token, ids, signed.timestamp())
        return ids

    # --- heartbeats ----------------------------------------------------------------------------
    def seen(self, agent_id: int) -> str:
        """Note that the worker's page is open; returns the agent's status as the page should show it.

        accepted → in_task is written by the monitor in one batch per tick (``flush_seen``), so a
        heartbeat never waits for the write lock.
        """
        status = self.store.agent_status(agent_id)
        if status == S.A_ACCEPTED:
            with self._seen_lock:
                self._seen.add(agent_id)
            return S.IN_TASK
        return status

    def flush_seen(self) -> int:
        """Move the agents whose pages reported in since the last flush to in_task; returns the count."""
        with self._seen_lock:
            seen, self._seen = self._seen, set()
        return lifecycle.mark_in_task(self.store, seen) if seen else 0

    # --- submitting ----------------------------------------------------------------------------
    def submit(
        self,
        token: str,
        client_id: str,
        answers: dict[str, Any],
        uploads: list[Upload],
        meta: dict[str, Any],
        agent: Row | None = None,
    ) -> tuple[Completion, bool]:
        """Store a submission once; returns how the page should finish and whether it was a duplicate.

        ``agent``: what ``agent_for(token)`` returned moments ago in the same request, if the caller has it.
        """
        if self.onboarder is not None and token.startswith(ONBOARDING_PREFIX):
            return Completion("reload", message=self.onboarder.submit(token, answers)), False
        if agent is None:
            agent = self.agent_for(token)
        if not _CLIENT_ID.match(client_id or ""):
            raise WorkerRefused("bad_submission", "The submission id is missing or malformed; reload the page.")
        try:
            json.dumps(answers, allow_nan=False)  # what the store writes must be standard JSON
        except ValueError as exc:
            raise WorkerRefused("bad_submission", "The answers contain a number that is not finite.") from exc
        files, folder = keep(self.store, self.run.id, int(agent["id"]), uploads)
        try:
            submission_id, duplicate = lifecycle.submit(self.store, int(agent["id"]), client_id, answers, files, meta)
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        if duplicate and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        completion = self.provider.completion(self.run, json.loads(agent["external"]))
        if completion.kind == "form_post":
            # the platform's record then names crowdnb's submission; MTurk refuses a post of assignmentId alone
            completion = replace(completion, fields={**completion.fields, SUBMISSION_FIELD: client_id})
        if completion.kind == "next":  # no next unit for them: thank them instead of opening a refusal
            refusal = offers.next_refusal(self.store, self.run.id, int(agent["worker_id"]), self.quota)
            if refusal is not None:
                completion = replace(completion, kind="message", message=f"Your answers are saved. {refusal.message}")
        if not duplicate and agent["kind"] == "gold" and self.gold is not None:
            self.gold.judge(self.store.worker_name(int(agent["worker_id"])), int(agent["row_index"]), answers)
        elif not duplicate and agent["kind"] == "screening" and self.screener is not None:
            inputs = json.loads(agent["input"])
            self.screener.judge(self.store.worker_name(int(agent["worker_id"])), inputs, answers)
        elif not duplicate:
            self._notify(submission_id, agent, answers)
        return completion, duplicate

    def _notify(self, submission_id: int, agent: Row, answers: dict[str, Any]) -> None:
        event = {
            "submission_id": submission_id,
            "unit_id": agent["unit_id"],
            "agent_id": agent["id"],
            "run_id": self.run.id,
            "answers": answers,
        }
        for listener in list(self.listeners):
            # the submission is saved; a slow or failing callback must neither delay nor undo that
            self.backlog.later(f"on_submit callback {listener!r}", functools.partial(listener, event))
