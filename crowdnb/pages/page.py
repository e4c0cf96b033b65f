"""The worker's page: a task template (Jinja) inside crowdnb's page shell.

The template's undeclared variables are the unit's input fields; its named form inputs are the answer
fields. ``TaskPage.render`` produces the exact HTML a worker receives, which is also what
``Task.preview`` shows.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes

from ..errors import ConfigError

PACKAGE = Path(__file__).parents[1]  # crowdnb/
ASSETS = PACKAGE / "assets"  # what pages, the router and the review app serve (not code)
# crowdnb variables every template may use; they are not input columns
BUILTINS = frozenset({"crowd"})
_INTERNAL_PREFIX = "_crowd"


def template_dirs() -> list[Path]:
    """Where named templates are looked up: inside the package (wheel), then the source checkout."""
    return [d for d in (PACKAGE / "templates", PACKAGE.parent / "templates") if d.is_dir()]


def available_templates() -> dict[str, Path]:
    """The shipped templates: name → folder (holding ``task.html`` and example data)."""
    found: dict[str, Path] = {}
    for folder in reversed(template_dirs()):  # the package's own copy wins over the checkout's
        found.update({p.name: p for p in folder.iterdir() if (p / "task.html").is_file()})
    return dict(sorted(found.items()))


def find_template(name: str) -> Path:
    """The task.html of a shipped template name, or of a path to an .html file or a template folder."""
    candidate = Path(name).expanduser()
    if candidate.suffix == ".html" and candidate.is_file():
        return candidate
    if (candidate / "task.html").is_file() and (candidate.is_absolute() or "/" in name or candidate.exists()):
        return candidate / "task.html"
    for folder in template_dirs():
        if (folder / name / "task.html").is_file():
            return folder / name / "task.html"
    raise ConfigError(
        f"template {name!r} not found; shipped templates: {', '.join(available_templates())}; "
        "or pass a path to an .html file or a folder holding task.html"
    )


@dataclass(frozen=True)
class Field:
    """One answer field of the page: a named form input, with the rules the server checks again.

    ``min_length``/``max_length`` count characters (UTF-16 units, as browsers do), or chosen options
    when ``multiple``; ``pattern`` is a JavaScript regular expression the value must match somewhere
    (an HTML ``pattern`` is anchored: ``^(?:…)$``); ``custom`` holds a form's custom validators.
    """

    name: str
    kind: str  # text, textarea, select, radio, checkbox, number, file, …
    options: tuple[str, ...] = ()
    required: bool = False
    multiple: bool = False
    accept: str = ""  # a file input's accept= (".pdf,image/*"); checked again on the server
    label: str = ""
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    flags: str = ""  # the pattern's JavaScript flags (i, m, s count)
    minimum: float | None = None
    maximum: float | None = None
    custom: tuple[tuple[str, Any], ...] = ()


def _whole(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


_TEXT_RULES = frozenset({"text", "search", "url", "tel", "email", "password", "textarea"})


class _FieldParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, Field] = {}
        self._select: str | None = None
        self._option: list[str] | None = None  # the text of an <option> without a value= (its value)
        self.text: list[str] = []  # every piece of text between tags

    def _add_option(self, value: str) -> None:
        if self._select is not None:
            old = self.fields[self._select]  # the select opened above
            self.fields[self._select] = dataclasses.replace(old, options=(*old.options, value))

    def _end_option(self) -> None:
        if self._option is not None:
            self._add_option(" ".join("".join(self._option).split()))
            self._option = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "option" and self._select:
            self._end_option()
            value = a.get("value")
            if value is None:
                self._option = []
            else:
                self._add_option(value)
            return
        if tag not in ("input", "select", "textarea") or not name or name.startswith(_INTERNAL_PREFIX):
            return
        kind = tag if tag != "input" else (a.get("type") or "text").lower()
        if kind in ("submit", "button", "reset", "image"):
            return
        required = "required" in a
        multiple = "multiple" in a or kind == "checkbox"
        seen = self.fields.get(name)
        options: tuple[str, ...] = seen.options if seen else ()
        if kind in ("radio", "checkbox"):
            options = (*options, a.get("value") or "on")
        accept = (a.get("accept") or "") if kind == "file" else ""
        field = Field(name, kind, options, required or bool(seen and seen.required), multiple, accept)
        if seen is not None:  # a radio group (or a repeated name): the first input's rules stand
            field = dataclasses.replace(seen, options=options, required=field.required)
        elif kind in _TEXT_RULES or kind in ("number", "range"):
            pattern = a.get("pattern") if kind != "textarea" else None
            field = dataclasses.replace(
                field,
                min_length=_whole(a.get("minlength")),
                max_length=_whole(a.get("maxlength")),
                pattern=f"^(?:{pattern})$" if pattern else None,
                minimum=_number(a.get("min")) if kind in ("number", "range") else None,
                maximum=_number(a.get("max")) if kind in ("number", "range") else None,
            )
        elif kind == "hidden" and a.get("pattern"):
            # browsers ignore constraints on hidden inputs, but a template's script fills them (boxes,
            # spans as JSON): a pattern written there is the server's check of what the script sent
            field = dataclasses.replace(field, pattern=f"^(?:{a['pattern']})$")
        self.fields[name] = field
        if tag == "select":
            self._select = name

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._option is not None:
            self._option.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("option", "select", "optgroup"):
            self._end_option()
        if tag == "select":
            self._select = None


def _plain_outputs(ast: nodes.Template) -> bool:
    """Whether a template is markup with plain ``{{ name }}`` outputs (``crowd.row.x``, ``name["key"]``): no
    statements, filters, calls or operators, so autoescaping governs every value it prints."""
    for node in ast.body:
        if not isinstance(node, nodes.Output):
            return False
        for expr in node.nodes:
            while isinstance(expr, (nodes.Getattr, nodes.Getitem)):
                if isinstance(expr, nodes.Getitem) and not isinstance(expr.arg, nodes.Const):
                    return False
                expr = expr.node
            if not isinstance(expr, (nodes.TemplateData, nodes.Name)):
                return False
    return True


def parse_fields(html: str) -> list[Field]:
    """The answer fields of an HTML fragment, in page order."""
    parser = _FieldParser()
    parser.feed(html)
    return list(parser.fields.values())


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(ASSETS)),
    autoescape=True,  # input data is escaped: a worker never sees raw HTML from a data file
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def _defaulted(ast: nodes.Template, name: str) -> set[str]:
    """``{name}`` when every use of the variable goes through ``| default(…)`` (so it is optional)."""
    uses = sum(1 for n in ast.find_all(nodes.Name) if n.name == name)
    wrapped = sum(
        1
        for f in ast.find_all(nodes.Filter)
        if f.name == "default" and isinstance(f.node, nodes.Name) and f.node.name == name
    )
    return {name} if uses and uses == wrapped else set()


_SCRIPT_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``</script>``, ``<!--`` or line separators can end it."""
    return json.dumps(value, ensure_ascii=False).translate(_SCRIPT_ESCAPES)


