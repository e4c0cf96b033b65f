"""A fake Amazon MTurk requester endpoint on 127.0.0.1: a real HTTP server speaking MTurk's JSON protocol.

boto3 talks to it unchanged (``endpoint_url``, or ``AWS_ENDPOINT_URL_MTURK`` in the environment): calls
are ``POST /`` with ``X-Amz-Target: MTurkRequesterServiceV20170117.<Operation>`` and
``application/x-amz-json-1.1`` bodies; errors are ``{"__type": "RequestError", "Message": …}``. The state
and MTurk's rules live in ``mturk_ops.Requester``. It also serves ``/mturk/externalSubmit``, where a
worker's page posts the assignment back, so a browser can go the whole way. It is as strict as MTurk where
crowdnb's money depends on it: a form holding nothing but ``assignmentId`` is refused (the assignment stays
Accepted and can never be paid), and a ``SendBonus`` repeated with a ``UniqueRequestToken`` it already paid
is refused with a wording nobody should match on (the docs promise only "a message containing the
request ID").

::

    fake = FakeMTurk().start()
    os.environ.update(fake.environ())          # endpoint and throwaway keys for this process
    assignment = fake.accept("A1WORKER")       # a worker accepts a HIT on the worker site …
    page = fake.worker_url(assignment)         # … and MTurk opens the task with its URL parameters
    fake.fail("SendBonus", "timeout")          # the next SendBonus is paid, but its answer comes too late
    gate = fake.hold("AssociateQualificationWithWorker")   # the next one is done, its answer kept …
    gate.set()                                 # … until now
    fake.stop()

Nothing is signed or checked against AWS: any keys are accepted. Answers never leave the machine.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, request
from markupsafe import escape

from . import Listening, mturk_ops
from .mturk_state import JSON, Profile, Requester, TurkError

log = logging.getLogger(__name__)

TARGET = "MTurkRequesterServiceV20170117."
PREVIEW = "ASSIGNMENT_ID_NOT_AVAILABLE"
FAULTS = ("500", "timeout", "throttle")


@dataclass
class Fault:
    """An injected failure of one operation: an HTTP 500, throttling, a reply slower than the client waits, or
    a reply held until a test releases it (``gate``)."""

    kind: str
    delay: float
    gate: threading.Event | None = None


class FakeMTurk:
    """A stateful MTurk requester endpoint with worker-side controls and failure injection."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.offset = 0.0  # seconds added to the wall clock (``advance``)
        self.requester = Requester(clock=self.now)
        self.calls: list[str] = []  # every operation received, failed ones included, in order
        self.submits: list[dict[str, str]] = []  # every form posted to /mturk/externalSubmit
        self._faults: dict[str, deque[Fault]] = {}
        self._lock = threading.Lock()
        self._listening: Listening | None = None

    # --- the server ----------------------------------------------------------------------------
    def start(self) -> FakeMTurk:
        """Serve on a free port (or ``port``) from a daemon thread; returns self."""
        self._listening = Listening(self._app(), self.host, self.port, "fake-mturk")
        self.port = self._listening.port
        log.info("fake MTurk listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._listening is not None:
            self._listening.close()
            self._listening = None

    def __enter__(self) -> FakeMTurk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint URL (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def environ(self) -> dict[str, str]:
        """Environment variables pointing boto3's MTurk client here, with throwaway keys."""
        return {
            "AWS_ENDPOINT_URL_MTURK": self.url,
            "AWS_ACCESS_KEY_ID": "FAKEACCESSKEY",
            "AWS_SECRET_ACCESS_KEY": "fake-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def now(self) -> float:
        """The fake's clock: the wall clock moved on by ``advance``."""
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on (assignment deadlines, auto-approval, token lifetimes, HIT expiry)."""
        self.offset += seconds

    def fail(self, operation: str, kind: str = "500", times: int = 1, delay: float = 3.0) -> None:
        """Make the next ``times`` calls of ``operation`` fail: "500", "throttle" (neither is carried out),
        or "timeout" (carried out, but answered only after ``delay`` seconds)."""
        if kind not in FAULTS:
            raise ValueError(f"fault {kind!r} is not one of {', '.join(FAULTS)}")
        with self._lock:
            self._faults.setdefault(operation, deque()).extend(Fault(kind, delay) for _ in range(times))

    def hold(self, operation: str, longest: float = 60.0) -> threading.Event:
        """Carry out the next call of ``operation`` but keep its answer until the returned event is set (at
        most ``longest`` seconds): a platform exactly as slow as a test needs, with no clock involved."""
        gate = threading.Event()
        with self._lock:
            self._faults.setdefault(operation, deque()).append(Fault("hold", longest, gate))
        return gate

    def healthy(self) -> None:
        """Drop every failure not yet used."""
        with self._lock:
            self._faults.clear()

    def count(self, operation: str) -> int:
        """How many calls of ``operation`` arrived."""
        with self._lock:
            return self.calls.count(operation)

    def _next_fault(self, operation: str) -> Fault | None:
        with self._lock:
            self.calls.append(operation)
            queued = self._faults.get(operation)
            return queued.popleft() if queued else None

    def _app(self) -> Flask:
        app = Flask("crowdnb.testing.mturk")

        @app.post("/")
        def api() -> Response:
            target = request.headers.get("X-Amz-Target", "")
            if not target.startswith(TARGET):
                return _error(TurkError(f"unknown target {target!r}", kind="UnknownOperationException"))
            operation = target[len(TARGET) :]
            fault = self._next_fault(operation)
            if fault is not None and fault.kind == "500":
                return _error(TurkError("Internal service failure (injected)", kind="ServiceFault", status=500))
            if fault is not None and fault.kind == "throttle":
                return _error(TurkError("Rate exceeded (injected)", kind="ThrottlingException"))
            try:
                body = json.loads(request.get_data() or b"{}")
                result = mturk_ops.call(self.requester, operation, body)
            except TurkError as exc:
                return _error(exc)
            if fault is not None and fault.gate is not None:  # held: done, answered when the test says
                fault.gate.wait(fault.delay)
            elif fault is not None:  # a timeout: the work is done, the answer comes too late
                time.sleep(fault.delay)
            return Response(json.dumps(result), mimetype="application/x-amz-json-1.1")

        @app.route("/mturk/externalSubmit", methods=["GET", "POST"])
        def external_submit() -> Response:
            form = {k: v for k, v in (request.form or request.args).items()}
            with self._lock:
                self.submits.append(dict(form))
            assignment = form.pop("assignmentId", "")
            try:
                self.requester.submit(assignment, form)
            except TurkError as exc:
                return Response(f"<h1>Could not submit</h1><p>{exc.message}</p>", status=400, mimetype="text/html")
            return Response("<h1 id='mturk-submitted'>HIT submitted</h1>", mimetype="text/html")

        @app.get("/mturk/task")
        def task_frame() -> Response:
            # the worker site shows the ExternalQuestion in a frame, as MTurk does
            assignment = request.args.get("assignmentId", "")
            try:
                src = self.worker_url(assignment) if assignment else self.preview_url(request.args.get("hitId"))
            except (KeyError, StopIteration):
                return Response("<h1>No such HIT or assignment</h1>", status=404, mimetype="text/html")
            page = (
                "<!doctype html><title>Fake MTurk</title><h1>Fake MTurk worker site</h1>"
                f'<iframe id="task" src="{escape(src)}" style="width:100%;height:80vh;border:1px solid #888"></iframe>'
            )
            return Response(page, mimetype="text/html")

        return app

    def frame_url(self, assignment_id: str | None = None, hit_id: str | None = None) -> str:
        """The fake worker site's page showing the task in a frame: an assignment's, or a HIT's preview."""
        return f"{self.url}/mturk/task?" + urlencode(
            {"assignmentId": assignment_id} if assignment_id else {"hitId": hit_id or ""}
        )

    # --- what workers do on the worker site ----------------------------------------------------
    def accept(self, worker: str, hit_id: str | None = None) -> str:
        """``worker`` accepts ``hit_id`` (or the first Assignable HIT); returns the assignment id.

        Refused with ``TurkError`` like the worker site would: no HIT left, worker blocked, a
        qualification requirement unmet.
        """
        return self.requester.accept(worker, hit_id).id

    def worker_url(self, assignment_id: str) -> str:
        """The URL MTurk opens in its frame for an accepted assignment."""
        a = self.requester.assignments[assignment_id]
        hit = self.requester.hits[a.hit_id]
        params = {"assignmentId": a.id, "hitId": hit.id, "workerId": a.worker, "turkSubmitTo": self.url}
        return _with_query(hit.url, params)

    def preview_url(self, hit_id: str | None = None) -> str:
        """The URL MTurk opens for a preview (no worker has accepted): ``ASSIGNMENT_ID_NOT_AVAILABLE``."""
        hit = self.requester.hits[hit_id] if hit_id else next(h for h in self.requester.hits.values() if not h.deleted)
        return _with_query(hit.url, {"assignmentId": PREVIEW, "hitId": hit.id})

    def return_assignment(self, assignment_id: str) -> None:
        """The worker returns the HIT: it is Assignable again."""
        self.requester.release(assignment_id, "Returned")

    def abandon(self, assignment_id: str) -> None:
        """The worker lets the assignment's time run out."""
        self.requester.release(assignment_id, "Abandoned")

    def submit(self, assignment_id: str, answers: dict[str, str]) -> None:
        """The assignment is posted to externalSubmit with ``answers`` (what a worker's page does at the end);
        refused like the real form post when ``answers`` is empty."""
        self.requester.submit(assignment_id, answers)

    def profile(self, worker: str, **attributes: Any) -> None:
        """Set what MTurk knows about ``worker`` (locale=("US", None), approval_rate, approved_hits, adult, masters)."""
        with self.requester.lock:
            found = self.requester.profiles.setdefault(worker, Profile())
            for name, value in attributes.items():
                if not hasattr(found, name):
                    raise ValueError(f"a worker profile has no {name!r}")
                setattr(found, name, value)

    # --- what tests read -----------------------------------------------------------------------
    def hits(self) -> list[JSON]:
        """Every HIT not deleted, as GetHIT describes it."""
        with self.requester.lock:
            return [self.requester.hit_json(h) for h in self.requester.hits.values() if not h.deleted]

    def assignment(self, assignment_id: str) -> JSON:
        """An assignment as GetAssignment describes it, whatever its status."""
        with self.requester.lock:
            return self.requester.assignment_json(self.requester.assignments[assignment_id])

    def bonuses(self, worker: str | None = None) -> list[JSON]:
        """Bonuses actually paid (the ledger), optionally of one worker."""
        with self.requester.lock:
            return [dict(b) for b in self.requester.bonuses if worker is None or b["WorkerId"] == worker]

    def score(self, qualification_name: str, worker: str) -> int | None:
        """The value ``worker`` holds for the qualification type named ``qualification_name``."""
        with self.requester.lock:
            for type_id, qual in self.requester.qualification_types.items():
                if qual["Name"] == qualification_name:
                    return self.requester.scores.get((type_id, worker))
        return None


def _error(exc: TurkError) -> Response:
    body: dict[str, Any] = {"__type": exc.kind, "Message": exc.message}
    if exc.turk_code:
        body["TurkErrorCode"] = exc.turk_code
    return Response(json.dumps(body), status=exc.status, mimetype="application/x-amz-json-1.1")


def _with_query(url: str, params: dict[str, str]) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)
