"""Form configs in Mephisto's FormComposer format: checked (every problem named by its JSON path) into a model.

A config is ``{"form": {...}}``: form → sections → fieldsets → rows → fields. ``check_form`` reads one
and returns the typed ``Form`` (or raises ``FormError`` listing every problem, each like
``form.sections[0].fieldsets[1].rows[0].fields[2].validators.minLength: expected a whole number ≥ 0,
got "three"``). Validators: ``form_rules``; tokens and insertions: ``form_tokens``; files and folders:
``form_source``; HTML: ``form_render``; the worker's page: ``form_page``; the CLI: ``form_cli``.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import FormError, Problem
from .rules import Rules, check_rules, initial_value, js_string, show

FIELD_TYPES = ("input", "email", "number", "password", "textarea", "select", "checkbox", "radio", "file", "hidden")
EVENTS = ("onClick", "onChange", "onBlur", "onFocus")
# which events each kind of element fires (Mephisto's table); sections and the submit button: clicks
_FIELD_EVENTS = {
    "select": ("onChange",),
    "checkbox": ("onChange", "onClick"),
    "radio": ("onChange", "onClick"),
    "hidden": (),
}
_JS_NAME = re.compile(r"^[A-Za-z_$][\w$]*$")
_RESERVED = "_crowd"

# attribute → (JSON kind, required); kinds: str, bool, list, dict, value (any scalar), any
_FORM = {"title": ("str", True), "instruction": ("str", False), "id": ("str", False), "classes": ("str", False),
         "sections": ("list", True), "submit_button": ("dict", False), "show_instructions_as_modal": ("bool", False)}  # fmt: skip
_SUBMIT = {"text": ("str", False), "tooltip": ("str", False), "instruction": ("str", False), "id": ("str", False),
           "classes": ("str", False), "triggers": ("dict", False)}  # fmt: skip
_SECTION = {"name": ("str", False), "title": ("str", True), "instruction": ("str", False), "id": ("str", False),
            "classes": ("str", False), "collapsable": ("bool", False), "initially_collapsed": ("bool", False),
            "fieldsets": ("list", True), "triggers": ("dict", False)}  # fmt: skip
_FIELDSET = {"title": ("str", False), "instruction": ("str", False), "help": ("str", False), "id": ("str", False),
             "classes": ("str", False), "name": ("str", False), "rows": ("list", True)}  # fmt: skip
_ROW = {"fields": ("list", True), "help": ("str", False), "id": ("str", False), "classes": ("str", False)}
_FIELD = {"type": ("str", True), "name": ("str", True), "label": ("str", True), "id": ("str", False),
          "classes": ("str", False), "help": ("str", False), "placeholder": ("str", False),
          "tooltip": ("str", False), "value": ("any", False), "validators": ("dict", False),
          "triggers": ("dict", False), "show_preview": ("bool", False)}  # fmt: skip
_OPTION = {"label": ("str", True), "value": ("value", True), "checked": ("bool", False)}
_EXPECTED = {"str": "a string", "bool": "true or false", "list": "a list", "dict": "an object",
             "value": "a string, number or true/false", "any": "a JSON value"}  # fmt: skip


@dataclass(frozen=True)
class Trigger:
    """A custom JS function called on an element's event, with the config's arguments."""

    event: str
    function: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Option:
    """One choice of a select, radio or checkbox field; ``value`` is what the page submits."""

    label: str
    value: str
    checked: bool = False


@dataclass(frozen=True)
class FormField:
    """One field; ``value`` is its initial value: a string, a list (multi-select, checkbox) or ''."""

    type: str
    name: str
    label: str
    id: str
    path: str  # its JSON path in the config, for messages
    classes: str = ""
    help: str = ""
    placeholder: str = ""
    tooltip: str = ""
    value: str | tuple[str, ...] = ""
    options: tuple[Option, ...] = ()
    multiple: bool = False
    show_preview: bool = False
    rules: Rules = field(default_factory=Rules)
    triggers: tuple[Trigger, ...] = ()

    @property
    def many(self) -> bool:
        """Whether the field submits a list (checkboxes, a multiple select)."""
        return self.type == "checkbox" or (self.type == "select" and self.multiple)


@dataclass(frozen=True)
class Row:
    """Fields side by side (stacked on a phone)."""

    fields: tuple[FormField, ...]
    help: str = ""
    id: str = ""
    classes: str = ""


@dataclass(frozen=True)
class Fieldset:
    """A group of rows with a legend."""

    rows: tuple[Row, ...]
    title: str = ""
    instruction: str = ""
    help: str = ""
    id: str = ""
    classes: str = ""


@dataclass(frozen=True)
class Section:
    """A part of the form with a heading; collapsable unless the config says otherwise."""

    title: str
    fieldsets: tuple[Fieldset, ...]
    name: str = ""
    instruction: str = ""
    id: str = ""
    classes: str = ""
    collapsable: bool = True
    initially_collapsed: bool = False
    triggers: tuple[Trigger, ...] = ()


@dataclass(frozen=True)
class Submit:
    """The submit button: its text, tooltip, the instruction above it and its click triggers."""

    text: str = "Submit"
    tooltip: str = ""
    instruction: str = ""
    classes: str = ""
    triggers: tuple[Trigger, ...] = ()


@dataclass(frozen=True)
class Form:
    """A whole form version."""

    title: str
    sections: tuple[Section, ...]
    submit: Submit = field(default_factory=Submit)
    instruction: str = ""
    id: str = ""
    classes: str = ""

    def fields(self) -> Iterator[FormField]:
        """Every field, in page order."""
        for section in self.sections:
            for fieldset in section.fieldsets:
                for row in fieldset.rows:
                    yield from row.fields


def key_path(path: str, key: str | int) -> str:
    """``path`` extended by an object key or a list index, in JavaScript notation."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _JS_NAME.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


