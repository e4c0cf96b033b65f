"""``crowdnb form verify|extrapolate|permutate``: Mephisto's form config tools, with JSON-path errors.

``verify`` checks a form folder or any of its files (every problem on its own line, exit code 1 when
there is one); ``extrapolate`` writes ``task_data.json`` (one form version per token set) and
``permutate`` writes ``token_sets_values_config.json`` (every combination of the separate token values),
both next to their input unless ``--output`` says where.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import FormError, Problem
from .source import SEPARATE, TASK_DATA, TOKEN_SETS, UNIT_FILES, kind_of, load_form, read_json, unit_files
from .tokens import TOKENS_KEY, check_separate, check_token_sets, extrapolate, permutate, read_insertion


def _report(problems: list[Problem], warnings: list[Problem]) -> None:
    for warning in dict.fromkeys(map(str, warnings)):
        click.echo(f"warning: {warning}", err=True)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    if problems:
        count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        click.echo(f"{count} found; fix the values at the paths above", err=True)
        sys.exit(1)


def _about(problem: Problem, file: Path) -> bool:
    """Whether ``problem`` is in ``file`` (a unit config's check reports its token files' problems too)."""
    return problem.path.startswith((f"{file.name}:", f"{file.name},", str(file))) or problem.path == file.name


def _in(name: str, exc: FormError) -> FormError:
    """A token file's problems, said to be in that file."""
    return FormError([Problem(f"{name}: {p.path}" if p.path else name, p.message) for p in exc.problems])


def _files(path: Path) -> list[Path]:
    """The form files to check: a folder's (unit config, task data, token files), or the one file given."""
    if not path.is_dir():
        return [path]
    found = [path / n for n in (*UNIT_FILES, TASK_DATA, TOKEN_SETS, SEPARATE) if (path / n).is_file()]
    if not found:
        raise FormError([Problem(str(path), f"no form config here: expected {' or '.join(UNIT_FILES)} or {TASK_DATA}")])
    return found


def verify_file(path: Path) -> str:
    """A one-line summary of a valid form file; ``FormError`` (with warnings) otherwise."""
    data = read_json(path)
    kind = kind_of(data)
    if kind == "token_sets":
        try:
            return f"{path.name}: {len(check_token_sets(data))} token sets"
        except FormError as exc:
            raise _in(path.name, exc) from None
    if kind == "separate":
        try:
            values = check_separate(data)
        except FormError as exc:
            raise _in(path.name, exc) from None
        return f"{path.name}: {len(permutate(values))} combinations of {', '.join(values)}"
    if kind == "unknown":
        raise FormError([Problem(path.name, "not a form config: expected a {\"form\": …} object, a list of them "
                                 "(task_data.json), token sets or separate token values")])  # fmt: skip
    source = load_form(path)
    for warning in source.warnings:
        click.echo(f"warning: {warning}", err=True)
    return f"{path.name}: {len(source.versions)} form version(s); {len(source.rows)} data row(s), one per unit of work"


@click.group(name="form")
def form() -> None:
    """Check and expand form configs in Mephisto's FormComposer format."""


@form.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def verify(path: Path) -> None:
    """Check PATH (a form folder, unit_config.json, task_data.json or a token file); exit 1 on problems."""
    problems: list[Problem] = []
    warnings: list[Problem] = []
    summaries: dict[Path, str] = {}
    for file in _files(path):
        try:
            summaries[file] = verify_file(file)
        except FormError as exc:
            problems += exc.problems
            warnings += exc.warnings
    problems = list({str(p): p for p in problems}.values())  # a token file's problem, found from two files
    for file, summary in summaries.items():
        if not any(_about(problem, file) for problem in problems):  # "ok" only for a file that is
            click.echo(f"ok: {summary}")
    _report(problems, warnings)


@form.command(name="extrapolate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help=f"Default: {TASK_DATA} next to PATH."
)
def extrapolate_command(path: Path, output: Path | None) -> None:
    """Fill the tokens of PATH (a unit config or its folder) with each token set: one form version per set."""
    folder = path if path.is_dir() else path.parent
    unit = unit_files(folder)[0] if path.is_dir() else path
    if unit is None:
        raise FormError([Problem(str(path), f"no unit config here: expected {' or '.join(UNIT_FILES)}")])
    source = load_form(unit)  # every problem of the config and its token files, before anything is written
    if kind_of(read_json(unit)) != "unit":
        raise FormError([Problem(unit.name, 'expected one form {"form": …} with tokens (a unit config)')])
    template = source.versions[0]
    versions: list[dict[str, Any]] = []
    for values in source.rows:
        version = extrapolate(template, values, insertion=lambda v: read_insertion(folder, v, "token value"))
        versions.append({**version, "form_metadata": {TOKENS_KEY: values}} if values else version)
    target = output or folder / TASK_DATA
    target.write_text(json.dumps(versions, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{len(versions)} form version(s) written to {target}")


@form.command(name="permutate")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help=f"Default: {TOKEN_SETS} next to PATH."
)
def permutate_command(path: Path, output: Path | None) -> None:
    """Every combination of the values in PATH (separate_token_values_config.json) as token sets."""
    file = path / SEPARATE if path.is_dir() else path
    try:
        values = check_separate(read_json(file))
    except FormError as exc:
        raise _in(file.name, exc) from None
    sets = permutate(values)
    target = output or file.parent / TOKEN_SETS
    target.write_text(json.dumps(sets, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    click.echo(f"{len(sets)} token sets written to {target}")
