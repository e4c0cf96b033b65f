"""A form field's validators and initial value, checked with JSON-path messages (part of reading a form)."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .model import FormField

JS_FLAGS = frozenset("dgimsuvy")
BUILTIN_VALIDATORS = ("required", "minLength", "maxLength", "regexp", "fileExtension")
TEXT_TYPES = frozenset({"input", "email", "password", "textarea"})  # minLength/maxLength count characters
_JS_NAME = re.compile(r"^[A-Za-z_$][\w$]*$")


class Reporter(Protocol):
    """Where problems go (the form checker)."""

    def error(self, path: str, message: str) -> None: ...

    def warn(self, path: str, message: str) -> None: ...


@dataclass(frozen=True)
class Rules:
    """A field's validators: the built-in ones, and custom ones as (name, argument) pairs."""

    required: bool = False
    min_length: int | None = None
    max_length: int | None = None
    regexp: tuple[str, str] | None = None  # (JS pattern, JS flags)
    file_extensions: tuple[str, ...] = ()
    custom: tuple[tuple[str, Any], ...] = ()


def show(value: Any) -> str:
    """A value as JSON, shortened, for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def js_string(value: Any) -> str:
    """A JSON scalar as the string a browser submits for it (``true``, ``3``, ``2.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _scalar(value: Any) -> str | None:
    """The submitted-string form of a JSON scalar, or None for lists, objects and null."""
    if isinstance(value, (str, int, float)):
        return js_string(value)
    return None


def python_regex(pattern: str, flags: str) -> re.Pattern[str]:
    """A JS regular expression as Python's ``re`` (the same matches for the patterns forms use)."""
    # JS writes named groups (?<n>…) and back-references \k<n>; Python spells them (?P<n>…) and (?P=n)
    pattern = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)
    pattern = re.sub(r"\\k<(\w+)>", r"(?P=\1)", pattern)
    mode = (re.IGNORECASE if "i" in flags else 0) | (re.MULTILINE if "m" in flags else 0)
    return re.compile(pattern, mode | (re.DOTALL if "s" in flags else 0))


