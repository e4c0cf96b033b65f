"""A crowd worker as the requester sees them: their units across the project and their qualifications."""

from __future__ import annotations

from . import lifecycle, providers, reports
from .errors import ConfigError
from .page import summary_table
from .project import Project, ProjectLike, as_project
from .qualifications import grant, revoke
from .review import check_bonus


def message(
    worker: str, text: str, *, provider: str = "mock", project: ProjectLike = None, actor: str = "requester"
) -> None:
    """Send ``worker`` a message through their provider (kept in the audit log)."""
    if not text or not text.strip():
        raise ConfigError("the message is empty")
    where = as_project(project)
    platform = providers.create(provider, where.store)
    where.store.log_action(provider, worker, "message", actor, note=text)
    platform.message(worker, text)


def bonus(
    worker: str,
    amount: float,
    reason: str,
    *,
    key: str | None = None,
    provider: str = "mock",
    project: ProjectLike = None,
    actor: str = "requester",
) -> bool:
    """Pay ``worker`` a bonus outside any unit (a make-up payment); once per ``key``. False if paid before.

    ``key`` defaults to the worker, amount and reason: the same bonus repeated is paid once.
    """
    check_bonus(amount, reason)
    where = as_project(project)
    platform = providers.create(provider, where.store)
    worker_id = where.store.worker(provider, worker)
    token = f"worker-bonus:{provider}:{worker}:{key if key is not None else f'{amount:.2f}:{reason}'}"
    if not lifecycle.record_bonus(where.store, worker_id, float(amount), reason, token, actor):
        return False
    platform.bonus(worker, float(amount), reason, token)
    return True


class Worker:
    """One worker of one provider, read from the project's store."""

    def __init__(self, project: Project, name: str, provider: str = "mock") -> None:
        self.project, self.name, self.provider = project, name, provider

    @property
    def units(self) -> dict[str, int]:
        """Their units by status, across every task and run."""
        return reports.worker_stats(self.project.store, [self.name], self.provider)[self.name]

    @property
    def qualifications(self) -> dict[str, int]:
        """Qualification name → value."""
        return reports.worker_qualifications(self.project.store, self.provider, self.name)

    def grant(self, qualification: str, value: int = 1) -> int:
        """Grant a qualification (see ``cn.grant``)."""
        return grant(self.name, qualification, value, provider=self.provider, project=self.project)

    def message(self, text: str) -> None:
        """Send this worker a message (see ``cn.message``)."""
        message(self.name, text, provider=self.provider, project=self.project)

    def bonus(self, amount: float, reason: str, key: str | None = None) -> bool:
        """Pay this worker a bonus outside any unit (see ``cn.bonus``)."""
        return bonus(self.name, amount, reason, key=key, provider=self.provider, project=self.project)

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