class _Checker:
    """Walks a config, collecting problems (errors and warnings) with their JSON paths."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.names: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def warn(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message, warning=True))

    def obj(self, value: Any, path: str, attrs: dict[str, tuple[str, bool]], what: str) -> dict[str, Any]:
        """The attributes of an object that are present and well typed ({} when it is not an object)."""
        if not isinstance(value, dict):
            self.error(path, f"expected {what} (an object), got {show(value)}")
            return {}
        good: dict[str, Any] = {}
        for key, (_kind, required) in attrs.items():
            if required and key not in value:
                self.error(key_path(path, key), f"missing: {what} needs {key!r} ({_EXPECTED[_kind]})")
        for key, item in value.items():
            if not isinstance(key, str):  # a dict from Python; JSON keys are always strings
                self.error(path, f"expected attribute names (strings), got {show(key)}")
                continue
            where = key_path(path, key)
            if key not in attrs:
                near = difflib.get_close_matches(key, attrs, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; {what} takes {', '.join(attrs)}"
                self.error(where, f"unknown attribute {key!r}{hint}")
            elif _is(item, attrs[key][0]):
                good[key] = item
            else:
                self.error(where, f"expected {_EXPECTED[attrs[key][0]]}, got {show(item)}")
        return good

    def items(self, raw: dict[str, Any], key: str, path: str) -> Iterator[tuple[Any, str]]:
        """The entries of a list attribute with their paths; an empty list is an error."""
        values = raw.get(key)
        if isinstance(values, list):
            if not values:
                self.error(key_path(path, key), "expected at least one entry, got []")
            for index, item in enumerate(values):
                yield item, key_path(key_path(path, key), index)

    def unique(self, seen: dict[str, str], value: str, path: str, what: str) -> None:
        if value in seen:
            self.error(path, f"{what} {value!r} is used twice (also at {seen[value]}); {what}s must be unique")
        else:
            seen[value] = path

    def element_id(self, raw: dict[str, Any], path: str) -> str:
        value = str(raw.get("id", ""))
        if value:
            self.unique(self.ids, value, key_path(path, "id"), "id")
        return value

    # --- levels ----------------------------------------------------------------------------------
    def form(self, value: Any, path: str) -> Form:
        raw = self.obj(value, path, _FORM, "a form")
        sections = tuple(
            self.section(item, where, i) for i, (item, where) in enumerate(self.items(raw, "sections", path))
        )
        submit_raw = self.obj(raw.get("submit_button", {}), key_path(path, "submit_button"), _SUBMIT, "a submit button")
        submit = Submit(
            text=str(submit_raw.get("text") or "Submit"),
            tooltip=str(submit_raw.get("tooltip", "")),
            instruction=str(submit_raw.get("instruction", "")),
            classes=str(submit_raw.get("classes", "")),
            triggers=self.triggers(submit_raw, key_path(path, "submit_button"), ("onClick",)),
        )
        self.element_id(submit_raw, key_path(path, "submit_button"))
        return Form(
            title=str(raw.get("title", "")),
            sections=sections,
            submit=submit,
            instruction=str(raw.get("instruction", "")),
            id=self.element_id(raw, path),
            classes=str(raw.get("classes", "")),
        )

    def section(self, value: Any, path: str, index: int) -> Section:
        raw = self.obj(value, path, _SECTION, "a section")
        fieldsets = tuple(self.fieldset(item, where) for item, where in self.items(raw, "fieldsets", path))
        return Section(
            title=str(raw.get("title", "")),
            fieldsets=fieldsets,
            name=str(raw.get("name", "")),
            instruction=str(raw.get("instruction", "")),
            id=self.element_id(raw, path) or f"cf-section-{index}",
            classes=str(raw.get("classes", "")),
            collapsable=bool(raw.get("collapsable", True)),
            initially_collapsed=bool(raw.get("initially_collapsed", False)),
            triggers=self.triggers(raw, path, ("onClick",)),
        )

    def fieldset(self, value: Any, path: str) -> Fieldset:
        raw = self.obj(value, path, _FIELDSET, "a fieldset")
        rows = tuple(self.row(item, where) for item, where in self.items(raw, "rows", path))
        return Fieldset(
            rows=rows,
            title=str(raw.get("title", "")),
            instruction=str(raw.get("instruction", "")),
            help=str(raw.get("help", "")),
            id=self.element_id(raw, path),
            classes=str(raw.get("classes", "")),
        )

    def row(self, value: Any, path: str) -> Row:
        raw = self.obj(value, path, _ROW, "a row")
        fields = tuple(self.field(item, where) for item, where in self.items(raw, "fields", path))
        return Row(fields, str(raw.get("help", "")), self.element_id(raw, path), str(raw.get("classes", "")))

    def field(self, value: Any, path: str) -> FormField:
        kind = value.get("type") if isinstance(value, dict) else None
        attrs = dict(_FIELD)
        known = kind in FIELD_TYPES
        if kind in ("select", "checkbox", "radio") or not known:  # an unknown type: only the type is wrong
            attrs["options"] = ("list", known)
        if kind == "select" or not known:
            attrs["multiple"] = ("bool", False)
        raw = self.obj(value, path, attrs, f"a {kind} field" if known else "a field")
        if "type" in raw and kind not in FIELD_TYPES:
            self.error(key_path(path, "type"), f"expected one of {', '.join(FIELD_TYPES)}, got {show(kind)}")
        kind = kind if kind in FIELD_TYPES else "input"
        name = str(raw.get("name", ""))
        if "name" in raw:
            if not name.strip():
                self.error(key_path(path, "name"), 'expected a non-empty name (the answer\'s column), got ""')
            elif name.startswith(_RESERVED):
                self.error(key_path(path, "name"), f"names starting with {_RESERVED!r} are crowdnb's own; rename it")
            else:
                self.unique(self.names, name, key_path(path, "name"), "field name")
        options = self.options(raw, path, kind)
        multiple = bool(raw.get("multiple", False))
        field = FormField(
            type=kind,
            name=name,
            label=str(raw.get("label", "")),
            id=self.element_id(raw, path) or f"cf-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}",
            path=path,
            classes=str(raw.get("classes", "")),
            help=str(raw.get("help", "")),
            placeholder=str(raw.get("placeholder", "")),
            tooltip=str(raw.get("tooltip", "")),
            options=options,
            multiple=multiple,
            show_preview=bool(raw.get("show_preview", False)),
            triggers=self.triggers(raw, path, _FIELD_EVENTS.get(kind, EVENTS)),
        )
        value_ = initial_value(self, field, raw.get("value"), key_path(path, "value"), "value" in raw)
        rules = check_rules(self, field, raw.get("validators", {}), key_path(path, "validators"))
        return FormField(**{**field.__dict__, "value": value_, "rules": rules})

    def options(self, raw: dict[str, Any], path: str, kind: str) -> tuple[Option, ...]:
        found: list[Option] = []
        seen: dict[str, str] = {}
        for item, where in self.items(raw, "options", path):
            option = self.obj(item, where, _OPTION, "an option")
            if "value" not in option:
                continue
            value = js_string(option["value"])
            self.unique(seen, value, key_path(where, "value"), "option value")
            found.append(Option(str(option.get("label", "")), value, bool(option.get("checked", False))))
        if kind == "radio" and sum(o.checked for o in found) > 1:
            self.error(key_path(path, "options"), "a radio field can start with one checked option, not several")
        return tuple(found)

    def triggers(self, raw: dict[str, Any], path: str, events: tuple[str, ...]) -> tuple[Trigger, ...]:
        found: list[Trigger] = []
        base = key_path(path, "triggers")
        for event, spec in (raw.get("triggers") or {}).items():
            where = key_path(base, event)
            if event not in EVENTS:
                self.error(where, f"unknown event {event!r}; triggers take {', '.join(EVENTS)}")
                continue
            if event not in events:
                fired = ", ".join(events) or "no events"
                self.warn(where, f"this element fires {fired}; the {event} trigger will never run")
            name, args = (
                (spec, None)
                if isinstance(spec, str)
                else (spec[0], spec[1:])
                if isinstance(spec, list) and spec
                else (None, None)
            )
            if not isinstance(name, str) or not _JS_NAME.match(name):
                self.error(where, f'expected ["functionName", arguments] or "functionName", got {show(spec)}')
                continue
            spread = tuple(args[0]) if args and len(args) == 1 and isinstance(args[0], list) else tuple(args or ())
            found.append(Trigger(event, name, spread))
        return tuple(found)


def _is(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "value":
        return isinstance(value, (str, int, float)) and not (isinstance(value, float) and value != value)
    return True


def check_form(config: Any, path: str = "") -> tuple[Form, list[Problem]]:
    """The ``Form`` of a ``{"form": {...}}`` config and its warnings; ``FormError`` lists every error."""
    checker = _Checker()
    raw = checker.obj(
        config, path or "config", {"form": ("dict", True), "form_metadata": ("dict", False)}, "a form config"
    )
    form = checker.form(raw.get("form", {}), key_path(path, "form")) if "form" in raw else Form("", ())
    errors = [p for p in checker.problems if not p.warning]
    if errors:
        raise FormError(errors, [p for p in checker.problems if p.warning])
    return form, [p for p in checker.problems if p.warning]