def _whole(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def check_rules(report: Reporter, field: FormField, raw: dict[str, Any], path: str) -> Rules:
    """The field's ``validators`` object as ``Rules``; problems go to ``report``."""
    kind, counts = field.type, field.many
    found: dict[str, Any] = {}
    custom: list[tuple[str, Any]] = []
    for name, arg in raw.items():
        where = f"{path}.{name}" if _JS_NAME.match(name) else f"{path}[{json.dumps(name, ensure_ascii=False)}]"
        if name == "required":
            if isinstance(arg, bool):
                found["required"] = arg
            else:
                report.error(where, f"expected true or false, got {show(arg)}")
        elif name in ("minLength", "maxLength"):
            number = _whole(arg)
            if number is None:
                report.error(where, f"expected a whole number ≥ 0, got {show(arg)}")
                continue
            found[name] = number
            if kind not in TEXT_TYPES and not counts:
                report.warn(where, f"{name} counts the characters of a text field or the choices of checkboxes and "
                            f"multiple selects; it has no effect on a {kind} field")  # fmt: skip
        elif name == "regexp":
            found["regexp"] = _regexp(report, arg, where)
            if kind not in TEXT_TYPES and found["regexp"]:
                report.warn(where, f"regexp checks typed text; it has no effect on a {kind} field")
        elif name == "fileExtension":
            items = [arg] if isinstance(arg, str) else arg
            if not isinstance(items, list) or not items or not all(isinstance(x, str) and x.strip(". ") for x in items):
                report.error(where, f'expected a list of file extensions like ["pdf", "png"], got {show(arg)}')
                continue
            found["fileExtension"] = tuple(x.strip().lstrip(".").lower() for x in items)
            if kind != "file":
                report.warn(where, f"fileExtension checks uploads; it has no effect on a {kind} field")
        elif _JS_NAME.match(name):
            near = difflib.get_close_matches(name, BUILTIN_VALIDATORS, n=1, cutoff=0.75)
            if near:
                report.warn(where, f"{name!r} is not a built-in validator (did you mean {near[0]!r}?); "
                            "it is read as a custom validator")  # fmt: skip
            custom.append((name, arg))
        else:
            report.error(where, f"unknown validator {name!r}: the built-in ones are {', '.join(BUILTIN_VALIDATORS)}; "
                         "a custom validator is named like a JS function")  # fmt: skip
    low, high = found.get("minLength"), found.get("maxLength")
    if low is not None and high is not None and low > high:
        report.error(f"{path}.maxLength", f"expected a number ≥ minLength ({low}), got {high}")
    return Rules(
        required=found.get("required", False),
        min_length=low,
        max_length=high,
        regexp=found.get("regexp"),
        file_extensions=found.get("fileExtension", ()),
        custom=tuple(custom),
    )


def _regexp(report: Reporter, arg: Any, where: str) -> tuple[str, str] | None:
    if isinstance(arg, str):
        pattern, flags = arg, "igm"  # Mephisto's default flags for a bare pattern
    elif isinstance(arg, list) and 1 <= len(arg) <= 2 and all(isinstance(x, str) for x in arg):
        pattern, flags = arg[0], (arg[1] if len(arg) == 2 else "")
    else:
        report.error(where, f'expected a pattern "^[a-z]+$" or ["^[a-z]+$", "flags"], got {show(arg)}')
        return None
    bad = sorted(set(flags) - JS_FLAGS) or sorted({f for f in flags if flags.count(f) > 1})
    if bad:
        report.error(
            f"{where}[1]",
            f"expected JavaScript regexp flags (some of {''.join(sorted(JS_FLAGS))}, each once), got {show(flags)}",
        )
        return None
    try:
        python_regex(pattern, flags)
    except re.error as exc:
        report.error(where, f"not a regular expression the server can check ({exc}), got {show(pattern)}")
        return None
    return pattern, flags


def initial_value(report: Reporter, field: FormField, raw: Any, path: str, given: bool) -> str | tuple[str, ...]:
    """The field's starting value: a string, or a tuple of option values for checkboxes and multi-selects."""
    values = [o.value for o in field.options]
    checked = tuple(o.value for o in field.options if o.checked)
    if field.type == "checkbox":
        if not given:
            return checked
        if isinstance(raw, dict) and all(isinstance(v, bool) for v in raw.values()):
            unknown = [k for k in raw if k not in values]
            if unknown:
                report.error(
                    f"{path}.{unknown[0]}",
                    f"expected one of the option values ({', '.join(values)}), got {show(unknown[0])}",
                )
            return tuple(v for v in values if raw.get(v) or (v in checked and v not in raw))
        report.error(
            path,
            f'expected an object of option values and true/false, like {{"{values[0] if values else "a"}": true}}, got {show(raw)}',
        )
        return checked
    if field.type == "select" and field.multiple:
        items = [] if raw in (None, "") else raw if isinstance(raw, list) else [raw]
        chosen = [_scalar(x) for x in items]
        wrong = [x for x, c in zip(items, chosen, strict=True) if c not in values]
        if wrong:
            report.error(path, f"expected option values ({', '.join(values)}), got {show(wrong[0])}")
        return tuple(c for c in chosen if c in values)
    if not given or raw is None:
        return next(iter(checked), "") if field.type == "radio" else ""
    text = _scalar(raw)
    if text is None:
        report.error(path, f"expected a string, got {show(raw)}")
        return ""
    if field.type in ("radio", "select") and text and text not in values:
        report.error(path, f'expected one of the option values ({", ".join(values)}) or "", got {show(raw)}')
        return ""
    if field.type == "number" and text.strip():
        try:
            float(text)
        except ValueError:
            report.error(path, f"expected a number, got {show(raw)}")
            return ""
    if field.type == "file" and text:
        report.error(path, f'a file field cannot start with a file; expected "", got {show(raw)}')
        return ""
    return text
