"""Qualification requirements: the ten comparators, validation, enforcement at dispatch, blocks."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import ConfigError
from crowdnb.quality.requirements import COMPARATORS, parse

from .conftest import FORM, SENTENCES, Worker

# (comparator, value, held → allowed) for held in: not granted, 0, 1, 2, 5
CASES = [
    ("Exists", None, [False, True, True, True, True]),
    ("DoesNotExist", None, [True, False, False, False, False]),
    ("EqualTo", 2, [False, False, False, True, False]),
    ("NotEqualTo", 2, [False, True, True, False, True]),
    ("GreaterThan", 1, [False, False, False, True, True]),
    ("GreaterThanOrEqualTo", 1, [False, False, True, True, True]),
    ("LessThan", 2, [False, True, True, False, False]),
    ("LessThanOrEqualTo", 2, [False, True, True, True, False]),
    ("In", [0, 5], [False, True, False, False, True]),
    ("NotIn", [0, 5], [False, False, True, True, False]),
]


def test_every_comparator_is_covered() -> None:
    assert sorted(c for c, _, _ in CASES) == sorted(COMPARATORS)


@pytest.mark.parametrize(("comparator", "value", "expected"), CASES)
def test_comparator(comparator: str, value, expected: list[bool]) -> None:
    rule = cn.requirement("skill", comparator, value)
    assert [rule.allows(held) for held in (None, 0, 1, 2, 5)] == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("skill", "Equals", 1), "comparator 'Equals' of requirement 'skill' is unknown"),
        (("skill", "Exists", 1), "Exists takes no value"),
        (("skill", "GreaterThan", None), "GreaterThan needs a whole number"),
        (("skill", "GreaterThan", 1.5), "GreaterThan needs a whole number"),
        (("skill", "In", []), "In needs a non-empty list of whole numbers"),
        (("skill", "NotIn", [1, "a"]), "NotIn needs a non-empty list"),
        (("bad name", "Exists", None), "qualification name 'bad name' is not valid"),
    ],
)
def test_bad_requirements_are_refused_on_creation(args, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cn.requirement(*args)


def test_mephisto_style_dicts_are_accepted() -> None:
    rules = parse([{"qualification_name": "english", "comparator": "GreaterThan", "value": 3,
                    "applicable_providers": ["mturk"]}])  # fmt: skip
    assert rules[0] == cn.requirement("english", "GreaterThan", 3, applicable_providers=["mturk"])
    assert not rules[0].applies_to("mock") and rules[0].applies_to("mturk")
    with pytest.raises(ConfigError, match=r"unknown keys \['comparitor'\]"):
        parse([{"qualification_name": "x", "comparitor": "Exists"}])


def test_task_with_a_bad_requirement_writes_nothing(project: cn.Project) -> None:
    with pytest.raises(ConfigError):
        cn.Task("t", title="T", reward=0, html=FORM, data=SENTENCES, project=project,
                qualifications=[{"qualification_name": "x", "comparator": "GreaterThan", "value": "3"}])  # fmt: skip
    assert project.store.query("SELECT * FROM tasks") == []


def test_unqualified_worker_sees_which_requirement_failed(make_run) -> None:
    run = make_run(qualifications=[cn.requirement("english", "GreaterThanOrEqualTo", 3)])
    project = cn.open(run.store.root)
    refused = Worker(run, "alice").enter()
    assert refused.status_code == 403 and refused.json()["reason"] == "not_qualified"
    assert "it needs english ≥ 3" in refused.json()["message"]
    cn.grant("alice", "english", 2, project=project)
    assert Worker(run, "alice").enter().status_code == 403
    cn.grant("alice", "english", 4, project=project)
    assert Worker(run, "alice").enter().status_code == 200
    setup = project.store.query("SELECT args FROM provider_calls WHERE call = 'setup_run'")[0]["args"]
    assert '"qualification_name": "english"' in setup and '"crowdnb-blocked"' in setup  # pushed down


def test_requirements_for_another_provider_are_not_enforced(make_run) -> None:
    run = make_run(qualifications=[cn.requirement("masters", "Exists", applicable_providers=["mturk"])])
    assert Worker(run, "alice").enter().status_code == 200


def test_allow_list(make_run) -> None:
    run = make_run(qualifications=[cn.allow_list("pilot-group")])
    cn.grant("bob", "pilot-group", project=cn.open(run.store.root))
    assert Worker(run, "alice").enter().status_code == 403
    assert Worker(run, "bob").enter().status_code == 200


def test_worker_blocked_mid_run_is_refused_with_a_clear_page(run: cn.Run) -> None:
    import requests

    project = cn.open(run.store.root)
    alice = Worker(run, "alice")
    alice.enter()
    assert alice.submit({"label": "pos"}).status_code == 200
    assert cn.block("alice", "copy-pasted answers", project=project) is True
    assert cn.block("alice", "again", project=project) is False  # already blocked: nothing moves twice
    page = requests.get(run.worker_url("alice"), timeout=10)
    assert page.status_code == 403 and "can no longer take this requester" in page.text
    log = project.store.query("SELECT action, note, details FROM reviews WHERE action = 'grant'")
    assert log == [
        {"action": "grant", "note": "copy-pasted answers", "details": '{"qualification": "crowdnb-blocked"}'}
    ]
    assert project.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'block'") == 1
    cn.unblock("alice", project=project)
    assert Worker(run, "alice").enter().status_code == 200


def test_block_needs_a_reason(project: cn.Project) -> None:
    with pytest.raises(ConfigError, match="a block needs a reason"):
        cn.block("alice", " ", project=project)


def test_the_block_qualification_goes_through_block_and_unblock(project: cn.Project) -> None:
    with pytest.raises(ConfigError, match=r"set by cn.block\(worker, reason\)"):
        cn.grant("alice", "crowdnb-blocked", project=project)
    with pytest.raises(ConfigError, match=r"lifted by cn\.unblock"):
        cn.revoke("alice", "crowdnb-blocked", project=project)


def test_create_describe_and_delete_a_qualification(project: cn.Project) -> None:
    assert cn.define_qualification("english", "native or C2 English", project=project) is True
    assert cn.define_qualification("english", "native or C2 English", project=project) is False
    cn.grant("alice", "english", 5, project=project)
    cn.grant("bob", "english", 3, project=project)
    table = cn.describe_qualification("english", project=project)
    assert list(table["worker"]) == ["alice", "bob"] and set(table["description"]) == {"native or C2 English"}
    assert cn.delete_qualification("english", project=project) == 2
    assert project.worker("alice").qualifications == {}
    assert project.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'revoke_qualification'") == 2
    with pytest.raises(cn.NotFound, match=r"no qualification 'english'; create it with cn.define_qualification"):
        cn.describe_qualification("english", project=project)
