"""The README is the tutorial: its examples run, and every command, provider and architect is in it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from crowdnb import plugins
from crowdnb.cli import cli

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_python_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python example"
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    for block in blocks:
        done = subprocess.run(
            [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "sentiment.parquet").is_file()


def test_every_command_is_in_the_command_table() -> None:
    section = README[README.index("## Command line") :]
    table = section[: section.index("\n\n", section.index("| command |"))]
    rows = [line for line in table.splitlines() if line.startswith("| `crowdnb ")]
    for name, command in cli.commands.items():
        names = [f"crowdnb {name} {sub}" for sub in getattr(command, "commands", {})] or [f"crowdnb {name}"]
        for full in names:
            assert any(f"`{full}" in row for row in rows), f"`{full}` is missing from the README's command table"


def test_every_magic_is_documented() -> None:
    from crowdnb.notebook.magics import CrowdMagics

    names = list(CrowdMagics().parsers)  # what `%crowd --help` lists
    assert len(names) > 10
    for name in names:
        assert f"%crowd {name}" in README or f"%%crowd {name}" in README, f"%crowd {name} is missing from the README"


def test_every_provider_and_architect_is_in_the_concepts_table() -> None:
    for kind in ("provider", "architect"):
        row = next(line for line in README.splitlines() if line.startswith(f"| {kind.title()} |"))
        for name in plugins.installed(kind):
            assert f"`{name}`" in row, f"{kind} {name!r} is missing from the README's Concepts table"


def test_quick_start_is_two_commands_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, flags=re.M) and re.search(r"^test:", makefile, flags=re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
