"""The operations of the fake MTurk requester API, with MTurk's own rules.

Each operation takes the ``Requester`` state and the decoded JSON body of one call and returns the JSON
answer; a ``TurkError`` becomes MTurk's ``{"__type": "RequestError", "Message": …}``. The rules follow
the 2017-01-17 API reference: only a Reviewable HIT whose submitted assignments are all approved or
rejected can be deleted; a rejected assignment is approved only with ``OverrideRejection``;
``CreateHIT*`` and ``SendBonus`` are idempotent per ``UniqueRequestToken`` for 24 hours (a repeated
``SendBonus`` is refused with a message naming only the earlier request);
``ListAssignmentsForHIT`` sees only Submitted, Approved and Rejected assignments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import Decimal

from .mturk_state import FEE, JSON, Hit, Requester, TurkError, money, new_id

page = Requester.page


# --- HITs ----------------------------------------------------------------------------------------
def create_hit_type(r: Requester, body: JSON) -> JSON:
    """CreateHITType: the same properties give the same HIT type id, as on MTurk."""
    for key in ("Title", "Description", "Reward", "AssignmentDurationInSeconds"):
        if not body.get(key):
            raise TurkError(f"{key} is required")
    money(body["Reward"], "Reward")
    if not 30 <= int(body["AssignmentDurationInSeconds"]) <= 31536000:
        raise TurkError("AssignmentDurationInSeconds must be between 30 and 31536000")
    props = {k: body[k] for k in sorted(body)}
    # MTurk answers the same HIT type id for the same properties
    type_id = "3" + hashlib.sha256(repr(props).encode()).hexdigest().upper()[:29]
    r.hit_types[type_id] = props
    return {"HITTypeId": type_id}


def create_hit_with_hit_type(r: Requester, body: JSON) -> JSON:
    """CreateHITWithHITType: a new HIT, or HitAlreadyExists for a token seen in the last 24 hours."""
    earlier = r.token(body.get("UniqueRequestToken"))
    if earlier is not None:
        raise TurkError(
            f"The HIT with ID {earlier} already exists for this UniqueRequestToken.",
            "AWS.MechanicalTurk.HitAlreadyExists",
        )
    props = r.hit_types.get(str(body.get("HITTypeId")))
    if props is None:
        raise TurkError(f"HITType {body.get('HITTypeId')} does not exist.")
    lifetime = int(body.get("LifetimeInSeconds", 0))
    if not 30 <= lifetime <= 31536000:
        raise TurkError("LifetimeInSeconds must be between 30 and 31536000")
    question = str(body.get("Question") or "")
    if "<ExternalQuestion" not in question and "<HTMLQuestion" not in question:
        raise TurkError("Question must be an ExternalQuestion or HTMLQuestion")
    annotation = body.get("RequesterAnnotation")
    if annotation is not None and len(annotation) > 255:
        raise TurkError("RequesterAnnotation is longer than 255 characters")
    now = r.clock()
    hit = Hit(
        new_id(),
        str(body["HITTypeId"]),
        str(body["HITTypeId"]).replace("3", "G", 1),
        now,
        now + lifetime,
        props,
        question,
        int(body.get("MaxAssignments", 1)),
        annotation,
    )
    r.hits[hit.id] = hit
    r.token(body.get("UniqueRequestToken"), hit.id)
    return {"HIT": r.hit_json(hit)}


def create_hit(r: Requester, body: JSON) -> JSON:
    """CreateHIT: a HIT type and a HIT in one call."""
    type_body = {k: body[k] for k in body if k in _TYPE_KEYS}
    created = create_hit_type(r, type_body)
    return create_hit_with_hit_type(r, {**{k: body[k] for k in body if k not in _TYPE_KEYS}, **created})


def get_hit(r: Requester, body: JSON) -> JSON:
    """GetHIT."""
    return {"HIT": r.hit_json(r.hit(body.get("HITId")))}


def list_hits(r: Requester, body: JSON) -> JSON:
    """ListHITs: every HIT not deleted, paginated."""
    hits = [h for h in r.hits.values() if not h.deleted]
    return page(body, [r.hit_json(h) for h in hits], "HITs")


def update_expiration_for_hit(r: Requester, body: JSON) -> JSON:
    """UpdateExpirationForHIT: a time in the past expires the HIT at once."""
    hit = r.hit(body.get("HITId"))
    if body.get("ExpireAt") is None:
        raise TurkError("ExpireAt is required")
    hit.expires = float(body["ExpireAt"])  # in the past: expired at once
    return {}


def delete_hit(r: Requester, body: JSON) -> JSON:
    """DeleteHIT: only a Reviewable HIT with no assignment awaiting review."""
    hit = r.hit(body.get("HITId"))
    state = r.status(hit)
    if state != "Reviewable":
        raise TurkError(
            f"This HIT is currently in the state '{state}'.  This operation can be called with a status of: Reviewable"
        )
    if any(r.assignments[a].status == "Submitted" for a in hit.assignments):
        raise TurkError("This HIT has submitted assignments that are neither approved nor rejected.")
    hit.deleted = True
    return {}


# --- assignments ---------------------------------------------------------------------------
def list_assignments_for_hit(r: Requester, body: JSON) -> JSON:
    """ListAssignmentsForHIT: Submitted, Approved and Rejected assignments only."""
    hit = r.hit(body.get("HITId"))
    wanted = set(body.get("AssignmentStatuses") or ("Submitted", "Approved", "Rejected"))
    found = [r.assignments[a] for a in hit.assignments]
    rows = [r.assignment_json(a) for a in found if a.status in wanted]
    return page(body, rows, "Assignments")


def get_assignment(r: Requester, body: JSON) -> JSON:
    """GetAssignment: a submitted (or reviewed) assignment and its HIT."""
    a = r.assignment(body.get("AssignmentId"))
    return {"Assignment": r.assignment_json(a), "HIT": r.hit_json(r.hits[a.hit_id])}


def approve_assignment(r: Requester, body: JSON) -> JSON:
    """ApproveAssignment: a Submitted one, or a Rejected one with OverrideRejection."""
    a = r.assignment(body.get("AssignmentId"))
    if a.status == "Rejected" and not body.get("OverrideRejection"):
        raise TurkError(
            f"Assignment {a.id} was rejected; approve it with OverrideRejection=true.",
            "AWS.MechanicalTurk.InvalidAssignmentState",
        )
    if a.status not in ("Submitted", "Rejected"):
        raise TurkError(
            f"This operation can be called with a status of: Submitted (assignment {a.id} is {a.status})",
            "AWS.MechanicalTurk.InvalidAssignmentState",
        )
    if r.hits[a.hit_id].deleted:
        raise TurkError(f"The HIT of assignment {a.id} was deleted.")
    r.pay_reward(a)
    a.status, a.decided_at, a.feedback = "Approved", r.clock(), body.get("RequesterFeedback")
    return {}


def reject_assignment(r: Requester, body: JSON) -> JSON:
    """RejectAssignment: a Submitted one, with RequesterFeedback."""
    a = r.assignment(body.get("AssignmentId"))
    if not body.get("RequesterFeedback"):
        raise TurkError("RequesterFeedback is required to reject an assignment")
    if a.status != "Submitted":
        raise TurkError(
            f"This operation can be called with a status of: Submitted (assignment {a.id} is {a.status})",
            "AWS.MechanicalTurk.InvalidAssignmentState",
        )
    a.status, a.decided_at, a.feedback = "Rejected", r.clock(), body["RequesterFeedback"]
    return {}


# --- money ---------------------------------------------------------------------------------
def send_bonus(r: Requester, body: JSON) -> JSON:
    """SendBonus: paid once per UniqueRequestToken (for 24 hours), into the ledger."""
    earlier = r.token(body.get("UniqueRequestToken"))
    if earlier is not None:
        # the API reference promises only "an error with a message containing the request ID": no code, no
        # wording a client could rely on. A client that cannot tell this from a refusal reads ListBonusPayments.
        raise TurkError(f"Request {earlier} was processed before and is not repeated.")
    a = r.assignment(body.get("AssignmentId"))
    if a.worker != body.get("WorkerId"):
        raise TurkError(f"Worker {body.get('WorkerId')} did not work on assignment {a.id}.")
    amount = money(body.get("BonusAmount"), "BonusAmount")
    if amount <= 0 or not body.get("Reason"):
        raise TurkError("A bonus needs a positive BonusAmount and a Reason")
    cost = amount + max(amount * FEE, Decimal("0.01"))
    if cost > r.balance:
        raise TurkError("This Requester has insufficient funds in their account to complete this transaction.")
    r.balance -= cost
    payment = {
        "WorkerId": a.worker,
        "BonusAmount": f"{amount:.2f}",
        "AssignmentId": a.id,
        "Reason": body["Reason"],
        "GrantTime": r.clock(),
    }
    r.bonuses.append(payment)
    r.token(body.get("UniqueRequestToken"), new_id("B"))
    return {}


def list_bonus_payments(r: Requester, body: JSON) -> JSON:
    """ListBonusPayments of a HIT or an assignment."""
    if bool(body.get("HITId")) == bool(body.get("AssignmentId")):
        raise TurkError("Give exactly one of HITId and AssignmentId")
    if body.get("HITId"):
        wanted = set(r.hit(body["HITId"]).assignments)
        rows = [b for b in r.bonuses if b["AssignmentId"] in wanted]
    else:
        rows = [b for b in r.bonuses if b["AssignmentId"] == body["AssignmentId"]]
    return page(body, rows, "BonusPayments")


def get_account_balance(r: Requester, body: JSON) -> JSON:
    """GetAccountBalance."""
    return {"AvailableBalance": f"{r.balance:.2f}", "OnHoldBalance": "0.00"}


# --- workers -------------------------------------------------------------------------------
def notify_workers(r: Requester, body: JSON) -> JSON:
    """NotifyWorkers: a HardFailure for workers who never worked for this requester."""
    subject, text, workers = body.get("Subject") or "", body.get("MessageText") or "", body.get("WorkerIds") or []
    if not subject or len(subject) > 200 or not text or len(text) > 4096 or not 1 <= len(workers) <= 100:
        raise TurkError("NotifyWorkers needs a Subject (≤200), a MessageText (≤4096) and 1–100 WorkerIds")
    known = {a.worker for a in r.assignments.values()}
    failures = []
    for worker in workers:
        if worker in known:
            r.messages.append({"WorkerId": worker, "Subject": subject, "MessageText": text})
        else:
            failures.append(
                {
                    "NotifyWorkersFailureCode": "HardFailure",
                    "NotifyWorkersFailureMessage": f"Worker {worker} has not worked for this requester.",
                    "WorkerId": worker,
                }
            )
    return {"NotifyWorkersFailureStatuses": failures}


def create_worker_block(r: Requester, body: JSON) -> JSON:
    """CreateWorkerBlock: the worker can no longer accept this requester's HITs."""
    if not body.get("WorkerId") or not body.get("Reason"):
        raise TurkError("CreateWorkerBlock needs a WorkerId and a Reason")
    r.blocks[str(body["WorkerId"])] = str(body["Reason"])
    return {}


