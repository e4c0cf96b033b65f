"""Where a form comes from: a Mephisto FormComposer data folder, one of its JSON files, or a dict.

The folder layout is Mephisto's: ``unit_config.json`` (or ``form_config.json``) is one form, maybe with
``{{TOKEN}}``s; ``token_sets_values_config.json`` lists token sets, or ``separate_token_values_config.json``
lists each token's values (permuted into sets); ``task_data.json`` is a list of finished form versions;
``insertions/`` holds HTML, CSS and JS files. ``load_form`` reads any of these into a ``FormSource``:
the form versions and one data row per unit (its token values).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FormError, Problem
from .model import check_form
from .tokens import (
    check_separate,
    check_token_sets,
    check_tokens,
    inline_insertions,
    is_insertion,
    match_tokens,
    permutate,
    read_insertion,
    tokens_of,
)

UNIT_FILES = ("unit_config.json", "form_config.json")
TASK_DATA = "task_data.json"
TOKEN_SETS = "token_sets_values_config.json"
SEPARATE = "separate_token_values_config.json"
INSERTIONS = "insertions"
VALIDATORS_JS = "custom_validators.js"
TRIGGERS_JS = "custom_triggers.js"
VERSION_COLUMN = "form_version"  # which form version a data row shows, when there are several


@dataclass(frozen=True)
class FormSource:
    """Form versions (configs with tokens, insertions inlined) and the data rows that fill them in."""

    versions: tuple[dict[str, Any], ...]
    rows: tuple[dict[str, Any], ...]
    folder: Path
    origin: str
    warnings: tuple[Problem, ...] = ()
    insertions: dict[str, str] = field(default_factory=dict)  # token values naming HTML files → content

    @property
    def static_dir(self) -> Path | None:
        """The ``insertions/`` folder, served to the page (CSS, custom validator and trigger modules)."""
        folder = self.folder / INSERTIONS
        return folder if folder.is_dir() else None

    def to_dict(self) -> dict[str, Any]:
        """What a task stores: enough to render every version without the files (except CSS and JS)."""
        static = self.static_dir
        return {
            "origin": self.origin,
            "versions": list(self.versions),
            "insertions": dict(self.insertions),
            "css": sorted(p.name for p in static.glob("*.css")) if static else [],
            "validators_js": bool(static and (static / VALIDATORS_JS).is_file()),
            "triggers_js": bool(static and (static / TRIGGERS_JS).is_file()),
        }


def kind_of(data: Any) -> str:
    """Which Mephisto file ``data`` is: "unit", "task_data", "token_sets", "separate" or "unknown"."""
    if isinstance(data, dict):
        if "form" in data:
            return "unit"
        return "separate" if data and all(isinstance(v, list) for v in data.values()) else "unknown"
    if isinstance(data, list) and data:
        if all(isinstance(x, dict) and "form" in x for x in data):
            return "task_data"
        if all(isinstance(x, dict) and (not x or "tokens_values" in x) for x in data):
            return "token_sets"
    return "unknown"


def read_json(path: Path) -> Any:
    """A JSON file's content; ``FormError`` names the file, line and column when it is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise FormError([Problem(str(path), "no such file")]) from exc
    except json.JSONDecodeError as exc:
        raise FormError(
            [Problem(f"{path}, line {exc.lineno} column {exc.colno}", f"not valid JSON: {exc.msg}")]
        ) from exc
    except (UnicodeDecodeError, IsADirectoryError) as exc:
        raise FormError([Problem(str(path), f"not a UTF-8 JSON file ({exc})")]) from exc


def _in(name: str, problems: list[Problem]) -> list[Problem]:
    """Problems said to be in file ``name``."""
    return [Problem(f"{name}: {p.path}" if p.path else name, p.message, p.warning) for p in problems]


def unit_files(folder: Path) -> tuple[Path | None, Path | None, Path | None]:
    """A data folder's unit config, token sets and separate token values files (None when absent)."""
    unit = next((folder / n for n in UNIT_FILES if (folder / n).is_file()), None)
    sets, separate = folder / TOKEN_SETS, folder / SEPARATE
    return unit, sets if sets.is_file() else None, separate if separate.is_file() else None


def load_form(source: Any, *, values_given: bool = False) -> FormSource:
    """The form versions and data rows of a folder, a JSON file, a ``{"form": …}`` dict or a list of them.

    ``values_given``: the token values will come from elsewhere (``data=``), so none need be found here.
    """
    if isinstance(source, (dict, list)):
        return _from_data(source, Path.cwd(), "form=", None, None, values_given)
    path = Path(source).expanduser()
    if path.is_dir():
        unit, sets, separate = unit_files(path)
        if unit is not None:
            return _from_data(read_json(unit), path, unit.name, sets, separate, values_given)
        if (path / TASK_DATA).is_file():
            return _from_data(read_json(path / TASK_DATA), path, TASK_DATA, None, None, values_given)
        raise FormError([Problem(str(path), f"no form config here: expected {' or '.join(UNIT_FILES)} or {TASK_DATA}")])
    data = read_json(path)
    kind = kind_of(data)
    if kind in ("token_sets", "separate"):
        raise FormError([Problem(path.name, "this file holds token values; pass the form config (unit_config.json) "
                                 "or its folder, and the token values next to it are used")])  # fmt: skip
    folder = path.parent
    _, sets, separate = unit_files(folder) if kind == "unit" else (None, None, None)
    return _from_data(data, folder, path.name, sets, separate, values_given)


