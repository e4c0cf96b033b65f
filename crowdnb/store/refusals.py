"""What a worker reads when the store cannot take their late answer: why their page lost the unit and
where the unit is now, so a retry after a crash or a restart never blames "another worker" wrongly."""

from __future__ import annotations

import sqlite3

from . import states as S

_CAUSES = {
    S.TIMEOUT: "Time ran out for this unit",
    S.DISCONNECT: "This page lost its connection for too long",
    S.A_EXPIRED: "The task was stopped or restarted while you held this unit",
}


def taken_since(conn: sqlite3.Connection, agent: sqlite3.Row) -> str:
    """What a worker reads when a late answer cannot be saved: why their page lost the unit, and where
    the unit is now (with them in another tab, submitted by them, with another worker, or withdrawn)."""
    cause = _CAUSES.get(agent["status"], "This page no longer holds this unit")
    holder = conn.execute("SELECT worker_id FROM agents WHERE id = ?", (agent["unit_agent_id"],)).fetchone()
    if holder is not None and holder[0] == agent["worker_id"]:
        if agent["unit_status"] in S.UNIT_SUBMITTED:
            return f"{cause}; you have since submitted it from another tab or window, and those answers are kept."
        return f"{cause}, and you took it again in another tab or window: please finish it there."
    if holder is not None:
        return f"{cause}, and it was offered to another worker, so this answer could not be saved."
    return f"{cause}, and it is not on offer now, so this answer could not be saved."
