"""``${var}`` HTML templates, as MTurk (HTMLQuestion and the requester UI), Turkle and Mephisto's static
tasks write them, served unchanged inside crowdnb's page shell.

A template may be a fragment or a whole document with its own ``<form id="mturk_form">`` (or
``<crowd-form>``) and submit button. The document's ``<head>`` styles and scripts go to the shell's head,
its forms are unwrapped into the shell's form (a form inside a form would end the shell's early), and
MTurk's own scripts, which would post answers to Amazon, are dropped; ``crowd.js`` defines the
``turkGetParam``/``turkSetAssignmentID`` they provide. Stylesheets on a CDN load without blocking the
page, so a worker offline (or a lab network) still gets a working task.

Placeholders are filled HTML-escaped; inside a ``<script>`` they are filled as JavaScript string
content, and one whose column the row lacks is left alone (it is a JS template literal, not a column).
The placeholders outside scripts are the task's required input columns.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from ..errors import ConfigError
from .page import TaskPage

SYNTAXES = ("auto", "jinja", "dollar")
PLACEHOLDER = re.compile(r"\$\{([^{}\n]+)\}")
# Mephisto fills these itself; a row need not have them
BUILTINS = frozenset({"mephisto_agent_id", "provider_worker_id"})
_JINJA = re.compile(r"\{\{|\{%|\{#")
_DOCUMENT = re.compile(r"<\s*(html|head|body|form|crowd-form)[\s>/]", re.IGNORECASE)
# scripts of the platform itself: they would send the answers to Amazon or replace the form
_PLATFORM_SCRIPTS = ("externalhit_v1.js", "crowd-html-elements.js")
_DROPPED = {"title", "meta", "base"}
_UNWRAPPED = {"html", "head", "body", "form", "crowd-form"}
_CROWD_ELEMENTS = {"crowd-form", "crowd-button"}  # the only Crowd HTML Elements that work without Amazon


def detect_syntax(source: str, syntax: str = "auto") -> str:
    """ "jinja" or "dollar" for a template: ``${var}`` (or a whole document) and no Jinja markup is dollar."""
    if syntax not in SYNTAXES:
        raise ConfigError(f"syntax={syntax!r} is not one of {', '.join(SYNTAXES)}")
    if syntax != "auto":
        return syntax
    if _JINJA.search(source):
        return "jinja"
    outside = _outside_scripts(source)
    return "dollar" if PLACEHOLDER.search(outside) or _DOCUMENT.search(outside) else "jinja"


@dataclass(frozen=True)
class _Tag:
    name: str
    attrs: dict[str, str | None]
    start: int
    end: int
    closing: bool = False


class _Scan(HTMLParser):
    """Every tag of a template with its offsets in the source (a script's text is never read as tags)."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = source
        self._lines = [0] + [m.end() for m in re.finditer("\n", source)]
        self.tags: list[_Tag] = []
        self.decls: list[tuple[int, int]] = []
        self.feed(source)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        self.tags.append(_Tag(tag, dict(attrs), start, start + len(self.get_starttag_text() or "")))

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag: str) -> None:
        start = self._offset()
        self.tags.append(_Tag(tag, {}, start, self.source.index(">", start) + 1, closing=True))

    def handle_decl(self, decl: str) -> None:
        start = self._offset()
        self.decls.append((start, self.source.index(">", start) + 1))

    def script_ranges(self) -> list[tuple[int, int]]:
        """Where the text of each ``<script>`` element lies."""
        ranges, opened = [], None
        for tag in self.tags:
            if tag.name == "script" and not tag.closing:
                opened = tag.end
            elif tag.name == "script" and tag.closing and opened is not None:
                ranges.append((opened, tag.start))
                opened = None
        return ranges


def _outside_scripts(source: str) -> str:
    scan = _Scan(source)
    pieces, last = [], 0
    for start, end in scan.script_ranges():
        pieces.append(source[last:start])
        last = end
    return "".join(pieces) + source[last:]


