"""The dry run behind a notebook's preview, over real HTTP: the page for any row with its files, and a
Submit that answers what would be stored (or what is wrong) and stores nothing. The page in a browser,
inside JupyterLab, is in tests/test_lab.py and tests/test_lab_widgets.py."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
import requests

import crowdnb as cn

from .conftest import FORM, SENTENCES

BUNDLE = Path(__file__).resolve().parent / "fixtures" / "react_bundle"
STRICT = FORM.replace('value="pos">', 'value="pos" required>').replace('name="why">', 'name="why" minlength="3">')


def nothing_stored(project: cn.Project) -> bool:
    tables = {r["name"] for r in project.store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    counts = [
        project.store.scalar(f"SELECT count(*) FROM {t}") for t in ("units", "agents", "submissions") if t in tables
    ]
    return not any(counts) and not project.store.files_dir.exists()


def base(link: str) -> str:
    return link.split("?")[0]


def test_the_page_of_any_row_is_served_with_its_files(project: cn.Project) -> None:
    folder = cn.templates()["bounding_boxes"]
    task = cn.Task(
        "boxes", title="Boxes", reward=0.1, template="bounding_boxes", data=folder / "example.csv", project=project
    )
    link = task.preview_link(1)
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert 'class="crowd-mode-dry_run"' in page.text and '"mode": "dry_run"' in page.text
    assert 'src="static/crossing.svg"' in page.text and "Dry run: try the page" in page.text
    picture = requests.get(base(link) + "static/crossing.svg", timeout=10)
    assert picture.status_code == 200 and picture.headers["Content-Type"].startswith("image/svg+xml")
    script = requests.get(base(link) + "_crowd/crowd.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert requests.get(base(link) + "static/../task.html", timeout=10).status_code == 404
    assert nothing_stored(project)


def test_submit_answers_what_would_be_stored_and_stores_nothing(project: cn.Project) -> None:
    task = cn.Task("strict", title="T", reward=0.1, html=STRICT, data=SENTENCES, project=project, feedback=True)
    submit = base(task.preview_link(2)) + "submit"
    reply = requests.post(
        submit, json={"token": "row:2", "answers": {"label": "pos", "why": "fine"}, "meta": {"feedback": " ok "}}
    )
    assert reply.status_code == 200
    assert reply.json() == {
        "status": "dry_run",
        "stored": False,
        "message": "Dry run: nothing was stored. A worker's submission would store this:",
        "answers": {"label": "pos", "why": "fine"},
        "files": {},
        "feedback": "ok",
    }
    reply = requests.post(submit, json={"token": "row:2", "answers": {"label": "maybe", "why": "x"}}, timeout=10)
    assert reply.status_code == 422
    assert reply.json()["errors"] == {
        "label": "'maybe' is not one of the options.",
        "why": "Use at least 3 characters (you used 1).",
    }
    form = requests.post(submit, data={"_crowd_token": "row:0", "label": "pos", "why": "plain"}, timeout=10)
    assert form.json()["answers"] == {"label": "pos", "why": "plain"}  # a form post, as a page without JS sends
    assert nothing_stored(project)


def test_the_dry_run_has_the_routers_policy_on_what_a_worker_may_send(project: cn.Project) -> None:
    """Undeclared answers, a value too large and JSON nested too deep meet the router's checks."""
    strict = cn.Task("strict", title="T", reward=0.1, html=STRICT, data=SENTENCES, project=project)
    submit = base(strict.preview_link()) + "submit"
    reply = requests.post(submit, json={"token": "row:0", "answers": {"label": "pos", "why": "fine", "zz": 1}})
    assert reply.status_code == 422 and set(reply.json()["errors"]) == {"zz"}
    assert "extra_answers=True" in reply.json()["errors"]["zz"]
    nested = '{"token": "row:0", "answers": {"label": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    deep = requests.post(submit, data=nested, headers={"Content-Type": "application/json"}, timeout=30)
    assert deep.status_code == 400 and "MAX_DEPTH" in deep.json()["message"]
    huge = requests.post(submit, json={"token": "row:0", "answers": {"label": "pos", "why": "x" * 300_000}})
    assert huge.status_code == 413
    open_task = cn.Task("open", title="T", reward=0.1, html=STRICT, data=SENTENCES, project=project, extra_answers=True)
    taken = requests.post(
        base(open_task.preview_link()) + "submit",
        json={"token": "row:0", "answers": {"label": "pos", "why": "fine", "zz": 1}},
    )
    assert taken.status_code == 200 and taken.json()["answers"]["zz"] == 1
    assert nothing_stored(project)


