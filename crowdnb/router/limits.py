"""What one submission may hold, whatever its task allows: the router's bounds on what a worker sends.

Which answers a submission may name is the task's policy (``validation.SubmissionCheck``): a template's
are the fields its page declares, unless the task passes ``extra_answers=True``; a JS task's are its
``answers=``, or whatever it sends when it declares none. Whichever applies, these bound what is stored,
and each refusal names the bound (a 400, 413 or 422 the worker's page shows)::

    MAX_ANSWERS        answer names in one submission                          422
    MAX_ANSWER_BYTES   one answer's value, as UTF-8 JSON                       413
    MAX_DEPTH          lists and objects nested in a body (its own braces too)  400

The upload size is the task's ``max_upload_mb`` (the whole request), checked before any of this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import WorkerRefused

MAX_ANSWERS = 500
MAX_ANSWER_BYTES = 256 * 1024
MAX_DEPTH = 32

# a JSON string (skipped whole, whatever brackets it holds) or a bracket
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def parse(text: str | bytes, what: str = "The submission") -> Any:
    """JSON a worker sent, refused with a 400 (never a RecursionError) when it is not JSON, nests deeper
    than ``MAX_DEPTH`` or holds text that is not valid Unicode (an unpaired surrogate escape)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WorkerRefused("bad_submission", f"{what} is not UTF-8 text.") from exc
    if _too_deep(text, MAX_DEPTH):
        raise WorkerRefused(
            "bad_submission",
            f"{what} nests lists and objects more than {MAX_DEPTH} deep (MAX_DEPTH); send flatter data.",
        )
    try:
        value = json.loads(text, parse_constant=_not_finite)
    except ValueError as exc:
        raise WorkerRefused("bad_submission", f"{what} is not valid JSON.") from exc
    if _SURROGATE_ESCAPE.search(text) and not _unicode(value):
        raise WorkerRefused("bad_submission", f"{what} holds text that is not valid Unicode (an unpaired surrogate).")
    return value


def _not_finite(constant: str) -> Any:
    raise WorkerRefused("bad_submission", f"The answers contain a number that is not finite ({constant}).")


def _too_deep(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests deeper than ``limit``; a scan that stops at the first level too many."""
    if text.count("[") + text.count("{") <= limit:  # two passes in C rule out almost every body
        return False
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _unicode(value: Any) -> bool:
    """Whether every string in a parsed value (keys included) encodes as UTF-8 (depth already bounded)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_unicode(k) and _unicode(v) for k, v in value.items())
    if isinstance(value, list):
        return all(map(_unicode, value))
    return True


def check(answers: Mapping[str, Any], body_bytes: int | None) -> None:
    """Refuse answers beyond ``MAX_ANSWERS`` names or ``MAX_ANSWER_BYTES`` per value; ``body_bytes`` is the
    request's size when known (a body smaller than the bound cannot hold a value larger than it)."""
    if len(answers) > MAX_ANSWERS:
        raise WorkerRefused(
            "invalid",
            f"A submission holds at most {MAX_ANSWERS:,} answers (MAX_ANSWERS); this one has {len(answers):,}.",
        )
    if body_bytes is not None and body_bytes <= MAX_ANSWER_BYTES:
        return
    for name, value in answers.items():
        size = len(value.encode("utf-8")) if isinstance(value, str) else len(json.dumps(value).encode("utf-8"))
        if size > MAX_ANSWER_BYTES:
            raise WorkerRefused(
                "too_large",
                f"The answer {name[:40]!r} is {size:,} bytes; an answer holds at most {MAX_ANSWER_BYTES:,} bytes "
                "(MAX_ANSWER_BYTES). Shorten it, or send a large file as an upload.",
            )