def delete_worker_block(r: Requester, body: JSON) -> JSON:
    """DeleteWorkerBlock."""
    r.blocks.pop(str(body.get("WorkerId")), None)
    return {}


def list_worker_blocks(r: Requester, body: JSON) -> JSON:
    """ListWorkerBlocks."""
    rows = [{"WorkerId": w, "Reason": r} for w, r in r.blocks.items()]
    return page(body, rows, "WorkerBlocks")


# --- qualifications ------------------------------------------------------------------------
def create_qualification_type(r: Requester, body: JSON) -> JSON:
    """CreateQualificationType: names are unique per requester."""
    name, description = body.get("Name"), body.get("Description")
    if not name or not description or body.get("QualificationTypeStatus") not in ("Active", "Inactive"):
        raise TurkError("CreateQualificationType needs a Name, a Description and a QualificationTypeStatus")
    if any(q["Name"] == name for q in r.qualification_types.values()):
        raise TurkError(
            "You have already created a QualificationType with this name. A QualificationType's name must be "
            "unique among all of the QualificationTypes created by the same user."
        )
    qual = {
        "QualificationTypeId": new_id(),
        "CreationTime": r.clock(),
        "Name": name,
        "Description": description,
        "Keywords": body.get("Keywords", ""),
        "QualificationTypeStatus": body["QualificationTypeStatus"],
        "IsRequestable": False,
        "AutoGranted": bool(body.get("AutoGranted", False)),
    }
    r.qualification_types[qual["QualificationTypeId"]] = qual
    return {"QualificationType": qual}


