"""Server-side checks of submitted answers against the rules of the page the worker was shown.

The browser checks the same rules first (``forms.js``, or the HTML attributes themselves), so a person
never meets these messages unless their page and the server disagree; a submission that skips the
page's JavaScript is refused here, with one message per field, before anything is stored.

Rules come from ``page.Field``: for a plain HTML page its attributes (``required``, ``minlength``,
``maxlength``, ``pattern``, ``min``/``max``, ``type=email|number``, a select's or radio group's options,
a file input's ``accept``); for a form config its validators. Custom validators named in a form run here
too when a Python function is registered under the same name::

    from crowdnb.forms import validators

    @validators.register("noForbiddenWords")
    def no_forbidden_words(field, value, check=True):
        return "Please keep it polite." if check and "stupid" in value.lower() else None
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InvalidAnswers
from ..forms.rules import js_string, python_regex
from ..forms.validators import registered
from . import limits

if TYPE_CHECKING:
    from ..pages.page import Field, TaskPage
    from ..store.db import Row
    from .dispatch import Dispatcher

log = logging.getLogger(__name__)

FileInfo = tuple[str, str]  # (file name, content type)
# the WHATWG HTML definition of a valid e-mail address (what <input type=email> accepts)
EMAIL = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)
CHOICE_KINDS = frozenset({"select", "radio", "checkbox"})


def units(text: str) -> int:
    """The length of ``text`` as a browser counts it (UTF-16 code units), so both sides agree."""
    return len(text.encode("utf-16-le")) // 2


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _values(field: Field, raw: Any) -> list[str] | str:
    """The submitted value as text (one field) or texts (several); a message when it has the wrong shape."""
    if raw is None:
        return []
    if isinstance(raw, dict):
        if field.multiple and all(isinstance(v, bool) for v in raw.values()):  # Mephisto's checkbox shape
            return [str(k) for k, v in raw.items() if v]
        return "Expected a value, not an object."
    items = raw if isinstance(raw, list) else [raw]
    if any(isinstance(x, (dict, list)) for x in items):
        return "Expected text values."
    return [js_string(x).strip() for x in items if x is not None]


def field_error(field: Field, raw: Any, files: Sequence[FileInfo] | None = None) -> str | None:
    """What is wrong with one submitted value (None: nothing); ``files`` are a file field's uploads."""
    if field.kind == "file":
        return _file_error(field, files)
    values = _values(field, raw)
    if isinstance(values, str):
        return values
    values = [v for v in values if v != ""]
    if not values:
        return "Please fill in this field." if field.required else None
    if not field.multiple and field.kind in ("select", "radio") and len(values) > 1:
        return "Choose one option."
    if field.options and field.kind in CHOICE_KINDS:
        wrong = [v for v in values if v not in field.options]
        if wrong:
            return f"{wrong[0]!r} is not one of the options."
    if field.multiple:
        error = _count_error(field, len(values))
    else:
        error = next((e for e in (_text_error(field, v) for v in values) if e), None)
    if error:
        return error
    return _custom_error(field, values if field.multiple else values[0])


def _count_error(field: Field, count: int) -> str | None:
    if field.min_length is not None and count < field.min_length:
        return f"Choose at least {_plural(field.min_length, 'option')}."
    if field.max_length is not None and count > field.max_length:
        return f"Choose at most {_plural(field.max_length, 'option')}."
    return None


def _text_error(field: Field, value: str) -> str | None:
    length = units(value)
    if field.min_length is not None and length < field.min_length:
        return f"Use at least {_plural(field.min_length, 'character')} (you used {length})."
    if field.max_length is not None and length > field.max_length:
        return f"Use at most {_plural(field.max_length, 'character')} (you used {length})."
    if field.kind == "email" and not EMAIL.match(value):
        return "Enter a valid e-mail address."
    if field.kind in ("number", "range"):
        try:
            number = float(value)
        except ValueError:
            return "Enter a number."
        if not math.isfinite(number):
            return "Enter a number."
        if field.minimum is not None and number < field.minimum:
            return f"Enter a number of at least {js_string(field.minimum)}."
        if field.maximum is not None and number > field.maximum:
            return f"Enter a number of at most {js_string(field.maximum)}."
    if field.pattern is not None:
        try:
            matched = python_regex(field.pattern, field.flags).search(value)
        except re.error:  # a pattern only a browser understands: the page's own check has to do
            log.debug("pattern of field %s is not a Python regular expression; not checked", field.name)
            return None
        if not matched:
            return "The value does not have the expected format."
    return None


def _file_error(field: Field, files: Sequence[FileInfo] | None) -> str | None:
    if files is None:  # the submission did not carry files at all (JSON): uploads are checked elsewhere
        return None
    if not files:
        return "Please choose a file." if field.required else None
    rules = [r.strip().lower() for r in field.accept.split(",") if r.strip()]
    for name, content_type in files:
        if rules and not any(_accepts(rule, name.lower(), content_type.lower()) for rule in rules):
            allowed = ", ".join(rules)
            return f"{name} is not an accepted type ({allowed})."
    return None


