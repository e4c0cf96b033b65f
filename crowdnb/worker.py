"""A crowd worker as the requester sees them: their record across the project, and what can be done to them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pandas as pd

from . import providers
from .pages.page import summary_table
from .providers import decisions
from .quality.requirements import BLOCKED
from .store import reports

if TYPE_CHECKING:
    from .project import Project

_T = TypeVar("_T")


class Worker:
    """One worker of one provider, read from the project's store; every verb is recorded, then sent."""

    def __init__(self, project: Project, name: str, provider: str = "mock", actor: str = "requester") -> None:
        self.project, self.name, self.provider, self.actor = project, name, provider, actor

    @property
    def units(self) -> dict[str, int]:
        """Their units by status, across every task and run."""
        return reports.worker_stats(self.project.store, [self.name], self.provider)[self.name]

    @property
    def qualifications(self) -> dict[str, int]:
        """Qualification name → value."""
        return reports.worker_qualifications(self.project.store, self.provider, self.name)

    @property
    def blocked(self) -> bool:
        """Whether they are blocked from every task (``cn.block``)."""
        return BLOCKED in self.qualifications

    @property
    def history(self) -> pd.DataFrame:
        """The latest actions on them (decisions, bonuses, grants, blocks, messages: who, when, why), newest first."""
        columns = ["at", "actor", "action", "unit_id", "task", "amount", "note", "details"]
        return pd.DataFrame(reports.worker_reviews(self.project.store, self.provider, self.name), columns=columns)

    def _platform(self) -> providers.Provider:
        return providers.create(self.provider, self.project.store)

    def _routers(self) -> list[Any]:
        """The runs of this provider served elsewhere that this notebook operates: they enforce qualifications
        and blocks from their own databases, so a decision is applied there too."""
        return [
            run
            for run in list(self.project.served.values())
            if run.operated and run.config["provider"]["name"] == self.provider
        ]

    def _everywhere(self, action: str, local: Callable[[], _T], **args: Any) -> _T:
        """Qualifications and blocks: recorded here and on every router this notebook operates (the platform
        push is idempotent, so it may happen from both)."""
        done = local()
        for run in self._routers():
            run.decide_remotely(action, worker=self.name, provider=self.provider, **args)
        return done

    def _once(self, action: str, local: Callable[[], _T], **args: Any) -> _T:
        """Messages and money: sent from exactly one place, a router this notebook operates if there is one
        (its rows come home when the run stops)."""
        routers = self._routers()
        if routers:
            return cast(_T, routers[0].decide_remotely(action, worker=self.name, provider=self.provider, **args))
        return local()

    def grant(self, qualification: str, value: int = 1) -> int:
        """Grant a qualification (see ``cn.grant``)."""
        store, platform = self.project.store, self._platform()
        return self._everywhere(
            "grant",
            lambda: decisions.grant(store, platform, self.name, qualification, value, self.actor),
            name=qualification,
            value=value,
        )

    def revoke(self, qualification: str) -> bool:
        """Revoke a qualification (see ``cn.revoke``)."""
        store, platform = self.project.store, self._platform()
        return self._everywhere(
            "revoke",
            lambda: decisions.revoke(store, platform, self.name, qualification, self.actor),
            name=qualification,
        )

    def block(self, reason: str) -> bool:
        """Block this worker from every task (see ``cn.block``)."""
        store, platform = self.project.store, self._platform()
        return self._everywhere(
            "block", lambda: decisions.block(store, platform, self.name, reason, self.actor), reason=reason
        )

    def unblock(self) -> bool:
        """Lift a block (see ``cn.unblock``)."""
        store, platform = self.project.store, self._platform()
        return self._everywhere("unblock", lambda: decisions.unblock(store, platform, self.name, self.actor))

    def message(self, text: str) -> None:
        """Send this worker a message (see ``cn.message``)."""
        store, platform = self.project.store, self._platform()
        self._once("message", lambda: decisions.message(store, platform, self.name, text, self.actor), text=text)

    def bonus(self, amount: float, reason: str, key: str | None = None) -> bool:
        """Pay this worker a bonus outside any unit (see ``cn.bonus``); once, wherever it is paid from."""
        store, platform = self.project.store, self._platform()
        paid = self._once(
            "worker_bonus",
            lambda: decisions.worker_bonus(store, platform, self.name, amount, reason, key, self.actor),
            amount=amount,
            reason=reason,
            key=key,
        )
        return bool(paid)

    def _repr_html_(self) -> str:
        rows: dict[str, object] = {"provider": self.provider}
        rows.update({status.replace("_", "-"): n for status, n in sorted(self.units.items())})
        rows["qualifications"] = ", ".join(f"{k}={v}" for k, v in self.qualifications.items()) or "none"
        return summary_table(f"Worker {self.name}", rows)

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} on {self.provider}: {self.units}>"