def get_qualification_type(r: Requester, body: JSON) -> JSON:
    """GetQualificationType."""
    return {"QualificationType": r.qualification_type(body.get("QualificationTypeId"))}


def list_qualification_types(r: Requester, body: JSON) -> JSON:
    """ListQualificationTypes: ``Query`` searches names, descriptions and keywords."""
    if "MustBeRequestable" not in body:
        raise TurkError("MustBeRequestable is required")
    query = str(body.get("Query") or "").lower()
    rows = [
        q
        for q in r.qualification_types.values()
        if query in f"{q['Name']} {q['Description']} {q['Keywords']}".lower()
        and (q["IsRequestable"] or not body["MustBeRequestable"])
    ]
    return page(body, rows, "QualificationTypes")


def associate_qualification_with_worker(r: Requester, body: JSON) -> JSON:
    """AssociateQualificationWithWorker: sets the worker's integer value."""
    r.qualification_type(body.get("QualificationTypeId"))
    if not body.get("WorkerId"):
        raise TurkError("WorkerId is required")
    r.scores[(str(body["QualificationTypeId"]), str(body["WorkerId"]))] = int(body.get("IntegerValue", 1))
    return {}


def disassociate_qualification_from_worker(r: Requester, body: JSON) -> JSON:
    """DisassociateQualificationFromWorker."""
    r.qualification_type(body.get("QualificationTypeId"))
    r.scores.pop((str(body.get("QualificationTypeId")), str(body.get("WorkerId"))), None)
    return {}


