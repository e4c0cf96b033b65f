"""The HTTP side of the fake Prolific: its REST API under /api/v1/, the completion redirect target and the
``/_fake/go/<session>`` door a participant's browser opens (it stands for being logged in to Prolific).
"""

from __future__ import annotations

import fnmatch
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, jsonify, redirect, request

from .prolific_words import API, CATEGORIES, STUDY_FIELDS, Refused, new_id, stamp

if TYPE_CHECKING:
    from .prolific import FakeProlific


def build_app(fake: FakeProlific) -> Flask:
    """The Flask app of ``fake``: Prolific's API under /api/v1/, the completion page and the test door."""
    app = Flask("crowdnb.testing.prolific")

    @app.before_request
    def gate() -> Any:
        if not request.path.startswith(API):
            return None
        if request.headers.get("Authorization") != f"Token {fake.token}":
            return jsonify({"error": {"status": 401, "detail": "Invalid token."}}), 401
        path, chosen = request.path[len(API) :], None
        with fake.lock:
            fake.log.append({"method": request.method, "path": path, "json": request.get_json(silent=True)})
            for fault in fake._faults:
                if fault["method"] == request.method and fnmatch.fnmatch(path, fault["pattern"]):
                    chosen = dict(fault)
                    if fault["times"] is not None:
                        fault["times"] -= 1
                    fake._faults = [f for f in fake._faults if f["times"] is None or f["times"] > 0]
                    break
        if chosen is None:
            return None
        g.delay = chosen["delay"]
        if chosen["status"] is None:
            return None
        time.sleep(chosen["delay"])
        headers = {"Retry-After": chosen["retry_after"]} if chosen.get("retry_after") is not None else {}
        detail = "Too many requests: try again later" if chosen["status"] == 429 else "Injected failure."
        return jsonify({"error": {"status": chosen["status"], "detail": detail}}), chosen["status"], headers

    @app.after_request
    def late(response: Response) -> Response:
        if getattr(g, "delay", 0) and response.status_code < 400:
            time.sleep(g.delay)  # the change is made; only the answer is late (the client times out)
        return response

    @app.errorhandler(Refused)
    def refused(exc: Refused) -> Any:
        if not request.path.startswith(API):
            return Response(f"<h1>Prolific</h1><p>{exc.detail}</p>", exc.status, mimetype="text/html")
        return jsonify({"error": {"status": exc.status, "detail": exc.detail}}), exc.status

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise Refused("the request body must be a JSON object")
        return data

    @app.get(API + "users/me/")
    def me() -> Any:
        return jsonify({"id": "5f0000000000000000000001", "name": "Fake Researcher", "currency_code": "USD"})

    @app.route(API + "workspaces/", methods=["GET", "POST"])
    def workspaces() -> Any:
        with fake.lock:
            if request.method == "GET":
                return fake._page(list(fake.workspaces.values()))
            data = body()
            if not data.get("title"):
                raise Refused("title is required")
            item = {"id": new_id(), "title": data["title"], "description": data.get("description", "")}
            fake.workspaces[item["id"]] = item
            return jsonify(item), 201

    @app.route(API + "workspaces/<wid>/projects/", methods=["GET", "POST"])
    def projects(wid: str) -> Any:
        with fake.lock:
            fake._get(fake.workspaces, wid, "workspace")
            if request.method == "GET":
                return fake._page([p for p in fake.projects.values() if p["workspace"] == wid])
            data = body()
            if not data.get("title"):
                raise Refused("title is required")
            item = {"id": new_id(), "title": data["title"], "workspace": wid}
            fake.projects[item["id"]] = item
            return jsonify(item), 201

    @app.route(API + "studies/", methods=["GET", "POST"])
    def studies() -> Any:
        with fake.lock:
            if request.method == "GET":
                return fake._page([fake._study_out(s) for s in fake.studies.values()])
            data = body()
            fake._check_study(data, draft=True)
            study: dict[str, Any] = {k: data.get(k) for k in STUDY_FIELDS}
            sid = new_id()
            study |= {"id": sid, "status": "UNPUBLISHED", "places_taken": 0, "date_created": stamp()}
            study |= {"_stopped": False, "_paused": False}
            fake.studies[sid] = study
            return jsonify(fake._study_out(study)), 201

    @app.get(API + "projects/<pid>/studies/")
    def project_studies(pid: str) -> Any:
        with fake.lock:
            fake._get(fake.projects, pid, "project")
            return fake._page([fake._study_out(s) for s in fake.studies.values() if s["project"] == pid])

    @app.route(API + "studies/<sid>/", methods=["GET", "PATCH", "DELETE"])
    def study(sid: str) -> Any:
        with fake.lock:
            item = fake._get(fake.studies, sid, "study")
            if request.method == "DELETE":
                if item["status"] != "UNPUBLISHED":
                    raise Refused("only a draft study can be deleted")
                del fake.studies[sid]
                return "", 204
            if request.method == "PATCH":
                data = body()
                if item["status"] != "UNPUBLISHED":
                    if set(data) - {"internal_name", "total_available_places"}:
                        raise Refused("a published study only takes internal_name and total_available_places")
                    places = data.get("total_available_places", item["total_available_places"])
                    if not isinstance(places, int) or places < item["total_available_places"]:
                        raise Refused("total_available_places can only be increased")
                    if places > item["total_available_places"]:
                        item["_stopped"] = False  # more places reopen a study (Mephisto's API notes)
                fake._check_study(data, draft=False)
                item.update({k: v for k, v in data.items() if k in STUDY_FIELDS})
                fake._refresh(item)
            return jsonify(fake._study_out(item))

    @app.post(API + "studies/<sid>/transition/")
    def study_transition(sid: str) -> Any:
        with fake.lock:
            item = fake._get(fake.studies, sid, "study")
            action, status = body().get("action"), item["status"]
            if action == "PUBLISH" and status == "UNPUBLISHED":
                if item["total_available_places"] < 1:
                    raise Refused("a study needs at least one place to be published")
                item.update(status="ACTIVE", published_at=stamp())
            elif action == "STOP" and status in ("ACTIVE", "PAUSED", "AWAITING REVIEW"):
                item["_stopped"] = True
            elif action in ("PAUSE", "START") and status in ("ACTIVE", "PAUSED"):
                item["_paused"] = action == "PAUSE"
            else:
                raise Refused(f"cannot {action} a study that is {status}")
            fake._refresh(item)
            return jsonify(fake._study_out(item))

    def short(s: dict[str, Any]) -> dict[str, Any]:
        return {"id": s["id"], "participant_id": s["participant"], "status": s["status"],
                "started_at": s["started_at"], "completed_at": s["completed_at"], "study_code": s["entered_code"]}  # fmt: skip

    @app.get(API + "studies/<sid>/submissions/")
    def study_submissions(sid: str) -> Any:
        with fake.lock:
            fake._get(fake.studies, sid, "study")
            return fake._page([short(s) for s in fake.submissions.values() if s["study_id"] == sid])

    @app.get(API + "submissions/")
    def submissions() -> Any:
        with fake.lock:
            wanted = request.args.get("study")
            return fake._page([short(s) for s in fake.submissions.values() if wanted in (None, s["study_id"])])

    @app.get(API + "submissions/<sid>/")
    def submission(sid: str) -> Any:
        with fake.lock:
            return jsonify(dict(fake._get(fake.submissions, sid, "submission")))

    @app.post(API + "submissions/<sid>/transition/")
    def submission_transition(sid: str) -> Any:
        with fake.lock:
            sub = fake._get(fake.submissions, sid, "submission")
            data = body()
            action = data.get("action")
            if action not in ("APPROVE", "REJECT"):
                raise Refused(f"unknown action {action!r}")
            if action == "REJECT":
                if len(str(data.get("message") or "")) < 100:
                    raise Refused("message: a rejection needs a message of at least 100 characters")
                if data.get("rejection_category") not in CATEGORIES:
                    raise Refused(f"rejection_category {data.get('rejection_category')!r} is not valid")
            if sub["status"] != "AWAITING REVIEW":
                raise Refused(f"submission {sid} is {sub['status']}; only one awaiting review can change")
            sub["status"] = "APPROVED" if action == "APPROVE" else "REJECTED"
            fake._refresh(fake.studies[sub["study_id"]])
            return jsonify(dict(sub))

    @app.post(API + "submissions/bonus-payments/")
    def bonus_setup() -> Any:
        with fake.lock:
            data = body()
            study_id = str(data.get("study_id") or "")
            fake._get(fake.studies, study_id, "study")
            rows, bad = [], []
            for line in str(data.get("csv_bonuses") or "").strip().splitlines():
                ident, _, amount = line.partition(",")
                subs = [s for s in fake.submissions.values() if s["study_id"] == study_id
                        and ident.strip() in (s["id"], s["participant"])]  # fmt: skip
                try:
                    cents = Decimal(amount.strip()) * 100
                except InvalidOperation:
                    cents = Decimal(0)
                if not subs or cents <= 0 or cents != cents.to_integral_value():
                    bad.append(ident.strip() or line)
                else:
                    rows.append((subs[0]["id"], subs[0]["participant"], int(cents)))
            if bad or not rows:
                raise Refused(f"these ids did not take part in the study or have a bad amount: {bad}")
            total = sum(r[2] for r in rows)
            fees = round(total / 3, 2)  # the docs' example shows a third of the amount as fees
            bid = new_id()
            setup = {
                "id": bid,
                "study": study_id,
                "amount": total,
                "fees": fees,
                "total_amount": total + fees,
                "vat": 0,
            }
            fake.setups[bid] = setup | {"_rows": rows}
            return jsonify(setup), 201

    @app.post(API + "bulk-bonus-payments/<bid>/pay/")
    def bonus_pay(bid: str) -> Any:
        with fake.lock:
            setup = fake._get(fake.setups, bid, "bulk bonus payment")
            for session_id, participant, cents in setup["_rows"]:  # NOT idempotent: every call pays
                fake.submissions[session_id]["bonus_payments"].append(cents)
                fake.payments.append({"bulk": bid, "participant": participant, "cents": cents})
            message = f"Bulk bonus payment with ID {bid} is being processed asynchronously."
            return jsonify(message), 202

    @app.route(API + "participant-groups/", methods=["GET", "POST"])
    def groups() -> Any:
        with fake.lock:
            if request.method == "GET":
                wid = request.args.get("workspace_id")
                items = [fake._group_out(x) for x in fake.groups.values() if not x["is_deleted"]]
                return fake._page([x for x in items if wid in (None, x["workspace_id"])])
            data = body()
            if not data.get("name") or data.get("workspace_id") not in fake.workspaces:
                raise Refused("a participant group needs a name and an existing workspace_id")
            gid = new_id()
            fake.groups[gid] = {"id": gid, "name": data["name"], "workspace_id": data["workspace_id"],
                                "description": data.get("description"), "is_deleted": False}  # fmt: skip
            fake.members[gid] = set(data.get("participant_ids") or [])
            return jsonify(fake._group_out(fake.groups[gid])), 201

    @app.route(API + "participant-groups/<gid>/", methods=["GET", "DELETE"])
    def group(gid: str) -> Any:
        with fake.lock:
            item = fake._get(fake.groups, gid, "participant group")
            if request.method == "DELETE":
                item["is_deleted"] = True  # soft: Prolific keeps it, as Mephisto's notes say
                return "", 204
            return jsonify(fake._group_out(item))

    @app.route(API + "participant-groups/<gid>/participants/", methods=["GET", "POST", "DELETE"])
    def group_members(gid: str) -> Any:
        with fake.lock:
            item = fake._get(fake.groups, gid, "participant group")
            if request.method != "GET":
                if item["is_deleted"]:
                    raise Refused(f"participant group {gid} was deleted", 404)
                ids = body().get("participant_ids")
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise Refused("participant_ids must be a list of ids")
                change = fake.members[gid].update if request.method == "POST" else fake.members[gid].difference_update
                change(ids)
            return fake._page([{"participant_id": p} for p in sorted(fake.members[gid])])

    @app.route(API + "messages/", methods=["GET", "POST"])
    def messages() -> Any:
        with fake.lock:
            if request.method == "GET":
                who = request.args.get("user_id")
                return fake._page([m for m in fake.messages if who in (None, m["recipient_id"])])
            data = body()
            if not data.get("recipient_id") or not data.get("body") or data.get("study_id") not in fake.studies:
                raise Refused("a message needs recipient_id, body and an existing study_id")
            fake.messages.append({k: data[k] for k in ("recipient_id", "body", "study_id")} | {"sent_at": stamp()})
            return "", 204

    @app.get("/_fake/go/<sid>")
    def go(sid: str) -> Any:
        # the participant's browser is "logged in to Prolific": the completion redirect knows who they are
        reply = redirect(fake.open(sid), code=302)
        reply.set_cookie("prolific_session", sid)
        return reply

    @app.get("/submissions/complete")
    def completed() -> Any:
        sid = request.cookies.get("prolific_session")
        if not sid:
            raise Refused("No Prolific submission is open in this browser.")
        fake.complete(sid, request.args.get("cc", ""))
        return Response("<h1>Prolific</h1><p>Your submission has been received.</p>", mimetype="text/html")

    return app
