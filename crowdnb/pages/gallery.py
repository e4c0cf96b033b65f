"""The template gallery: shipped task pages with their metadata, thumbnails and review renderers.

A gallery template is a folder ``templates/<name>/`` holding ``task.html`` (the worker's page),
``example.csv`` or ``example.jsonl`` (a few realistic rows), ``preview.png`` (made by
``templates/make_previews.py``), ``review.html`` (a Jinja fragment showing one submission to a
requester) and, where it needs media, ``static/`` (served by the run's router at ``static/…``).

The header comment of ``task.html`` is the one description of a template, read by people and by
:func:`describe` alike (a live task several workers share adds ``Workers: 2`` and ``Roles: a, b``)::

    {#
    Bounding boxes: draw a box around every object of interest and label it.

    Inputs:
      image      the picture: an http(s) URL or static/<file> of the template's folder
      labels     optional; box labels separated by "|"
    Answers:
      boxes      JSON list of {"label", "x", "y", "w", "h"} in the picture's pixels
    Example answers: {"boxes": "[{\\"label\\": \\"car\\", \\"x\\": 5, \\"y\\": 9, \\"w\\": 40, \\"h\\": 20}]"}
    #}

``review.html`` sees ``row`` (the unit's inputs), ``answers`` and three filters: ``from_json`` (a JSON
answer as a list or dict; ``None`` when it is not valid JSON), ``media`` (a ``static/…`` file inlined
as a data URI, an http(s) URL kept, anything else dropped) and ``spans`` (a text cut into plain and
labelled pieces by code-point offsets). Everything it prints is escaped.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup, escape

from ..errors import ConfigError, CrowdError
from ..store.reports import META_COLUMNS
from .page import available_templates, find_template

if TYPE_CHECKING:
    from ..spec import TaskSpec

log = logging.getLogger(__name__)

_HEADER = re.compile(r"\A\s*\{#(.*?)#\}", re.DOTALL)
_ENTRY = re.compile(r"^\s+([A-Za-z_][A-Za-z0-9_]*)\s+(.*)$")


@dataclass(frozen=True)
class GalleryTemplate:
    """One gallery template: where it lives and what its header comment says."""

    name: str
    folder: Path
    title: str
    description: str
    inputs: dict[str, str] = field(default_factory=dict)  # column → what it holds
    answers: dict[str, str] = field(default_factory=dict)  # answer field → what it holds
    example_answers: dict[str, Any] = field(default_factory=dict)  # one submission, as the page sends it
    workers: int = 1  # "Workers: 2" in the header: a live task that many workers share
    roles: tuple[str, ...] = ()  # "Roles: customer, agent": their roles, by seat

    @property
    def example(self) -> Path:
        """The example data file (CSV or JSONL)."""
        for name in ("example.csv", "example.jsonl"):
            if (self.folder / name).is_file():
                return self.folder / name
        raise ConfigError(f"template {self.name!r} has no example.csv or example.jsonl in {self.folder}")

    @property
    def thumbnail(self) -> Path | None:
        """``preview.png``, if the template has one."""
        path = self.folder / "preview.png"
        return path if path.is_file() else None

    @property
    def review(self) -> Path | None:
        """``review.html``, if the template has one."""
        path = self.folder / "review.html"
        return path if path.is_file() else None

    def required_inputs(self) -> list[str]:
        """The input columns every data row must have (the rest are documented as optional)."""
        return [k for k, v in self.inputs.items() if not v.startswith("optional")]


class Gallery(dict[str, GalleryTemplate]):
    """Every gallery template by name; in a notebook, a table with thumbnails."""

    def _repr_html_(self) -> str:
        rows = "".join(_table_row(t) for t in self.values())
        head = "<tr><th>preview</th><th>name</th><th>what</th><th>inputs</th><th>answers</th></tr>"
        return f"<table class='crowd-gallery'><thead>{head}</thead><tbody>{rows}</tbody></table>"


def templates() -> Gallery:
    """Every shipped template, described by its header comment (``cn.templates()`` gives their folders)."""
    return Gallery({name: describe(folder) for name, folder in available_templates().items()})


def describe(template: str | Path) -> GalleryTemplate:
    """The metadata of a template (a shipped name or a folder), read from its ``task.html`` header comment."""
    page = find_template(str(template))
    folder = page.parent
    match = _HEADER.match(page.read_text(encoding="utf-8"))
    if not match:
        raise ConfigError(f"{page} has no header comment; start it with {{# Title: what it does … #}}")
    lines = match.group(1).strip().splitlines()
    title, _, description = lines[0].partition(":")
    sections: dict[str, dict[str, str]] = {"inputs": {}, "answers": {}}
    current: dict[str, str] | None = None
    example: dict[str, Any] = {}
    shared: dict[str, Any] = {}
    for line in lines[1:]:
        key = line.strip().lower()
        if key.startswith("workers:") and key.split(":", 1)[1].strip().isdigit():
            shared["workers"] = int(key.split(":", 1)[1])
        elif key.startswith("roles:"):
            shared["roles"] = tuple(r.strip() for r in line.split(":", 1)[1].split(",") if r.strip())
        elif key in ("inputs:", "answers:"):
            current = sections[key[:-1]]
        elif key.startswith("example answers:"):
            example = _example(page, line.split(":", 1)[1])
            current = None
        elif current is not None and (entry := _ENTRY.match(line)):
            current[entry.group(1)] = entry.group(2).strip()
    return GalleryTemplate(
        name=folder.name,
        folder=folder,
        title=title.strip(),
        description=description.strip()[:1].upper() + description.strip()[1:],
        inputs=sections["inputs"],
        answers=sections["answers"],
        example_answers=example,
        **shared,
    )


def _example(page: Path, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{page}: 'Example answers:' is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{page}: 'Example answers:' must be a JSON object of answer fields")
    return value


# --- review renderers ----------------------------------------------------------------------------
def render_review(template: str | Path, row: dict[str, Any], answers: dict[str, Any]) -> str:
    """One submission (its inputs and answers) as HTML for a requester, by the template's ``review.html``."""
    folder = find_template(str(template)).parent
    source = folder / "review.html"
    if not source.is_file():
        raise ConfigError(f"template {str(template)!r} has no review.html in {folder}")
    return _compile(folder)(row, answers)