def get_qualification_score(r: Requester, body: JSON) -> JSON:
    """GetQualificationScore."""
    key = (str(body.get("QualificationTypeId")), str(body.get("WorkerId")))
    if key not in r.scores:
        raise TurkError(f"You requested a Qualification that does not exist. ({key[1]})")
    value = r.scores[key]
    qual = {"QualificationTypeId": key[0], "WorkerId": key[1], "IntegerValue": value, "Status": "Granted"}
    return {"Qualification": {**qual, "GrantTime": r.clock()}}


def list_workers_with_qualification_type(r: Requester, body: JSON) -> JSON:
    """ListWorkersWithQualificationType."""
    type_id = str(body.get("QualificationTypeId"))
    r.qualification_type(type_id)
    rows = [
        {"QualificationTypeId": t, "WorkerId": w, "IntegerValue": v, "Status": "Granted"}
        for (t, w), v in r.scores.items()
        if t == type_id
    ]
    return page(body, rows, "Qualifications")


_TYPE_KEYS = (
    "AutoApprovalDelayInSeconds",
    "AssignmentDurationInSeconds",
    "Reward",
    "Title",
    "Keywords",
    "Description",
    "QualificationRequirements",
)


def call(r: Requester, operation: str, body: JSON) -> JSON:
    """Run one operation (under the lock, after MTurk's own clock-driven changes)."""
    op = OPERATIONS.get(operation)
    if op is None:
        raise TurkError(f"operation {operation} is not implemented by the fake", kind="UnknownOperationException")
    with r.lock:
        r.tick()
        return op(r, body)


OPERATIONS: dict[str, Callable[[Requester, JSON], JSON]] = {
    "CreateHITType": create_hit_type,
    "CreateHITWithHITType": create_hit_with_hit_type,
    "CreateHIT": create_hit,
    "GetHIT": get_hit,
    "ListHITs": list_hits,
    "UpdateExpirationForHIT": update_expiration_for_hit,
    "DeleteHIT": delete_hit,
    "ListAssignmentsForHIT": list_assignments_for_hit,
    "GetAssignment": get_assignment,
    "ApproveAssignment": approve_assignment,
    "RejectAssignment": reject_assignment,
    "SendBonus": send_bonus,
    "ListBonusPayments": list_bonus_payments,
    "GetAccountBalance": get_account_balance,
    "NotifyWorkers": notify_workers,
    "CreateWorkerBlock": create_worker_block,
    "DeleteWorkerBlock": delete_worker_block,
    "ListWorkerBlocks": list_worker_blocks,
    "CreateQualificationType": create_qualification_type,
    "GetQualificationType": get_qualification_type,
    "ListQualificationTypes": list_qualification_types,
    "AssociateQualificationWithWorker": associate_qualification_with_worker,
    "DisassociateQualificationFromWorker": disassociate_qualification_from_worker,
    "GetQualificationScore": get_qualification_score,
    "ListWorkersWithQualificationType": list_workers_with_qualification_type,
}
