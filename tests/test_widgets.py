"""Widget state and callbacks: traits set as the browser sets them (``set_state``), messages the view sends,
clicks through the Python API. The browser side is in tests/test_lab.py and tests/test_lab_widgets.py."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pandas as pd
import pytest
import requests

import crowdnb as cn
from crowdnb.notebook.preview import PreviewFrame
from crowdnb.notebook.review_grid import ReviewGrid, agreement
from crowdnb.notebook.widgets import LivePanel, rate_per_minute

from .conftest import FORM, SENTENCES, wait_until


# --- the preview ------------------------------------------------------------------------------------
def test_preview_widget_follows_row_and_width(project: cn.Project) -> None:
    task = cn.Task("p", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    widget = PreviewFrame(task)
    assert widget.rows == 6 and widget.src.endswith("?row=0")
    assert "sentence number 0" in requests.get(widget.src, timeout=10).text
    widget.set_state({"row": 4})  # what the browser sends
    assert widget.src.endswith("?row=4") and "sentence number 4" in requests.get(widget.src, timeout=10).text
    widget.set_state({"row": 99})  # past the last row: the last row
    assert widget.row == 5 and widget.src.endswith("?row=5")
    widget.set_state({"width": "phone"})
    assert widget.width == "phone"
    widget.set_state({"width": "tv"})  # not a width it knows
    assert widget.width == "desktop"


# --- the live panel -------------------------------------------------------------------------------------
def test_live_panel_counts_rise_while_bots_submit(make_run: Any) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(30)])
    panel = LivePanel(run, interval=0.1)
    try:
        assert panel.progress.value == 0 and panel.progress.max == 30
        assert "—/min" in panel.stats.value  # no rate before two submissions
        sim = cn.simulate(run, workers=3, think=(0.01, 0.03), wait=False)
        wait_until(lambda: 0 < panel.progress.value < 30, timeout=10)
        sim.wait()
        wait_until(lambda: panel.progress.value == 30, timeout=10)
        assert panel.progress.bar_style == "success"
        assert "30/30 submitted" in panel.stats.value and "$3.00 pending" in panel.stats.value
        assert "time left done" in panel.stats.value
        assert "<svg" in panel.charts.value and "30 in" in panel.charts.value
        assert panel.table.value.count("</tr>") == 9  # header + 8 latest
        assert panel.figures["per_minute"] > 0
    finally:
        panel.close()


def test_rate_is_measured_over_a_window_not_extrapolated() -> None:
    stamps = pd.Series([1000.0])
    assert rate_per_minute(stamps, end=1000.5) is None  # one submission: no rate, however recent
    stamps = pd.Series([1000.0, 1030.0, 1060.0])  # one every 30 s
    assert rate_per_minute(stamps, end=1060.0) == pytest.approx(2.0)
    assert rate_per_minute(stamps, end=1120.0) == pytest.approx(1.0)  # a pause lowers it
    old_and_new = pd.Series([0.0, 10.0, 2000.0, 2060.0])  # the first two are out of a 5-minute window
    assert rate_per_minute(old_and_new, end=2060.0) == pytest.approx(1.0)


def test_live_rate_is_frozen_once_the_run_is_done(make_run: Any) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(4)])
    cn.simulate(run, workers=2)
    now = [run.df["submitted_at"].max().timestamp() + 5]
    panel = LivePanel(run, interval=60, clock=lambda: now[0])
    panel.close()
    done = panel.figures["per_minute"]
    assert done is not None and done > 0
    now[0] += 3600  # an hour later the run is still done: the same rate, not a falling one
    panel.refresh()
    assert panel.figures["per_minute"] == done


def test_live_rate_falls_while_a_run_waits(make_run: Any) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(4)])
    cn.simulate(run, workers=1, units=2)
    now = [run.df["submitted_at"].max().timestamp()]
    panel = LivePanel(run, interval=60, clock=lambda: now[0])
    panel.close()
    first = panel.figures["per_minute"]
    now[0] += 120
    panel.refresh()
    assert panel.figures["per_minute"] < first  # two units left and nobody working: the rate goes down


def test_live_table_escapes_answers_and_draws_light_rules(run: cn.Run) -> None:
    cn.simulate(run, workers=1, answer=lambda row: {"label": "pos", "why": "<script>alert(1)</script>"})
    panel = LivePanel(run)
    panel.close()
    assert "<script>alert" not in panel.table.value and "&lt;script&gt;" in panel.table.value
    assert 'border="1"' not in panel.table.value and "border-bottom:1px solid #e6e8eb" in panel.table.value


# --- the review grid ------------------------------------------------------------------------------------
def ids(grid: ReviewGrid) -> list[int]:
    return [int(row["id"]) for row in grid.rows]


def test_review_grid_approves_one_row_and_pays_once(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    grid = ReviewGrid(run, page_size=4)
    assert len(grid.rows) == 4 and (grid.page, grid.pages, grid.total) == (0, 2, 6)
    first = ids(grid)[0]
    grid._message(grid, {"action": "approve", "units": [str(first)]}, [])  # what a click or the key "a" sends
    assert run.store.get_unit(first)["status"] == "accepted"
    assert grid.message == "accepted 1 of 1 unit"
    assert len(grid.rows) == 4 and first not in ids(grid)  # it opens on the units that need a decision
    grid.status = "accepted"
    grid.apply("approve", [first])  # approving again
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'approve'") == 1


def test_review_grid_bulk_reject_with_note_and_bonus(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    grid = ReviewGrid(run, page_size=10)
    grid.set_state({"selected": [row["id"] for row in grid.rows], "note": "Please read the sentence."})
    grid._message(grid, {"action": "reject", "units": list(grid.selected)}, [])
    assert run.counts["rejected"] == 6
    notes = {r["note"] for r in run.store.query("SELECT note FROM reviews WHERE action = 'rejected'")}
    assert notes == {"Please read the sentence."}
    grid.status = "rejected"
    grid.set_state({"amount": 0.25})
    grid.apply("bonus", ids(grid)[:1])
    grid.apply("bonus", ids(grid)[:1])  # the same bonus twice: paid once
    assert run.store.query("SELECT amount FROM provider_calls WHERE call = 'bonus'") == [{"amount": 0.25}]


def test_review_grid_needs_a_note_for_a_bonus(run: cn.Run) -> None:
    cn.simulate(run, workers=1)
    grid = ReviewGrid(run)
    grid.apply("bonus", ids(grid)[:1])
    assert "a bonus needs a reason" in grid.message
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'bonus'") == 0
    grid.apply("approve", [])
    assert grid.message.startswith("Select units first")


def test_review_grid_filters_pages_and_says_why_it_is_empty(run: cn.Run) -> None:
    cn.simulate(
        run, workers=2, answer=lambda row: {"label": "pos", "why": "odd" if row["text"][-1] in "135" else "even"}
    )
    grid = ReviewGrid(run, page_size=2)
    assert (grid.page, grid.pages) == (0, 3)
    grid.turn(+1)
    assert grid.page == 1 and len(grid.rows) == 2
    grid.answer = "odd"
    assert (grid.page, grid.total) == (0, 3)
    grid.worker = "bot-1"
    assert grid.total == int(((run.df["why"] == "odd") & (run.df["worker"] == "bot-1")).sum())
    grid.worker = "nobody"
    assert grid.rows == [] and grid.empty == (
        "No unit awaiting a decision has a worker containing “nobody” and an answer containing “odd”; "
        "clear the text filters to see all 6."
    )
    grid.worker, grid.answer = "", ""
    grid.status = "rejected"
    assert grid.empty == "No unit is rejected (6 awaiting a decision)."
    run.approve(run.df["unit_id"].tolist())
    grid.status = "completed"
    assert grid.empty.startswith("No unit needs a decision: every submitted unit is decided (6 accepted)")
    assert [s["count"] for s in grid.statuses] == [0, 6, 0, 0, 6]


def test_review_grid_says_when_nothing_is_submitted(run: cn.Run) -> None:
    grid = ReviewGrid(run)
    assert grid.rows == [] and grid.empty.startswith("No submissions yet")


@pytest.mark.parametrize(
    "column", ["row_index", "worker", "record", "answers", "duration_s", "checks", "status", "submitted_at"]
)
def test_review_grid_sorts_by_any_column(make_run: Any, column: str) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(5)], units_per_assignment=2)
    cn.simulate(run, workers=3, seed=7)
    run.reject(run.df[run.df["worker"] == "bot-2"]["unit_id"].tolist()[:1], note="no")
    grid = ReviewGrid(run, page_size=50)
    grid.status = "all"
    grid.sort = column
    ascending = grid.filtered()
    key = {"record": "record_rank", "checks": "checks_rank"}.get(column, column)
    values = ascending[key].tolist()
    assert values == sorted(values)
    assert ids(grid) == ascending["unit_id"].tolist()
    grid.descending = True
    assert [v for v in grid.filtered()[key]] == sorted(values, reverse=True)


def test_review_grid_record_and_checks(make_run: Any) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(4)], units_per_assignment=3)
    cn.simulate(run, workers=3, answer=lambda row: {"label": "pos" if row["text"] in ("s0", "s2") else "neg"})
    run.reject(run.df[run.df["worker"] == "bot-1"]["unit_id"].tolist()[:2], note="no")
    grid = ReviewGrid(run, page_size=20)
    grid.status = "all"
    assert [row["agrees"] for row in grid.rows] == [True] * 12
    records = {row["worker"]: row["record"] for row in grid.rows}
    assert records["bot-1"] == {"accepted": 0, "rejected": 2, "soft_rejected": 0, "completed": 2}
    grid.sort, grid.descending = "record", True
    assert grid.rows[0]["worker"] == "bot-1"  # the worst record first


def test_review_grid_shows_answers_as_text(run: cn.Run) -> None:
    cn.simulate(run, workers=1, answer=lambda row: {"label": "pos", "why": "<img src=x onerror=alert(1)>"})
    grid = ReviewGrid(run)
    row = grid.rows[0]
    assert row["answers"].endswith("why=<img src=x onerror=alert(1)>")  # the view sets it as text, never HTML
    grid.opened = [row["id"]]
    html = grid.details[row["id"]]
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_review_grid_opens_a_template_row_with_its_renderer(project: cn.Project) -> None:
    folder = cn.templates()["bounding_boxes"]
    task = cn.Task(
        "boxes", title="B", reward=0.1, template="bounding_boxes", data=folder / "example.csv", project=project
    )
    run = task.launch()
    try:
        box = '[{"label": "car", "x": 40, "y": 190, "w": 170, "h": 70}]'
        cn.simulate(run, workers=1, answer=lambda unit: {"boxes": box})
        grid = ReviewGrid(run)
        grid.set_state({"opened": [grid.rows[0]["id"]]})
        html = grid.details[grid.rows[0]["id"]]
        assert "gallery-review" in html and "car: x 40, y 190, 170 × 70" in html and "data:image/svg+xml" in html
        assert grid.rows[0]["answers"] == f"boxes={box}" and grid.rows[0]["inputs"].startswith("static/")
    finally:
        run.stop()


def test_agreement_matches_the_majority_of_the_others() -> None:
    def reference(frame: pd.DataFrame, label: str) -> list[bool | None]:
        result: list[bool | None] = []
        for item, answer in zip(frame["assignment_id"], frame[label], strict=True):
            others = frame[frame["assignment_id"] == item][label].tolist()
            others.remove(answer)
            if not others:
                result.append(None)
                continue
            top = pd.Series(others).value_counts()
            result.append(answer in set(top[top == top.max()].index))
        return result

    frame = pd.DataFrame({"assignment_id": [1, 1, 1, 2], "label": ["pos", "pos", "neg", "pos"]})
    assert agreement(frame, "label").tolist() == [True, True, False, None]
    rng = random.Random(3)
    for _ in range(30):
        sizes = [rng.randint(1, 5) for _ in range(rng.randint(1, 8))]
        items = list(itertools.chain.from_iterable([i] * n for i, n in enumerate(sizes)))
        frame = pd.DataFrame({"assignment_id": items, "label": [rng.choice("abc") for _ in items]})
        assert agreement(frame, "label").tolist() == reference(frame, "label"), frame


def test_task_run_and_worker_show_themselves(run: cn.Run) -> None:
    cn.simulate(run, workers=1)
    project = cn.open(run.store.root)
    assert "completed" in run._repr_html_() and str(run.id) in run._repr_html_()
    worker = project.worker("bot-1")
    worker.grant("trusted", 2)
    html = worker._repr_html_()
    assert "Worker bot-1" in html and "completed" in html and "trusted=2" in html
    task = cn.Task("sentiment", title="<b>T</b>", reward=0.1, html=FORM, data=SENTENCES, project=project)
    assert "&lt;b&gt;T&lt;/b&gt;" in task._repr_html_() and "label, why" in task._repr_html_()
