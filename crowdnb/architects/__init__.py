"""Architects: where the router runs. Entry-point group ``crowdnb.architects``.

Two contracts:

- ``Architect`` (``local``): the router runs in this process; it is handed the run's WSGI app and returns the
  URL workers open.
- ``RemoteArchitect`` (``process``, ``ec2``, and ``heroku`` from ``extensions/``): the router runs elsewhere, under
  ``crowdnb serve``. It is handed the run itself, as a project folder holding the run's database (its
  database of record from then on), and returns the public URL; it answers a health check and tears down
  every resource it made. The notebook operates such a run over the operator channel (``crowdnb.remote``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

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


@runtime_checkable
class RemoteArchitect(Protocol):
    """The contract of an architect that runs the router somewhere else.

    An optional ``bind(store)``, called before a deploy or a reattach, gives the project's store to an architect
    that keeps what it set up once in it (``ec2``: its domain's setup). See also ``serves_in_place`` below.
    """

    name: str

    def deploy_bundle(self, bundle: Path, run_id: str, env: dict[str, str]) -> str:
        """Serve the project folder ``bundle`` (``crowdnb serve BUNDLE --run RUN_ID``, with ``env``); return the
        public base URL (ending in "/") once it answers."""

    def healthy(self) -> bool:
        """Whether the router answers its health check now."""

    def teardown(self) -> None:
        """Stop the router and delete every resource made for it (nothing billable is left)."""

    def options(self) -> dict[str, object]:
        """What to store with the run so that a new kernel finds the router again."""


# A RemoteArchitect may set ``serves_in_place = True`` when its router serves ``bundle`` where it lies (on
# this machine): that folder stays the run's database of record, so a router found dead on ``run.resume()``
# is started again on it; for the others the data is with the router, which is not redeployed.


def is_remote(architect: object) -> bool:
    """Whether ``architect`` runs the router elsewhere (``RemoteArchitect``) rather than in this process."""
    return callable(getattr(architect, "deploy_bundle", None))


def create(name_or_architect: str | Architect, **options: object) -> Architect:
    """An architect instance from its registered name (or the instance itself)."""
    if not isinstance(name_or_architect, str):
        return name_or_architect
    from ..plugins import load

    architect: Architect = load("architect", name_or_architect)(**options)
    return architect