def _from_data(
    data: Any, folder: Path, name: str, sets_file: Path | None, separate_file: Path | None, values_given: bool
) -> FormSource:
    kind = kind_of(data)
    if kind not in ("unit", "task_data"):
        raise FormError(_in(name, [Problem("", 'expected a form config {"form": {…}} or a list of them '
                                           f"(task_data.json), got {kind_of(data)} data")]))  # fmt: skip
    items = [data] if kind == "unit" else list(data)
    problems: list[Problem] = []
    warnings: list[Problem] = []
    versions: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = "" if kind == "unit" else f"[{index}]"
        try:
            item = inline_insertions(item, folder, f"{where}.form" if where else "form")
        except FormError as exc:  # reported; the rest of the form is still checked
            problems += exc.problems
        try:
            _, found = check_form(item, where)
            warnings += found
        except FormError as exc:
            problems += exc.problems
            warnings += exc.warnings
        problems += check_tokens(item, f"{where}.form" if where else "form")
        versions.append(item)
    problems = _in(name, problems)
    rows, insertions = _rows(kind, items, folder, (sets_file, separate_file), problems)
    if not values_given and kind == "unit" and sets_file is None and separate_file is None and tokens_of(items[0]):
        problems += _in(name, [Problem("form", f"the form uses tokens ({', '.join(sorted(tokens_of(items[0])))}) "
                                       f"but no {TOKEN_SETS} or {SEPARATE} is next to it; add one, or give the "
                                       "values with data=")])  # fmt: skip
    if problems:
        raise FormError(problems, _in(name, warnings))
    return FormSource(tuple(versions), tuple(rows), folder, name, tuple(_in(name, warnings)), insertions)


def _rows(
    kind: str,
    items: list[dict[str, Any]],
    folder: Path,
    files: tuple[Path | None, Path | None],
    problems: list[Problem],
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """One row per unit (token values; a form_version when there are several), and insertion contents."""
    sets_file, separate_file = files
    if kind == "task_data":
        rows = []
        for index, item in enumerate(items):
            meta = item.get("form_metadata")
            values = meta.get("tokens_values") if isinstance(meta, dict) else None
            row = dict(values) if isinstance(values, dict) else {}
            rows.append({**row, VERSION_COLUMN: index} if len(items) > 1 else row)
        return rows, {}
    sets: list[dict[str, Any]] = [{}]
    values_file = sets_file or separate_file
    try:
        raw = read_json(values_file) if values_file is not None else None
    except FormError as exc:  # not JSON: the problem names the file, line and column already
        problems += exc.problems
        return [], {}
    try:
        if sets_file is not None:
            sets = check_token_sets(raw)
            origin = sets_file.name
        elif separate_file is not None:
            sets = [s["tokens_values"] for s in permutate(check_separate(raw))]
            origin = separate_file.name
    except FormError as exc:
        problems += _in((sets_file or separate_file or folder).name, exc.problems)
        return [], {}
    used = tokens_of(items[0])
    if sets_file is not None or separate_file is not None:
        problems += _in(origin, match_tokens(used, sets, ""))
    return sets, insertion_values(sets, folder, problems)


def insertion_values(rows: list[dict[str, Any]], folder: Path, problems: list[Problem]) -> dict[str, str]:
    """The content of every insertion file that data rows name as token values."""
    found: dict[str, str] = {}
    for index, row in enumerate(rows):
        for token, value in row.items():
            if is_insertion(value) and value not in found:
                try:
                    found[value] = read_insertion(folder, value, f"row {index + 1}, {token}")
                except FormError as exc:
                    problems += exc.problems
    return found


def custom_validator_names(versions: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The custom validators the versions use: name → JSON path of the first use."""
    from .rules import BUILTIN_VALIDATORS
    from .tokens import elements

    found: dict[str, str] = {}
    for index, version in enumerate(versions):
        for item, where in elements(version, f"[{index}].form" if len(versions) > 1 else "form"):
            validators = item.get("validators")
            if isinstance(validators, dict):
                for name in validators:
                    if name not in BUILTIN_VALIDATORS:
                        found.setdefault(name, f"{where}.validators.{name}")
    return found


def js_defines(path: Path, name: str) -> bool:
    """Whether a JS module file seems to export ``name`` (a word match: we do not parse JS)."""
    return path.is_file() and re.search(rf"\b{re.escape(name)}\b", path.read_text(encoding="utf-8")) is not None
