"""The preview and the review grid in a real JupyterLab and in Notebook 7 (the harness: tests/labs.py).

The preview of a bounding-box template and of a form config runs their scripts and loads their files
through jupyter-server-proxy, and Submit is a dry run; the review grid shows a template's own review
renderer in its rows and takes its keys in Notebook 7 as in JupyterLab, without the notebook's own
shortcuts firing too.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import BrowserContext, expect

from .conftest import wait_until
from .labs import Lab, accepted_units, db_rows, run_notebook, shoot, snapshot, wait_finished, write_notebook

pytestmark = pytest.mark.browser

FORM = {
    "form": {
        "title": "Door code",
        "sections": [
            {
                "title": "Code",
                "fieldsets": [
                    {
                        "rows": [
                            {
                                "fields": [
                                    {
                                        "type": "input",
                                        "name": "code",
                                        "label": "Today's code",
                                        "validators": {"required": True, "minLength": 4},
                                    }
                                ]
                            }
                        ]
                    }
                ],
            }
        ],
        "submit_button": {"text": "Open"},
    }
}
PREVIEWS = [
    "import crowdnb as cn\nproject = cn.open('widgets_data', create=True)",
    "boxes = cn.Task('boxes', title='Boxes', reward=0.05, template='bounding_boxes',\n"
    "                data=cn.templates()['bounding_boxes'] / 'example.csv', project=project)\n"
    "boxes.preview_widget()",
    f"door = cn.Task('door', title='Door code', reward=0.01, form={FORM!r}, data=[{{}}], project=project)\n"
    "door.preview_widget()",
]


def test_preview_runs_a_template_and_a_form_in_jupyterlab(lab: Lab, lab_context: BrowserContext) -> None:
    write_notebook(lab, "previews.ipynb", PREVIEWS)
    page = run_notebook(lab, lab_context, "previews.ipynb")
    wait_finished(page, lab)
    frames = page.locator(".jp-OutputArea-output iframe.crowd-preview-frame")
    expect(frames).to_have_count(2)

    # the bounding-box template: its picture loads from the template's folder, its script draws a box
    boxes = page.frame_locator(".jp-OutputArea-output iframe.crowd-preview-frame >> nth=0")
    image = boxes.locator("#bb-image")
    expect(image).to_have_js_property("complete", True)
    assert image.evaluate("img => img.naturalWidth") == 480, "the picture did not load in the preview"
    boxes.locator("#bb-label").select_option("car")
    area = image.bounding_box()
    assert area is not None
    scale = area["width"] / 480
    page.mouse.move(area["x"] + 40 * scale, area["y"] + 190 * scale)
    page.mouse.down()
    page.mouse.move(area["x"] + 120 * scale, area["y"] + 230 * scale, steps=4)
    page.mouse.move(area["x"] + 210 * scale, area["y"] + 260 * scale, steps=4)
    page.mouse.up()
    expect(boxes.locator("#bb-count")).to_have_text("1 box.")
    boxes.locator("#crowd-submit").click()
    shown = boxes.locator("#crowd-dry-run pre")
    expect(shown).to_contain_text('"boxes"')
    stored = json.loads(json.loads(shown.inner_text())["answers"]["boxes"])
    assert [b["label"] for b in stored] == ["car"] and stored[0]["w"] > 100, stored

    # the form config: forms.js checks the field in the page, the dry run shows the answer
    door = page.frame_locator(".jp-OutputArea-output iframe.crowd-preview-frame >> nth=1")
    door.locator("#cf-code").fill("ab")
    door.locator("#crowd-submit").click()
    expect(door.locator("#cf-code-error")).to_contain_text("4")
    expect(door.locator("#crowd-dry-run")).to_have_count(0)
    door.locator("#cf-code").fill("open sesame")
    door.locator("#crowd-submit").click()
    expect(door.locator("#crowd-dry-run pre")).to_contain_text('"code": "open sesame"')

    assert not (lab.root / "widgets_data" / "crowdnb.db").exists() or not db_rows(
        lab.root / "widgets_data" / "crowdnb.db", "SELECT id FROM submissions"
    ), "a dry run stored a submission"
    assert page.problems == [], "console errors:\n" + "\n".join(page.problems)  # type: ignore[attr-defined]
    page.close()


GRID = [
    "import json\nimport crowdnb as cn\nproject = cn.open('grid_data', create=True)",
    "task = cn.Task('boxes', title='Boxes', reward=0.05, template='bounding_boxes',\n"
    "               data=cn.templates()['bounding_boxes'] / 'example.csv', units_per_assignment=2, project=project)\n"
    "run = task.launch()\n"
    "box = [{'label': 'car', 'x': 40, 'y': 190, 'w': 170, 'h': 70}]\n"
    "cn.simulate(run, workers=2, answer=lambda unit: {'boxes': json.dumps(box)})\n"
    "run.stop()",
    "run.review(page_size=4)",
]


# Notebook 7.6 beside JupyterLab 4.6 throws errors of its own, a plain notebook's page too: a settings
# schema read before it is loaded, and (once JupyterLab saved a workspace on the same server) Lab's file
# browser path restored through a command Notebook 7 does not have. Neither is the grid's.
NOT_OURS = {
    "lab": [],
    "notebook": [
        "Cannot read properties of undefined (reading 'schema')",
        "Command 'filebrowser:open-path' not registered",
    ],
}


@pytest.mark.parametrize("ui", ["lab", "notebook"])
def test_review_grid_renders_and_takes_keys(lab: Lab, lab_context: BrowserContext, ui: str) -> None:
    name = f"grid_{ui}.ipynb"
    folder = f"grid_{ui}_data"  # a project per UI: the approvals counted below are this notebook's
    write_notebook(lab, name, [cell.replace("'grid_data'", repr(folder)) for cell in GRID])
    page = run_notebook(lab, lab_context, name, ui=ui)
    state = wait_finished(page, lab, timeout=60)
    grid = page.locator(".jp-OutputArea-output .crowd-review")
    rows = grid.locator("tr.crowd-row")
    expect(rows).to_have_count(4)
    expect(grid.locator(".crowd-pager")).to_have_text("page 1 of 2 · 6 units")

    # a row opens to the template's own review renderer: the picture with the worker's box drawn over it
    rows.nth(0).locator("td.crowd-answers").click()
    expect(grid).not_to_have_attribute("aria-busy", "true")
    review = grid.locator(".crowd-detail .gallery-review")
    expect(review.locator("img")).to_be_visible()
    expect(review).to_contain_text("car: x 40, y 190, 170 × 70")
    shoot(page, ".jp-OutputArea-output:has(.crowd-review)", f"{ui}-review-opened.png")

    db = lab.root / folder / "crowdnb.db"
    page.keyboard.press("n")  # the next page, its first row current
    expect(grid.locator(".crowd-pager")).to_have_text("page 2 of 2 · 6 units")
    expect(grid).not_to_have_attribute("aria-busy", "true")  # the kernel sent the page
    page.keyboard.press("x")
    page.keyboard.press("j")
    page.keyboard.press("x")
    expect(grid.locator("tr.crowd-selected")).to_have_count(2)
    page.keyboard.press("a")  # the selected rows
    wait_until(lambda: accepted_units(db) == 2, "two approvals to reach the database", timeout=30)
    expect(grid.locator(".crowd-pager")).to_have_text("page 1 of 1 · 4 units")
    page.keyboard.press("b")  # a bonus needs a note: the grid says so, nothing is paid
    expect(grid.locator(".crowd-message")).to_contain_text("reason")
    assert db_rows(db, "SELECT count(*) AS n FROM reviews WHERE action = 'bonus'")[0]["n"] == 0
    assert len(snapshot(page, lab)["cells"]) == len(state["cells"]), "a grid key reached the notebook"
    problems = [p for p in page.problems if not any(known in p for known in NOT_OURS[ui])]  # type: ignore[attr-defined]
    assert problems == [], "console errors:\n" + "\n".join(problems)
    page.close()