class TaskPage:
    """A compiled task template: its input variables, answer fields and renderer.

    ``feedback`` is the prompt of the optional worker-feedback box ("" = no box); ``max_upload_mb``
    lets the page refuse an oversized file before sending it.
    """

    kind = "jinja"
    serves_refusals = False  # a JS page shows "no work left" itself (crowd.refusal); others get a message page
    has_submit = False  # the template has its own submit button (the shell then adds none)
    asset_dir: Path | None = None  # files the router serves from its root (a JS bundle's)
    form_id = "crowd-form"

    def __init__(self, source: str, origin: str, *, feedback: str = "", max_upload_mb: float = 0.0) -> None:
        self.source = source
        self.origin = origin
        self.feedback = feedback
        self.max_upload_mb = max_upload_mb
        try:
            ast = _env.parse(source)
            self._template = _env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"{origin}, line {exc.lineno}: template syntax error: {exc.message}") from exc
        self.variables = sorted(meta.find_undeclared_variables(ast) - BUILTINS)
        self.required = [v for v in self.variables if v not in _defaulted(ast, v)]
        self._same_fields: list[Field] | None = None  # the fields of every row, when no row can change them
        if type(self).body is TaskPage.body and _plain_outputs(ast):
            self._same_fields = self._fields_of_any_row()

    def body(self, row: dict[str, Any]) -> str:
        """The task fragment rendered for one input row."""
        try:
            return self._template.render(**row, crowd={"row": row})
        except jinja2.UndefinedError as exc:
            raise ConfigError(
                f"{self.origin}: {exc.message}; the data row has {', '.join(row) or 'no columns'}"
            ) from exc

    def fields(self, row: dict[str, Any]) -> list[Field]:
        """The answer fields the page has for ``row``."""
        if self._same_fields is not None and all(v in row for v in self.variables):
            return list(self._same_fields)  # a router asks on every unit: no render and parse per row
        return parse_fields(self.body(row))

    def _fields_of_any_row(self) -> list[Field] | None:
        """The fields, when the row's values only ever land in the page's text (not in a tag, a comment or a
        field's options): escaped text cannot add a tag, so every row then has the same fields."""
        markers = {v: f"crowdnbrowvalue{n}x" for n, v in enumerate(self.variables)}
        try:
            html_text = self.body(markers)
        except (ConfigError, jinja2.TemplateError, TypeError, ValueError):  # a value used as more than text
            return None
        parser = _FieldParser()
        parser.feed(html_text)
        parser.close()
        in_text = "".join(parser.text)
        fields = list(parser.fields.values())
        shown = repr(fields)
        for marker in markers.values():
            if html_text.count(marker) != in_text.count(marker) or marker in shown:
                return None
        return fields

    def head(self, row: dict[str, Any]) -> str:
        """Markup the template wants in the page's ``<head>`` (a full HTML document's styles and scripts)."""
        return ""

    def placeholder_row(self) -> dict[str, Any]:
        """A row that fills every required variable with its own name, for previews without data."""
        return {v: f"{{{v}}}" for v in self.required}

    def config(self, row: dict[str, Any], mode: str, token: str, submission_id: str, base: str) -> dict[str, Any]:
        """What the page's script (``window.crowd``) is told: mode, token, the input the page shows, limits."""
        return {
            "mode": mode,
            "kind": self.kind,
            "token": token,
            "submissionId": submission_id,
            "base": base,
            # only the columns the page shows: a data file may hold columns workers must not see
            "data": {k: row[k] for k in self.variables if k in row},
            "feedback": self.feedback,
            "maxUploadMb": self.max_upload_mb,
            "refusal": None,
        }

    def render(
        self,
        row: dict[str, Any],
        *,
        title: str,
        description: str,
        mode: str = "task",
        token: str = "",
        submission_id: str = "",
        base: str = "",
        notice: str = "",
        return_to: str = "",
        refusal: dict[str, str] | None = None,
    ) -> str:
        """The full page a worker receives. ``mode`` is "task", "onboarding", "preview" (inputs disabled) or
        "dry_run" (a notebook's preview: inputs live, Submit stores nothing);
        ``refusal`` ({reason, message}) is only shown by pages that ``serves_refusals``."""
        config = self.config(row, mode, token, submission_id, base)
        return _env.get_template("page.html").render(
            title=title,
            description=description,
            head=self.head(row),
            body=self.body(row),
            mode=mode,
            token=token,
            submission_id=submission_id,
            base=base,
            notice=notice,
            return_to=return_to,
            feedback=self.feedback,
            own_submit=self.has_submit,
            form_id=self.form_id,
            config=script_json(config),
        )

    def preview_html(self, row: dict[str, Any], *, title: str, description: str) -> str:
        """The page as a notebook shows it (no server behind it: a JS page inlines its files)."""
        return self.render(row, title=title, description=description)