def review_for(spec: TaskSpec) -> Callable[[dict[str, Any]], Markup] | None:
    """A renderer of frame records for a task whose page came from a template with ``review.html``; else None."""
    if spec.source == "html=":
        return None
    try:
        folder = find_template(spec.source).parent
    except ConfigError:  # the template moved since the run: the plain answer table still works
        return None
    if not (folder / "review.html").is_file():
        return None
    try:
        render = _compile(folder)
        inputs = spec.page().variables
    except CrowdError as exc:  # a broken renderer must not take the review pages down with it
        log.warning("no review rendering for task %s: %s", spec.name, exc)
        return None

    def for_record(record: dict[str, Any]) -> Markup:
        row, answers = split_record(record, inputs)
        try:
            return Markup(render(row, answers))  # rendered with autoescaping: safe to embed
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            log.warning("review.html of %s failed on unit %s: %s", spec.source, record.get("unit_id"), exc)
            return Markup("<p class='gallery-review'><i>{}</i></p>").format(f"review.html failed: {exc}")

    return for_record


def split_record(record: dict[str, Any], inputs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``run.df`` record as (inputs, answers): undoes the ``input_``/``answer_`` prefixes of clashing names."""
    row: dict[str, Any] = {}
    for name in inputs:
        column = f"input_{name}" if f"input_{name}" in record else name
        if column in record:
            row[name] = _plain(record[column])
    taken = {f"input_{n}" if f"input_{n}" in record else n for n in inputs}
    answers: dict[str, Any] = {}
    for column, value in record.items():
        if column in taken or column in META_COLUMNS:
            continue
        name = column.removeprefix("answer_")
        answers[name if name in META_COLUMNS else column] = _plain(value)
    return row, answers


def _plain(value: Any) -> Any:
    """NaN and pandas' missing values as None, so a review page shows nothing rather than 'nan'."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    return value


def _compile(folder: Path) -> Callable[[dict[str, Any], dict[str, Any]], str]:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters["from_json"] = _from_json
    env.filters["as_list"] = _as_list
    env.filters["spans"] = _spans
    env.filters["media"] = lambda url: _media(folder, url)
    try:
        template = env.from_string((folder / "review.html").read_text(encoding="utf-8"))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{folder / 'review.html'}, line {exc.lineno}: template syntax error: {exc.message}") from exc

    def render(row: dict[str, Any], answers: dict[str, Any]) -> str:
        return template.render(row=row, answers=answers)

    return render


def _from_json(value: Any) -> Any:
    if isinstance(value, list | dict):
        return value
    try:
        return json.loads(value) if isinstance(value, str) and value.strip() else None
    except json.JSONDecodeError:
        return None


def _as_list(value: Any) -> list[Any]:
    """A multiple-choice answer as a list: a list, its JSON text, or one plain value."""
    if value is None or value == "":
        return []
    parsed = _from_json(value) if isinstance(value, str) and value.lstrip().startswith("[") else value
    return list(parsed) if isinstance(parsed, list | tuple) else [value]


def _media(folder: Path, url: Any) -> str:
    """A ``static/…`` file as a data URI (the review app's CSP and a notebook have no router to ask)."""
    text = str(url or "")
    if text.startswith(("http://", "https://")):
        return text
    if not text.startswith("static/"):
        return ""
    root = (folder / "static").resolve()
    path = (folder / text).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return ""
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _spans(text: Any, spans: Any) -> list[dict[str, Any]]:
    """``text`` cut at the spans' code-point offsets: [{"text", "label", "color"}], ``color`` the label's
    number in order of first use; bad or overlapping spans are skipped."""
    text = str(text or "")
    pieces: list[dict[str, Any]] = []
    at, colors = 0, dict[str, int]()
    good = sorted(_valid_spans(spans, len(text)), key=lambda s: s[0])
    for start, end, label in good:
        if start < at:
            continue  # overlaps the previous span
        if start > at:
            pieces.append({"text": text[at:start], "label": None, "color": None})
        color = colors.setdefault(label, len(colors))
        pieces.append({"text": text[start:end], "label": label, "color": color})
        at = end
    if at < len(text):
        pieces.append({"text": text[at:], "label": None, "color": None})
    return pieces


def _valid_spans(spans: Any, size: int) -> Iterator[tuple[int, int, str]]:
    for span in _from_json(spans) or []:
        if not isinstance(span, dict):
            continue
        start, end = span.get("start"), span.get("end")
        if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size:
            yield start, end, str(span.get("label", ""))


# --- the notebook listing --------------------------------------------------------------------------
def _table_row(t: GalleryTemplate) -> str:
    thumb = ""
    if t.thumbnail is not None:
        data = base64.b64encode(t.thumbnail.read_bytes()).decode("ascii")
        thumb = f"<img src='data:image/png;base64,{data}' alt='preview of {escape(t.name)}' width='200'>"

    def fields(entries: dict[str, str]) -> str:
        return "<br>".join(f"<code>{escape(k)}</code> {escape(v)}" for k, v in entries.items())

    return (
        f"<tr><td>{thumb}</td><td><code>{escape(t.name)}</code></td>"
        f"<td style='text-align:left'><b>{escape(t.title)}</b><br>{escape(t.description)}</td>"
        f"<td style='text-align:left'>{fields(t.inputs)}</td><td style='text-align:left'>{fields(t.answers)}</td></tr>"
    )
