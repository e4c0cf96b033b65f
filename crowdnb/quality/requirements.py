"""Qualification requirements of a task: validated on creation, checked at dispatch, pushed to providers.

A requirement compares the integer a worker holds for a qualification (or its absence) with a value,
using one of Mephisto's ten comparators. ``applicable_providers`` limits it to some crowds.

A name ``<platform>:<name>`` (``mturk:approval_rate``, ``mturk:locale`` …) is a qualification the
platform keeps about its own workers. crowdnb cannot see it, so the platform alone enforces it: it
applies only to that platform's providers (``mturk``, ``mturk_sandbox``), is never checked at dispatch,
and the platform's module (``PLATFORM_QUALIFICATIONS``) checks its name and value when it is written
(a locale takes country codes, not numbers).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

BLOCKED = "crowdnb-blocked"  # granted by ``cn.block``; every task requires its absence

NUMERIC = {
    "EqualTo": (lambda held, v: held == v, "="),
    "NotEqualTo": (lambda held, v: held != v, "≠"),
    "GreaterThan": (lambda held, v: held > v, ">"),
    "GreaterThanOrEqualTo": (lambda held, v: held >= v, "≥"),
    "LessThan": (lambda held, v: held < v, "<"),
    "LessThanOrEqualTo": (lambda held, v: held <= v, "≤"),
}
COMPARATORS = ("Exists", "DoesNotExist", *NUMERIC, "In", "NotIn")
# platform prefix → the module whose ``check(requirement)`` validates that platform's own qualifications
PLATFORM_QUALIFICATIONS = {"mturk": "crowdnb.providers.mturk_requirements"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")


def check_name(name: object) -> str:
    """``name`` if it is a valid qualification name; ``ConfigError`` otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"qualification name {name!r} is not valid; use up to 100 letters, digits, '_', '-', '.' or ':'"
        )
    return name


def platform_of(name: str) -> str | None:
    """The platform keeping the qualification ``name`` (``mturk`` for ``mturk:locale``), or None: crowdnb's own."""
    prefix = name.split(":", 1)[0] if ":" in name else None
    return prefix if prefix in PLATFORM_QUALIFICATIONS else None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Requirement:
    """``name`` must satisfy ``comparator`` (against ``value``) for a worker to get units."""

    name: str
    comparator: str
    value: int | str | tuple[int | str, ...] | None = None  # strings only for a platform's own (a locale)
    applicable_providers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.comparator not in COMPARATORS:
            raise ConfigError(
                f"comparator {self.comparator!r} of requirement {self.name!r} is unknown; use one of {', '.join(COMPARATORS)}"
            )
        if isinstance(self.value, list):
            object.__setattr__(self, "value", tuple(self.value))
        if self.platform is not None:
            self._check_providers()
            importlib.import_module(PLATFORM_QUALIFICATIONS[self.platform]).check(self)
            return
        if self.comparator in ("Exists", "DoesNotExist") and self.value is not None:
            raise ConfigError(f"{self.comparator} takes no value (requirement {self.name!r} has {self.value!r})")
        if self.comparator in NUMERIC and not _is_int(self.value):
            raise ConfigError(f"{self.comparator} needs a whole number (requirement {self.name!r} has {self.value!r})")
        if self.comparator in ("In", "NotIn"):
            values = self.value
            if not isinstance(values, (list, tuple)) or not values or not all(_is_int(v) for v in values):
                raise ConfigError(
                    f"{self.comparator} needs a non-empty list of whole numbers (requirement {self.name!r} has {values!r})"
                )
            object.__setattr__(self, "value", tuple(values))
        self._check_providers()

    def _check_providers(self) -> None:
        if self.applicable_providers is not None:
            providers = self.applicable_providers
            if isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
                raise ConfigError(f"applicable_providers of {self.name!r} must be a list of provider names")
            object.__setattr__(self, "applicable_providers", tuple(providers))

    @property
    def platform(self) -> str | None:
        """The platform that keeps this qualification (``mturk`` for ``mturk:locale``), or None: crowdnb's own."""
        return platform_of(self.name)

    def applies_to(self, provider: str) -> bool:
        """Whether the requirement is enforced for workers of ``provider``."""
        platform = self.platform
        if platform is not None and provider != platform and not provider.startswith(f"{platform}_"):
            return False
        return self.applicable_providers is None or provider in self.applicable_providers

    def allows(self, held: int | None) -> bool:
        """Whether a worker holding ``held`` (None: not granted) meets the requirement."""
        if self.comparator == "Exists":
            return held is not None
        if self.comparator == "DoesNotExist":
            return held is None
        if held is None:
            return False
        if self.comparator in NUMERIC:
            return bool(NUMERIC[self.comparator][0](held, self.value))
        inside = held in (self.value or ())  # type: ignore[operator]
        return inside if self.comparator == "In" else not inside

    def describe(self) -> str:
        """The requirement in words, for the page of a worker who does not meet it."""
        if self.comparator == "Exists":
            return f"the qualification {self.name}"
        if self.comparator == "DoesNotExist":
            return f"not to have the qualification {self.name}"
        if self.comparator in NUMERIC:
            return f"{self.name} {NUMERIC[self.comparator][1]} {self.value}"
        values = ", ".join(str(v) for v in self.value or ())  # type: ignore[union-attr]
        return f"{self.name} {'one of' if self.comparator == 'In' else 'none of'} {values}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in Mephisto's qualification-dict shape."""
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        providers = list(self.applicable_providers) if self.applicable_providers else None
        return {
            "qualification_name": self.name,
            "comparator": self.comparator,
            "value": value,
            "applicable_providers": providers,
        }


