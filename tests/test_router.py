"""The worker protocol over real HTTP: pages, submit, idempotency, refusals, tokens, files."""

from __future__ import annotations

import json
import time
import uuid

import requests

import crowdnb as cn


def test_submission_reaches_live_frame(run: cn.Run, worker) -> None:
    alice = worker("alice")
    assert alice.enter().status_code == 200
    reply = alice.submit({"label": "pos", "why": "nice"})
    assert reply.status_code == 200 and reply.json()["status"] == "saved"
    frame = run.df
    assert list(frame["worker"]) == ["alice"]
    assert frame.loc[0, "label"] == "pos" and frame.loc[0, "text"] == "sentence number 0"
    assert frame.loc[0, "status"] == "completed"
    assert cn.open(run.store.root).run(run.id).df.equals(frame)  # SQLite is the truth


def test_retry_with_same_submission_id_is_stored_once(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    first = alice.submit({"label": "pos"}, submission_id="retry-0001")
    second = alice.submit({"label": "neg"}, submission_id="retry-0001")
    assert first.json()["duplicate"] is False and second.json()["duplicate"] is True
    third = alice.submit({"label": "neg"})  # a second tab with other answers: refused, not "saved"
    assert third.status_code == 409 and "already submitted from another tab" in third.json()["message"]
    assert run.store.scalar("SELECT count(*) FROM submissions") == 1
    assert run.df.loc[0, "label"] == "pos"


def test_forged_token_is_refused(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    forged = alice.unit["token"][:-4] + "AAAA"
    reply = alice.submit({"label": "pos"}, token=forged)
    assert reply.status_code == 403 and reply.json()["reason"] == "forbidden"
    assert run.store.scalar("SELECT count(*) FROM submissions") == 0


def test_token_of_another_run_is_refused(make_run, worker) -> None:
    first, second = make_run("one"), make_run("two")
    alice = worker("alice", first)
    alice.enter()
    reply = requests.post(
        second.url + "submit",
        json={"token": alice.unit["token"], "submission_id": uuid.uuid4().hex, "answers": {}},
        timeout=10,
    )
    assert reply.status_code == 403


def test_someone_elses_submission_id_is_refused(run: cn.Run, worker) -> None:
    alice, bob = worker("alice"), worker("bob")
    alice.enter(), bob.enter()
    alice.submit({"label": "pos"}, submission_id="shared-00001")
    reply = bob.submit({"label": "neg"}, submission_id="shared-00001")
    assert reply.status_code == 403
    assert run.store.scalar("SELECT count(*) FROM submissions") == 1


def test_malformed_submissions_get_clear_errors(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    bad_id = alice.submit({"label": "pos"}, submission_id="x")
    assert bad_id.status_code == 400 and "submission id" in bad_id.json()["message"]
    not_object = requests.post(
        run.url + "submit",
        data="[1]",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        timeout=10,
    )
    assert not_object.status_code == 400
    assert run.store.scalar("SELECT count(*) FROM submissions") == 0


def test_preview_without_worker_id(run: cn.Run) -> None:
    page = requests.get(run.url, timeout=10)
    assert page.status_code == 200
    assert "Preview" in page.text and "disabled" in page.text and "sentence number 0" in page.text
    assert run.store.scalar("SELECT count(*) FROM agents") == 0


def test_html_page_for_a_worker_carries_token_and_input(run: cn.Run) -> None:
    page = requests.get(run.worker_url("alice"), timeout=10)
    assert page.status_code == 200
    assert "sentence number 0" in page.text and 'name="_crowd_token" value="' in page.text


def test_no_work_left_is_a_clear_page(make_run) -> None:
    run = make_run(data=[{"text": "only"}])
    requests.get(run.worker_url("alice"), timeout=10)
    page = requests.get(run.worker_url("bob"), timeout=10)
    assert page.status_code == 410 and page.headers["X-Crowd-Reason"] == "no_work"
    assert "no work left" in page.text


def test_plain_form_post_without_javascript(run: cn.Run) -> None:
    http = requests.Session()
    page = http.get(run.worker_url("alice"), timeout=10).text
    token = page.split('name="_crowd_token" value="')[1].split('"')[0]
    sid = page.split('name="_crowd_submission_id" value="')[1].split('"')[0]
    form = {"_crowd_token": token, "_crowd_submission_id": sid, "label": "neg", "why": "meh"}
    reply = http.post(run.url + "submit", data=form, timeout=10)
    assert reply.status_code == 200 and "saved" in reply.text
    assert run.df.loc[0, "why"] == "meh"


def test_a_mock_worker_is_sent_to_their_next_unit_until_there_is_none(make_run, worker) -> None:
    run = make_run(data=[{"text": "one"}, {"text": "two"}])
    alice = worker("alice", run)
    alice.enter()
    reply = alice.submit({"label": "pos", "why": "x"}).json()
    assert reply["completion"]["kind"] == "next"  # the page opens their next unit by itself
    alice.enter()
    reply = alice.submit({"label": "pos", "why": "x"}).json()
    assert reply["completion"] == {  # none left for them: thanked, not sent to a refusal
        "kind": "message",
        "url": "",
        "fields": {},
        "message": "Your answers are saved. There is no work left for you in this task right now. Thank you!",
    }
    assert run.counts["completed"] == 2


def test_a_page_without_javascript_is_sent_to_the_next_unit_too(make_run) -> None:
    run = make_run(data=[{"text": "one"}, {"text": "two"}], maximum_units_per_worker=2)
    http = requests.Session()
    for last in (False, True):
        page = http.get(run.worker_url("a b&c"), timeout=10).text
        token = page.split('name="_crowd_token" value="')[1].split('"')[0]
        sid = page.split('name="_crowd_submission_id" value="')[1].split('"')[0]
        back = page.split('name="_crowd_return" value="')[1].split('"')[0]
        assert back == "worker_id=a+b%26c"  # the address the page was opened at
        form = {"_crowd_token": token, "_crowd_submission_id": sid, "_crowd_return": back, "why": "x"}
        reply = http.post(run.url + "submit", data={**form, "label": "neg"}, timeout=10)
        assert reply.status_code == 200 and "Saved" in reply.text
        if last:
            assert "refresh" not in reply.text and "maximum of 2 units" in reply.text
        else:
            assert '<meta http-equiv="refresh" content="2; url=./?worker_id=a+b%26c">' in reply.text
            assert '<a id="crowd-next" href="./?worker_id=a+b%26c">Next unit now</a>' in reply.text
    assert run.counts["completed"] == 2


def test_checkbox_answers_are_lists(make_run) -> None:
    html = '{{ text }}<input type="checkbox" name="tags" value="a"><input type="checkbox" name="tags" value="b">'
    run = make_run(html=html)
    http = requests.Session()
    page = http.get(run.worker_url("alice"), timeout=10).text
    token = page.split('name="_crowd_token" value="')[1].split('"')[0]
    reply = http.post(
        run.url + "submit", data={"_crowd_token": token, "_crowd_submission_id": "cb-000001", "tags": ["a"]}, timeout=10
    )
    assert reply.status_code == 200
    assert run.df.loc[0, "tags"] == ["a"]


def test_uploaded_file_is_stored_and_referenced(make_run) -> None:
    run = make_run(html='{{ text }}<input type="file" name="photo">')
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    unit = http.get(run.worker_url("alice"), timeout=10).json()
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"]}
    reply = http.post(run.url + "submit", data=form, files={"photo": ("../../evil name.txt", b"hello")}, timeout=10)
    assert reply.status_code == 200
    relative = run.df.loc[0, "photo"]
    stored = run.store.root / relative
    assert stored.read_bytes() == b"hello"
    # the stored name is crowdnb's; the worker's (without the folders they sent) is metadata
    assert stored.name == "0.txt" and stored.resolve().is_relative_to(run.store.files_dir.resolve())
    assert run.df.loc[0, "photo_name"] == "evil name.txt"


def test_oversized_upload_is_413_and_stores_nothing(make_run) -> None:
    run = make_run(html='{{ text }}<input type="file" name="photo">', max_upload_mb=0.01)
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    unit = http.get(run.worker_url("alice"), timeout=10).json()
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"]}
    reply = http.post(run.url + "submit", data=form, files={"photo": ("big.bin", b"x" * 20000)}, timeout=10)
    assert reply.status_code == 413 and reply.json()["reason"] == "too_large"
    assert run.store.scalar("SELECT count(*) FROM submissions") == 0
    assert not run.store.files_dir.exists() or not any(run.store.files_dir.rglob("*.bin"))


def test_static_files_refuse_path_traversal(make_run, tmp_path) -> None:
    folder = tmp_path / "tpl"
    (folder / "static").mkdir(parents=True)
    (folder / "task.html").write_text('<img src="static/cat.txt">{{ text }}<input name="a">')
    (folder / "static" / "cat.txt").write_text("meow")
    (tmp_path / "secret.txt").write_text("secret")
    run = make_run(html=None, template=str(folder))
    assert requests.get(run.url + "static/cat.txt", timeout=10).text == "meow"
    for path in ["static/../../secret.txt", "static/..%2f..%2fsecret.txt", "static/%2e%2e/%2e%2e/secret.txt"]:
        assert requests.get(run.url + path, timeout=10).status_code == 404
    assert requests.get(run.url + "_crowd/../store.py", timeout=10).status_code == 404


def test_health_reports_unit_counts(run: cn.Run) -> None:
    body = requests.get(run.url + "healthz", timeout=10).json()
    assert body["ok"] is True and body["units"]["launched"] == 6


def test_heartbeat_socket_marks_agent_in_task(run: cn.Run, worker) -> None:
    import websocket

    alice = worker("alice")
    alice.enter()
    ws = websocket.create_connection(run.url.replace("http", "ws") + "ws?token=" + alice.unit["token"], timeout=5)
    ws.send(json.dumps({"type": "heartbeat"}))
    assert json.loads(ws.recv()) == {"type": "status", "status": "in_task"}
    ws.close()
    bad = websocket.create_connection(run.url.replace("http", "ws") + "ws?token=forged", timeout=5)
    assert json.loads(bad.recv())["type"] == "error"
    bad.close()


def test_heartbeat_socket_declines_the_browsers_compression_offer(run: cn.Run, worker) -> None:
    import websocket

    alice = worker("alice")
    alice.enter()
    url = run.url.replace("http", "ws") + "ws?token=" + alice.unit["token"]
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"  # what Chromium sends
    ws = websocket.create_connection(url, timeout=5, header=[offer])
    assert "sec-websocket-extensions" not in {name.lower() for name in ws.getheaders()}
    ws.send(json.dumps({"type": "heartbeat"}))
    assert json.loads(ws.recv()) == {"type": "status", "status": "in_task"}  # uncompressed frames
    ws.close()


def test_non_finite_numbers_are_refused(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    token = alice.unit["token"]
    raw = '{"token": "' + token + '", "submission_id": "nan-000001", "answers": {"score": NaN}}'
    reply = alice.http.post(run.url + "submit", data=raw, headers={"Content-Type": "application/json"}, timeout=10)
    assert reply.status_code == 400 and "not finite" in reply.json()["message"]
    assert run.store.scalar("SELECT count(*) FROM submissions") == 0


def test_expired_worker_token_is_refused(run: cn.Run, worker) -> None:
    from itsdangerous import URLSafeTimedSerializer

    class Yesterday(URLSafeTimedSerializer):  # the signer of a page opened long ago
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            base = self.signer

            class Old(base):  # type: ignore[misc, valid-type]
                def get_timestamp(self) -> int:
                    return int(time.time()) - 7 * 24 * 3600

            self.signer = Old

    alice = worker("alice")
    alice.enter()
    agent_id = int(alice.unit["agent_id"])
    worker_id = run.store.get_agent(agent_id)["worker_id"]
    secret = run.store.get_run(run.id)["secret"]
    stale = Yesterday(secret, salt="crowdnb.agent").dumps([agent_id, worker_id])
    reply = alice.submit({"label": "pos"}, token=stale)
    assert reply.status_code == 403 and "expired" in reply.json()["message"]
    assert alice.submit({"label": "pos"}).status_code == 200  # the fresh token still works


def test_a_unit_comes_with_the_fields_of_its_own_row(project: cn.Project, worker) -> None:
    """Rows of a form may show different versions: a JSON client is told the fields of its unit's page."""
    versions = [
        {"form": {"title": "T", "sections": [{"title": "S", "fieldsets": [{"title": "F", "rows": [{"fields": [
            {"type": "input", "name": name, "label": name, "validators": {"required": True}}]}]}]}]}}
        for name in ("first", "second")
    ]  # fmt: skip
    run = cn.Task("versions", title="V", reward=0.1, form=versions, data=[{"form_version": 0}, {"form_version": 1}],
                  project=project).launch()  # fmt: skip
    try:
        names = []
        for who in ("alice", "bob"):
            unit = worker(who, run).enter().json()
            names.append((unit["input"]["form_version"], [f["name"] for f in unit["fields"]]))
        assert sorted(names) == [(0, ["first"]), (1, ["second"])]
    finally:
        run.stop()
