"""The template gallery without a browser: every template loads with its example data, documents its
inputs and answers truthfully, has a preview thumbnail, uses nothing from the network, and renders a
submission for review with the data escaped. (tests/test_templates_browser.py fills them in Chromium.)
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

import crowdnb as cn
from crowdnb.errors import ConfigError
from crowdnb.notebook.review_grid import ReviewGrid
from crowdnb.pages import gallery
from crowdnb.review.app import create_review_app
from crowdnb.review.pages import task_view

from .conftest import Worker, wait_until

NAMES = sorted(cn.templates())
SCRIPT = "<script>alert(1)</script>"
# what each review renderer must show for the template's own example answers
SHOWN = {
    "text_classification": ["label: <b", ">positive</b>", "warm and enthusiastic"],
    "multi_label": [">science</b>", ">health</b>"],
    "free_text": ["A new bus line links the old town", "difficulty: <b>easy</b>"],
    "chat": ["A parcel that never arrived", "rating: <b>4</b> of 5"],
    "likert_survey": ["<b>4</b> <small>agree</small>", "<b>5</b> <small>strongly agree</small>"],
    "pairwise_comparison": ['<b>B</b> <span style="color:#185c2a">✓ preferred</span>', "keeps the meaning"],
    "bounding_boxes": [
        "left:40px;top:190px;width:170px;height:70px",
        "left:300px;top:150px",
        "data:image/svg+xml;base64,",
    ],
    "ner_spans": [">Angela Merkel<sup", "> person</sup>", ">Berlin<sup", "> place</sup>", "2 spans"],
    "audio_rating": ["<b>2</b> <small>poor</small>", ">noise</b>", "listened: 1.5 s"],
    "video_annotation": [  # car 0.5–3 s and person 2–5.5 s of a 6 s clip, each in its label's row
        '>car</span>\n      <div title="car 0.5–3 s" style="position:absolute;top:2px;bottom:2px;left:8.33%;width:41.67%',
        '>person</span>\n      <div title="person 2–5.5 s" style="position:absolute;top:2px;bottom:2px;left:33.33%;width:58.33%',
        "<li>car: 0.5–3 s</li><li>person: 2–5.5 s</li>",
        "· 6.0 s",
    ],
}


def example_rows(name: str) -> list[dict[str, Any]]:
    described = gallery.describe(name)
    task = cn.Task("probe", title="probe", reward=0, template=name, data=described.example)
    return task.rows()


def test_the_gallery_has_the_promised_templates() -> None:
    promised = {
        "text_classification", "multi_label", "free_text", "likert_survey", "pairwise_comparison",
        "bounding_boxes", "ner_spans", "audio_rating", "video_annotation", "chat",
    }  # fmt: skip
    assert promised <= set(NAMES)
    assert set(gallery.templates()) == set(NAMES)
    assert all(isinstance(path, Path) for path in cn.templates().values())  # cn.templates() keeps its shape


@pytest.mark.parametrize("name", NAMES)
def test_template_loads_and_documents_its_fields(name: str) -> None:
    described = gallery.describe(name)
    assert described.title and described.description, "the header comment starts with 'Title: what it does'"
    task = cn.Task(name, title=described.title, reward=0.1, template=name, data=described.example)
    assert 3 <= task.row_count() <= 20, "example data is small"
    assert set(task.page.variables) == set(described.inputs), "inputs documented = the page's variables"
    assert task.page.required == sorted(described.required_inputs()), "optional inputs are the defaulted ones"
    fields = task.fields
    assert [f.name for f in fields] == list(described.answers), "answers documented = the page's fields, in order"
    for f in fields:
        assert f.required == ("required" in described.answers[f.name]), f"{f.name}: 'required' documented truly"
    assert set(described.example_answers) <= set(described.answers)
    assert {f.name for f in fields if f.required} <= set(described.example_answers)
    for index in range(task.row_count()):
        page = task.preview(index)
        assert 'id="crowd-submit"' in page and 'name="viewport"' in page


@pytest.mark.parametrize("name", NAMES)
def test_template_uses_nothing_from_the_network(name: str) -> None:
    folder = gallery.describe(name).folder
    for path in [folder / "task.html", folder / "review.html"]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", text, re.I), path
        assert not re.search(r"""url\(\s*["']?(https?:)?//|@import""", text, re.I), path
    for row in example_rows(name):
        for value in row.values():
            assert not str(value).startswith(("http:", "https:", "//")), "example media are local files"
            if str(value).startswith("static/"):
                assert (folder / str(value)).is_file(), f"{value} is missing from {folder}"


@pytest.mark.parametrize("name", NAMES)
def test_template_has_a_preview_thumbnail(name: str) -> None:
    thumbnail = gallery.describe(name).thumbnail
    assert thumbnail is not None, f"run `python templates/make_previews.py` to make {name}/preview.png"
    data = thumbnail.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert 200 <= width <= 800 and 150 <= height <= 800, (width, height)
    assert len(data) < 120_000, "thumbnails are inlined into notebooks: keep them small"


@pytest.mark.parametrize("name", NAMES)
def test_review_renderer_shows_the_example_submission(name: str) -> None:
    described = gallery.describe(name)
    row = example_rows(name)[0]
    html = gallery.render_review(name, row, described.example_answers)
    for expected in SHOWN[name]:
        assert expected in html, f"{expected!r} not in the {name} review:\n{html}"


@pytest.mark.parametrize("name", NAMES)
def test_review_renderer_escapes_inputs_and_answers(name: str) -> None:
    described = gallery.describe(name)
    row = {k: f"{v} {SCRIPT}" if isinstance(v, str) else v for k, v in example_rows(name)[0].items()}
    answers = {k: SCRIPT for k in described.answers}
    for case in (described.example_answers, answers):
        html = gallery.render_review(name, row, case)
        assert "<script" not in html.lower(), html
    html = gallery.render_review(name, row, described.example_answers)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, "the input shows as text"


@pytest.mark.parametrize("name", NAMES)
def test_review_renderer_survives_missing_and_malformed_answers(name: str) -> None:
    row = example_rows(name)[0]
    for answers in ({}, {k: None for k in gallery.describe(name).answers}, {"boxes": "[1, {", "spans": "{}"}):
        assert "gallery-review" in gallery.render_review(name, row, answers)


def test_media_filter_inlines_only_files_of_the_static_folder() -> None:
    row = {"image": "static/../task.html"}
    html = gallery.render_review("bounding_boxes", row, {"boxes": "[]"})
    assert "data:" not in html and "picture: static/../task.html" in html
    html = gallery.render_review("bounding_boxes", {"image": "javascript:alert(1)"}, {"boxes": "[]"})
    assert "javascript:" not in html.split("picture:")[0]


def test_spans_are_cut_by_code_points_and_bad_spans_skipped() -> None:
    text = "🎉 Marie Curie won"
    spans = json.dumps(
        [
            {"start": 2, "end": 13, "label": "person"},
            {"start": 5, "end": 9, "label": "overlap"},
            {"start": 15, "end": 99, "label": "outside"},
            {"start": "2", "end": 4, "label": "not a number"},
        ]
    )
    html = gallery.render_review("ner_spans", {"text": text}, {"spans": spans})
    assert ">Marie Curie<sup" in html
    assert "overlap" not in html and "outside" not in html and "not a number" not in html


def test_example_spans_match_the_example_text() -> None:
    spans = json.loads(gallery.describe("ner_spans").example_answers["spans"])
    text = example_rows("ner_spans")[0]["text"]
    assert [text[s["start"] : s["end"]] for s in spans] == [s["text"] for s in spans]


def test_describe_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "task.html").write_text("<p>{{ text }}</p>")
    with pytest.raises(ConfigError, match=r"bare/task.html has no header comment; start it with"):
        gallery.describe(tmp_path / "bare")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "task.html").write_text("{#\nBad: x\nExample answers: {nope\n#}\n<p>{{ text }}</p>")
    with pytest.raises(ConfigError, match=r"bad/task.html: 'Example answers:' is not valid JSON"):
        gallery.describe(tmp_path / "bad")
    with pytest.raises(ConfigError, match=r"has no review.html"):
        gallery.render_review(tmp_path / "bad", {}, {})


