"""The rest of the command line: workers, qualifications, describe, runs; --help everywhere, one-line errors."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import crowdnb as cn
from crowdnb import plugins
from crowdnb.cli import cli
from crowdnb.options import SKIPPED, documented


def crowdnb(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command and subcommand, as the words that call it."""
    for name, command in group.commands.items():
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


@pytest.fixture
def studied(project: cn.Project) -> cn.Project:
    """A project after a small study: two bots, a grant, a block, an approval."""
    run = cn.Task(
        "cli", title="CLI", reward=0.1, html='<input name="x" required>', data=[{}] * 3, project=project
    ).launch()
    cn.simulate(run, workers=2, answer=lambda row: {"x": "1"}, units=2)  # each bot does one unit at least
    cn.grant("bot-1", "english", 3, project=project)
    cn.define_qualification("expert", "Knows the domain", project=project)
    cn.block("bot-2", "random answers", project=project)
    run.approve(run.df.loc[run.df["worker"] == "bot-2", "unit_id"].iloc[:1], note="Thanks!")
    run.stop()
    return project


@pytest.mark.parametrize("words", list(commands()), ids=" ".join)
def test_every_command_has_help(words: tuple[str, ...]) -> None:
    done = crowdnb(*words, "--help")
    assert done.exit_code == 0 and done.output.startswith(f"Usage: cli {' '.join(words)}"), done.output
    command: Any = cli
    for word in words:
        command = command.commands[word]
    assert (command.help or "").split("\n")[0].strip(), f"`crowdnb {' '.join(words)}` has no help text"


def test_runs_have_a_header_and_counts(studied: cn.Project) -> None:
    lines = crowdnb("runs", "--home", str(studied.root)).output.splitlines()
    assert lines[0].split() == ["run", "task", "state", "provider", "units", "submitted", "accepted", "created"]
    run_id, task, state, provider, units, submitted, accepted, _ = lines[1].split()
    assert (task, state, provider, units, submitted, accepted) == ("cli", "stopped", "mock", "3", "3", "1")
    assert int(run_id) in studied.runs


def test_workers_lists_records_qualifications_and_blocks(studied: cn.Project) -> None:
    lines = crowdnb("workers", "--home", str(studied.root)).output.splitlines()
    assert lines[0].split() == ["provider", "worker", "submitted", "accepted", "rejected", "qualifications", "blocked"]
    rows = {line.split()[1]: line for line in lines[1:]}
    assert "english=3" in rows["bot-1"] and rows["bot-1"].endswith("False")
    assert rows["bot-2"].endswith("True")

    one = crowdnb("workers", "bot-2", "--home", str(studied.root)).output
    assert one.startswith("worker bot-2 (mock): BLOCKED\n") and "crowdnb-blocked=1" in one
    assert "random answers" in one and "Thanks!" in one  # their history: the block and the approval


def test_qualifications_list_grant_revoke_describe(studied: cn.Project) -> None:
    home = ("--home", str(studied.root))
    listed = crowdnb("qualifications", "list", *home).output.splitlines()
    assert listed[0].split() == ["qualification", "description", "holders"]
    assert any(line.split() == ["expert", "Knows", "the", "domain", "0"] for line in listed)

    assert (
        crowdnb("qualifications", "grant", "bot-1", "expert", "--value", "2", *home).output
        == "bot-1 (mock) holds expert=2\n"
    )
    assert cn.open(studied.root).worker("bot-1").qualifications["expert"] == 2
    described = crowdnb("qualifications", "describe", "expert", *home).output.splitlines()
    assert described[0] == "expert: Knows the domain" and described[2].split()[:3] == ["mock", "bot-1", "2"]

    assert crowdnb("qualifications", "revoke", "bot-1", "expert", *home).output == "expert revoked from bot-1 (mock)\n"
    assert crowdnb("qualifications", "revoke", "bot-1", "expert", *home).output == "bot-1 (mock) did not hold expert\n"
    actors = studied.store.query(
        "SELECT action, actor FROM reviews WHERE details LIKE '%expert%' AND action != 'define_qualification'"
    )
    assert [(r["action"], r["actor"]) for r in actors] == [("grant", "requester"), ("revoke", "requester")]


def option_source(kind: str, name: str) -> tuple[Any, str]:
    """What a plugin's options are read from: its Options dataclass, or its class."""
    factory = plugins.load(kind, name)
    options = getattr(factory, "Options", None)
    if options is not None:
        return options, options.__doc__ or ""
    return factory, f"{factory.__doc__}\n{factory.__init__.__doc__}"


@pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k in ("provider", "architect") for n in sorted(plugins.installed(k))]
)
def test_describe_shows_every_option_as_python_declares_it(kind: str, name: str) -> None:
    table = cn.describe(kind, name).set_index("option")
    source, doc = option_source(kind, name)
    parameters = {
        p.name: p
        for p in inspect.signature(source).parameters.values()
        if p.name not in SKIPPED and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    assert list(table.index) == list(parameters)
    for option, parameter in parameters.items():
        assert table.loc[option, "default"] == repr(parameter.default), option
        assert table.loc[option, "type"] == parameter.annotation, option
        assert table.loc[option, "meaning"], f"{kind} {name}: option {option!r} has no meaning in its docstring"
    assert set(documented(doc)) <= set(parameters), "the docstring documents an option that does not exist"
    if dataclasses.is_dataclass(source):  # what the provider accepts is what is described
        with pytest.raises(cn.ConfigError, match="unknown"):
            plugins.load(kind, name)(store=None, no_such_option=1)

    printed = crowdnb("describe", kind, name).output.splitlines()
    if parameters:
        assert printed[0].split() == ["option", "type", "default", "meaning"]
        assert [line.split()[0] for line in printed[1:]] == list(parameters)
    else:
        assert printed == [f"{kind} {name} takes no options"]


def test_describe_a_template_names_its_inputs_and_answers() -> None:
    table = cn.describe("template", "text_classification").set_index("option")
    assert table.loc["text", "type"] == "input column" and table.loc["text", "default"] == "required"
    assert table.loc["labels", "type"] == "input column (optional)"
    assert table.loc["labels", "default"] == "positive|neutral|negative"
    assert table.loc["label", "type"] == "answer"
    listed = crowdnb("describe", "template").output
    assert listed.startswith("templates: ") and "text_classification" in listed


def test_describe_a_form_names_its_fields_validators_and_tokens(tmp_path: Path) -> None:
    config = {"form": {"title": "Trip", "sections": [{"title": "S", "fieldsets": [{"title": "F", "rows": [{"fields": [
        {"type": "radio", "name": "mode", "label": "How do you travel in {{city}}?", "validators": {"required": True},
         "options": [{"label": "Bike", "value": "bike"}, {"label": "Bus", "value": "bus"}]},
        {"type": "input", "name": "minutes", "label": "Minutes", "value": "10", "validators": {"regexp": "^[0-9]+$"}},
        {"type": "checkbox", "name": "with", "label": "With", "options": [{"label": "Kids", "value": "kids"}]},
    ]}]}]}]}}  # fmt: skip
    (tmp_path / "unit_config.json").write_text(json.dumps(config))
    (tmp_path / "token_sets_values_config.json").write_text(json.dumps([{"tokens_values": {"city": "Oslo"}}]))
    table = cn.describe("form", str(tmp_path)).set_index("option")
    assert table.loc["mode", "default"] == "required" and "one of bike, bus" in table.loc["mode", "meaning"]
    assert table.loc["minutes", "default"] == "'10'" and "matches /^[0-9]+$/" in table.loc["minutes", "meaning"]
    assert table.loc["with", "type"] == "checkbox (several)"
    assert table.loc["city", "type"] == "token (input column)"


ERRORS = [
    (["workers", "nobody"], "error: no worker 'nobody' of provider 'mock'"),
    (["qualifications", "describe", "nope"], "error: no qualification 'nope'"),
    (["qualifications", "grant", "bot-1", "crowdnb-blocked"], "error: "),
    (["qualifications", "grant", "bot-1", "english", "--value", "many"], "error: Invalid value for '--value'"),
    (["describe", "provider", "nope"], "error: unknown provider 'nope'; installed: mock"),
    (["describe", "thing", "x"], "error: Invalid value for"),
    (["describe", "form"], "error: give a form config: crowdnb describe form PATH"),
    (["describe", "form", "no/such/folder"], "error: no form config at 'no/such/folder'"),
    (["describe", "template", "nope"], "error: no template 'nope'; shipped: "),
    (["no-such-command"], "error: No such command 'no-such-command'. (`python -m crowdnb --help` shows how)"),
]


@pytest.mark.parametrize(("args", "start"), ERRORS, ids=lambda a: " ".join(a) if isinstance(a, list) else "")
def test_errors_are_one_line(studied: cn.Project, args: list[str], start: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CROWDNB_HOME"}
    done = subprocess.run(
        [sys.executable, "-m", "crowdnb", *args],
        cwd=studied.root.parent,
        env={**env, "CROWDNB_HOME": str(studied.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (1, 2) and done.stdout == ""
    assert done.stderr.startswith(start) and len(done.stderr.strip().splitlines()) == 1, done.stderr
