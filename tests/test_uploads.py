"""Uploads and feedback: multipart over real HTTP and in Chromium, stored under the project by crowdnb's
names, listed in run.df, served only to a signed-in reviewer, never half-stored; feedback as metadata."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
from playwright.sync_api import Page, expect

import crowdnb as cn
from crowdnb.notebook.review_grid import ReviewGrid
from crowdnb.review.app import create_review_app

from .test_review_app import TOKEN, serving

PHOTO = '<p>{{ text }}</p><input type="file" name="photo" accept="image/*,.pdf" multiple>'
PHOTO_AND_NOTE = PHOTO + '<input type="file" name="note"><input type="text" name="why">'
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

expect.set_options(timeout=10_000)


def unit_of(run: cn.Run, worker: str) -> dict[str, Any]:
    reply = requests.get(run.worker_url(worker), headers={"Accept": "application/json"}, timeout=10)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def post(run: cn.Run, unit: dict[str, Any], files: Any, accept: str = "application/json", **fields: str) -> Any:
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"], **fields}
    return requests.post(run.url + "submit", data=form, files=files, headers={"Accept": accept}, timeout=10)


def stored_files(run: cn.Run) -> list[Path]:
    return sorted(p for p in run.store.files_dir.rglob("*") if p.is_file()) if run.store.files_dir.exists() else []


def submissions(run: cn.Run) -> int:
    return int(run.store.scalar("SELECT count(*) FROM submissions WHERE task_run_id = ?", (run.id,)))


def leftover_temp_files(content: bytes) -> list[Path]:
    """Temporary upload files still holding ``content`` (unique per test, so other tests cannot interfere)."""
    import tempfile

    return [p for p in Path(tempfile.gettempdir()).glob("crowdnb-upload-*") if p.read_bytes() == content]


# --- over real HTTP ----------------------------------------------------------------------------------
def test_files_are_stored_under_the_project_and_listed_in_the_frame(make_run: Any) -> None:
    run = make_run(html=PHOTO_AND_NOTE, data=[{"text": "a kitchen"}])
    files = [
        ("photo", ("../../etc/front.png", PNG, "image/png")),
        ("photo", ("back.pdf", b"%PDF-1.4 back", "application/pdf")),
        ("note", ("notes.txt", b"two photos", "text/plain")),
    ]
    reply = post(run, unit_of(run, "alice"), files, why="both sides")
    assert reply.status_code == 200, reply.text
    row = run.df.iloc[0]
    assert row["photo_name"] == ["front.png", "back.pdf"] and row["note_name"] == "notes.txt"
    assert row["why"] == "both sides"
    paths = [*row["photo"], row["note"]]
    assert [(run.store.root / p).read_bytes() for p in paths] == [PNG, b"%PDF-1.4 back", b"two photos"]
    # every part of the path is crowdnb's: run, agent, a random folder, a counter and a known extension
    agent = run.store.scalar("SELECT agent_id FROM submissions WHERE task_run_id = ?", (run.id,))
    for number, (path, suffix) in enumerate(zip(paths, [".png", ".pdf", ".txt"], strict=True)):
        parts = Path(path).parts
        assert parts[:3] == ("files", str(run.id), str(agent)) and parts[4] == f"{number}{suffix}"
    stored = json.loads(run.store.scalar("SELECT files FROM submissions WHERE task_run_id = ?", (run.id,)))
    assert stored["photo"][0]["sha256"] == hashlib.sha256(PNG).hexdigest() and stored["photo"][0]["size"] == len(PNG)
    assert "photo" not in json.loads(run.store.scalar("SELECT answers FROM submissions"))


def test_a_retry_with_the_same_files_keeps_one_copy(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}])
    unit = unit_of(run, "bob")
    content = uuid.uuid4().bytes * 64
    for _ in range(2):  # the same submission id twice: a network retry
        assert post(run, unit, [("photo", ("a.png", content, "image/png"))]).status_code == 200
    assert submissions(run) == 1
    assert [p.read_bytes() for p in stored_files(run)] == [content]
    assert leftover_temp_files(content) == []


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_oversized_upload_is_a_clear_413_and_stores_nothing(make_run: Any, accept: str) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}], max_upload_mb=0.05)
    reply = post(run, unit_of(run, "carol"), [("photo", ("big.png", b"x" * 80_000, "image/png"))], accept=accept)
    assert reply.status_code == 413
    assert reply.headers["X-Crowd-Reason"] if accept == "text/html" else True
    if accept == "application/json":
        assert reply.json()["reason"] == "too_large"
        assert "larger than the 0.05 MB this task accepts" in reply.json()["message"]
    else:
        assert "<h1>Upload too large</h1>" in reply.text and "0.05 MB" in reply.text
    assert stored_files(run) == [] and submissions(run) == 0
    assert run.counts["assigned"] == 1  # the worker keeps the unit and can send a smaller file


def test_wrong_type_is_refused_and_nothing_is_stored(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}])
    content = uuid.uuid4().bytes * 16
    reply = post(run, unit_of(run, "dave"), [("photo", ("script.sh", content, "text/x-sh"))])
    assert reply.status_code == 422
    assert reply.json()["errors"] == {"photo": "script.sh is not an accepted type (image/*, .pdf)."}
    assert stored_files(run) == [] and submissions(run) == 0 and leftover_temp_files(content) == []


def test_a_refused_submission_leaves_no_temporary_file(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}])
    content = uuid.uuid4().bytes * 16
    # refused by the dispatcher, after the file reached a temporary file
    unit = unit_of(run, "erin") | {"submission_id": "bad"}
    reply = post(run, unit, [("photo", ("a.png", content, "image/png"))])
    assert reply.status_code == 400 and "submission id is missing or malformed" in reply.json()["message"]
    assert leftover_temp_files(content) == [] and stored_files(run) == []


def test_a_crash_between_move_and_commit_is_swept_on_resume(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}, {"text": "y"}])
    assert post(run, unit_of(run, "frank"), [("photo", ("a.png", PNG, "image/png"))]).status_code == 200
    kept = stored_files(run)
    orphan = run.store.files_dir / str(run.id) / "123" / "deadbeefdeadbeef" / "0.png"  # moved, never committed
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    run.stop()
    run.resume()
    assert stored_files(run) == kept and not orphan.parent.exists()


def test_export_copies_every_file_of_a_multiple_field(make_run: Any, tmp_path: Path) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}])
    files = [("photo", ("a.png", PNG, "image/png")), ("photo", ("b.pdf", b"%PDF b", "application/pdf"))]
    assert post(run, unit_of(run, "gina"), files).status_code == 200
    run.export(tmp_path / "out.jsonl")
    exported = pd.read_json(tmp_path / "out.jsonl", lines=True)
    copies = [tmp_path / "out_files" / Path(p).relative_to("files") for p in exported.loc[0, "photo"]]
    assert [c.read_bytes() for c in copies] == [PNG, b"%PDF b"]


# --- review -----------------------------------------------------------------------------------------
def test_review_app_serves_files_only_to_a_signed_in_reviewer(make_run: Any) -> None:
    run = make_run(html=PHOTO_AND_NOTE, data=[{"text": "x"}], feedback=True)
    files = [
        ("photo", ("cat.png", PNG, "image/png")),
        ("note", ("evil.html", b"<script>alert(1)</script>", "text/html")),
    ]
    assert post(run, unit_of(run, "hana"), files, _crowd_feedback="The photo upload was slow.").status_code == 200
    row = run.df.iloc[0]
    photo, note = row["photo"].removeprefix("files/"), row["note"].removeprefix("files/")
    with serving(create_review_app(run.store.root, TOKEN)) as base:
        assert requests.get(f"{base}/files/{photo}", timeout=10).status_code == 401  # no session, no file
        http = requests.Session()
        assert http.get(f"{base}/?token={TOKEN}", timeout=10).status_code == 200
        image = http.get(f"{base}/files/{photo}", timeout=10)
        assert image.status_code == 200 and image.content == PNG and image.headers["Content-Type"] == "image/png"
        # whatever a worker uploads never becomes a page of the review app's origin
        html = http.get(f"{base}/files/{note}", timeout=10)
        assert html.headers["Content-Type"] == "application/octet-stream"
        assert html.headers["Content-Disposition"].startswith("attachment")
        assert html.headers["Content-Security-Policy"].startswith("sandbox")
        for bad in ["../crowdnb.db", "..%2fcrowdnb.db", f"{photo}/../../../../crowdnb.db", "%2e%2e/crowdnb.db"]:
            assert http.get(f"{base}/files/{bad}", timeout=10).status_code == 404, bad
        page = http.get(f"{base}/tasks/{run.task_name}", timeout=10).text
        assert f'<img src="/files/{photo}" alt="cat.png" class="rv-thumb">' in page
        assert f'href="/files/{note}" download="evil.html"' in page
        assert "The photo upload was slow." in page and "<script>alert(1)" not in page
        units = http.get(f"{base}/api/tasks/{run.task_name}", timeout=10).json()["workers"][0]["units"]
        assert units[0]["feedback"] == "The photo upload was slow." and "_feedback" not in units[0]["answers"]
        assert [f["name"] for f in units[0]["files"]] == ["cat.png", "evil.html"]


def test_notebook_review_grid_shows_a_thumbnail_and_the_feedback(make_run: Any) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}], feedback="Was anything unclear?")
    assert (
        post(run, unit_of(run, "ian"), [("photo", ("cat.png", PNG, "image/png"))], _crowd_feedback="no").status_code
        == 200
    )
    grid = ReviewGrid(run)
    assert "photo=📎 cat.png" in grid.rows[0]["answers"] and "feedback=no" in grid.rows[0]["answers"]
    grid.opened = [grid.rows[0]["id"]]
    html = grid.details[grid.rows[0]["id"]]
    assert 'src="data:image/png;base64,' in html and 'alt="cat.png"' in html
    assert "<th>worker’s feedback</th><td>no</td>" in html


# --- feedback ---------------------------------------------------------------------------------------
def test_feedback_is_metadata_not_an_answer(make_run: Any) -> None:
    run = make_run(feedback=True)
    unit = unit_of(run, "jo")
    body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"label": "pos", "why": "x"}}
    http = requests.Session()
    http.headers["Accept"] = "application/json"
    too_long = http.post(run.url + "submit", json=body | {"meta": {"feedback": "x" * 5001}}, timeout=10)
    assert too_long.status_code == 422 and "_feedback" in too_long.json()["errors"] and submissions(run) == 0
    assert http.post(run.url + "submit", json=body | {"meta": {"feedback": "  fine  "}}, timeout=10).ok
    assert json.loads(run.store.scalar("SELECT meta FROM submissions")) == {"feedback": "fine"}
    assert json.loads(run.store.scalar("SELECT answers FROM submissions")) == {"label": "pos", "why": "x"}
    assert list(run.df.columns[-1:]) == ["_feedback"] and run.df.loc[0, "_feedback"] == "fine"


def test_no_feedback_box_unless_asked(make_run: Any) -> None:
    run = make_run()
    page = requests.get(run.worker_url("kim"), timeout=10).text
    assert "crowd-feedback" not in page
    assert '"feedback": ""' in page


# --- in Chromium ------------------------------------------------------------------------------------
def test_worker_uploads_a_file_and_leaves_feedback_in_chromium(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(html=PHOTO + '<input type="text" name="why">', data=[{"text": "a kitchen"}], feedback=True)
    page = new_page(run.worker_url("lee"))
    page.set_input_files("input[name=photo]", files=[{"name": "kitchen.png", "mimeType": "image/png", "buffer": PNG}])
    page.fill("input[name=why]", "tidy")
    page.fill("#crowd-feedback", "Loved it")
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    row = run.df.iloc[0]
    assert (run.store.root / row["photo"]).read_bytes() == PNG and row["photo_name"] == "kitchen.png"
    assert row["why"] == "tidy" and row["_feedback"] == "Loved it"


def test_chromium_refuses_oversized_and_wrong_files_before_sending(
    make_run: Any, new_page: Callable[..., Page]
) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}], max_upload_mb=0.05)
    page = new_page(run.worker_url("max"))
    page.set_input_files(
        "input[name=photo]", files=[{"name": "big.png", "mimeType": "image/png", "buffer": b"x" * 80_000}]
    )
    page.click("#crowd-submit")
    expect(page.locator("#crowd-errors")).to_contain_text("larger than the 0.05 MB this task accepts")
    page.set_input_files("input[name=photo]", files=[{"name": "run.sh", "mimeType": "text/x-sh", "buffer": b"echo"}])
    page.click("#crowd-submit")
    expect(page.locator("#crowd-errors")).to_contain_text("run.sh is not an accepted type")
    assert submissions(run) == 0 and stored_files(run) == []
    page.set_input_files("input[name=photo]", files=[{"name": "ok.png", "mimeType": "image/png", "buffer": PNG}])
    page.click("#crowd-submit")
    expect(page.locator("#crowd-saved")).to_be_visible()
    assert submissions(run) == 1


def test_without_javascript_an_oversized_upload_gets_a_413_page(make_run: Any, new_page: Callable[..., Page]) -> None:
    run = make_run(html=PHOTO, data=[{"text": "x"}], max_upload_mb=0.05)
    page = new_page(run.worker_url("ned"), java_script_enabled=False)
    page.set_input_files(
        "input[name=photo]", files=[{"name": "big.png", "mimeType": "image/png", "buffer": b"x" * 80_000}]
    )
    with page.expect_navigation():
        page.click("#crowd-submit")
    expect(page.locator("h1")).to_have_text("Upload too large")
    expect(page.locator("#crowd-message")).to_contain_text("larger than the 0.05 MB this task accepts")
    assert submissions(run) == 0 and stored_files(run) == []