def test_review_of_a_run_uses_the_template_renderer(project: cn.Project) -> None:
    """A real run of a gallery template: its submissions render in the review app's unit view."""
    described = gallery.describe("pairwise_comparison")
    task = cn.Task(
        "ab", title="A/B", reward=0.1, template="pairwise_comparison", data=described.example, project=project
    )
    run = task.launch(provider="mock", architect="local")
    try:
        worker = Worker(run, "alice")
        assert worker.enter().status_code == 200
        assert worker.submit({"preferred": "B", "reason": SCRIPT}).status_code == 200
        wait_until(lambda: len(run.df) == 1, "the submission in run.df")
        render = gallery.review_for(run.spec)
        assert render is not None
        html = render(run.df.to_dict("records")[0])
        assert "✓ preferred" in html and "&lt;script&gt;" in html and "<script>" not in html
        assert worker.unit["input"]["response_b"] in html
        view = task_view(project, "ab")
        unit = view["workers"][0]["units"][0]
        assert unit["review"] == html
        token = "t" * 24
        page = (
            create_review_app(project, token)
            .test_client()
            .get("/tasks/ab", headers={"Authorization": f"Bearer {token}"})
        )
        assert page.status_code == 200
        assert f'<div class="rv-rendered">{html}</div>' in page.get_data(as_text=True)
        grid = ReviewGrid(run)  # the notebook's review grid shows the same rendering in the opened row
        grid.opened = [grid.rows[0]["id"]]
        assert html in grid.details[grid.rows[0]["id"]]
    finally:
        run.stop()
    plain = cn.Task("plain", title="p", reward=0, html="<p>{{ text }}</p><input name=x>", data=[{"text": "t"}])
    assert gallery.review_for(plain.spec) is None


