"""The state of the fake MTurk requester account, and what workers do on the worker site.

A HIT is Assignable while it has room and has not expired, Unassignable while someone holds it, and
Reviewable once nothing is pending. MTurk's clock-driven changes (an accepted assignment abandoned at its
deadline, a submitted one approved after the auto-approval delay) happen on the next call (``tick``).
The operations themselves are in ``mturk_ops``.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

TOKEN_LIFETIME = 24 * 3600.0
FEE = Decimal("0.20")
# system qualification type ids → the worker profile attribute they read
SYSTEM = {
    "000000000000000000L0": "approval_rate",
    "00000000000000000040": "approved_hits",
    "00000000000000000071": "locale",
    "00000000000000000060": "adult",
    "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6": "masters",  # sandbox
    "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH": "masters",  # production
}
_URL = re.compile(r"<ExternalURL>\s*(.*?)\s*</ExternalURL>", re.S)
JSON = dict[str, Any]


class TurkError(Exception):
    """A refused call: HTTP 400 with ``__type`` RequestError (or another code, e.g. ThrottlingException)."""

    def __init__(self, message: str, turk_code: str = "", kind: str = "RequestError", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.turk_code, self.kind, self.status = message, turk_code, kind, status


@dataclass
class Profile:
    """What MTurk knows about a fake worker (read by system qualification requirements)."""

    locale: tuple[str, str | None] = ("US", None)
    approval_rate: int = 99
    approved_hits: int = 5000
    adult: int = 1
    masters: bool = False


@dataclass
class Assignment:
    """One worker's assignment; ``status`` is Accepted, Submitted, Approved, Rejected, Returned or Abandoned."""

    id: str
    hit_id: str
    worker: str
    accepted_at: float
    deadline: float
    status: str = "Accepted"
    submitted_at: float | None = None
    auto_approve_at: float | None = None
    decided_at: float | None = None
    answer: str = ""
    feedback: str | None = None


@dataclass
class Hit:
    """A HIT and the properties of its HIT type."""

    id: str
    type_id: str
    group_id: str
    created: float
    expires: float
    props: JSON
    question: str
    max_assignments: int
    annotation: str | None
    deleted: bool = False
    assignments: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The ExternalURL of the HIT's ExternalQuestion."""
        found = _URL.search(self.question)
        return found.group(1).replace("&amp;", "&") if found else ""


def new_id(prefix: str = "3") -> str:
    """An MTurk-looking id (30 characters)."""
    return (prefix + uuid.uuid4().hex.upper())[:30]


