"""The unit and agent state machines."""

from __future__ import annotations

import pytest

from crowdnb import StateError
from crowdnb.store import states as S

LEGAL_UNIT = [
    ("created", "launched"), ("launched", "assigned"), ("assigned", "completed"), ("assigned", "launched"),
    ("completed", "accepted"), ("completed", "rejected"), ("completed", "soft_rejected"), ("rejected", "accepted"),
    ("launched", "expired"), ("assigned", "expired"), ("expired", "launched"),
]  # fmt: skip
ILLEGAL_UNIT = [
    ("created", "completed"), ("launched", "completed"), ("accepted", "rejected"), ("soft_rejected", "accepted"),
    ("completed", "launched"), ("expired", "completed"), ("accepted", "expired"),
]  # fmt: skip


@pytest.mark.parametrize(("old", "new"), LEGAL_UNIT)
def test_legal_unit_moves(old: str, new: str) -> None:
    S.check_unit(old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL_UNIT)
def test_illegal_unit_move_names_both_states(old: str, new: str) -> None:
    with pytest.raises(StateError) as err:
        S.check_unit(old, new)
    assert repr(old) in str(err.value) and repr(new) in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "legal"),
    [
        ("accepted", "in_task", True), ("in_task", "completed", True), ("in_task", "timeout", True),
        ("timeout", "completed", True), ("completed", "approved", True), ("returned", "completed", False),
        ("approved", "rejected", False), ("completed", "in_task", False),
    ],
)  # fmt: skip
def test_agent_moves(old: str, new: str, legal: bool) -> None:
    if legal:
        S.check_agent(old, new)
    else:
        with pytest.raises(StateError, match=f"from {old!r} to {new!r}"):
            S.check_agent(old, new)


def test_unknown_state_is_an_error() -> None:
    with pytest.raises(StateError, match="unknown unit state 'done'"):
        S.check_unit("done", "accepted")


def test_every_state_has_an_entry() -> None:
    for state in S.UNIT_STATES:
        S._UNIT_MOVES[state]
    for state in S.AGENT_STATES:
        S._AGENT_MOVES[state]
