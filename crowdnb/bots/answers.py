"""What a simulated worker submits: for each field of its page, a value the server accepts.

A bot reads the fields the router sends with a unit (``page.Field`` as JSON) and fills each within its
rules: an option, a number in range, text of a fitting length, text its pattern finds
(``strings.matching``), a small file of an accepted type (``files``). Every value is checked
with the server's own rules (``router.validation.field_error``, custom validators registered in
Python included) before it is sent, so a bot is refused only by a rule the server does not check either
(a browser-only custom validator) or by one nothing can meet.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..pages.page import Field
from ..quality.gold import matches
from ..router.validation import field_error
from .files import Sample, sample_file
from .strings import EMAIL, PRINTABLE, matching

POOL = 10  # pattern strings drawn per field, for the bots to pick from
TRIES = 40  # values tried per field before giving up on the rules (each try is cheap)
_WORDS = ("looks", "fine", "not", "sure", "ok", "the", "text", "is", "clear", "good", "maybe", "yes", "no", "it")
_TEXT_KINDS = {
    "date": lambda rng: f"20{rng.randint(20, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
    "time": lambda rng: f"{rng.randint(0, 23):02d}:{rng.randrange(0, 60, 5):02d}",
    "datetime-local": lambda rng: f"20{rng.randint(20, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T09:30",
    "month": lambda rng: f"20{rng.randint(20, 29)}-{rng.randint(1, 12):02d}",
    "week": lambda rng: f"20{rng.randint(20, 29)}-W{rng.randint(1, 52):02d}",
    "color": lambda rng: "#" + "".join(f"{rng.randrange(256):02x}" for _ in range(3)),
    "url": lambda rng: f"https://example.org/{rng.choice(_WORDS)}/{rng.randint(1, 999)}",
    "tel": lambda rng: f"+44 20 7946 {rng.randint(0, 9999):04d}",
    "email": lambda rng: f"{rng.choice(_WORDS)}{rng.randint(1, 999)}@example.org",
}


@dataclass
class Filled:
    """A bot's answers to one page, and the files it uploads with them (by field)."""

    answers: dict[str, Any] = field(default_factory=dict)
    files: dict[str, list[Sample]] = field(default_factory=dict)


def field_of(data: Mapping[str, Any] | Field) -> Field:
    """A field as the router sends it (JSON) back into ``page.Field``."""
    if isinstance(data, Field):
        return data
    known = {f.name for f in dataclasses.fields(Field)}
    values = {k: v for k, v in data.items() if k in known}
    values["options"] = tuple(values.get("options") or ())
    values["custom"] = tuple(tuple(c) for c in values.get("custom") or ())
    return Field(**values)


class Filler:
    """Fills pages for the bots of one simulation; strings for a pattern are drawn once and shared."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._pools: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def fill(self, fields: Sequence[Mapping[str, Any] | Field], rng: random.Random) -> Filled:
        """Answers and files for every field a person would fill (hidden fields are the page's own)."""
        filled = Filled()
        for f in map(field_of, fields):
            if f.kind == "hidden":
                continue
            if f.kind == "file":
                count = rng.randint(1, 2) if f.multiple else 1
                filled.files[f.name] = [sample_file(f.accept, rng, f"{f.name}-{n + 1}") for n in range(count)]
                continue
            value = self.value(f, rng)
            if value is not None:
                filled.answers[f.name] = value
        return filled

    def value(self, f: Field, rng: random.Random) -> Any:
        """A value of one field within its rules; None when it is optional and no value fits."""
        if f.pattern is not None and f.kind not in ("number", "range") and not f.options:
            pool = self._pool(f)
            if pool:
                return rng.choice(pool)
        value = None
        for attempt in range(TRIES):
            value = self._candidate(f, rng, attempt)
            if field_error(f, value) is None:
                return value
        return value if f.required else None  # a required field gets its best try; the refusal is reported

    def wrong(self, f: Field, right: Any, rng: random.Random) -> Any:
        """A value within the field's rules that is not ``right`` (a wrong answer to a gold unit)."""
        for _ in range(TRIES):
            value = self.value(f, rng)
            if value is not None and not matches(value, right):
                return value
        return None

    def _candidate(self, f: Field, rng: random.Random, attempt: int) -> Any:
        if f.options:
            choices = [o for o in f.options if o != ""] or list(f.options)
            if not f.multiple:
                return rng.choice(choices)
            low, high = f.min_length, f.max_length
            most = min(high if high is not None else len(choices), len(choices))
            return rng.sample(choices, rng.randint(min(max(low or 1, 1), most), most))
        if f.kind in ("number", "range"):
            # without bounds: small numbers first, then wider, for a custom rule the bot only learns by trying
            width = 9 if attempt < 3 else 100 if attempt < 30 else 1000
            bottom = f.minimum if f.minimum is not None else 1 if attempt < 3 else 0
            top = f.maximum if f.maximum is not None else bottom + width
            if math.ceil(bottom) <= math.floor(top):
                return str(rng.randint(math.ceil(bottom), math.floor(top)))
            return str(round(rng.uniform(bottom, top), 6))
        if f.kind in _TEXT_KINDS:
            return _TEXT_KINDS[f.kind](rng)
        return _sentence(rng, f.min_length or 0, f.max_length)

    def _pool(self, f: Field) -> list[str]:
        """Strings the field's pattern finds that pass all its rules (drawn once per field and seed)."""
        assert f.pattern is not None
        key = json.dumps(dataclasses.asdict(f), sort_keys=True, default=str)
        with self._lock:
            if key in self._pools:
                return self._pools[key]
        lines = f.kind == "textarea"  # only a text area takes a line break (a pattern may write one)

        def fits(text: str) -> bool:
            return (lines or "\n" not in text) and field_error(f, text) is None

        pool = matching(
            f.pattern,
            f.flags,
            count=POOL,
            seed=self.seed,
            alphabet=EMAIL if f.kind == "email" else PRINTABLE,
            length=(f.min_length or 0, f.max_length),
            keep=fits,
        )
        with self._lock:
            return self._pools.setdefault(key, pool)


def _sentence(rng: random.Random, low: int, high: int | None) -> str:
    """Words up to a length in [low, high] (high None: a short answer)."""
    target = rng.randint(low, max(low, high if high is not None else 0, low + 20))
    if high is not None:
        target = min(target, high)
    words: list[str] = []
    while len(" ".join(words)) < max(target, 1):
        words.append(rng.choice(_WORDS))
    text = " ".join(words)
    return text[:high].strip() if high is not None else text