def test_split_record_undoes_clash_prefixes() -> None:
    record = {"run_id": 1, "unit_id": 2, "worker": "w", "input_label": "in", "label": "out", "answer_status": "s"}
    row, answers = gallery.split_record(record, ["label"])
    assert row == {"label": "in"}
    assert answers == {"label": "out", "status": "s"}


def test_crowd_templates_magic_lists_them_with_thumbnails() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "crowdnb")
    listing = shell.run_line_magic("crowd", "templates")
    assert list(listing) == NAMES
    html = listing._repr_html_()
    assert html.count("<img src='data:image/png;base64,") == len(NAMES)
    for name in NAMES:
        described = listing[name]
        assert f"<code>{name}</code>" in html and described.title in html
        assert all(f"<code>{field}</code>" in html for field in [*described.inputs, *described.answers])


@pytest.mark.parametrize("name", NAMES)
def test_answers_written_by_script_carry_rules_for_the_server(name: str) -> None:
    """A hidden input the page's script fills is required and has a pattern the real answer matches."""
    described = gallery.describe(name)
    html = (described.folder / "task.html").read_text(encoding="utf-8")
    for tag in re.findall(r"<input[^>]*type=\"hidden\"[^>]*>", html):
        field = re.search(r'name="([^"]+)"', tag)
        assert field is not None
        pattern = re.search(r'pattern="([^"]+)"', tag)
        assert " required" in tag and pattern, f"{name}: hidden answer {field.group(1)!r} needs required and pattern"
        example = described.example_answers[field.group(1)]
        assert re.fullmatch(pattern.group(1), example), (pattern.group(1), example)
        assert not re.fullmatch(pattern.group(1), "looks fine")


def test_a_broken_review_renderer_leaves_the_plain_answers(tmp_path: Path, project: cn.Project) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "task.html").write_text("{#\nMine: a copy\n#}\n<p>{{ text }}</p><input name=x>")
    (folder / "review.html").write_text("{% for %}")
    with pytest.raises(ConfigError, match=r"mine/review.html, line 1: template syntax error"):
        gallery.render_review(folder, {"text": "t"}, {"x": "1"})
    task = cn.Task("mine", title="m", reward=0, template=str(folder), data=[{"text": "t"}], project=project)
    assert gallery.review_for(task.spec) is None
    (folder / "review.html").write_text("{{ range(answers.x) | list }}")  # a TypeError while rendering
    render = gallery.review_for(task.spec)
    assert render is not None
    assert "review.html failed" in render({"run_id": 1, "unit_id": 2, "text": "t", "x": "1"})


# multi_label has none: "at least one topic" has no HTML attribute, so only its page checks it
# a shared template's worker submits only once the conversation has started (tests/test_chat_browser.py)
WITH_REQUIRED = [
    n
    for n in NAMES
    if any("required" in d for d in gallery.describe(n).answers.values()) and gallery.describe(n).workers == 1
]


@pytest.mark.parametrize("name", WITH_REQUIRED)
def test_server_refuses_a_submission_without_the_required_answers(name: str, project: cn.Project) -> None:
    """A POST that skips the page (and its script) is refused field by field; the example answers are saved."""
    described = gallery.describe(name)
    task = cn.Task(name, title="t", reward=0.1, template=name, data=described.example, project=project)
    run = task.launch(provider="mock", architect="local")
    try:
        worker = Worker(run, "mallory")
        assert worker.enter().status_code == 200
        required = {f.name for f in task.fields if f.required}
        refused = worker.submit({})
        assert refused.status_code == 422, refused.text
        assert set(refused.json()["errors"]) == required
        assert len(run.df) == 0
        assert worker.submit(described.example_answers).status_code == 200
        wait_until(lambda: len(run.df) == 1, "the example submission in run.df")
    finally:
        run.stop()


