"""The unit and agent state machines."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import crowdnb
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


@pytest.mark.parametrize("state", S.UNIT_STATES)
def test_every_unit_state_is_known_to_the_machine(state: str) -> None:
    with pytest.raises(StateError, match=f"cannot go from {state!r} to 'nowhere'"):  # not "unknown unit state"
        S.check_unit(state, "nowhere")


@pytest.mark.parametrize("state", S.AGENT_STATES)
def test_every_agent_state_is_known_to_the_machine(state: str) -> None:
    with pytest.raises(StateError, match=f"cannot go from {state!r} to 'nowhere'"):
        S.check_agent(state, "nowhere")


def _reachable(check, states: tuple[str, ...], start: str) -> set[str]:
    def legal(old: str, new: str) -> bool:
        try:
            check(old, new)
        except StateError:
            return False
        return True

    seen, todo = {start}, [start]
    while todo:
        old = todo.pop()
        for new in states:
            if new not in seen and legal(old, new):
                seen.add(new)
                todo.append(new)
    return seen


def test_every_state_is_reachable_from_the_first() -> None:
    assert _reachable(S.check_unit, S.UNIT_STATES, S.CREATED) == set(S.UNIT_STATES)
    assert _reachable(S.check_agent, S.AGENT_STATES, S.A_ACCEPTED) == set(S.AGENT_STATES)


# --- states in SQL are spelled through states.sql / sql_in only --------------------------------------
PACKAGE = Path(crowdnb.__file__).parent
STATE_WORDS = "|".join(sorted(set(S.UNIT_STATES + S.AGENT_STATES), key=len, reverse=True))
QUOTED_STATE = re.compile(rf"""(['"])({STATE_WORDS})\1""")
SQL = re.compile(r"\b(SELECT|UPDATE|INSERT|DELETE|WHERE|status)\b")


def sql_status_literals(source: str) -> list[str]:
    """The SQL strings of a module's source (f-strings included) that spell a state by hand."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):  # the constant parts, the expressions left out
            text = "{}".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if SQL.search(text) and QUOTED_STATE.search(text):
            found.append(text)
    return found


def test_the_sql_check_finds_a_state_spelled_by_hand() -> None:
    bad = "x = f\"SELECT id FROM units WHERE run = {run} AND status IN ('launched', 'assigned')\""
    good = "x = f\"SELECT id FROM units WHERE status IN {S.sql_in(S.UNIT_LIVE)}\"\ny = 'completed'"
    assert sql_status_literals(bad) and not sql_status_literals(good)


def test_states_in_sql_are_spelled_only_in_states_module() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "store" / "states.py"]
    assert len(modules) > 50
    spelled = {
        str(path.relative_to(PACKAGE)): found
        for path in modules
        if (found := sql_status_literals(path.read_text(encoding="utf-8")))
    }
    assert spelled == {}, "build SQL from crowdnb.store.states (S.sql / S.sql_in), not by hand"


def test_sql_helpers_quote_known_states_only() -> None:
    assert S.sql(S.LAUNCHED) == "'launched'"
    assert S.sql_in(S.UNIT_LIVE) == "('launched', 'assigned')"
    with pytest.raises(StateError, match="unknown state \"x'; DROP TABLE units"):
        S.sql("x'; DROP TABLE units")
