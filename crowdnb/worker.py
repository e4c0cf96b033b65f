"""A crowd worker as the requester sees them: their record across the project, and what can be done to them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import providers
from .pages.page import summary_table
from .providers import decisions
from .store import reports

if TYPE_CHECKING:
    from .project import Project


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

    def _platform(self) -> providers.Provider:
        return providers.create(self.provider, self.project.store)

    def grant(self, qualification: str, value: int = 1) -> int:
        """Grant a qualification (see ``cn.grant``)."""
        return decisions.grant(self.project.store, self._platform(), self.name, qualification, value, self.actor)

    def revoke(self, qualification: str) -> bool:
        """Revoke a qualification (see ``cn.revoke``)."""
        return decisions.revoke(self.project.store, self._platform(), self.name, qualification, self.actor)

    def block(self, reason: str) -> bool:
        """Block this worker from every task (see ``cn.block``)."""
        return decisions.block(self.project.store, self._platform(), self.name, reason, self.actor)

    def unblock(self) -> bool:
        """Lift a block (see ``cn.unblock``)."""
        return decisions.unblock(self.project.store, self._platform(), self.name, self.actor)

    def message(self, text: str) -> None:
        """Send this worker a message (see ``cn.message``)."""
        decisions.message(self.project.store, self._platform(), self.name, text, self.actor)

    def bonus(self, amount: float, reason: str, key: str | None = None) -> bool:
        """Pay this worker a bonus outside any unit (see ``cn.bonus``)."""
        return decisions.worker_bonus(self.project.store, self._platform(), self.name, amount, reason, key, self.actor)

    def _repr_html_(self) -> str:
        rows: dict[str, object] = {"provider": self.provider}
        rows.update({status.replace("_", "-"): n for status, n in sorted(self.units.items())})
        rows["qualifications"] = ", ".join(f"{k}={v}" for k, v in self.qualifications.items()) or "none"
        return summary_table(f"Worker {self.name}", rows)

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} on {self.provider}: {self.units}>"