def iframe(page: str, width: str = "100%", height: str = "480px") -> str:
    """A worker page shown inline: crowdnb's own styles and scripts inlined, since an iframe ``srcdoc`` has no
    server (relative links would reach the notebook's server instead). The task's own files (``static/…``)
    need one: ``task.preview_widget()`` serves them."""
    for name in ("crowd.css", "forms.css"):
        css = (ASSETS / name).read_text(encoding="utf-8")
        page = page.replace(f'<link rel="stylesheet" href="_crowd/{name}">', f"<style>{css}</style>")
    # crowd.js runs where it stands (templates use window.crowd as they load); forms.js is deferred, and an
    # inline script is deferred only as a module
    for name, attributes, kind in (("crowd.js", "", ""), ("forms.js", " defer", ' type="module"')):
        code = (ASSETS / name).read_text(encoding="utf-8").replace("</script", "<\\/script")
        page = page.replace(f'<script src="_crowd/{name}"{attributes}></script>', f"<script{kind}>{code}</script>")
    return (
        f'<iframe class="crowd-preview" srcdoc="{html.escape(page, quote=True)}" '
        f'style="width:{width};height:{height};border:1px solid #ccc;border-radius:6px;background:#fff"></iframe>'
    )


class Preview(str):
    """A worker page as a string; in a notebook it shows itself inline, as the worker sees it."""

    width = "100%"

    def _repr_html_(self) -> str:
        return iframe(str(self), self.width)


def summary_table(title: str, rows: dict[str, object]) -> str:
    """A small two-column HTML table (the ``_repr_html_`` of tasks, runs and workers); values escaped."""
    from markupsafe import escape

    body = "".join(
        f"<tr><th style='text-align:left'>{escape(k)}</th><td style='text-align:left'>{escape(v)}</td></tr>"
        for k, v in rows.items()
    )
    return f"<div class='crowd-summary'><b>{escape(title)}</b><table>{body}</table></div>"


def message_page(
    title: str,
    message: str,
    *,
    status: str = "info",
    base: str = "",
    details: list[str] | None = None,
    next_url: str = "",
) -> str:
    """A plain page for a refusal, a thank-you or an error: the worker never hangs on a spinner.

    ``details`` are listed under the message (the fields to correct, for a page without JavaScript);
    ``next_url`` is opened by itself after a moment (the worker's next unit), with a link to go at once."""
    return _env.get_template("message.html").render(
        title=title, message=message, status=status, base=base, details=details or [], next_url=next_url
    )
