"""Hostile workers (issue 13, items 1-5 and 7): what a worker sends can never reach outside the run's
uploads, break an export, crash the router or mislead a reviewer, and a refusal says what happened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pandas as pd
import pytest
import requests
import websocket

import crowdnb as cn
from crowdnb.notebook.review_grid import ReviewGrid
from crowdnb.review.app import create_review_app
from crowdnb.router import limits

from .conftest import Worker
from .test_review_app import TOKEN, serving

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "react_bundle"  # a JS task: its answers are what it sends
PAIR = [{"id": "item-1", "left": "A dog runs.", "right": "A cat sleeps on a mat.", "image": ""}]
PHOTO = '<p>{{ text }}</p><input type="file" name="photo"><input name="why">'
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
ESCAPES = ["files/../crowdnb.db", "files/" + "../" * 12 + "etc/hostname"]


def js_run(make_run: Any, rows: int = 1, **options: Any) -> cn.Run:
    return make_run(html=None, js=str(BUNDLE), data=PAIR * rows, **options)


def submitted(run: cn.Run, name: str, answers: dict[str, Any]) -> requests.Response:
    worker = Worker(run, name)
    entered = worker.enter()
    assert entered.status_code == 200, entered.text
    return worker.submit(answers)


def upload(run: cn.Run, name: str, field: str, answers: dict[str, Any] | None = None) -> requests.Response:
    """A multipart submission with one PNG in ``field`` (a JS task's answers as JSON beside it)."""
    worker = Worker(run, name)
    assert worker.enter().status_code == 200
    form = {"_crowd_token": worker.unit["token"], "_crowd_submission_id": uuid.uuid4().hex}
    if answers is not None:
        form["_crowd_answers"] = json.dumps(answers)
    files = [(field, ("cat.png", PNG, "image/png"))]
    return worker.http.post(run.url + "submit", data=form, files=files, timeout=10)


def stored(run: cn.Run) -> int:
    return int(run.store.scalar("SELECT count(*) FROM submissions WHERE task_run_id = ?", (run.id,)))


def crowdnb_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    command = [sys.executable, "-m", "crowdnb", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


# --- 1. an export copies only the run's own uploads ---------------------------------------------------
@pytest.mark.parametrize("escape", ESCAPES)
def test_an_answer_shaped_like_a_path_is_never_copied_by_an_export(make_run: Any, tmp_path: Path, escape: str) -> None:
    run = js_run(make_run)
    assert submitted(run, "mallory", {"zz": escape}).status_code == 200
    for suffix in (".csv", ".parquet", ".jsonl"):
        written = run.export(tmp_path / f"run{suffix}")
        run.project.export(run.task_name, tmp_path / f"task{suffix}")
        for name in ("run", "task"):
            assert not (tmp_path / f"{name}_files").exists(), f"{name}{suffix} copied {escape!r}"
        assert pd.read_csv(written)["zz"].tolist() == [escape] if suffix == ".csv" else True
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        http = requests.Session()
        assert http.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200
        page = http.get(f"{base}/tasks/{run.task_name}", timeout=10)
        assert page.status_code == 200 and "/files/" not in page.text
        for fmt in ("csv", "jsonl", "parquet"):
            assert http.get(f"{base}/tasks/{run.task_name}/export.{fmt}", timeout=10).status_code == 200, fmt
    done = crowdnb_cli("export", run.task_name, "cli.csv", "--home", str(run.store.root), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "cli_files").exists()


def test_a_text_answer_naming_someone_elses_upload_is_shown_as_text(make_run: Any, tmp_path: Path) -> None:
    run = js_run(make_run, rows=2)
    assert upload(run, "bob", "photo", {"choice": "left"}).status_code == 200
    bobs = str(run.df.loc[0, "photo"])
    assert bobs.startswith(f"files/{run.id}/")
    assert submitted(run, "alice", {"photo": bobs}).status_code == 200  # bob's path, typed by alice
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        http = requests.Session()
        assert http.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200
        groups = http.get(f"{base}/api/tasks/{run.task_name}", timeout=10).json()["workers"]
    units = {group["worker"]: group["units"][0] for group in groups}
    assert [f["name"] for f in units["bob"]["files"]] == ["cat.png"]
    assert units["alice"]["files"] == [] and units["alice"]["answers"]["photo"] == bobs
    grid = ReviewGrid(run)  # the notebook's review grid: a file is shown as one only where it was uploaded
    lines = {row["worker"]: row for row in grid.rows}
    assert "photo=📎 cat.png" in lines["bob"]["answers"] and f"photo={bobs}" in lines["alice"]["answers"]
    grid.opened = [lines["bob"]["id"], lines["alice"]["id"]]
    assert "data:image/png" in grid.details[lines["bob"]["id"]]
    assert "data:image/png" not in grid.details[lines["alice"]["id"]] and bobs in grid.details[lines["alice"]["id"]]
    run.export(tmp_path / "out.csv")  # bob's file is copied, once
    assert [p.name for p in (tmp_path / "out_files").rglob("*") if p.is_file()] == ["0.png"]


def test_a_file_field_takes_no_text_answer(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}])
    reply = submitted(run, "mallory", {"photo": "files/../crowdnb.db", "why": "x"})
    assert reply.status_code == 422, reply.text
    assert "photo" in reply.json()["errors"] and "upload" in reply.json()["errors"]["photo"]
    assert stored(run) == 0