def _accepts(rule: str, name: str, content_type: str) -> bool:
    if rule.startswith("."):
        return name.endswith(rule)
    if rule.endswith("/*"):
        return content_type.startswith(rule[:-1])
    return content_type == rule


def _custom_error(field: Field, value: Any) -> str | None:
    for name, arg in field.custom:
        function = registered(name)
        if function is None:
            continue  # a browser-only validator (insertions/custom_validators.js)
        args = arg if isinstance(arg, list) else [arg]
        try:
            message = function(field, value, *args)
        except Exception:  # a researcher's validator failing must not lose a worker's submission
            log.exception("custom validator %s failed on field %s; the value was accepted", name, field.name)
            continue
        if message:
            return str(message)
    return None


def answer_errors(
    fields: Sequence[Field], answers: Mapping[str, Any], files: Mapping[str, Sequence[FileInfo]] | None = None
) -> dict[str, str]:
    """One message per field whose submitted value breaks its rules (empty: all good).

    ``files`` maps file fields to their uploads; None means the submission carried no files at all.
    Answers for names the page does not have are not judged here.
    """
    errors: dict[str, str] = {}
    for field in fields:
        uploads = None if files is None else files.get(field.name, ())
        message = field_error(field, answers.get(field.name), uploads)
        if message:
            errors[field.name] = message
    return errors


def undeclared_errors(
    fields: Sequence[Field],
    answers: Mapping[str, Any],
    files: Mapping[str, Sequence[FileInfo]] | None,
    open_answers: bool = False,
    kind: str = "jinja",
) -> dict[str, str]:
    """One message per text sent for a file field and, unless ``open_answers``, per answer or upload the
    page (of ``kind``) does not declare."""
    names = {f.name for f in fields}
    file_fields = {f.name for f in fields if f.kind == "file"}
    uploads = file_fields | {f.name for f in fields if f.kind == "js"}  # a JS task's answer may be a file
    errors = {}
    for name in answers:
        if name in file_fields:
            errors[name] = "this field takes an upload, not text"
        elif name not in names and not open_answers:
            listed = ", ".join(sorted(names))
            errors[name] = (
                f"not one of this task's answers ({listed})"  # a JS task's typo: a column nobody would read
                if kind == "js"
                else f"not a field of this task's page (its fields: {listed or 'none'}); a task whose page "
                "sends other answers passes extra_answers=True to cn.Task"
            )
    for name in files or {}:
        if name not in uploads and not open_answers:
            errors[name] = (
                f"not a file field of this task's page (its file fields: {', '.join(sorted(uploads)) or 'none'})"
            )
    return errors


class SubmissionCheck:
    """The router's check of each submission against the page its worker was shown (that unit's row):
    the bounds of ``limits``, the task's policy on undeclared answers, then each field's rules."""

    def __init__(self, dispatcher: Dispatcher, page: TaskPage, size: int = 256, *, extra_answers: bool = False) -> None:
        self.dispatcher, self.page, self.size, self.extra_answers = dispatcher, page, size, extra_answers
        self._fields: OrderedDict[str, list[Field]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self,
        token: str,
        answers: Mapping[str, Any],
        files: Mapping[str, Sequence[FileInfo]] | None,
        body_bytes: int | None = None,
    ) -> Row | None:
        """Raise ``InvalidAnswers`` (422) when an answer breaks its field's rules or the task's policy, and
        a ``WorkerRefused`` beyond the bounds of ``limits``; the token is checked first.

        Returns the agent the token names (None for an onboarding test), for the submit that follows.
        """
        from ..quality.onboarding import PREFIX

        onboarder = self.dispatcher.onboarder
        agent, page = None, self.page
        if onboarder is not None and token.startswith(PREFIX):
            page = onboarder.page
            fields = self._cached("onboarding", lambda: onboarder.page.fields(dict(onboarder.test.data)))
        else:
            agent = self.dispatcher.agent_for(token)  # AuthError for a bad token, as before
            source = str(agent["input"])
            fields = self._cached(source, lambda: self.page.fields(json.loads(source)))
        limits.check(answers, body_bytes)
        # a JS page declaring no answers (``Task(js=…)`` without ``answers=``) takes whatever it sends
        open_answers = self.extra_answers or (page.kind == "js" and not fields)
        errors = undeclared_errors(fields, answers, files, open_answers, page.kind)
        errors.update(answer_errors(fields, answers, files))
        if errors:
            log.debug("refused a submission: %d invalid field(s)", len(errors))
            raise InvalidAnswers(errors)
        return agent

    def fields_for(self, row: Mapping[str, Any]) -> list[Field]:
        """The fields of the page ``row`` shows: what a JSON client is sent with its unit (rows of a form
        may show different versions). Keyed like the submit's check, so that one finds them cached."""
        return self._cached(json.dumps(row), lambda: self.page.fields(dict(row)))

    def _cached(self, key: str, make: Callable[[], list[Field]]) -> list[Field]:
        """The fields of a row (most rows of a task have the same page: rendering it once is enough)."""
        with self._lock:
            if key in self._fields:
                self._fields.move_to_end(key)
                return self._fields[key]
        fields = make()
        with self._lock:
            self._fields[key] = fields
            while len(self._fields) > self.size:
                self._fields.popitem(last=False)
        return fields
