"""What can be set, and how: every option of a provider, architect, template or form (Mephisto's ``wut``).

>>> cn.describe("provider", "mturk")          # option, type, default, meaning: one row each
>>> cn.describe("architect", "local")
>>> cn.describe("template", "text_classification")   # its input columns and answer fields
>>> cn.describe("form", "examples/forms/commute")     # a form config's answer fields and tokens

Read from where Python itself reads them, so the description cannot drift from the code: a plugin's
``Options`` dataclass (what its ``provider_options`` may hold) or else its ``__init__`` signature, with each
meaning from the ``Args:`` section of the docstring; a gallery template's header comment; a form
config's fields and validators. ``crowdnb describe`` prints the same table.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from . import plugins
from .errors import ConfigError
from .forms.model import check_form
from .forms.source import load_form
from .forms.tokens import tokens_of
from .pages.gallery import describe as describe_template
from .pages.gallery import templates

KINDS = ("provider", "architect", "template", "form")
COLUMNS = ["option", "type", "default", "meaning"]
SKIPPED = ("self", "store")  # what crowdnb passes itself, not an option
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Options|Attributes|Parameters):\s*$")
_ENTRY = re.compile(r"^(\s*)(\*{0,2}[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_DEFAULT = re.compile(r"\(default:?\s*([^)]*)\)")


def describe(kind: str, name: str) -> pd.DataFrame:
    """Every option of the ``kind`` ("provider", "architect", "template" or "form") named ``name``:
    ``option``, ``type``, ``default`` and ``meaning`` (a form: a config folder or file)."""
    if kind not in KINDS:
        raise ConfigError(f"cannot describe a {kind!r}; describe one of {', '.join(KINDS)}")
    if kind in ("provider", "architect"):
        return _plugin(kind, name)
    if kind == "template":
        return _template(name)
    return _form(name)


def names(kind: str) -> list[str]:
    """What there is to describe: installed providers or architects, shipped templates (forms are paths)."""
    if kind in ("provider", "architect"):
        return sorted(plugins.installed(kind))
    if kind == "template":
        return sorted(templates())
    if kind == "form":
        return []
    raise ConfigError(f"cannot describe a {kind!r}; describe one of {', '.join(KINDS)}")


def documented(doc: str | None) -> dict[str, str]:
    """Each name's meaning from the ``Args:`` (or ``Options:``, ``Attributes:``) section of a docstring."""
    meanings: dict[str, str] = {}
    indent: int | None = None  # the section's entries' indentation, once seen
    current = ""
    inside = False
    for line in inspect.cleandoc(doc or "").splitlines():
        if _SECTION.match(line):
            inside, indent, current = True, None, ""
            continue
        if not inside:
            continue
        if not line.strip():
            current = ""
            continue
        depth = len(line) - len(line.lstrip())
        entry = _ENTRY.match(line)
        if entry and (indent is None or depth == indent) and depth > 0:
            indent, current = depth, entry.group(2).lstrip("*")
            meanings[current] = entry.group(3).strip()
        elif current and indent is not None and depth > indent:
            meanings[current] = f"{meanings[current]} {line.strip()}".strip()
        else:
            inside = False
    return meanings


def signature_table(target: Callable[..., Any], doc: str | None, skip: tuple[str, ...] = SKIPPED) -> pd.DataFrame:
    """One row per parameter of ``target``: its name, annotation, default (or "required") and meaning."""
    meanings = documented(doc)
    rows = []
    for parameter in inspect.signature(target).parameters.values():
        if parameter.name in skip or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = parameter.annotation
        typed = (
            "" if annotation is parameter.empty else annotation if isinstance(annotation, str) else _name(annotation)
        )
        default = "required" if parameter.default is parameter.empty else repr(parameter.default)
        rows.append((parameter.name, typed, default, meanings.get(parameter.name, "")))
    return pd.DataFrame(rows, columns=COLUMNS)


def _plugin(kind: str, name: str) -> pd.DataFrame:
    factory = plugins.load(kind, name)
    options = getattr(factory, "Options", None)
    if options is not None:  # a dataclass of the options a provider takes as **options
        return signature_table(options, options.__doc__)
    if inspect.isclass(factory):
        return signature_table(factory, f"{factory.__doc__ or ''}\n\n{factory.__init__.__doc__ or ''}")
    return signature_table(factory, factory.__doc__)


def _template(name: str) -> pd.DataFrame:
    found = templates()
    if name not in found and not Path(name).exists():
        raise ConfigError(f"no template {name!r}; shipped: {', '.join(sorted(found))} (or give a folder's path)")
    template = describe_template(name)
    rows = []
    for kind, entries in (("input column", template.inputs), ("answer", template.answers)):
        for option, meaning in entries.items():
            optional = meaning.startswith("optional")
            given = _DEFAULT.search(meaning)
            default = given.group(1).strip() if given else ("" if optional else "required")
            rows.append((option, f"{kind}{' (optional)' if optional else ''}", default, meaning))
    return pd.DataFrame(rows, columns=COLUMNS)


def _form(name: str) -> pd.DataFrame:
    path = Path(name)
    if not path.exists():
        raise ConfigError(f"no form config at {name!r}; give a form folder or its unit_config.json")
    source = load_form(path)
    form, problems = check_form(source.versions[0])
    if problems:
        raise ConfigError(f"{name}: {problems[0]} (crowdnb form verify {name} lists every problem)")
    rows = []
    for field in form.fields():
        rules = field.rules
        checks = [
            "required" if rules.required else "",
            f"at least {rules.min_length}" if rules.min_length is not None else "",
            f"at most {rules.max_length}" if rules.max_length is not None else "",
            f"matches /{rules.regexp[0]}/{rules.regexp[1]}" if rules.regexp else "",
            f"a file ending {', '.join(rules.file_extensions)}" if rules.file_extensions else "",
            *(f"custom check {n}" for n, _ in rules.custom),
        ]
        choices = f"; one of {', '.join(o.value for o in field.options)}" if field.options else ""
        meaning = "; ".join(c for c in (field.label, *checks) if c) + choices
        value = field.value if isinstance(field.value, str) else list(field.value)
        kind = f"{field.type}{' (several)' if field.many else ''}"
        rows.append((field.name, kind, repr(value) if value else ("required" if rules.required else ""), meaning))
    for token in sorted(set().union(*(tokens_of(v) for v in source.versions))):
        rows.append((token, "token (input column)", "required", "filled from each data row: {{" + token + "}}"))
    return pd.DataFrame(rows, columns=COLUMNS)


def _name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)