# --- 2. undeclared answers: refused unless the task opts in; bounded either way ----------------------
def test_a_template_refuses_answers_its_page_does_not_declare(make_run: Any) -> None:
    run = make_run()
    reply = submitted(run, "mallory", {"label": "pos", "zz": "x", "yy": "y"})
    assert reply.status_code == 422, reply.text
    errors = reply.json()["errors"]
    assert set(errors) == {"zz", "yy"} and "extra_answers=True" in errors["zz"] and "label" in errors["zz"]
    # a form post the same
    worker = Worker(run, "mallory")
    worker.enter()
    form = {"_crowd_token": worker.unit["token"], "_crowd_submission_id": uuid.uuid4().hex, "label": "pos", "zz": "x"}
    assert worker.http.post(run.url + "submit", data=form, timeout=10).status_code == 422
    # and a file sent for a field the page does not have
    assert upload(run, "mallory", "zz").status_code == 422
    assert stored(run) == 0 and not run.store.files_dir.exists()


def test_extra_answers_opts_in_and_is_stored_with_the_run(make_run: Any) -> None:
    run = make_run(extra_answers=True)
    assert submitted(run, "alice", {"label": "pos", "zz": "x"}).status_code == 200
    assert run.df.loc[0, "zz"] == "x"
    assert cn.open(run.store.root).runs[run.id].spec.extra_answers is True


def too_deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("kind", ["js", "extra"])
@pytest.mark.parametrize(
    ("answers", "status", "limit"),
    [
        ({f"k{i}": "x" for i in range(5000)}, 422, "MAX_ANSWERS"),
        ({"essay": "x" * (8 * 1024 * 1024)}, 413, "MAX_ANSWER_BYTES"),
        ({"deep": too_deep(40)}, 400, "MAX_DEPTH"),
    ],
    ids=["5000-keys", "8MB-value", "40-deep"],
)
def test_answers_are_bounded_either_way(make_run: Any, kind: str, answers: Any, status: int, limit: str) -> None:
    run = js_run(make_run) if kind == "js" else make_run(extra_answers=True)
    reply = submitted(run, "mallory", answers)
    assert reply.status_code == status, reply.text[:300]
    bound = getattr(limits, limit)
    assert f"{bound:,}" in reply.json()["message"] or f"{bound:,}" in json.dumps(reply.json().get("errors"))
    assert stored(run) == 0


def test_text_that_is_not_unicode_is_refused(make_run: Any) -> None:
    run = js_run(make_run)
    worker = Worker(run, "mallory")
    worker.enter()
    fields = {"token": worker.unit["token"], "submission_id": uuid.uuid4().hex}
    body = json.dumps(fields)[:-1] + ', "answers": {"a": "\\ud800"}}'  # an unpaired surrogate, escaped
    reply = worker.http.post(run.url + "submit", data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert reply.status_code == 400 and "not valid Unicode" in reply.json()["message"]
    assert stored(run) == 0


def test_answers_of_the_default_form_still_pass(run: cn.Run) -> None:
    assert submitted(run, "alice", {"label": "pos", "why": "upbeat"}).status_code == 200


# --- 3. no single submission breaks an export --------------------------------------------------------
MIXED = [{"mix": [1, {"a": 1}]}, {"mix": "text"}, {"mix": 2**70}, {"mix": [{"b": [True, None]}]}, {"mix": 1.5}]


def test_a_mixed_type_answer_breaks_no_export(make_run: Any, tmp_path: Path) -> None:
    run = js_run(make_run, rows=len(MIXED))
    for number, answers in enumerate(MIXED):
        assert submitted(run, f"w{number}", answers).status_code == 200
    expected = [m["mix"] for m in MIXED]
    for suffix in (".csv", ".parquet", ".jsonl"):
        run.export(tmp_path / f"out{suffix}")
    assert [json.loads(v) for v in pd.read_csv(tmp_path / "out.csv")["mix"]] == expected
    assert [json.loads(v) for v in pd.read_parquet(tmp_path / "out.parquet")["mix"]] == expected
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["mix"] for line in lines] == expected
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        http = requests.Session()
        assert http.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200
        for fmt in ("csv", "jsonl", "parquet"):
            assert http.get(f"{base}/tasks/{run.task_name}/export.{fmt}", timeout=10).status_code == 200, fmt


