"""The notebooks as shipped, before anyone runs them, and ``make lab`` that opens them.

A notebook committed after a run carries its widgets' state and their plain-text stand-ins
(``VBox(children=(HTML(value=…``): that is what a reader sees before running it, and it made the
quickstart 593 KB. ``notebooks/clean.py`` clears them; these tests fail when one is committed uncleared.
nbval still runs every notebook (``pytest notebooks --nbval-lax``) and checks the outputs that remain.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LIMIT = 100_000  # bytes a shipped notebook may take
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def outputs(notebook: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(the cell's source, one output) for every output of every code cell."""
    return [
        ("".join(cell["source"]), output)
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
        for output in cell.get("outputs", [])
    ]


def test_the_shipped_notebooks_are_there() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", "forms_and_templates.ipynb", "review_and_quality.ipynb", "operating.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_shipped_notebook_is_small_and_has_no_widget_state(path: Path) -> None:
    size = path.stat().st_size
    assert size < LIMIT, f"{path.name} is {size:,} bytes; run `python notebooks/clean.py` before committing it"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in notebook["metadata"], f"{path.name} carries widget state: run notebooks/clean.py"
    for source, output in outputs(notebook):
        assert WIDGET_VIEW not in output.get("data", {}), f"{path.name}: a widget output in {source[:60]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_shipped_notebook_keeps_only_outputs_nbval_checks(path: Path) -> None:
    """An output nbval does not compare goes stale silently (a run shown as "running" forever)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for source, output in outputs(notebook):
        assert source.lstrip().startswith("# NBVAL_CHECK_OUTPUT"), (
            f"{path.name}: an unchecked {output['output_type']} output in {source[:60]!r}; run notebooks/clean.py"
        )
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))  # raises when invalid


def test_clean_clears_a_run_notebook_and_keeps_checked_outputs(tmp_path: Path) -> None:
    widget = {WIDGET_VIEW: {"model_id": "f00", "version_major": 2}, "text/plain": "VBox(children=(HTML(value='…"}
    cells = [
        nbformat.v4.new_code_cell("run.live()", execution_count=3),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\n1 + 1", execution_count=4),
        nbformat.v4.new_markdown_cell("Some prose."),
    ]
    cells[0].outputs = [nbformat.v4.new_output("display_data", data=widget)]
    cells[1].outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=4)]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"f00": {}}}}
    path = tmp_path / "run.ipynb"
    nbformat.write(notebook, path)

    command = [sys.executable, str(REPO / "notebooks" / "clean.py"), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == f"cleaned {path}"
    cleaned = json.loads(path.read_text(encoding="utf-8"))
    assert "widgets" not in cleaned["metadata"]
    assert [cell.get("outputs") for cell in cleaned["cells"]] == [
        [],
        [{"output_type": "execute_result", "data": {"text/plain": ["2"]}, "metadata": {}, "execution_count": 4}],
        None,
    ]
    assert [cell.get("execution_count") for cell in cleaned["cells"][:2]] == [None, 4]  # nbval needs the 4
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert again.stdout == "", "a clean notebook is left as it is"


def make_lab(bin_folder: Path, user: list[str]) -> list[str]:
    """The arguments ``make lab`` gives ``jupyter`` (a stand-in that prints them), run as ``user``."""
    done = subprocess.run(
        [*user, "make", "-s", "-C", str(REPO), "-o", ".venv/.installed-dev", "lab", f"BIN={bin_folder}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()


def test_make_lab_passes_allow_root_only_as_root() -> None:
    """``jupyter lab`` refuses to start as root without ``--allow-root``; a user should not get it."""
    folder = Path(tempfile.mkdtemp(prefix="crowdnb-make-lab-"))
    try:
        fake = folder / "jupyter"
        fake.write_text('#!/bin/sh\necho "$@"\n', encoding="utf-8")
        fake.chmod(0o755)
        folder.chmod(0o755)
        args = make_lab(folder, [])
        assert args[0] == "lab" and args[-1] == "notebooks/quickstart.ipynb", args
        assert ("--allow-root" in args) == (os.getuid() == 0), args
        setpriv = shutil.which("setpriv")
        if os.getuid() == 0 and setpriv and os.stat(REPO).st_mode & stat.S_IROTH:
            nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
            assert "--allow-root" not in make_lab(folder, nobody)
    finally:
        shutil.rmtree(folder)