def test_a_file_is_described_and_not_kept(project: cn.Project) -> None:
    page = '<p>{{ text }}</p><input type="file" name="photo" accept="image/*" required>'
    task = cn.Task("photo", title="T", reward=0.1, html=page, data=SENTENCES, project=project)
    submit = base(task.preview_link()) + "submit"
    png = ("cat.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "image/png")
    reply = requests.post(submit, data={"_crowd_token": "row:0"}, files={"photo": png}, timeout=10)
    assert reply.json()["files"] == {"photo": [{"name": "cat.png", "type": "image/png", "size": 108}]}
    wrong = requests.post(
        submit, data={"_crowd_token": "row:0"}, files={"photo": ("a.pdf", b"%PDF", "application/pdf")}
    )
    assert wrong.status_code == 422 and wrong.json()["errors"] == {"photo": "a.pdf is not an accepted type (image/*)."}
    assert nothing_stored(project)


def test_a_js_task_runs_with_its_bundle_and_its_declared_answers(project: cn.Project) -> None:
    data = [{"id": "item-1", "left": "A dog runs.", "right": "A cat sleeps.", "image": ""}]
    task = cn.Task("js", title="JS", reward=0.1, js=str(BUNDLE), answers=["choice"], data=data, project=project)
    link = task.preview_link()
    page = requests.get(link, timeout=10).text
    assert '"mode": "dry_run"' in page and "A dog runs." in page
    assert requests.get(base(link) + "favicon.svg", timeout=10).status_code == 200  # the bundle's own files
    reply = requests.post(base(link) + "submit", json={"token": "row:0", "answers": {"choice": "left", "typo": 1}})
    assert reply.status_code == 422 and reply.json()["errors"] == {"typo": "not one of this task's answers (choice)"}


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("?row=99", 404, "row 99 is out of range; the data has 6 rows"),
        ("?row=two", 404, "row 'two' is not a row number; open ?row=0"),
    ],
)
def test_a_bad_row_is_a_clear_page(project: cn.Project, path: str, status: int, message: str) -> None:
    task = cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    reply = requests.get(base(task.preview_link()) + path, timeout=10)
    assert reply.status_code == status and message in html.unescape(reply.text)


def test_a_submission_without_a_preview_token_is_refused(project: cn.Project) -> None:
    task = cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    reply = requests.post(base(task.preview_link()) + "submit", json={"token": "forged", "answers": {}}, timeout=10)
    assert reply.status_code == 400 and "is not a preview's (row:N); reload the page" in reply.json()["message"]


def test_a_task_previewed_again_replaces_its_earlier_page(project: cn.Project) -> None:
    old = cn.Task("again", title="Old", reward=0.1, html=FORM, data=SENTENCES, project=project).preview_link()
    new = cn.Task("again", title="New", reward=0.1, html=FORM, data=SENTENCES, project=project).preview_link()
    assert requests.get(old, timeout=10).status_code == 404
    assert "<h1>New</h1>" in requests.get(new, timeout=10).text


def test_a_row_out_of_range_is_refused_when_asked_for(project: cn.Project) -> None:
    task = cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    with pytest.raises(cn.ConfigError, match="row 6 is out of range; the data has 6 rows"):
        task.preview_link(6)


def test_the_link_follows_crowdnb_public_url(project: cn.Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDNB_PUBLIC_URL", "https://hub.example.org/user/ada/proxy/{port}/")
    task = cn.Task("t", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    assert task.preview_link(3).startswith("https://hub.example.org/user/ada/proxy/")
    assert task.preview_link(3).endswith("?row=3")


def test_the_pages_html_shown_inline_carries_crowdnbs_own_files(project: cn.Project) -> None:
    """``task.preview(row)`` in a notebook is an iframe without a server: nothing of crowdnb's may be a link."""
    form = {"form": {"title": "F", "sections": [{"title": "S", "fieldsets": [{"rows": [{"fields": [
        {"type": "input", "name": "code", "label": "Code", "validators": {"required": True}}
    ]}]}]}]}}  # fmt: skip
    for task in (
        cn.Task("plain", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project),
        cn.Task("form", title="F", reward=0.1, form=form, data=[{}], project=project),
    ):
        shown = html.unescape(task.preview()._repr_html_())
        assert "_crowd/crowd" not in shown and "_crowd/forms.js" not in shown and 'href="_crowd/forms.css"' not in shown
        assert "window.crowd = {" in shown  # crowd.js, inline
    assert '<script type="module">// crowdnb form composer' in shown  # forms.js, deferred
