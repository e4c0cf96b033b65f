"""Form configs in Mephisto's FormComposer format: load, verify, extrapolate, permutate, render, and the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import crowdnb as cn
from crowdnb.cli import cli
from crowdnb.errors import FormError
from crowdnb.forms.model import check_form
from crowdnb.forms.page import FormPage
from crowdnb.forms.source import load_form
from crowdnb.forms.tokens import extrapolate, permutate

FORMS = Path(__file__).parent / "forms"


def small_form() -> dict[str, Any]:
    """A valid two-field form, to break in one place at a time."""
    return {
        "form": {
            "title": "Small",
            "sections": [
                {
                    "title": "S",
                    "fieldsets": [
                        {
                            "title": "F",
                            "rows": [
                                {
                                    "fields": [
                                        {"type": "input", "name": "a", "label": "A", "validators": {"required": True}},
                                        {
                                            "type": "checkbox",
                                            "name": "b",
                                            "label": "B",
                                            "options": [{"label": "x", "value": "x"}, {"label": "y", "value": "y"}],
                                        },
                                    ]
                                }
                            ],
                        }
                    ],
                }
            ],
            "submit_button": {"text": "Go"},
        }
    }


FIELD = "form.sections[0].fieldsets[0].rows[0].fields"


def test_the_survey_task_data_loads_as_one_version_and_one_unit() -> None:
    source = load_form(FORMS / "survey")
    assert source.origin == "task_data.json" and len(source.versions) == 1 and source.rows == ({},)
    form, warnings = check_form(source.versions[0])
    assert warnings == []
    assert [f.name for f in form.fields()] == ["mode", "postcode", "minutes", "improve"]
    assert next(f for f in form.fields() if f.name == "postcode").rules.regexp == ("^[0-9]{5}$", "ig")
    assert form.submit.text == "Send my answers" and form.sections[0].collapsable


def test_the_volunteer_form_has_every_field_type_and_validator() -> None:
    source = load_form(FORMS / "volunteer")
    form = check_form(source.versions[0])[0]
    types = {f.type for f in form.fields()}
    assert types == {
        "input",
        "email",
        "number",
        "password",
        "textarea",
        "select",
        "checkbox",
        "radio",
        "file",
        "hidden",
    }
    rules = {f.name: f.rules for f in form.fields()}
    assert rules["email"].regexp == ("^[^@\\s]+@([a-z0-9-]+\\.)*example\\.org$", "i")
    assert rules["passcode"].regexp == ("[0-9]", "igm")  # a bare pattern gets Mephisto's default flags
    assert rules["cv"].file_extensions == ("pdf", "txt")
    assert rules["skills"].min_length == 2 and rules["skills"].max_length == 3
    assert rules["age"].custom == (("inRange", [16, 99]),)
    values = {f.name: f.value for f in form.fields()}
    assert values["skills"] == ("cooking",) and values["languages"] == ("en",) and values["source"] == "signup-v1"
    assert "spring food drive" in form.instruction  # insertions/intro.html, inlined
    stored = source.to_dict()
    assert stored["css"] == ["volunteer.css"] and stored["validators_js"] and stored["triggers_js"]


def test_token_sets_make_one_unit_each_and_fill_the_page(project: cn.Project) -> None:
    task = cn.Task("rate", title="Rate", reward=0.1, form=FORMS / "dynamic", project=project)
    assert task.row_count() == 3 and task.page.required == ["brand", "description", "product"]
    kettle, lamp = task.preview(0), task.preview(1)
    assert "Rate the description of kettle" in kettle and "How well does the text describe the desk lamp?" in lamp
    assert '<p class="product-text">A 1.7-litre kettle with an <em>automatic</em> shut-off.</p>' in kettle  # a file
    assert "Lumen &amp;amp; Co" not in lamp and "Lumen &amp; Co" in lamp  # escaped once, as text
    assert [f.name for f in task.fields] == ["accuracy", "missing"]
    assert task.fields[0].options == ("1", "2", "3", "4", "5")  # numbers, as the page submits them


def test_token_values_from_data_rows_are_text_not_html(project: cn.Project) -> None:
    rows = [{"product": "<script>alert(1)</script>", "brand": "B", "description": "<b>bold</b>"}]
    page = cn.Task("rate", title="Rate", reward=0.1, form=FORMS / "dynamic" / "unit_config.json", data=rows, project=project).preview()  # fmt: skip
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page


def test_separate_values_are_permuted_in_order() -> None:
    source = load_form(FORMS / "permutation")
    assert [(r["actor"], r["film"]) for r in source.rows] == [
        ("Ada Stone", "The Long Winter"),
        ("Ada Stone", "Harbour Lights"),
        ("Ben Okoro", "The Long Winter"),
        ("Ben Okoro", "Harbour Lights"),
        ("Chen Wei", "The Long Winter"),
        ("Chen Wei", "Harbour Lights"),
    ]
    assert permutate({"n": [2, 3], "size": ["big"], "pet": ["cat", "dog"]})[1] == {
        "tokens_values": {"n": 2, "size": "big", "pet": "dog"}
    }


def test_extrapolate_fills_only_the_token_attributes() -> None:
    config = {"form": {**small_form()["form"], "title": "About {{ who }}", "instruction": "Hi {{who}} and {{missing}}"}}
    out = extrapolate(config, {"who": "Ada & Bo"})
    assert out["form"]["title"] == "About Ada & Bo" and out["form"]["instruction"] == "Hi Ada & Bo and {{missing}}"
    assert config["form"]["title"] == "About {{ who }}"  # the input is left alone
    assert extrapolate(config, {"who": "Ada & Bo"}, html=True)["form"]["title"] == "About Ada &amp; Bo"


BROKEN = [
    ("min_length_word.json", "form.sections[0].fieldsets[1].rows[0].fields[2].validators.minLength", 'expected a whole number ≥ 0, got "three"'),
    ("unknown_type.json", f"{FIELD}[0].type", 'expected one of input, email, number, password, textarea, select, checkbox, radio, file, hidden, got "date"'),
    ("duplicate_name.json", f"{FIELD}[1].name", f"field name 'email' is used twice (also at {FIELD}[0].name)"),
    ("bad_regexp.json", f"{FIELD}[0].validators.regexp", 'not a regular expression the server can check'),
    ("bad_flags.json", f"{FIELD}[0].validators.regexp[1]", 'expected JavaScript regexp flags (some of dgimsuvy, each once), got "iq"'),
    ("misspelled_attribute.json", f"{FIELD}[0].placehloder", "unknown attribute 'placehloder' (did you mean 'placeholder'?)"),
    ("select_value.json", f"{FIELD}[0].value", 'expected one of the option values (S, M) or "", got "XL"'),
    ("token_in_name.json", f"{FIELD}[0].name", "tokens go only in help, instruction, label, title, tooltip"),
    ("missing_sections.json", "form.sections", "missing: a form needs 'sections' (a list)"),
    ("trigger_bad_event.json", f"{FIELD}[0].triggers.onHover", "unknown event 'onHover'; triggers take onClick, onChange, onBlur, onFocus"),
    ("outside_insertion.json", "form.instruction", "the insertion file 'insertions/../../secrets.html' is outside the config's folder"),
    ("negative_max.json", f"{FIELD}[0].validators.maxLength", "expected a whole number ≥ 0, got -1"),
    ("not_json.json", "not_json.json, line 4 column 3", "not valid JSON: Expecting property name enclosed in double quotes"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "path", "message"), BROKEN)
def test_broken_configs_name_the_json_path_and_what_was_expected(name: str, path: str, message: str) -> None:
    with pytest.raises(FormError) as caught:
        load_form(FORMS / "broken" / name)
    (problem,) = caught.value.problems
    assert problem.path.endswith(path) and message in problem.message, str(problem)


def _set(config: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    """``config`` with the value at a dotted path (``form.sections.0.title``) replaced."""
    out = copy.deepcopy(config)
    keys = [int(k) if k.isdigit() else k for k in where.split(".")]
    node: Any = out
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out


F = "form.sections.0.fieldsets.0.rows.0.fields"
MUTATIONS = [
    (f"{F}.0.validators.minLength", 5, f"{FIELD}[0].validators.maxLength", None),  # fine alone…
    (f"{F}.0.validators", {"minLength": 5, "maxLength": 2}, f"{FIELD}[0].validators.maxLength", "expected a number ≥ minLength (5), got 2"),
    (f"{F}.0.validators", {"required": "yes"}, f"{FIELD}[0].validators.required", 'expected true or false, got "yes"'),
    (f"{F}.0.validators", {"regexp": 7}, f"{FIELD}[0].validators.regexp", 'expected a pattern "^[a-z]+$" or ["^[a-z]+$", "flags"], got 7'),
    (f"{F}.0.validators", {"fileExtension": "pdf"}, None, None),  # a warning: it has no effect on a text field
    (f"{F}.0.validators", {"my-check": 1}, f'{FIELD}[0].validators["my-check"]', "unknown validator 'my-check'"),
    (f"{F}.1.options.1.value", "x", f"{FIELD}[1].options[1].value", "option value 'x' is used twice"),
    (f"{F}.1.value", {"z": True}, f"{FIELD}[1].value.z", "expected one of the option values (x, y), got \"z\""),
    (f"{F}.1.value", ["x"], f"{FIELD}[1].value", 'expected an object of option values and true/false, like {"x": true}, got ["x"]'),
    (f"{F}.0.triggers", {"onChange": 5}, f"{FIELD}[0].triggers.onChange", 'expected ["functionName", arguments] or "functionName", got 5'),
    (f"{F}.0.name", "_crowd_token", f"{FIELD}[0].name", "names starting with '_crowd' are crowdnb's own"),
    (f"{F}.0.label", None, f"{FIELD}[0].label", "expected a string, got null"),
    ("form.sections.0.fieldsets", [], "form.sections[0].fieldsets", "expected at least one entry, got []"),
    ("form.sections.0", "oops", "form.sections[0]", 'expected a section (an object), got "oops"'),
    ("form.submit_button", {"txt": "Go"}, "form.submit_button.txt", "unknown attribute 'txt' (did you mean 'text'?)"),
    ("form.title", "{{getPresignedUrl(\"https://s3.amazonaws.com/b/k\")}}", "form.title", "calls a Mephisto remote procedure"),
]  # fmt: skip


@pytest.mark.parametrize(("where", "value", "path", "message"), MUTATIONS)
def test_one_bad_value_gives_one_precise_error(where: str, value: Any, path: str | None, message: str | None) -> None:
    config = _set(small_form(), where, value)
    if path is None or message is None:
        load_form(config)  # valid (maybe with a warning)
        return
    with pytest.raises(FormError) as caught:
        load_form(config)
    (problem,) = caught.value.problems
    assert problem.path == f"form=: {path}" and message in problem.message, str(problem)


def test_warnings_do_not_stop_a_config() -> None:
    config = _set(small_form(), f"{F}.0.validators", {"fileExtension": ["pdf"], "minlenght": 3})
    source = load_form(config)
    messages = [w.message for w in source.warnings]
    assert any("fileExtension checks uploads; it has no effect on a input field" in m for m in messages)
    assert any("'minlenght' is not a built-in validator (did you mean 'minLength'?)" in m for m in messages)


def test_token_sets_that_miss_or_add_tokens_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "dyn"
    shutil.copytree(FORMS / "dynamic", folder)
    sets = json.loads((folder / "token_sets_values_config.json").read_text())
    del sets[1]["tokens_values"]["brand"]
    sets[2]["tokens_values"]["colour"] = "red"
    (folder / "token_sets_values_config.json").write_text(json.dumps(sets))
    with pytest.raises(FormError) as caught:
        load_form(folder)
    assert [str(p) for p in caught.value.problems] == [
        "token_sets_values_config.json: [1]: no value for token(s) brand used in the form",
        "token_sets_values_config.json: [2]: value(s) for colour, which the form does not use",
    ]


def _rich_form() -> dict[str, Any]:
    """The volunteer form, self-contained (its instruction inlined), for mutating anywhere."""
    config = json.loads((FORMS / "volunteer" / "unit_config.json").read_text())
    config["form"]["instruction"] = "Hello {{who}}, welcome."
    return dict(config)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON value (object keys and list indexes)."""
    found = [here] if here else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


