"""Strings that a form field's regular expression accepts, for simulated workers.

A pattern comes as a browser has it (JavaScript syntax and flags) and is read the way the server
checks it (``forms.rules.python_regex``, found anywhere in the value). Strings are drawn from the
pattern itself: Python's own parser (``re._parser``) reads it into a tree, and a walk picks a
character for each part (printable ASCII, the characters a person types: JavaScript's ``\\d`` and
``\\w`` are ASCII too), a branch, a repeat count (short, then longer from draw to draw, to reach a
minimum length), a group's text again for a back-reference. Anchors, ``\\b`` and lookarounds write
nothing: a drawn string is kept only if the server's regular expression finds a match in it and the
caller's ``keep`` (the field's other rules) agrees. Every choice comes from ``random.Random(seed)``,
so a pattern and a seed give the same strings in every process.

Why not a library: Hypothesis' ``from_regex`` mixes string constants of the modules loaded in the
process into what it draws (crowdnb's own ``"utf-16-le"``, a researcher's notebook helpers), so the
strings depend on what was imported, and it writes a ``.hypothesis/`` folder into the working
directory; rstr picks from ``set()``s for negated classes, whose order changes with each process's
string hashing, and ignores lookarounds; exrex draws from the global ``random``.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Callable, Sequence

# Python's own regular expression parser (sre_parse until 3.11; Hypothesis and rstr read it too). typeshed
# leaves private modules out, hence the ignores
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

from ..forms.rules import python_regex

WORDS = string.ascii_letters + string.digits + " .,-_@"  # what a person mostly types: preferred
PRINTABLE = "".join(chr(c) for c in range(32, 127))  # anything else a keyboard has
EMAIL = string.ascii_letters + string.digits + ".-_+@"  # for <input type=email>: no quotes or spaces
_CATEGORIES = {
    sre.CATEGORY_DIGIT: string.digits,
    sre.CATEGORY_NOT_DIGIT: "".join(c for c in PRINTABLE if not c.isdigit()),
    sre.CATEGORY_SPACE: " ",
    sre.CATEGORY_NOT_SPACE: PRINTABLE[1:],
    sre.CATEGORY_WORD: string.ascii_letters + string.digits + "_",
    sre.CATEGORY_NOT_WORD: "".join(c for c in PRINTABLE if not (c.isalnum() or c == "_")),
    sre.CATEGORY_LINEBREAK: "\n",
    sre.CATEGORY_NOT_LINEBREAK: PRINTABLE,
}
_STRETCH = (0.5, 0.75, 0.9, 0.97)  # chance of one more repeat, by draw: 1, 3, 9 and 32 more on average
_MOST = 64  # repeats beyond a repeat's minimum
_ROOM = 40  # characters a string may grow past the length wanted before repeats stop adding more


class Unsupported(Exception):
    """A part of a pattern this module does not draw from."""


def compile_js(pattern: str, flags: str = "") -> re.Pattern[str]:
    """A JavaScript pattern with its flags as Python's ``re``, ASCII like JavaScript (``re.error`` if it is not one)."""
    compiled = python_regex(pattern, flags)
    return re.compile(compiled.pattern, (compiled.flags & ~re.UNICODE) | re.ASCII)


def matching(
    pattern: str,
    flags: str = "",
    *,
    count: int = 10,
    seed: int = 0,
    alphabet: str = PRINTABLE,
    length: tuple[int, int | None] = (0, None),
    keep: Callable[[str], bool] | None = None,
) -> list[str]:
    """Up to ``count`` different strings in which ``pattern`` (JavaScript, with ``flags``) is found.

    Characters come from ``alphabet`` (``WORDS`` first) where the pattern leaves a choice; ``length``
    is the (minimum, maximum) the caller wants, reached by padding with words where the pattern is not
    anchored. ``keep`` narrows the strings further (a field's other rules). [] when none was found,
    or when the pattern is one Python cannot read (``\\p{L}``, ``[^]``).
    """
    try:
        regex = compile_js(pattern, flags)
        tree = _parser.parse(regex.pattern, regex.flags)
    except (re.error, OverflowError, RecursionError):
        return []
    rng, found = random.Random(seed), dict[str, None]()
    for draw in range(count * 30):
        if len(found) >= count:
            break
        try:
            walk = _Walk(rng, alphabet, _STRETCH[draw % len(_STRETCH)], (length[1] or length[0] + _ROOM))
            text = walk.text(tree)
        except (Unsupported, RecursionError):
            return []
        text = _padded(text, length, rng)
        if text == text.strip() and regex.search(text) and (keep is None or keep(text)):
            found[text] = None
    return list(found)


