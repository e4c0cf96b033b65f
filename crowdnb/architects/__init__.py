"""Architects: where the router runs (``local``: a thread of this process; ``ec2`` later).

Entry-point group ``crowdnb.architects``; an architect deploys the router's WSGI app and returns the
URL workers open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from flask import Flask


@runtime_checkable
class Architect(Protocol):
    """The contract every architect implements."""

    name: str

    def deploy(self, app: Flask) -> str:
        """Serve ``app``; return the base URL workers open (ending in "/")."""

    def shutdown(self) -> None:
        """Stop serving and free every resource (port, threads, instances)."""

    def options(self) -> dict[str, object]:
        """The options to store with the run so a resume deploys the same way."""


def create(name_or_architect: str | Architect, **options: object) -> Architect:
    """An architect instance from its registered name (or the instance itself)."""
    if not isinstance(name_or_architect, str):
        return name_or_architect
    from ..plugins import load

    architect: Architect = load("architect", name_or_architect)(**options)
    return architect