RICH_PATHS = _paths(_rich_form())
DELETE = object()
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 30), st.text(max_size=8), st.floats(allow_nan=True))
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)  # fmt: skip


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(RICH_PATHS), st.one_of(_values, st.just(DELETE))), min_size=1, max_size=3))
def test_mutated_configs_give_errors_never_a_crash(mutations: list[tuple[tuple[Any, ...], Any]]) -> None:
    config = _rich_form()
    for where, value in mutations:  # replace (or delete) the value at some place of the form
        node: Any = config
        for key in where[:-1]:
            if (
                not isinstance(node, (dict, list))
                or (isinstance(node, dict) and key not in node)
                or (isinstance(node, list) and (not isinstance(key, int) or key >= len(node)))
            ):
                break
            node = node[key]
        else:
            last = where[-1]
            if isinstance(node, dict) and value is DELETE:
                node.pop(last, None)
            elif isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
                node[last] = None if value is DELETE else value
    before = copy.deepcopy(config)
    try:
        source = load_form(config, values_given=True)
    except FormError as exc:
        assert exc.problems and all(p.path and p.message for p in exc.problems)
        assert config == before  # reading never changes the caller's config
        return
    assert config == before
    page = FormPage(source.to_dict(), "hypothesis")
    html = page.body({"who": "<b>x</b>"})
    assert "<b>x</b>" not in html and html.count("<section") == len(config["form"]["sections"])
    assert [f.name for f in page.fields({})] == [f.name for f in check_form(source.versions[0])[0].fields()]


