"""Unit and agent state machines, enforced here and nowhere else.

A *unit* is one paid slot on an assignment; an *agent* is one worker's attempt at a unit. The store calls
``check_unit`` / ``check_agent`` before every status write, so an illegal move raises ``StateError``
naming both states instead of corrupting a run. SQL names states through ``sql`` / ``sql_in`` (a test
holds the package to it), so a state is spelled in this module only.
"""

from __future__ import annotations

from ..errors import StateError

# --- units -------------------------------------------------------------------------------------------
CREATED, LAUNCHED, ASSIGNED, COMPLETED = "created", "launched", "assigned", "completed"
ACCEPTED, REJECTED, SOFT_REJECTED, EXPIRED = "accepted", "rejected", "soft_rejected", "expired"

UNIT_STATES = (CREATED, LAUNCHED, ASSIGNED, COMPLETED, ACCEPTED, REJECTED, SOFT_REJECTED, EXPIRED)
UNIT_INCOMPLETE = (CREATED, LAUNCHED, ASSIGNED)
UNIT_SUBMITTED = (COMPLETED, ACCEPTED, REJECTED, SOFT_REJECTED)
UNIT_PAYABLE = (ACCEPTED, SOFT_REJECTED)
UNIT_LIVE = (LAUNCHED, ASSIGNED)  # on offer or held by a worker
UNIT_TAKEN = (ASSIGNED, *UNIT_SUBMITTED)  # what counts against a worker's maximum
UNIT_UNSETTLED = (*UNIT_INCOMPLETE, COMPLETED)  # may still cost a reward
UNIT_COMMITTED = (LAUNCHED, ASSIGNED, COMPLETED, *UNIT_PAYABLE)  # paid, or may be: counts against a budget
UNIT_TO_DO = (*UNIT_INCOMPLETE, EXPIRED)  # can still be worked on (a resume offers expired units again)

_UNIT_MOVES: dict[str, tuple[str, ...]] = {
    CREATED: (LAUNCHED, EXPIRED),
    LAUNCHED: (ASSIGNED, EXPIRED),
    # back to launched: the agent returned, timed out or disconnected, so the slot is offered again
    ASSIGNED: (COMPLETED, LAUNCHED, EXPIRED),
    COMPLETED: (ACCEPTED, REJECTED, SOFT_REJECTED),
    # a rejection may be overturned (MTurk allows approving a rejected assignment)
    REJECTED: (ACCEPTED, SOFT_REJECTED),
    ACCEPTED: (),
    SOFT_REJECTED: (),
    # resume relaunches expired units
    EXPIRED: (LAUNCHED,),
}

# --- agents ------------------------------------------------------------------------------------------
A_ACCEPTED, IN_TASK, A_COMPLETED = "accepted", "in_task", "completed"
DISCONNECT, TIMEOUT, RETURNED, A_EXPIRED = "disconnect", "timeout", "returned", "expired"
APPROVED, A_REJECTED, A_SOFT_REJECTED = "approved", "rejected", "soft_rejected"

AGENT_STATES = (
    A_ACCEPTED,
    IN_TASK,
    A_COMPLETED,
    DISCONNECT,
    TIMEOUT,
    RETURNED,
    A_EXPIRED,
    APPROVED,
    A_REJECTED,
    A_SOFT_REJECTED,
)
AGENT_LIVE = (A_ACCEPTED, IN_TASK)
AGENT_RELEASED = (DISCONNECT, TIMEOUT, RETURNED, A_EXPIRED)
AGENT_SUBMITTED = (A_COMPLETED, APPROVED, A_REJECTED, A_SOFT_REJECTED)

_AGENT_MOVES: dict[str, tuple[str, ...]] = {
    A_ACCEPTED: (IN_TASK, A_COMPLETED, DISCONNECT, TIMEOUT, RETURNED, A_EXPIRED),
    IN_TASK: (A_COMPLETED, DISCONNECT, TIMEOUT, RETURNED, A_EXPIRED),
    # a late submission is still taken while nobody else holds the unit
    DISCONNECT: (A_COMPLETED,),
    TIMEOUT: (A_COMPLETED,),
    RETURNED: (),
    A_EXPIRED: (A_COMPLETED,),
    A_COMPLETED: (APPROVED, A_REJECTED, A_SOFT_REJECTED),
    A_REJECTED: (APPROVED, A_SOFT_REJECTED),
    APPROVED: (),
    A_SOFT_REJECTED: (),
}

# the agent status that mirrors a review decision on the unit
REVIEW_TO_AGENT = {ACCEPTED: APPROVED, REJECTED: A_REJECTED, SOFT_REJECTED: A_SOFT_REJECTED}


def sql(state: str) -> str:
    """A state as an SQL literal (``'launched'``): SQL spells states through here, never by hand."""
    if state not in _UNIT_MOVES and state not in _AGENT_MOVES:
        raise StateError(f"unknown state {state!r}; known: {', '.join(dict.fromkeys(UNIT_STATES + AGENT_STATES))}")
    return f"'{state}'"


def sql_in(states: tuple[str, ...]) -> str:
    """States as an SQL list for ``status IN …``: ``('launched', 'assigned')``."""
    return "(" + ", ".join(sql(state) for state in states) + ")"


def _check(kind: str, moves: dict[str, tuple[str, ...]], old: str, new: str) -> None:
    if old not in moves:
        raise StateError(f"unknown {kind} state {old!r}; known: {', '.join(moves)}")
    if new not in moves[old]:
        allowed = ", ".join(moves[old]) or "nothing (final state)"
        raise StateError(f"a {kind} cannot go from {old!r} to {new!r}; from {old!r} it can go to {allowed}")


def check_unit(old: str, new: str) -> None:
    """Raise ``StateError`` unless a unit may move from ``old`` to ``new``."""
    _check("unit", _UNIT_MOVES, old, new)


def check_agent(old: str, new: str) -> None:
    """Raise ``StateError`` unless an agent may move from ``old`` to ``new``."""
    _check("agent", _AGENT_MOVES, old, new)