@pytest.mark.parametrize("name", NAMES)
def test_simulated_workers_can_complete_every_template(name: str, project: cn.Project) -> None:
    """``cn.simulate`` with no answer function fills what a bot cannot draw from the template's example."""
    described = gallery.describe(name)
    task = cn.Task(name, title="t", reward=0.1, template=name, data=described.example, project=project)
    run = task.launch()
    try:
        sim = cn.simulate(run, workers=2, seed=1)
        assert sim.errors == []
        assert run.counts["completed"] == task.row_count() * task.spec.units_per_assignment  # seats of a chat too
    finally:
        run.stop()


@pytest.mark.parametrize("name", ["bounding_boxes", "ner_spans", "audio_rating", "video_annotation"])
def test_what_a_script_writes_is_checked_by_the_server(name: str, project: cn.Project) -> None:
    """A hidden answer a template's script fills carries a pattern; a POST that skips the script is held to it."""
    described = gallery.describe(name)
    task = cn.Task(name, title="t", reward=0.1, template=name, data=described.example, project=project)
    run = task.launch()
    try:
        worker = Worker(run, "mallory")
        assert worker.enter().status_code == 200
        hidden = next(f.name for f in task.fields if f.kind == "hidden" and f.pattern)
        refused = worker.submit({**described.example_answers, hidden: "looks fine"})
        assert refused.status_code == 422 and hidden in refused.json()["errors"], refused.text
        assert worker.submit(described.example_answers).status_code == 200
    finally:
        run.stop()


@pytest.mark.parametrize("name", NAMES)
def test_template_media_are_small(name: str) -> None:
    """Media ship inside the wheel and inline into review pages: a few seconds of video, not minutes."""
    static = gallery.describe(name).folder / "static"
    for path in static.iterdir() if static.is_dir() else []:
        assert path.stat().st_size < 200_000, f"{path} is {path.stat().st_size:,} bytes"


def test_video_clips_are_webm_that_browsers_play() -> None:
    """VP8 in WebM (an EBML header, the webm doc type, a V_VP8 track): Chromium, Firefox and Safari play it."""
    for row in example_rows("video_annotation"):
        data = (gallery.describe("video_annotation").folder / row["video"]).read_bytes()
        assert data[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in data[:64] and b"V_VP8" in data[:4096], row


SEGMENTS = [
    ('[{"label":"car","start":0.5,"end":3}]', 200),
    ('[{"label":"car","start":0,"end":1.25},{"label":"person","start":2,"end":5.5}]', 200),
    ("[]", 422),  # nothing marked
    ('[{"label":"car","start":"0.5","end":3}]', 422),  # a time as text
    ('[{"label":"car","start":-1,"end":3}]', 422),  # before the clip
    ('[{"label":"car","start":0.5}]', 422),  # no end
    ('[{"label":"car","start":0.5,"end":3,"note":"x"}]', 422),  # a key the page never writes
    ('[{"label":"c\\"ar","start":0.5,"end":3}]', 422),  # a quote the page's labels cannot hold
]


@pytest.mark.parametrize(("segments", "status"), SEGMENTS)
def test_video_segments_are_held_to_their_shape_by_the_server(segments: str, status: int, project: cn.Project) -> None:
    task = cn.Task(
        "video", title="t", reward=0.1, template="video_annotation", data=[{"video": "static/street.webm"}],
        project=project,
    )  # fmt: skip
    run = task.launch()
    try:
        worker = Worker(run, "mallory")
        assert worker.enter().status_code == 200
        reply = worker.submit({"segments": segments, "duration": "6"})
        assert reply.status_code == status, reply.text
        if status == 422:
            assert list(reply.json()["errors"]) == ["segments"]
    finally:
        run.stop()


def test_video_review_stretches_its_timeline_over_forged_segments() -> None:
    segments = json.dumps(
        [
            {"label": "car", "start": -2, "end": 1.5},  # starts before the clip: drawn from 0
            {"label": "drone", "start": 3, "end": 60},  # a label the page does not offer, past the clip's end
            {"label": "person", "start": 4, "end": 2},  # ends before it starts: listed, not drawn
        ]
    )
    html = gallery.render_review(
        "video_annotation", {"video": "static/street.webm"}, {"segments": segments, "duration": "6"}
    )
    assert "left:0.00%;width:2.50%" in html  # 1.5 s of the 60 s the segments reach
    assert ">drone</span>" in html and 'title="drone 3–60 s"' in html and "left:5.00%;width:95.00%" in html
    assert 'title="person' not in html and "<li>person: 4–2 s</li>" in html
