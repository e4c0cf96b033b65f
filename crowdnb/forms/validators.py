"""Custom validators: Python functions a form config (or a page's field) names, checked on the server.

``register("name", fn)`` (or ``@register("name")``) makes ``fn(field, value, *args) -> message | None`` the
server side of a config's custom validator ``name``; the page's JavaScript of the same name checks it in the
browser first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

Validator = Callable[..., "str | None"]

_registry: dict[str, Validator] = {}
_registry_lock = threading.Lock()


def register(name: str, function: Validator | None = None) -> Any:
    """Register ``function(field, value, *args) -> error message | None`` as custom validator ``name``.

    Also a decorator: ``@register("name")``. The arguments are the config's (a list is spread).
    """
    if not isinstance(name, str) or not re.match(r"^[A-Za-z_$][\w$]*$", name):
        raise ConfigError(f"validator name {name!r} must look like a JavaScript function name (letters, digits, _)")

    def add(fn: Validator) -> Validator:
        if not callable(fn):
            raise ConfigError(f"validator {name!r} must be a function; got {fn!r}")
        with _registry_lock:
            _registry[name] = fn
        return fn

    return add(function) if function is not None else add


def registered(name: str) -> Validator | None:
    """The Python function registered as custom validator ``name``, if any."""
    with _registry_lock:
        return _registry.get(name)
