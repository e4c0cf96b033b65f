"""A crowd worker as the requester sees them: their units across the project and their qualifications."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .page import summary_table
from .qualifications import grant, revoke

if TYPE_CHECKING:
    from .project import Project


class Worker:
    """One worker of one provider, read from the project's store."""

    def __init__(self, project: Project, name: str, provider: str = "mock") -> None:
        self.project, self.name, self.provider = project, name, provider

    @property
    def units(self) -> dict[str, int]:
        """Their units by status, across every task and run."""
        return self.project.store.worker_stats([self.name], self.provider)[self.name]

    @property
    def qualifications(self) -> dict[str, int]:
        """Qualification name → value."""
        return self.project.store.worker_qualifications(self.provider, self.name)

    def grant(self, qualification: str, value: int = 1) -> int:
        """Grant a qualification (see ``cn.grant``)."""
        return grant(self.name, qualification, value, provider=self.provider, project=self.project)

    def revoke(self, qualification: str) -> bool:
        """Revoke a qualification (see ``cn.revoke``)."""
        return revoke(self.name, qualification, provider=self.provider, project=self.project)

    def _repr_html_(self) -> str:
        rows: dict[str, object] = {"provider": self.provider}
        rows.update({status.replace("_", "-"): n for status, n in sorted(self.units.items())})
        rows["qualifications"] = ", ".join(f"{k}={v}" for k, v in self.qualifications.items()) or "none"
        return summary_table(f"Worker {self.name}", rows)

    def __repr__(self) -> str:
        return f"<Worker {self.name!r} on {self.provider}: {self.units}>"