@dataclass(frozen=True)
class _Part:
    """A template fragment split at its placeholders: text, then (name, inside a script) pairs."""

    texts: tuple[str, ...]
    slots: tuple[tuple[str, bool], ...]

    @classmethod
    def of(cls, source: str) -> _Part:
        scripts = _Scan(source).script_ranges()
        texts, slots, last = [], [], 0
        for match in PLACEHOLDER.finditer(source):
            texts.append(source[last : match.start()])
            inside = any(a <= match.start() < b for a, b in scripts)
            slots.append((match.group(1), inside))
            last = match.end()
        texts.append(source[last:])
        return cls(tuple(texts), tuple(slots))

    def fill(self, row: dict[str, Any], origin: str) -> str:
        out = [self.texts[0]]
        for (name, in_script), text in zip(self.slots, self.texts[1:], strict=True):
            if name in row:
                out.append(_script_text(row[name]) if in_script else html.escape(_text(row[name]), quote=True))
            elif in_script:
                out.append("${" + name + "}")
            elif name in BUILTINS:
                out.append("")
            else:
                raise ConfigError(f"{origin}: '{name}' is undefined; the data row has {', '.join(row) or 'no columns'}")
            out.append(text)
        return "".join(out)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _script_text(value: Any) -> str:
    """A value as the inside of a JS string literal ('…', "…" or `…`), unable to end the script."""
    text = json.dumps(_text(value), ensure_ascii=False)[1:-1]
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"), ("`", "\\u0060")):
        text = text.replace(char, escaped)
    return text.replace("$", "\\u0024").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


class DollarPage(TaskPage):
    """A compiled ``${var}`` template: a fragment or whole document adapted to crowdnb's page shell."""

    kind = "dollar"
    form_id = "mturk_form"  # what MTurk and Turkle call the form; templates' scripts look it up

    def __init__(self, source: str, origin: str, *, feedback: str = "", max_upload_mb: float = 0.0) -> None:
        super().__init__("", origin, feedback=feedback, max_upload_mb=max_upload_mb)
        self.source = source
        head, body, self.has_submit = _adapt(source, origin)
        self._head, self._body = _Part.of(head), _Part.of(body)
        outside = [n for part in (self._head, self._body) for n, inside in part.slots if not inside]
        inside = [n for part in (self._head, self._body) for n, inside in part.slots if inside]
        self.variables = sorted(set(outside) | set(inside))
        self.required = sorted(set(outside) - BUILTINS)

    def body(self, row: dict[str, Any]) -> str:
        """The task fragment for one input row, placeholders filled."""
        return self._body.fill(row, self.origin)

    def head(self, row: dict[str, Any]) -> str:
        """The document's head styles and scripts for one input row."""
        return self._head.fill(row, self.origin)


def _adapt(source: str, origin: str) -> tuple[str, str, bool]:
    """(head, body, has its own submit button) of a template, with the edits the module docstring lists."""
    scan = _Scan(source)
    edits: list[tuple[int, int, str]] = [(a, b, "") for a, b in scan.decls]
    has_submit = False
    head_start: int | None = None
    head_end = len(source)
    skip_until: str | None = None
    for index, tag in enumerate(scan.tags):
        if skip_until is not None:
            if tag.closing and tag.name == skip_until:
                skip_until = None
            continue
        name, attrs = tag.name, tag.attrs
        if name == "head" and not tag.closing and head_start is None:
            head_start = tag.end
        elif head_start is not None and head_end == len(source) and (name == "head" or name == "body"):
            head_end = tag.start  # </head>, or <body> when the document leaves </head> out
        if name.startswith("crowd-") and name not in _CROWD_ELEMENTS:
            raise ConfigError(
                f"{origin}: <{name}> is one of Amazon's Crowd HTML Elements, which only work on MTurk with "
                "Amazon's script; use plain inputs (<input>, <select>, <textarea>) named as the answers"
            )
        if name in _UNWRAPPED:
            edits.append((tag.start, tag.end, ""))
        elif name in _DROPPED and not tag.closing:
            end = _closing(scan.tags, index, name) if name == "title" else tag.end
            edits.append((tag.start, end, ""))
            skip_until = "title" if name == "title" else None
        elif name == "script" and not tag.closing and _is_platform_script(attrs.get("src")):
            edits.append((tag.start, _closing(scan.tags, index, "script"), ""))
            skip_until = "script"
        elif name == "crowd-button":
            submits = (attrs.get("form-action") or "").lower() == "submit"
            has_submit = has_submit or submits
            if tag.closing:
                edits.append((tag.start, tag.end, "</button>"))
            else:
                kind = "submit" if submits else "button"
                edits.append((tag.start, tag.end, f'<button type="{kind}" class="crowd-submit">'))
        elif name == "input" and (attrs.get("name") or "") == "assignmentId":
            # MTurk's own field (turkSetAssignmentID fills it); kept for the template's scripts, not an answer
            edits.append((tag.start, tag.end, _with_attrs(tag, name="_crowd_assignmentId")))
        elif name == "link" and _is_remote_stylesheet(attrs):
            # a CDN stylesheet must not hold the page back when it cannot be reached
            media = attrs.get("media") or "all"
            edits.append((tag.start, tag.end, _with_attrs(tag, media="print", onload=f"this.media='{media}'")))
        if not tag.closing and _is_submit(name, attrs):
            has_submit = True
    head = (head_start, head_end) if head_start is not None else None
    head_text = _apply(source, edits, *head) if head else ""
    body_text = _apply(source, edits, 0, len(source), exclude=head)
    return head_text, body_text, has_submit


def _closing(tags: list[_Tag], index: int, name: str) -> int:
    """The end offset of the element opened at ``tags[index]``."""
    for tag in tags[index + 1 :]:
        if tag.closing and tag.name == name:
            return tag.end
    return tags[index].end


def _apply(
    source: str, edits: list[tuple[int, int, str]], start: int, end: int, exclude: tuple[int, int] | None = None
) -> str:
    """``source[start:end]`` with the edits inside it made (and the ``exclude`` range left out)."""
    out, last = [], start
    cuts = [*edits, (exclude[0], exclude[1], "")] if exclude is not None else list(edits)
    for a, b, replacement in sorted(cuts, key=lambda cut: (cut[0], -cut[1])):  # the widest cut first
        if a < last or b > end or a < start:
            continue
        out.append(source[last:a])
        out.append(replacement)
        last = b
    out.append(source[last:end])
    return "".join(out)


def _with_attrs(tag: _Tag, **changes: str) -> str:
    attrs = {**tag.attrs, **changes}
    rendered = "".join(f" {k}" if v is None else f' {k}="{html.escape(v, quote=True)}"' for k, v in attrs.items())
    return f"<{tag.name}{rendered}>"


def _is_platform_script(src: str | None) -> bool:
    path = (src or "").lower().split("?")[0]
    return bool(path) and path.endswith(_PLATFORM_SCRIPTS)


def _is_remote_stylesheet(attrs: dict[str, str | None]) -> bool:
    href = (attrs.get("href") or "").strip().lower()
    rels = (attrs.get("rel") or "").lower().split()
    return "stylesheet" in rels and href.startswith(("http:", "https:", "//"))


def _is_submit(name: str, attrs: dict[str, str | None]) -> bool:
    kind = (attrs.get("type") or "").lower()
    return (name == "input" and kind in ("submit", "image")) or (name == "button" and kind in ("", "submit"))