def money(value: object, what: str) -> Decimal:
    """Dollars from an MTurk amount string; ``TurkError`` unless whole cents ≥ 0."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise TurkError(f"{what} {value!r} is not a valid amount") from exc
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise TurkError(f"{what} {value!r} must be dollars with at most two decimals")
    return amount


class Requester:
    """One requester's account: HIT types, HITs, assignments, qualifications, blocks, bonuses, messages."""

    def __init__(self, clock: Callable[[], float] = time.time, balance: str = "10000.00") -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.balance = Decimal(balance)
        self.hit_types: dict[str, JSON] = {}
        self.hits: dict[str, Hit] = {}
        self.assignments: dict[str, Assignment] = {}
        self.qualification_types: dict[str, JSON] = {}
        self.scores: dict[tuple[str, str], int] = {}  # (type id, worker) → value
        self.blocks: dict[str, str] = {}
        self.bonuses: list[JSON] = []  # the ledger: every bonus actually paid
        self.messages: list[JSON] = []
        self.profiles: dict[str, Profile] = {}
        self._tokens: dict[str, tuple[float, str]] = {}  # UniqueRequestToken → (when, what it made)

    # --- derived state -------------------------------------------------------------------------
    def tick(self) -> None:
        """Abandon overdue assignments and auto-approve due ones, as MTurk does on its own."""
        now = self.clock()
        for a in self.assignments.values():
            if a.status == "Accepted" and now >= a.deadline:
                a.status = "Abandoned"
            elif a.status == "Submitted" and a.auto_approve_at is not None and now >= a.auto_approve_at:
                self.pay_reward(a)
                a.status, a.decided_at = "Approved", now

    def counts(self, hit: Hit) -> tuple[int, int, int, int]:
        """(pending, submitted, completed, available) assignments of ``hit``."""
        statuses = [self.assignments[a].status for a in hit.assignments]
        pending = statuses.count("Accepted")
        submitted = statuses.count("Submitted")
        completed = statuses.count("Approved") + statuses.count("Rejected")
        open_ = hit.expires > self.clock() and not hit.deleted
        available = max(hit.max_assignments - pending - submitted - completed, 0) if open_ else 0
        return pending, submitted, completed, available

    def status(self, hit: Hit) -> str:
        """Assignable, Unassignable, Reviewable or Disposed."""
        if hit.deleted:
            return "Disposed"
        pending, _, _, available = self.counts(hit)
        if available:
            return "Assignable"
        return "Unassignable" if pending else "Reviewable"

    def hit_json(self, hit: Hit) -> JSON:
        """A HIT as GetHIT describes it."""
        pending, _, completed, available = self.counts(hit)
        props = hit.props
        return {
            "HITId": hit.id,
            "HITTypeId": hit.type_id,
            "HITGroupId": hit.group_id,
            "CreationTime": hit.created,
            "Title": props["Title"],
            "Description": props["Description"],
            "Question": hit.question,
            "Keywords": props.get("Keywords", ""),
            "HITStatus": self.status(hit),
            "MaxAssignments": hit.max_assignments,
            "Reward": props["Reward"],
            "AutoApprovalDelayInSeconds": props.get("AutoApprovalDelayInSeconds", 2592000),
            "Expiration": hit.expires,
            "AssignmentDurationInSeconds": props["AssignmentDurationInSeconds"],
            "RequesterAnnotation": hit.annotation or "",
            "QualificationRequirements": props.get("QualificationRequirements", []),
            "HITReviewStatus": "NotReviewed",
            "NumberOfAssignmentsPending": pending,
            "NumberOfAssignmentsAvailable": available,
            "NumberOfAssignmentsCompleted": completed,
        }

    def assignment_json(self, a: Assignment) -> JSON:
        """An assignment as GetAssignment describes it."""
        out: JSON = {
            "AssignmentId": a.id,
            "WorkerId": a.worker,
            "HITId": a.hit_id,
            "AssignmentStatus": a.status,
            "AcceptTime": a.accepted_at,
            "Deadline": a.deadline,
            "Answer": a.answer,
        }
        if a.submitted_at is not None:
            out["SubmitTime"] = a.submitted_at
        if a.auto_approve_at is not None:
            out["AutoApprovalTime"] = a.auto_approve_at
        if a.decided_at is not None:
            out["ApprovalTime" if a.status == "Approved" else "RejectionTime"] = a.decided_at
        if a.feedback:
            out["RequesterFeedback"] = a.feedback
        return out

    def hit(self, hit_id: object) -> Hit:
        """A HIT that was not deleted; ``TurkError`` otherwise."""
        found = self.hits.get(str(hit_id))
        if found is None or found.deleted:
            raise TurkError(f"Hit {hit_id} does not exist. (1574000000000)", "AWS.MechanicalTurk.HITDoesNotExist")
        return found

    def assignment(self, assignment_id: object) -> Assignment:
        """A submitted or reviewed assignment (MTurk does not show others); ``TurkError`` otherwise."""
        found = self.assignments.get(str(assignment_id))
        if found is None or found.status in ("Accepted", "Returned", "Abandoned"):
            raise TurkError(f"Assignment {assignment_id} does not exist.", "AWS.MechanicalTurk.AssignmentDoesNotExist")
        return found

    def token(self, token: object, made: str | None = None) -> str | None:
        """What an earlier call with ``token`` made (within 24 hours), or remember that it made ``made``."""
        if not token:
            return None
        now = self.clock()
        seen = self._tokens.get(str(token))
        if made is None:
            return seen[1] if seen and now - seen[0] < TOKEN_LIFETIME else None
        self._tokens[str(token)] = (now, made)
        return made

    def pay_reward(self, a: Assignment) -> None:
        """Take the reward and MTurk's fee from the balance."""
        reward = Decimal(self.hits[a.hit_id].props["Reward"])
        self.balance -= reward + max(reward * FEE, Decimal("0.01"))

    # --- HITs ----------------------------------------------------------------------------------
    def qualification_type(self, type_id: object) -> JSON:
        """A qualification type; ``TurkError`` when there is none."""
        found = self.qualification_types.get(str(type_id))
        if found is None:
            raise TurkError(f"QualificationType {type_id} does not exist.")
        return found

    @staticmethod
    def page(body: JSON, rows: list[JSON], key: str) -> JSON:
        """One page of ``rows`` (``MaxResults``, ``NextToken``) under ``key``."""
        size = int(body.get("MaxResults") or 10)
        if not 1 <= size <= 100:
            raise TurkError("MaxResults must be between 1 and 100")
        start = int(body.get("NextToken") or 0)
        page = rows[start : start + size]
        out: JSON = {"NumResults": len(page), key: page}
        if start + size < len(rows):
            out["NextToken"] = str(start + size)
        return out

    # --- what a worker does on the worker site -------------------------------------------------
    def accept(self, worker: str, hit_id: str | None = None) -> Assignment:
        """``worker`` accepts ``hit_id`` (or the first Assignable HIT); refused like MTurk would."""
        with self.lock:
            self.tick()
            if worker in self.blocks:
                raise TurkError(f"worker {worker} is blocked by this requester")
            hits = [self.hit(hit_id)] if hit_id else list(self.hits.values())
            hit = next((h for h in hits if self.status(h) == "Assignable"), None)
            if hit is None:
                raise TurkError("no HIT of this requester is available")
            unmet = self._unmet(worker, hit.props.get("QualificationRequirements", []))
            if unmet:
                raise TurkError(f"worker {worker} does not meet the qualification {unmet}")
            now = self.clock()
            a = Assignment(new_id(), hit.id, worker, now, now + int(hit.props["AssignmentDurationInSeconds"]))
            self.assignments[a.id] = a
            hit.assignments.append(a.id)
            return a

    def release(self, assignment_id: str, status: str) -> None:
        """The worker returns (``Returned``) or abandons (``Abandoned``) an accepted assignment."""
        with self.lock:
            self.tick()
            a = self.assignments[assignment_id]
            if a.status != "Accepted":
                raise TurkError(f"assignment {a.id} is {a.status}, not Accepted")
            a.status = status

    def submit(self, assignment_id: str, answers: dict[str, str]) -> Assignment:
        """What /mturk/externalSubmit does: the accepted assignment becomes Submitted (refused, as on MTurk,
        when the form carries nothing but ``assignmentId``)."""
        with self.lock:
            self.tick()
            a = self.assignments.get(assignment_id)
            if a is None or a.status != "Accepted":
                raise TurkError(f"assignment {assignment_id} cannot be submitted now")
            if not answers:  # MTurk refuses a form whose only field is assignmentId: the HIT stays Accepted
                raise TurkError(f"the form for assignment {assignment_id} holds no field besides assignmentId")
            hit = self.hits[a.hit_id]
            now = self.clock()
            fields = "".join(
                f"<Answer><QuestionIdentifier>{k}</QuestionIdentifier><FreeText>{v}</FreeText></Answer>"
                for k, v in answers.items()
            )
            a.answer = f"<QuestionFormAnswers>{fields}</QuestionFormAnswers>"
            a.status, a.submitted_at = "Submitted", now
            a.auto_approve_at = now + int(hit.props.get("AutoApprovalDelayInSeconds", 2592000))
            return a

    def _unmet(self, worker: str, requirements: list[JSON]) -> str | None:
        profile = self.profiles.get(worker, Profile())
        for req in requirements:
            type_id = req["QualificationTypeId"]
            if type_id in SYSTEM:
                attr = SYSTEM[type_id]
                held: Any = getattr(profile, attr)
                if attr == "masters":
                    held = 1 if held else None
            else:
                held = self.scores.get((type_id, worker))
            if not _meets(held, req):
                return type_id
        return None


def _meets(held: Any, req: JSON) -> bool:
    comparator = req["Comparator"]
    if comparator == "Exists":
        return held is not None
    if comparator == "DoesNotExist":
        return held is None
    if held is None:
        return False
    if isinstance(held, tuple):  # a locale: (country, subdivision)
        values = [(v["Country"], v.get("Subdivision")) for v in req.get("LocaleValues", [])]
        inside = any(c == held[0] and (s is None or s == held[1]) for c, s in values)
        return inside if comparator in ("EqualTo", "In") else not inside
    ints = req.get("IntegerValues", [])
    tests: dict[str, Callable[[int], bool]] = {
        "EqualTo": lambda h: h == ints[0],
        "NotEqualTo": lambda h: h != ints[0],
        "GreaterThan": lambda h: h > ints[0],
        "GreaterThanOrEqualTo": lambda h: h >= ints[0],
        "LessThan": lambda h: h < ints[0],
        "LessThanOrEqualTo": lambda h: h <= ints[0],
        "In": lambda h: h in ints,
        "NotIn": lambda h: h not in ints,
    }
    return tests[comparator](int(held))