class _Controls(HTMLParser):
    """Every form control, label target and id of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.labelled: set[str] = set()
        self.controls: list[dict[str, str | None]] = []
        self.groups: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "label" and a.get("for"):
            self.labelled.add(str(a["for"]))
        if (
            tag in ("input", "select", "textarea")
            and a.get("type") != "hidden"
            and not str(a.get("name")).startswith("_crowd")
        ):
            self.controls.append(a)
        if tag == "fieldset" and "cf-choices" in str(a.get("class")):
            self.groups.append(a)


def test_every_control_is_labelled_and_described(project: cn.Project) -> None:
    html = cn.Task("v", title="V", reward=0.1, form=FORMS / "volunteer", project=project).preview()
    found = _Controls()
    found.feed(html)
    assert (
        len(found.controls) == 4 + 2 + 4 + 3 + 1 + 1
    )  # 4 one-line inputs, 2 selects, 4 boxes, 3 radios, textarea, file
    for control in found.controls:
        assert control["id"] in found.labelled, control  # a <label for> each, radios and checkboxes included
    for element in [*found.controls, *found.groups]:
        for target in str(element.get("aria-describedby") or "").split():
            assert target in found.ids, (element, target)
    assert len(found.groups) == 2  # the radio group and the checkbox group are fieldsets with a legend
    assert '<legend class="cf-label">Skills<span class="cf-required" aria-hidden="true"> *</span><span class="cf-sr"> (required)</span></legend>' in html  # fmt: skip
    assert 'aria-controls="about-body"' not in html  # "about" is not collapsable: a plain heading
    assert '<button type="button" class="cf-toggle" aria-expanded="true" aria-controls="cf-section-1-body">' in html
    assert '<button type="submit" id="crowd-submit" class="crowd-submit cf-submit" title="Send the sign-up form">Register</button>' in html  # fmt: skip


def test_several_versions_need_a_version_column_in_data(project: cn.Project, tmp_path: Path) -> None:
    versions = [small_form(), _set(small_form(), "form.title", "Second")]
    task = cn.Task("v2", title="V", reward=0.1, form=versions, project=project)
    assert [r["form_version"] for r in task.rows()] == [0, 1]
    assert "Second" in task.preview(1) and "Second" not in task.preview(0)
    with pytest.raises(cn.DataError, match="row 1: the form has 2 versions; give each row a form_version column"):
        cn.Task("v3", title="V", reward=0.1, form=versions, data=[{"x": 1}], project=project)
    with pytest.raises(cn.DataError, match="row 2: form_version=2 is out of range: the form has 2 version"):
        cn.Task(
            "v4", title="V", reward=0.1, form=versions, data=[{"form_version": 1}, {"form_version": 2}], project=project
        )


def test_exactly_one_page_source(project: cn.Project) -> None:
    with pytest.raises(cn.ConfigError, match="give exactly one of html="):
        cn.Task("x", title="X", reward=0.1, html="<input name=a>", form=small_form(), project=project)


def test_insertions_are_served_and_traversal_refused(project: cn.Project) -> None:
    run = cn.Task("v", title="V", reward=0.1, form=FORMS / "volunteer", project=project).launch()
    try:
        css = requests.get(run.url + "static/volunteer.css", timeout=10)
        assert css.status_code == 200 and "rgb(20, 90, 50)" in css.text
        assert requests.get(run.url + "static/custom_triggers.js", timeout=10).status_code == 200
        for sneaky in ("static/../unit_config.json", "static/%2e%2e/unit_config.json", "static/..%2funit_config.json"):
            reply = requests.get(run.url + sneaky, timeout=10)
            assert reply.status_code == 404 and "Volunteer sign-up" not in reply.text, sneaky
        page = requests.get(run.worker_url("alice"), timeout=10).text
        assert '<link rel="stylesheet" href="static/volunteer.css">' in page and "_crowd/forms.js" in page
    finally:
        run.stop()


# --- the CLI -------------------------------------------------------------------------------------------
def test_cli_verify_passes_good_configs() -> None:
    for name in ("survey", "volunteer", "dynamic", "permutation"):
        result = CliRunner().invoke(cli, ["form", "verify", str(FORMS / name)])
        assert result.exit_code == 0, result.output
        assert result.output.startswith("ok: ")


def test_cli_verify_names_the_path_and_exits_1() -> None:
    result = CliRunner().invoke(cli, ["form", "verify", str(FORMS / "broken" / "min_length_word.json")])
    assert result.exit_code == 1
    assert (
        'error: min_length_word.json: form.sections[0].fieldsets[1].rows[0].fields[2].validators.minLength: '
        'expected a whole number ≥ 0, got "three"'
    ) in result.output  # fmt: skip


EXAMPLE = Path(__file__).parent.parent / "examples" / "forms" / "commute"


def test_the_shipped_example_verifies_and_makes_a_task(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["form", "verify", str(EXAMPLE)])
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.splitlines() == [
        "ok: unit_config.json: 1 form version(s); 3 data row(s), one per unit of work",
        "ok: token_sets_values_config.json: 3 token sets",
    ]
    done = CliRunner().invoke(cli, ["form", "extrapolate", str(EXAMPLE), "-o", str(tmp_path / "task_data.json")])
    assert done.exit_code == 0 and "3 form version(s) written" in done.output
    task = cn.Task("commute", title="Commute", reward=0.1, form=EXAMPLE)
    assert task.row_count() == 3 and [f.name for f in task.fields] == ["mode", "minutes", "wish"]


def test_cli_verify_says_ok_only_for_files_without_problems(tmp_path: Path) -> None:
    folder = tmp_path / "commute"
    shutil.copytree(EXAMPLE, folder)
    sets = folder / "token_sets_values_config.json"
    sets.write_text('[{"tokens_values": {"city": "Lyon"}}, {"tokens_values": {"town": "Oslo"}}]')
    result = CliRunner().invoke(cli, ["form", "verify", str(folder)])
    assert result.exit_code == 1 and "ok: token_sets_values_config.json" not in result.stdout
    assert result.stderr.splitlines() == [
        "error: token_sets_values_config.json: [1]: no value for token(s) city used in the form",
        "error: token_sets_values_config.json: [1]: value(s) for town, which the form does not use",
        "2 problems found; fix the values at the paths above",
    ]


def test_cli_verify_of_a_syntax_error_names_it_once_and_claims_no_write(tmp_path: Path) -> None:
    folder = tmp_path / "commute"
    shutil.copytree(EXAMPLE, folder)
    sets = folder / "token_sets_values_config.json"
    sets.write_text('[{"tokens_values": {"city": "Lyon"}}\n')
    result = CliRunner().invoke(cli, ["form", "verify", str(folder)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {sets}, line 2 column 1: not valid JSON: Expecting ',' delimiter",
        "1 problem found; fix the values at the paths above",
    ]
    alone = CliRunner().invoke(cli, ["form", "verify", str(sets)])
    assert alone.exit_code == 1 and alone.stdout == "" and "nothing was written" not in alone.stderr


def test_cli_permutate_then_extrapolate_write_mephisto_files(tmp_path: Path) -> None:
    folder = tmp_path / "perm"
    shutil.copytree(FORMS / "permutation", folder)
    runner = CliRunner()
    done = runner.invoke(cli, ["form", "permutate", str(folder / "separate_token_values_config.json")])
    assert done.exit_code == 0 and "6 token sets written" in done.output
    sets = json.loads((folder / "token_sets_values_config.json").read_text())
    assert sets[0] == {"tokens_values": {"actor": "Ada Stone", "film": "The Long Winter"}}
    done = runner.invoke(cli, ["form", "extrapolate", str(folder)])
    assert done.exit_code == 0, done.output
    versions = json.loads((folder / "task_data.json").read_text())
    assert len(versions) == 6 and versions[5]["form_metadata"] == {
        "tokens_values": {"actor": "Chen Wei", "film": "Harbour Lights"}
    }
    label = versions[5]["form"]["sections"][0]["fieldsets"][0]["rows"][0]["fields"][0]["label"]
    assert label == "Chen Wei in Harbour Lights: a good fit?"
    # the written task data is itself a valid config: six versions, one unit each
    assert runner.invoke(cli, ["form", "verify", str(folder / "task_data.json")]).exit_code == 0
    assert len(load_form(folder / "task_data.json").rows) == 6


def test_cli_extrapolate_inlines_insertion_values(tmp_path: Path) -> None:
    out = tmp_path / "data.json"
    done = CliRunner().invoke(cli, ["form", "extrapolate", str(FORMS / "dynamic" / "unit_config.json"), "-o", str(out)])
    assert done.exit_code == 0, done.output
    first = json.loads(out.read_text())[0]["form"]
    assert first["instruction"].startswith('<p class="product-text">A 1.7-litre kettle')


def test_cli_extrapolate_of_a_broken_config_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "dyn"
    shutil.copytree(FORMS / "dynamic", folder)
    (folder / "token_sets_values_config.json").write_text('[{"tokens_values": {"product": ["a list"]}}]')
    done = CliRunner().invoke(cli, ["form", "extrapolate", str(folder)])
    assert done.exit_code == 1 and "[0].tokens_values.product: expected a string or a number" in done.output
    assert not (folder / "task_data.json").exists()


# --- the magic -----------------------------------------------------------------------------------------
@pytest.fixture
def shell(tmp_path: Path) -> Any:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "crowdnb")
    magics = ip.magics_manager.registry["CrowdMagics"]
    magics.tasks, magics.runs, magics.current = {}, {}, None
    ip.run_line_magic("crowd", f"open {tmp_path / 'project'} --create")
    yield ip
    for run in magics.runs.values():
        if run.serving:
            run.stop()


def test_form_magic_takes_the_config_as_the_cell_body(shell: Any) -> None:
    cell = json.dumps(small_form())
    result = shell.run_cell(f'%%crowd form quick --title "Quick" --reward 0.05 --units 2\n{cell}')
    assert result.success, result.error_in_exec
    task = shell.magics_manager.registry["CrowdMagics"].tasks["quick"]
    assert task.spec.kind == "form" and [f.name for f in task.fields] == ["a", "b"]
    assert task.spec.units_per_assignment == 2


def test_form_magic_takes_a_path_on_one_line(shell: Any) -> None:
    task = shell.run_line_magic("crowd", f'form survey --title "Commute" --reward 0.1 --config {FORMS / "survey"}')
    assert isinstance(task, cn.Task) and task.row_count() == 1 and task.fields[0].name == "mode"


def test_form_magic_reports_a_broken_cell_as_one_line(shell: Any) -> None:
    with pytest.raises(UsageError, match=r"the cell is not JSON \(Expecting value, line 1 column 1\)"):
        shell.run_cell_magic("crowd", 'form bad --title "B" --reward 0.1', "not json")
    with pytest.raises(UsageError, match=r"validators\.minLength: expected a whole number ≥ 0"):
        shell.run_line_magic(
            "crowd", f'form bad --title "B" --reward 0.1 --config {FORMS / "broken" / "min_length_word.json"}'
        )


def test_bots_fill_a_mephisto_survey_within_its_rules(project: cn.Project) -> None:
    run = cn.Task(
        "commute", title="Commute", reward=0.1, form=FORMS / "survey", units_per_assignment=3, project=project
    ).launch()
    try:
        sim = cn.simulate(run, workers=3, seed=3)
        assert sim.errors == [] and sim.submitted == 3
        frame = run.df
        assert (
            set(frame["mode"]) <= {"walk", "bike", "transit", "car"}
            and frame["minutes"].astype(int).between(1, 10).all()
        )
        assert frame["postcode"].str.fullmatch(r"[0-9]{5}").all()  # optional, with a pattern: filled to match it
    finally:
        run.stop()