def requirement(
    name: str,
    comparator: str,
    value: int | str | Sequence[int | str] | None = None,
    applicable_providers: Sequence[str] | None = None,
) -> Requirement:
    """A qualification requirement (validated now, so a typo fails before anything is launched)."""
    fixed = tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
    providers = tuple(applicable_providers) if applicable_providers is not None else None
    return Requirement(name, comparator, fixed, providers)


def allow_list(name: str) -> Requirement:
    """Only workers granted ``name`` (any value) may work."""
    return Requirement(name, "Exists")


def block_list(name: str) -> Requirement:
    """Workers granted ``name`` may not work."""
    return Requirement(name, "DoesNotExist")


def parse(items: Iterable[Requirement | Mapping[str, Any]] | None) -> tuple[Requirement, ...]:
    """Requirements from objects or Mephisto-style dicts (``qualification_name``, ``comparator``, ``value``)."""
    parsed = []
    for index, item in enumerate(items or ()):
        if isinstance(item, Requirement):
            parsed.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ConfigError(f"qualifications[{index}] is a {type(item).__name__}; use cn.requirement(...) or a dict")
        unknown = set(item) - {"qualification_name", "name", "comparator", "value", "applicable_providers"}
        if unknown:
            raise ConfigError(f"qualifications[{index}] has unknown keys {sorted(unknown)}")
        name = item.get("qualification_name", item.get("name"))
        providers = item.get("applicable_providers")
        value = item.get("value")
        parsed.append(
            Requirement(
                str(name) if name is not None else "",
                str(item.get("comparator", "")),
                tuple(value) if isinstance(value, list) else value,
                tuple(providers) if providers is not None else None,
            )
        )
    return tuple(parsed)


def first_unmet(requirements: Iterable[Requirement], held: Mapping[str, int], provider: str) -> Requirement | None:
    """The first requirement a worker holding ``held`` does not meet on ``provider``, or None."""
    for item in requirements:
        # a platform's own qualification (mturk:approval_rate) is enforced by the platform, not here
        if item.platform is None and item.applies_to(provider) and not item.allows(held.get(item.name)):
            return item
    return None
