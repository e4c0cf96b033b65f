"""A task's requirements as MTurk ``QualificationRequirements``, and MTurk's own qualifications by name.

Two kinds of requirement reach MTurk:

- crowdnb's own qualifications (``english``, ``<task>-onboarded-failed`` …) become custom MTurk
  qualification types of the same name, found by name or created on first use; ``cn.grant`` and
  ``cn.revoke`` push workers' values to them. The block list every task has (``crowdnb-blocked``) is
  not pushed: ``cn.block`` blocks the worker on MTurk itself.
- MTurk's system qualifications, which MTurk keeps about every worker and crowdnb cannot see, are
  declared with the ``mturk:`` prefix and enforced by MTurk alone (see ``crowdnb.quality.requirements``):

  =====================  ===========================================  ==========================================
  name                   MTurk qualification type                     comparators and values
  =====================  ===========================================  ==========================================
  ``mturk:approval_rate``  Worker_PercentAssignmentsApproved (…L0)      numeric, 0–100
  ``mturk:approved_hits``  Worker_NumberHITsApproved (…40)              numeric, ≥ 0
  ``mturk:locale``         Worker_Locale (…71)                          EqualTo/NotEqualTo/In/NotIn "US" or "US-NY"
  ``mturk:adult``          Worker_Adult (…60)                           EqualTo 1
  ``mturk:masters``        Masters (live and sandbox ids differ)        Exists / DoesNotExist
  =====================  ===========================================  ==========================================

::

    cn.Task(..., qualifications=[
        cn.requirement("mturk:locale", "In", ["US", "CA", "GB"]),
        cn.requirement("mturk:approval_rate", "GreaterThanOrEqualTo", 98),
        cn.requirement("mturk:approved_hits", "GreaterThan", 1000),
    ])

Every requirement hides the HIT from workers who do not meet it (``ActionsGuarded``
``DiscoverPreviewAndAccept``; the provider option ``actions_guarded`` changes that).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ..errors import ConfigError
from ..quality.requirements import BLOCKED, NUMERIC, Requirement

LOCALE = "00000000000000000071"
SYSTEM = {
    "mturk:approval_rate": "000000000000000000L0",
    "mturk:approved_hits": "00000000000000000040",
    "mturk:locale": LOCALE,
    "mturk:adult": "00000000000000000060",
}
MASTERS = {"live": "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH", "sandbox": "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"}
NAMES = (*SYSTEM, "mturk:masters")
GUARDS = ("Accept", "PreviewAndAccept", "DiscoverPreviewAndAccept")
_LOCALE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def check(req: Requirement) -> None:
    """Refuse an ``mturk:`` requirement MTurk would refuse (an unknown name, a wrong comparator or value)."""
    name, comparator, value = req.name, req.comparator, req.value
    if name not in NAMES:
        raise ConfigError(f"{name!r} is not an MTurk system qualification; use one of {', '.join(NAMES)}")
    if name == "mturk:masters":
        if comparator not in ("Exists", "DoesNotExist") or value is not None:
            raise ConfigError(f"{name} takes Exists or DoesNotExist and no value; got {comparator} {value!r}")
        return
    if name == "mturk:locale":
        values = value if isinstance(value, tuple) else (value,)
        single = comparator in ("EqualTo", "NotEqualTo") and not isinstance(value, tuple)
        if not (single or comparator in ("In", "NotIn")) or not values:
            raise ConfigError(f"{name} takes EqualTo/NotEqualTo a country or In/NotIn a list; got {comparator}")
        bad = [v for v in values if not isinstance(v, str) or not _LOCALE.match(v)]
        if bad:
            raise ConfigError(f"{name}: {bad[0]!r} is not a country code like 'US' or a subdivision like 'US-NY'")
        if len(values) > 30:
            raise ConfigError(f"{name} takes at most 30 locales; got {len(values)}")
        return
    if name == "mturk:adult" and (comparator != "EqualTo" or value != 1):
        raise ConfigError(f"{name} takes EqualTo 1; got {comparator} {value!r}")
    if comparator in ("Exists", "DoesNotExist"):
        if value is not None:
            raise ConfigError(f"{comparator} takes no value ({name} has {value!r})")
        return
    values = value if isinstance(value, tuple) else (value,)
    single = comparator in NUMERIC and not isinstance(value, tuple)
    if not (single or comparator in ("In", "NotIn")) or not values:
        raise ConfigError(f"{name} {comparator} needs a whole number (or a list for In/NotIn); got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (name == "mturk:approval_rate" and v > 100):
            top = "100" if name == "mturk:approval_rate" else "any size"
            raise ConfigError(f"{name}: {v!r} is not a whole number from 0 to {top}")


def qualification_requirements(
    requirements: Iterable[Requirement],
    provider: str,
    sandbox: bool,
    type_id: Callable[[str], str],
    guard: str = "DiscoverPreviewAndAccept",
) -> list[dict[str, Any]]:
    """The ``QualificationRequirements`` of a HIT type; ``type_id(name)`` finds or creates a custom type."""
    out: list[dict[str, Any]] = []
    for req in requirements:
        if not req.applies_to(provider) or req.name == BLOCKED:
            continue
        if req.name == "mturk:masters":
            qid = MASTERS["sandbox" if sandbox else "live"]
        else:
            qid = SYSTEM.get(req.name) or type_id(req.name)
        item: dict[str, Any] = {"QualificationTypeId": qid, "Comparator": req.comparator, "ActionsGuarded": guard}
        if req.value is not None:
            values = req.value if isinstance(req.value, tuple) else (req.value,)
            if qid == LOCALE:
                item["LocaleValues"] = [_locale(str(v)) for v in values]
            else:
                item["IntegerValues"] = [int(v) for v in values]
        out.append(item)
    return out


def _locale(code: str) -> dict[str, str]:
    country, _, subdivision = code.partition("-")
    return {"Country": country, "Subdivision": subdivision} if subdivision else {"Country": country}
