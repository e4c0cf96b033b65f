"""A form task's page: the row's form version, its tokens filled in, rendered inside crowdnb's shell.

``Task(form=…)`` stores the form source's ``to_dict()`` in its spec; ``FormPage`` renders any row from
it and tells the router (and ``validation``) the rules of each field.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from markupsafe import escape

from ..errors import ConfigError, DataError, FormError, Problem
from ..pages.page import ASSETS, Field, TaskPage
from .model import Form, FormField, check_form
from .render import client_config, render_form
from .source import TRIGGERS_JS, VALIDATORS_JS, VERSION_COLUMN, custom_validator_names, js_defines
from .tokens import extrapolate, tokens_of
from .validators import registered

log = logging.getLogger(__name__)

_warned: set[str] = set()  # custom validators already said to be unchecked by the server
KINDS = {"input": "text"}  # a form field type → the page.Field kind the rest of crowdnb knows


def field_of(field: FormField) -> Field:
    """A form field as the rest of crowdnb sees an answer field, with the rules the server checks."""
    rules = field.rules
    return Field(
        name=field.name,
        kind=KINDS.get(field.type, field.type),
        options=tuple(o.value for o in field.options),
        required=rules.required,
        multiple=field.many,
        accept=",".join(f".{ext}" for ext in rules.file_extensions),
        label=field.label,
        min_length=rules.min_length,
        max_length=rules.max_length,
        pattern=rules.regexp[0] if rules.regexp else None,
        flags=rules.regexp[1] if rules.regexp else "",
        custom=rules.custom,
    )


class FormPage(TaskPage):
    """The page of a form task; ``stored`` is ``FormSource.to_dict()``."""

    kind = "form"
    has_submit = True  # the form's own submit button, with the config's text and tooltip

    def __init__(
        self,
        stored: dict[str, Any],
        origin: str,
        *,
        static_dir: str | None = None,
        feedback: str = "",
        max_upload_mb: float = 0.0,
    ) -> None:
        super().__init__("", origin, feedback=feedback, max_upload_mb=max_upload_mb)
        self.versions: list[dict[str, Any]] = list(stored.get("versions") or [])
        if not self.versions:
            raise ConfigError(f"{origin}: the form has no version to show")
        self.insertions: dict[str, str] = dict(stored.get("insertions") or {})
        self.css: list[str] = list(stored.get("css") or [])
        self.static_dir = Path(static_dir) if static_dir else None
        self.modules = {
            "validators": f"static/{VALIDATORS_JS}" if stored.get("validators_js") else None,
            "triggers": f"static/{TRIGGERS_JS}" if stored.get("triggers_js") else None,
        }
        for name in custom_validator_names(tuple(self.versions)):
            if registered(name) is None and name not in _warned:  # e.g. a run resumed in another process
                _warned.add(name)
                log.warning("custom validator %r has no Python function in this process: the server does not "
                            "check it (crowdnb.forms.validators.register(%r, fn) does)", name, name)  # fmt: skip
        self.variables = sorted(set().union(*(tokens_of(v) for v in self.versions)))
        self.required = list(self.variables)
        self._forms: dict[int, tuple[Form, list[Field]]] = {}
        self._lock = threading.Lock()

    # --- a row's form ------------------------------------------------------------------------------
    def version(self, row: dict[str, Any]) -> int:
        """Which form version a row shows (its ``form_version`` column; 0 without one)."""
        value = row.get(VERSION_COLUMN, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not str(value).strip().isdigit():
            raise DataError(f"{VERSION_COLUMN}={value!r} must be a form version number, 0 to {len(self.versions) - 1}")
        number = int(str(value).strip())
        if number >= len(self.versions):
            raise DataError(f"{VERSION_COLUMN}={number} is out of range: the form has {len(self.versions)} version(s)")
        return number

    def _insertion(self, value: str) -> str | None:
        if value in self.insertions:
            return self.insertions[value]
        if self.static_dir is not None:  # named by a data= row: read from the config's folder (inside it only)
            target = (self.static_dir.parent / value.strip()).resolve()
            if target.is_relative_to(self.static_dir.resolve()) and target.is_file():
                return target.read_text(encoding="utf-8")
        log.warning("%s: the insertion file %r was not stored with the task; shown as text", self.origin, value)
        return None

    def form(self, row: dict[str, Any]) -> tuple[Form, dict[str, Any]]:
        """The row's form version with its tokens filled in (HTML-escaped), and that config."""
        raw = extrapolate(self.versions[self.version(row)], row, html=True, insertion=self._insertion)
        try:
            return check_form(raw)[0], raw
        except FormError as exc:  # values cannot break a checked form; a stored spec edited by hand can
            raise exc.located(self.origin) from None

    def _rules(self, row: dict[str, Any]) -> list[Field]:
        """The answer fields of a row's version (tokens only change texts, never rules: once per version)."""
        number = self.version(row)
        with self._lock:
            if number in self._forms:
                return self._forms[number][1]
        form = check_form(self.versions[number])[0]
        fields = [field_of(f) for f in form.fields()]
        with self._lock:
            self._forms[number] = (form, fields)
        return fields

    # --- the TaskPage interface --------------------------------------------------------------------
    def body(self, row: dict[str, Any]) -> str:
        """The form for one row."""
        form, raw = self.form(row)
        return render_form(form, client_config(form, raw, self.modules))

    def fields(self, row: dict[str, Any]) -> list[Field]:
        """The answer fields (hidden fields included: they are submitted like the others)."""
        return list(self._rules(row))

    def head(self, row: dict[str, Any]) -> str:
        """The form's stylesheets (crowdnb's, then the insertions'), the module map and its script."""
        links = ['<link rel="stylesheet" href="_crowd/forms.css">']
        links += [f'<link rel="stylesheet" href="static/{escape(name)}">' for name in self.css]
        # trigger modules written for Mephisto import its helpers by these names; ours stand in for them
        imports = '{"imports": {"react-form-composer": "./_crowd/forms_compat.js", "mephisto-task-addons": "./_crowd/forms_compat.js"}}'
        return (
            "".join(links) + f'<script type="importmap">{imports}</script><script src="_crowd/forms.js" defer></script>'
        )

    def preview_html(self, row: dict[str, Any], *, title: str, description: str) -> str:
        """The page with its stylesheets inlined: a notebook preview has no server behind it."""
        page = self.render(row, title=title, description=description, mode="preview")
        styles = [(ASSETS / "forms.css", '<link rel="stylesheet" href="_crowd/forms.css">')]
        if self.static_dir is not None:
            styles += [(self.static_dir / n, f'<link rel="stylesheet" href="static/{escape(n)}">') for n in self.css]
        for path, link in styles:
            if path.is_file():
                page = page.replace(link, f"<style>{path.read_text(encoding='utf-8')}</style>")
        return page


