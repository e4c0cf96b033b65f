"""Widget state and callbacks (clicks through ``button.click()``, frontend messages through ``set_state``)."""

from __future__ import annotations

import crowdnb as cn
from crowdnb.notebook.review_table import ReviewTable
from crowdnb.notebook.widgets import LivePanel, preview_widget

from .conftest import FORM, SENTENCES, wait_until


def test_preview_widget_follows_row_and_width(project: cn.Project) -> None:
    task = cn.Task("p", title="T", reward=0.1, html=FORM, data=SENTENCES, project=project)
    widget = preview_widget(task)
    (row, width, _), frame = widget.children[0].children, widget.children[1]
    assert "sentence number 0" in frame.value and "width:100%" in frame.value
    row.set_state({"value": 4})  # what the browser sends
    assert "sentence number 4" in frame.value
    width.set_state({"index": 0})  # selection widgets sync the index
    assert "width:375px" in frame.value
    assert "&lt;style&gt;" in frame.value  # the stylesheet is inlined into the iframe


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


def test_live_panel_counts_rise_while_bots_submit(make_run) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(30)])
    panel = LivePanel(run, interval=0.1)
    try:
        assert panel.progress.value == 0 and panel.progress.max == 30
        sim = cn.simulate(run, workers=3, think=(0.01, 0.03), wait=False)
        wait_until(lambda: 0 < panel.progress.value < 30, timeout=10)
        sim.wait()
        wait_until(lambda: panel.progress.value == 30, timeout=10)
        assert panel.progress.bar_style == "success"
        assert "30/30 submitted" in panel.stats.value and "$3.00 pending" in panel.stats.value
        assert "<svg" in panel.charts.value and "30 in" in panel.charts.value
        assert panel.table.value.count("</tr>") == 9  # header + 8 latest
        assert panel.figures["per_minute"] > 0
    finally:
        panel.close()


def test_live_table_escapes_answers(run: cn.Run) -> None:
    cn.simulate(run, workers=1, answer=lambda row: {"label": "pos", "why": "<script>alert(1)</script>"})
    panel = LivePanel(run)
    panel.close()
    assert "<script>" not in panel.table.value and "&lt;script&gt;" in panel.table.value


def test_review_table_approves_one_row_and_pays_once(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    table = ReviewTable(run, page_size=4)
    assert len(table.rows.children) == 4 and table.pager.value == "page 1 of 2 · 6 units"
    first = next(iter(table.row_buttons))
    table.row_buttons[first]["approve"].click()
    assert run.store.get_unit(first)["status"] == "accepted"
    assert "accepted 1 of 1" in table.message.value
    assert len(table.rows.children) == 4 and first not in table.row_buttons  # filter: completed only
    table.status.value = "accepted"
    table.row_buttons[first]["approve"].click()  # approving again
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'approve'") == 1


def test_review_table_bulk_reject_with_note_and_bonus(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    table = ReviewTable(run, page_size=10)
    table.select_all.value = True
    table.note.value = "Please read the sentence."
    table.bulk["reject"].click()
    assert run.counts["rejected"] == 6
    assert set(r["note"] for r in run.store.query("SELECT note FROM reviews WHERE action = 'rejected'")) == {
        "Please read the sentence."
    }
    table.status.value = "rejected"
    table.checks[next(iter(table.checks))].value = True
    table.amount.value = 0.25
    table.bulk["bonus"].click()
    table.checks[next(iter(table.checks))].value = True
    table.bulk["bonus"].click()  # the same bonus twice: paid once
    bonuses = run.store.query("SELECT amount FROM provider_calls WHERE call = 'bonus'")
    assert bonuses == [{"amount": 0.25}]


def test_review_table_needs_a_note_for_a_bonus(run: cn.Run) -> None:
    cn.simulate(run, workers=1)
    table = ReviewTable(run)
    table.checks[next(iter(table.checks))].value = True
    table.bulk["bonus"].click()
    assert "a bonus needs a reason" in table.message.value
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'bonus'") == 0


def test_review_table_filters_and_pages(run: cn.Run) -> None:
    cn.simulate(
        run, workers=2, answer=lambda row: {"label": "pos", "why": "odd" if row["text"][-1] in "135" else "even"}
    )
    table = ReviewTable(run, page_size=2)
    assert table.prev.disabled and not table.next.disabled
    table.next.click()
    assert table.pager.value.startswith("page 2 of 3")
    table.answer.value = "odd"
    assert table.pager.value == "page 1 of 2 · 3 units"
    table.worker.value = "bot-1"
    counted = int(table.pager.value.split("· ")[1].split()[0])
    assert counted == int(((run.df["why"] == "odd") & (run.df["worker"] == "bot-1")).sum())


def test_review_table_shows_answers_as_text(run: cn.Run) -> None:
    cn.simulate(run, workers=1, answer=lambda row: {"label": "pos", "why": "<img src=x onerror=alert(1)>"})
    table = ReviewTable(run)
    body = table.rows.children[0].children[2].value
    assert "<img" not in body and "&lt;img src=x onerror=alert(1)&gt;" in body


def test_review_and_live_widgets_show_quality(make_run) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(4)], units_per_assignment=3)
    cn.simulate(run, workers=3, answer=lambda row: {"label": "pos" if row["text"] in ("s0", "s2") else "neg"})
    table = ReviewTable(run, page_size=20)
    assert len(table.flags) == 12 and all(flag.endswith("✓ agrees") for flag in table.flags.values())
    panel = LivePanel(run)
    panel.close()
    assert "agreement on label: α = 1.00" in panel.stats.value


def test_review_table_marks_the_odd_one_out(make_run) -> None:
    import pandas as pd

    from crowdnb.notebook.review_table import _agrees

    frame = pd.DataFrame({"assignment_id": [1, 1, 1, 2], "label": ["pos", "pos", "neg", "pos"]})
    assert _agrees(frame, frame, "label") == [True, True, False, None]
