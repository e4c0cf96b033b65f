"""Clear the shipped notebooks before committing them: ``python notebooks/clean.py`` (or ``make notebooks``).

A notebook saved after a run carries every widget's state and each widget output's plain-text stand-in
(``VBox(children=(HTML(value=…``), which is what a reader sees before running it, and a stale run shown
as "running". This keeps only the outputs nbval checks (cells marked ``# NBVAL_CHECK_OUTPUT``: plain
text or tables, true by construction), drops every other output and its execution count, and the notebook's
widget state. ``tests/test_notebooks_shipped.py`` fails when a notebook is committed otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
CHECKED = "# NBVAL_CHECK_OUTPUT"


def clean(path: Path) -> bool:
    """Clear one notebook in place; whether anything changed."""
    notebook = nbformat.read(path, as_version=4)
    before = nbformat.writes(notebook)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if not cell.source.lstrip().startswith(CHECKED):  # nbval needs a checked cell's count, or calls it unrun
            cell.outputs = []
            cell.execution_count = None
    after = nbformat.writes(notebook)
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


def main(paths: list[str]) -> None:
    """Clean the named notebooks, or every notebook in this folder."""
    for path in [Path(p) for p in paths] or sorted(HERE.glob("*.ipynb")):
        if clean(path):
            print(f"cleaned {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