# --- 4. deeply nested JSON ---------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["body", "multipart", "call"])
def test_deeply_nested_json_is_a_400(make_run: Any, where: str) -> None:
    run = js_run(make_run)
    worker = Worker(run, "mallory")
    worker.enter()
    deep = "[" * 100_000
    if where in ("body", "call"):
        reply = worker.http.post(
            run.url + ("submit" if where == "body" else "call"),
            data=deep,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
    else:
        form = {"_crowd_token": worker.unit["token"], "_crowd_submission_id": uuid.uuid4().hex, "_crowd_answers": deep}
        reply = worker.http.post(run.url + "submit", data=form, timeout=30)
    assert reply.status_code == 400, reply.text[:300]
    assert f"{limits.MAX_DEPTH}" in reply.json()["message"]
    assert stored(run) == 0


def test_deeply_nested_json_on_the_socket_is_only_a_heartbeat(make_run: Any) -> None:
    run = js_run(make_run)
    worker = Worker(run, "mallory")
    worker.enter()
    ws = websocket.create_connection(run.url.replace("http", "ws") + f"ws?token={worker.unit['token']}", timeout=10)
    try:
        ws.send('{"type": "call", "args": ' + "[" * 100_000)
        assert json.loads(ws.recv())["type"] == "status"  # the socket lives on
    finally:
        ws.close()


# --- 5. worker ids -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["nul\x00byte", "bell\x07", "esc\x1b[31mred", "rtl\u202eevil", "isolate\u2066x", "..", "."]
)
def test_a_worker_id_with_control_or_bidi_characters_is_refused(run: cn.Run, name: str) -> None:
    reply = requests.get(run.url, params={"worker_id": name}, headers={"Accept": "application/json"}, timeout=10)
    assert reply.status_code == 400, reply.text
    assert "worker id" in reply.json()["message"]
    assert run.store.scalar("SELECT count(*) FROM workers") == 0
    with pytest.raises(cn.ConfigError, match="worker id"):
        cn.grant(name, "trusted", project=run.project)
    assert run.store.scalar("SELECT count(*) FROM workers") == 0


@pytest.mark.parametrize("name", ["../x", "a/../../tasks", "a?b#c", "100%", "a b"])
def test_review_links_to_a_worker_reach_that_worker(run: cn.Run, name: str) -> None:
    assert submitted(run, name, {"label": "pos"}).status_code == 200
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        http = requests.Session()
        assert http.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200
        url = f"{base}/tasks/{run.task_name}"
        page = http.get(url, timeout=10).text
        links = [part.split('"')[0] for part in page.split('href="')[1:] if "/workers/" in part.split('"')[0]]
        assert len(links) == 1, links
        target = urljoin(url, links[0].replace("&amp;", "&"))  # as a browser resolves it
        assert urlsplit(target).path.startswith("/workers/mock/")
        worker = http.get(target.replace("/workers/", "/api/workers/", 1), timeout=10)
        assert worker.status_code == 200 and worker.json()["worker"] == name


def test_a_prolific_worker_link_quotes_the_worker_id(launch: Any) -> None:
    run = launch()
    url = run.worker_url("a&STUDY_ID=other#x")
    assert url.endswith("PROLIFIC_PID=a%26STUDY_ID%3Dother%23x")


# --- 7. after a crash, the refusal says what happened ------------------------------------------------
def test_a_retry_after_a_restart_says_the_worker_took_the_unit_again(make_run: Any) -> None:
    run = make_run(data=[{"text": "only"}])
    before = Worker(run, "alice")
    assert before.enter().status_code == 200
    run.stop()  # what `crowdnb serve` does with a run a crash left running
    run.resume()
    again = Worker(run, "alice")
    assert again.enter().status_code == 200
    assert again.unit["input"] == before.unit["input"] and again.unit["token"] != before.unit["token"]
    late = before.submit({"label": "pos"})  # the old page's retry
    assert late.status_code == 409, late.text
    message = late.json()["message"]
    assert "another worker" not in message and "again" in message and "restarted" in message
    assert again.submit({"label": "neg"}).status_code == 200


def test_a_late_answer_for_a_unit_another_worker_took_says_so(make_run: Any) -> None:
    run = make_run(data=[{"text": "only"}])
    before = Worker(run, "alice")
    assert before.enter().status_code == 200
    run.stop()
    run.resume()
    other = Worker(run, "bob")
    assert other.enter().status_code == 200
    late = before.submit({"label": "pos"})
    assert late.status_code == 409
    assert "another worker" in late.json()["message"] and "restarted" in late.json()["message"]