def _padded(text: str, length: tuple[int, int | None], rng: random.Random) -> str:
    """``text`` with words before or after it up to a length in ``length`` (the pattern may not allow it)."""
    low, high = length
    if len(text) >= low:
        return text
    target = rng.randint(low, max(low, min(high if high is not None else low + 20, low + 20)))
    words: list[str] = []
    while len(text) + len(" ".join(words)) + 1 < target:
        words.append(rng.choice(("ok", "fine", "sure", "yes", "the", "text")))
    pad = " ".join(words)
    return f"{pad} {text}" if rng.random() < 0.5 else f"{text} {pad}"


class _Walk:
    """One string drawn from a parsed pattern."""

    def __init__(self, rng: random.Random, alphabet: str, stretch: float, budget: int) -> None:
        self.rng, self.alphabet, self.stretch, self.budget = rng, alphabet, stretch, budget
        self.groups: dict[int, str] = {}
        self.size = 0  # characters written so far: optional repeats stop at the budget

    def text(self, items: Sequence[tuple[Any, Any]]) -> str:
        return "".join(self.part(op, value) for op, value in items)

    def part(self, op: Any, value: Any) -> str:
        if op is sre.LITERAL:
            self.size += 1
            return chr(value)
        if op is sre.NOT_LITERAL:
            return self.pick([c for c in self.alphabet if c != chr(value)])
        if op is sre.ANY:
            return self.pick(list(self.alphabet))
        if op is sre.IN:
            return self.pick(self.members(value))
        if op is sre.BRANCH:
            return self.text(self.rng.choice(value[1]))
        if op is sre.SUBPATTERN:
            group, _, _, items = value
            text = self.text(items)
            if group is not None:
                self.groups[group] = text
            return text
        if op is sre.ATOMIC_GROUP:
            return self.text(value)
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
            low, high, items = value
            parts = [self.text(items) for _ in range(low)]
            while len(parts) < min(high, low + _MOST) and self.size < self.budget and self.rng.random() < self.stretch:
                parts.append(self.text(items))
            return "".join(parts)
        if op is sre.GROUPREF:
            self.size += len(self.groups.get(value, ""))
            return self.groups.get(value, "")
        if op is sre.GROUPREF_EXISTS:
            group, yes, no = value
            return self.text(yes) if group in self.groups else self.text(no) if no is not None else ""
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            return ""  # checked on the whole string afterwards
        raise Unsupported(str(op))

    def members(self, items: Sequence[tuple[Any, Any]]) -> list[str]:
        """The characters a class ``[…]`` allows, in a fixed order: of the alphabet, else of its own."""
        negate = bool(items) and items[0][0] is sre.NEGATE
        own: list[str] = []
        for op, value in items[1:] if negate else items:
            if op is sre.LITERAL:
                own.append(chr(value))
            elif op is sre.RANGE:
                own.extend(chr(c) for c in range(value[0], min(value[1], value[0] + 255) + 1))
            elif op is sre.CATEGORY:
                own.extend(_CATEGORIES.get(value, ""))
            else:
                raise Unsupported(str(op))
        allowed = set(own)
        if negate:
            return [c for c in self.alphabet if c not in allowed]
        return [c for c in self.alphabet if c in allowed] or list(dict.fromkeys(own))

    def pick(self, choices: list[str]) -> str:
        """A character: mostly one a person types often (``WORDS``) when the choice allows it."""
        if not choices:
            raise Unsupported("a class with nothing to choose from")
        self.size += 1
        usual = [c for c in choices if c in WORDS]
        return self.rng.choice(usual if usual and self.rng.random() < 0.9 else choices)
