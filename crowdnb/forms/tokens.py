"""Dynamic forms: ``{{TOKEN}}`` placeholders, token sets, permutation, and HTML insertion files.

A unit config is one form with ``{{TOKEN}}`` in its help, instruction, label, title or tooltip texts (and
option labels). Each set of token values makes one form version: ``extrapolate`` fills them in.
``permutate`` turns separate value lists (``{"actor": ["A", "B"], "movie": ["M"]}``) into every
combination, in order, as token sets. An attribute (or a token value) that is a path like
``insertions/intro.html`` stands for that file's content, read relative to the config's folder.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from markupsafe import escape

from ..errors import FormError, Problem
from .rules import js_string, show

TOKEN = re.compile(r"\{\{\s*(\w+?)\s*\}\}")
# Mephisto's remote-procedure tokens, {{getPresignedUrl("s3://…")}}: S3 only, not resolved here
PROCEDURE = re.compile(r"\{\{\s*\w+\(.*?\)\s*\}\}")
TOKEN_ATTRS = ("help", "instruction", "label", "title", "tooltip")
HTML_ATTRS = frozenset({"help", "instruction", "title"})  # shown as HTML; label and tooltip are plain text
TOKENS_KEY = "tokens_values"
_TOKEN_NAME = re.compile(r"^\w+$")


def is_insertion(value: Any) -> bool:
    """Whether a value names an HTML insertion file (Mephisto's rule: under ``insertions/``, ``.html``)."""
    return isinstance(value, str) and "insertions/" in value and value.strip().endswith(".html")


def elements(config: Mapping[str, Any], path: str = "form") -> Iterator[tuple[dict[str, Any], str]]:
    """Every object of a form that may hold tokens (form, sections, …, fields, options), with its path."""
    form = config.get("form")
    if not isinstance(form, dict):
        return
    yield form, path
    if isinstance(form.get("submit_button"), dict):
        yield form["submit_button"], f"{path}.submit_button"
    levels = ("sections", "fieldsets", "rows", "fields", "options")

    def walk(node: dict[str, Any], where: str, depth: int) -> Iterator[tuple[dict[str, Any], str]]:
        if depth == len(levels) or not isinstance(node.get(levels[depth]), list):
            return
        for index, child in enumerate(node[levels[depth]]):
            if isinstance(child, dict):
                here = f"{where}.{levels[depth]}[{index}]"
                yield child, here
                yield from walk(child, here, depth + 1)

    yield from walk(form, path, 0)


def tokens_of(config: Mapping[str, Any]) -> set[str]:
    """The token names a config uses."""
    return {
        name
        for item, _ in elements(config)
        for attr in TOKEN_ATTRS
        if isinstance(item.get(attr), str)
        for name in TOKEN.findall(item[attr])
    }


def check_tokens(config: Mapping[str, Any], path: str = "form") -> list[Problem]:
    """Tokens where they cannot be filled in (other attributes), and Mephisto's S3 procedure tokens."""
    problems = []
    for item, where in elements(config, path):
        for attr, value in item.items():
            if not isinstance(value, str):
                continue
            if PROCEDURE.search(value):
                problems.append(Problem(f"{where}.{attr}", f"{PROCEDURE.search(value).group(0)} calls a Mephisto "  # type: ignore[union-attr]
                                        "remote procedure (S3 presigned URLs), which crowdnb does not run; put the "
                                        "URL itself in the token's value"))  # fmt: skip
            elif attr not in TOKEN_ATTRS and TOKEN.search(value):
                problems.append(Problem(f"{where}.{attr}", f"tokens go only in {', '.join(TOKEN_ATTRS)}; "
                                        f"got {show(value)}"))  # fmt: skip
    return problems


def fill(text: str, values: Mapping[str, Any], *, html: bool, insertion: Callable[[str], str | None]) -> str:
    """``text`` with its tokens replaced. ``html``: values are escaped, except insertion files (HTML already)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        inserted = insertion(value) if is_insertion(value) else None
        if inserted is not None:
            return inserted
        text = js_string(value) if value is not None else ""
        return str(escape(text)) if html else text

    return TOKEN.sub(one, text)


def extrapolate(
    config: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    html: bool = False,
    insertion: Callable[[str], str | None] = lambda _: None,
) -> dict[str, Any]:
    """A copy of ``config`` with every token replaced by its value (``html``: escaped for the page)."""
    out = copy.deepcopy(dict(config))
    for item, _ in elements(out):
        for attr in TOKEN_ATTRS:
            if isinstance(item.get(attr), str):
                item[attr] = fill(item[attr], values, html=html and attr in HTML_ATTRS, insertion=insertion)
    return out


def permutate(separate: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of separate token values, as token sets (the first token varies slowest)."""
    names = list(separate)
    return [{TOKENS_KEY: dict(zip(names, combo, strict=True))} for combo in itertools.product(*separate.values())]


def check_token_sets(raw: Any, path: str = "") -> list[dict[str, Any]]:
    """The token values of a ``token_sets_values_config.json`` list; ``FormError`` names every bad entry."""
    problems: list[Problem] = []
    sets: list[dict[str, Any]] = []
    if not isinstance(raw, list):
        raise FormError([Problem(path, f'expected a list of {{"{TOKENS_KEY}": {{…}}}} objects, got {show(raw)}')])
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if item == {}:  # Mephisto's way to say "the unit config as it is"
            sets.append({})
            continue
        if not isinstance(item, dict) or set(item) != {TOKENS_KEY} or not isinstance(item[TOKENS_KEY], dict):
            problems.append(Problem(where, f'expected {{"{TOKENS_KEY}": {{"token": "value", …}}}}, got {show(item)}'))
            continue
        problems += _check_values(item[TOKENS_KEY], f"{where}.{TOKENS_KEY}")
        sets.append(dict(item[TOKENS_KEY]))
    if problems:
        raise FormError(problems)
    return sets


def check_separate(raw: Any, path: str = "") -> dict[str, list[Any]]:
    """The value lists of a ``separate_token_values_config.json`` object; ``FormError`` names bad ones."""
    if not isinstance(raw, dict) or not raw:
        raise FormError(
            [
                Problem(
                    path,
                    f'expected an object of token names and value lists, like {{"actor": ["A", "B"]}}, got {show(raw)}',
                )
            ]
        )
    problems: list[Problem] = []
    for name, values in raw.items():
        where = f"{path}.{name}" if path else name
        if not _TOKEN_NAME.match(name):
            problems.append(Problem(where, f"a token name is letters, digits and _; got {show(name)}"))
        if not isinstance(values, list) or not values:
            problems.append(Problem(where, f"expected a non-empty list of values, got {show(values)}"))
            continue
        for index, value in enumerate(values):
            problems += _check_values({name: value}, f"{where}[{index}]", single=True)
    if problems:
        raise FormError(problems)
    return {k: list(v) for k, v in raw.items()}


def _check_values(values: dict[str, Any], path: str, *, single: bool = False) -> list[Problem]:
    problems = []
    for name, value in values.items():
        where = path if single else f"{path}.{name}"
        if not single and not _TOKEN_NAME.match(name):
            problems.append(Problem(where, f"a token name is letters, digits and _; got {show(name)}"))
        if isinstance(value, (dict, list)) or value is None:
            problems.append(Problem(where, f"expected a string or a number, got {show(value)}"))
    return problems


def match_tokens(used: set[str], sets: list[dict[str, Any]], path: str) -> list[Problem]:
    """Tokens a form uses that a set leaves out, and token values no form uses (Mephisto refuses both)."""
    problems = []
    for index, values in enumerate(sets):
        if not values:
            continue
        missing, extra = sorted(used - set(values)), sorted(set(values) - used)
        if missing:
            problems.append(Problem(f"{path}[{index}]", f"no value for token(s) {', '.join(missing)} used in the form"))
        if extra:
            problems.append(
                Problem(f"{path}[{index}]", f"value(s) for {', '.join(extra)}, which the form does not use")
            )
    return problems


def read_insertion(folder: Path, value: str, path: str) -> str:
    """The content of an insertion file named relative to ``folder``; it must stay inside ``folder``."""
    target = (folder / value.strip()).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise FormError([Problem(path, f"the insertion file {value!r} is outside the config's folder {folder}")])
    if not target.is_file():
        raise FormError([Problem(path, f"insertion file {target} not found; create it or fix the path")])
    return target.read_text(encoding="utf-8")


def inline_insertions(config: dict[str, Any], folder: Path, path: str = "form") -> dict[str, Any]:
    """``config`` with every attribute naming an insertion file replaced by the file's content."""
    out = copy.deepcopy(config)
    problems: list[Problem] = []
    for item, where in elements(out, path):
        for attr in TOKEN_ATTRS:
            if is_insertion(item.get(attr)):
                try:
                    item[attr] = read_insertion(folder, item[attr], f"{where}.{attr}")
                except FormError as exc:
                    problems += exc.problems
    if problems:
        raise FormError(problems)
    return out