def missing_validators(stored: dict[str, Any], static_dir: Path | None) -> list[Problem]:
    """Custom validators defined neither in ``insertions/custom_validators.js`` nor in Python."""
    script = static_dir / VALIDATORS_JS if static_dir else None
    problems = []
    for name, path in custom_validator_names(tuple(stored.get("versions") or ())).items():
        in_js = script is not None and js_defines(script, name)
        if not in_js and registered(name) is None:
            problems.append(Problem(path, f"custom validator {name!r} is defined nowhere: export it from "
                                    f"insertions/{VALIDATORS_JS} or register a Python function with "
                                    f"crowdnb.forms.validators.register({name!r}, fn)"))  # fmt: skip
    return problems


def form_task(source: Any, data_given: bool) -> tuple[dict[str, Any], list[dict[str, Any]], str | None, str]:
    """What ``Task(form=…)`` needs: the stored form, its own data rows, the insertions folder, the origin.

    ``FormError`` lists every problem of the config, its token files and its custom validators.
    """
    from .source import load_form

    loaded = load_form(source, values_given=data_given)
    stored = loaded.to_dict()
    missing = missing_validators(stored, loaded.static_dir)
    if missing:
        raise FormError(missing, list(loaded.warnings), loaded.origin)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    origin = str(source) if isinstance(source, (str, Path)) else "form="
    static = str(loaded.static_dir) if loaded.static_dir else None
    return stored, [dict(r) for r in loaded.rows], static, origin


def check_rows(page: TaskPage, rows: list[dict[str, Any]], source: str) -> None:
    """Every row names a form version that exists (several versions: every row must say which)."""
    assert isinstance(page, FormPage)
    for number, row in enumerate(rows, start=1):
        if len(page.versions) > 1 and VERSION_COLUMN not in row:
            raise DataError(f"{source}, row {number}: the form has {len(page.versions)} versions; "
                            f"give each row a {VERSION_COLUMN} column (0 to {len(page.versions) - 1})")  # fmt: skip
        try:
            page.version(row)
        except DataError as exc:
            raise DataError(f"{source}, row {number}: {exc}") from None
