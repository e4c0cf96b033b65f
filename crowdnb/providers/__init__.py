"""Crowd providers: where workers come from and where money moves.

A provider is never on the data path of a submission. It publishes the task URL, maps the platform's
URL parameters to a worker identity, tells the page how to report completion, and moves money and
qualifications. ``mock`` implements the whole contract locally; ``mturk`` and ``prolific`` plug in the
same way (entry-point group ``crowdnb.providers``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from . import settings

if TYPE_CHECKING:
    from ..quality.requirements import Requirement
    from ..store.db import Store


@dataclass(frozen=True)
class Identity:
    """Who opened the task page: the platform's worker id and the ids to bind to their agent."""

    worker: str
    external: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    """How the page finishes after a saved submission: a message, the next unit, a redirect or a form post."""

    # "message" | "next" (the worker's next unit, by itself) | "redirect" | "form_post" | "reload" (back to the
    # task: onboarding passed)
    kind: str = "message"
    url: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # a form_post also carries crowdnb_submission_id
    message: str = "Thank you! Your answers are saved."


@dataclass(frozen=True)
class Report:
    """A status change only the platform knows: a worker returned or abandoned a unit."""

    worker: str
    status: str  # "returned", "timeout" or "disconnect"
    external: dict[str, str] = field(default_factory=dict)  # narrows it to one agent (e.g. MTurk assignmentId)


@dataclass(frozen=True)
class RunInfo:
    """What a provider needs to know about a task run."""

    id: int
    task: str
    title: str
    description: str
    reward: float
    tags: tuple[str, ...]
    url: str
    assignment_duration: int
    requirements: tuple[Requirement, ...] = ()  # pushed down at set-up (MTurk QualificationRequirements …)


@dataclass(frozen=True)
class UnitRef:
    """A unit as a provider sees it: its worker and the platform ids bound to its agent."""

    id: int
    run_id: int
    worker: str
    amount: float
    external: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Provider(Protocol):
    """The contract every crowd provider implements (see the module docstring)."""

    name: str
    fee_rate: float  # the platform's commission on rewards and bonuses (MTurk: 0.2)
    poll_seconds: float  # how often ``sync`` is called; 0 = never

    def identify(self, params: Mapping[str, str]) -> Identity | None:
        """The worker behind a page request, or None for a preview (no worker yet)."""

    def worker_url(self, base_url: str, worker: str) -> str:
        """The link a given worker opens (mock) or the platform's task link."""

    def setup_run(self, run: RunInfo) -> None:
        """Create the platform-side resources of a run (HIT type, study …)."""

    def publish(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Make launched units available to workers (one HIT each, more study places …)."""

    def completion(self, run: RunInfo, external: Mapping[str, str]) -> Completion:
        """How the worker's page reports completion to the platform."""

    def sync(self, run: RunInfo) -> Sequence[Report]:
        """Status changes the platform saw since the last call (returns, abandons)."""

    def expire(self, run: RunInfo, unit_ids: Sequence[int]) -> None:
        """Withdraw units that are no longer on offer."""

    def cleanup_run(self, run: RunInfo) -> None:
        """Remove what ``setup_run`` created once the run is stopped."""

    def approve(self, unit: UnitRef, note: str | None) -> None:
        """Pay for a unit."""

    def reject(self, unit: UnitRef, note: str | None) -> None:
        """Refuse to pay for a unit, with a reason the worker reads."""

    def soft_reject(self, unit: UnitRef, note: str | None) -> None:
        """Pay for a unit the requester will not use."""

    def bonus(self, worker: str, amount: float, reason: str, token: str, unit: UnitRef | None = None) -> None:
        """Pay a bonus once per ``token``."""

    def message(self, worker: str, text: str) -> None:
        """Send a message to a worker."""

    def block(self, worker: str, reason: str) -> None:
        """Stop a worker from taking this requester's tasks."""

    def unblock(self, worker: str) -> None:
        """Lift a block."""

    def grant_qualification(self, worker: str, name: str, value: int) -> None:
        """Push a qualification value down to the platform."""

    def revoke_qualification(self, worker: str, name: str) -> None:
        """Remove a qualification on the platform."""


def check(provider: Provider, run: RunInfo) -> None:
    """What the platform would refuse about ``run`` (its URL, reward …), raised before anything is made there.

    A provider may define ``check(run)`` for this (MTurk: HTTPS only); ``setup_run`` checks again.
    """
    checks = getattr(provider, "check", None)
    if callable(checks):
        checks(run)


def create(name_or_provider: str | Provider, store: Store, **options: object) -> Provider:
    """A provider instance from its registered name (or the instance itself).

    The project's platform settings of that name (``settings``: the endpoint, region, workspace … of the
    latest launch) fill in the options not given, so every call reaches the platform the runs use.
    """
    if not isinstance(name_or_provider, str):
        return name_or_provider
    return _build(name_or_provider, store, {**settings.read(store, name_or_provider), **options})


def for_launch(name_or_provider: str | Provider, store: Store, **options: object) -> Provider:
    """A provider built from exactly ``options``: a launch says where it runs (``settings.keep`` makes that
    the project's setting once the run has started)."""
    if not isinstance(name_or_provider, str):
        return name_or_provider
    return _build(name_or_provider, store, options)


def _build(name: str, store: Store, options: Mapping[str, object]) -> Provider:
    from ..plugins import load

    factory = load("provider", name)
    provider: Provider = factory(store=store, **options)
    return provider
