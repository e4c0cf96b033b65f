"""What a name from outside may hold before the project stores it: a worker id (or a requester's name).

A worker id comes from a URL (the mock provider's ``?worker_id=``), a platform or a requester's call,
and is shown in tables, logs and links. Characters that are invisible or rewrite what follows them
(controls, bidi overrides, zero-width marks) are refused, and so is a name of dots alone, which no link
can name (a browser resolves ``..`` in a path).
"""

from __future__ import annotations

import unicodedata

from ..errors import ConfigError

_REFUSED = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (a bidi override, a zero-width mark …)",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def check_name(name: str, what: str = "worker id") -> str:
    """``name`` if it is printable text; a ``ConfigError`` naming the first character that is not."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a {what} must be non-empty text; got {name!r}")
    for char in name:
        kind = unicodedata.category(char)
        if kind in _REFUSED:
            shown = ascii(name if len(name) <= 60 else name[:60] + "…")
            raise ConfigError(f"{what} {shown} holds {_REFUSED[kind]} (U+{ord(char):04X}); use printable text")
    if not name.strip("."):
        raise ConfigError(f"{what} {name!r} is only dots, which no link can name; use another {what}")
    return name
