"""%crowd and %%crowd through a real IPython shell."""

from __future__ import annotations

import socket
from pathlib import Path

import ipywidgets as W
import pandas as pd
import pytest
import requests
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import crowdnb as cn

PAGE = '<p>{{ text }}</p><label><input type="radio" name="label" value="pos">pos</label><input name="why">'


@pytest.fixture(scope="session")
def shell() -> InteractiveShell:
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "crowdnb")
    return ip


@pytest.fixture
def crowd(shell: InteractiveShell, tmp_path: Path):
    """The magics, pointed at a fresh project; every run is stopped afterwards."""
    magics = shell.magics_manager.registry["CrowdMagics"]
    magics.tasks, magics.runs, magics.current = {}, {}, None
    data = tmp_path / "rows.csv"
    data.write_text("text\nfirst\nsecond\nthird\n")
    shell.run_line_magic("crowd", f"open {tmp_path / 'project'} --create")
    shell.user_ns["DATA"] = str(data)
    yield magics
    for run in magics.runs.values():
        if run.serving:
            run.stop()


def test_template_launch_simulate_status_export(shell: InteractiveShell, crowd, tmp_path: Path) -> None:
    result = shell.run_cell(f'%%crowd template rate --title "Rate it" --reward 0.1 --data $DATA --units 2\n{PAGE}')
    assert result.success, result.error_in_exec
    task = crowd.tasks["rate"]
    assert isinstance(task, cn.Task) and task.spec.units_per_assignment == 2 and task.row_count() == 3
    run = shell.run_line_magic("crowd", "launch rate")
    assert isinstance(run, cn.Run) and run.serving
    sim = shell.run_line_magic("crowd", "simulate --workers 3 --wait")
    assert sim.submitted == 6
    assert shell.run_line_magic("crowd", "status") is run
    path = shell.run_line_magic("crowd", f"export rate {tmp_path / 'out.csv'}")
    assert len(pd.read_csv(path)) == 6
    runs = shell.run_line_magic("crowd", "runs")
    assert list(runs["task"]) == ["rate"] and runs.loc[0, "submitted"] == 6
    workers = shell.run_line_magic("crowd", "workers")
    assert sorted(workers["worker"]) == ["bot-1", "bot-2", "bot-3"]
    stopped = shell.run_line_magic("crowd", "stop")
    assert stopped.state == "stopped"
    resumed = shell.run_line_magic("crowd", "resume rate")
    assert resumed.serving


def test_assignment_from_a_magic(shell: InteractiveShell, crowd) -> None:
    shell.run_cell(f"%%crowd template t1 --title T --reward 0 --data $DATA\n{PAGE}")
    shell.run_cell("r = %crowd launch t1")
    assert isinstance(shell.user_ns["r"], cn.Run)
    assert crowd.runs["t1"] is shell.user_ns["r"]


def test_preview_live_and_review_return_widgets(shell: InteractiveShell, crowd) -> None:
    shell.run_cell(f"%%crowd template t2 --title T --reward 0.2 --data $DATA\n{PAGE}")
    preview = shell.run_line_magic("crowd", "preview")
    assert isinstance(preview, W.DOMWidget) and preview.row == 0
    second = shell.run_line_magic("crowd", "preview --row 1")  # the dry run, opened on row 1
    assert second.row == 1 and "second" in requests.get(second.src, timeout=10).text
    shell.run_line_magic("crowd", "launch")
    panel = shell.run_line_magic("crowd", "live")
    grid = shell.run_line_magic("crowd", "review")
    panel.close()
    with capture_output() as shown:
        shell.display_formatter.format(grid)  # what the notebook would render
    assert isinstance(grid, W.DOMWidget) and shown is not None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("launch nope", "task 'nope' is not defined in this notebook"),
        ("frobnicate", "unknown subcommand 'frobnicate'"),
        ("launch t3 --port notaport", "argument --port: invalid int value"),
        ("qualify alice 'bad name!'", "qualification name 'bad name!' is not valid"),
    ],
)
def test_errors_are_one_line(shell: InteractiveShell, crowd, line: str, message: str) -> None:
    shell.run_cell(f"%%crowd template t3 --title T --reward 0 --data $DATA\n{PAGE}")
    with pytest.raises(UsageError, match=message):
        shell.run_line_magic("crowd", line)


def test_crowd_error_in_a_cell_prints_no_traceback(shell: InteractiveShell, crowd) -> None:
    with capture_output() as out:
        result = shell.run_cell('%%crowd template t4 --title T --reward -1\n<input name="a">')
    assert not result.success
    assert "reward -1.0 must be a number" in out.stderr + out.stdout
    assert "Traceback" not in out.stderr + out.stdout


def test_help_for_every_subcommand(shell: InteractiveShell, crowd) -> None:
    with capture_output() as out:
        shell.run_line_magic("crowd", "--help")
    for name in crowd.parsers:
        assert f"  {name}" in out.stdout
        with capture_output() as sub:
            assert shell.run_line_magic("crowd", f"{name} --help") is None
        assert f"%crowd {name}" in sub.stdout


def test_qualify_and_revoke(shell: InteractiveShell, crowd) -> None:
    assert shell.run_line_magic("crowd", "qualify alice english --value 3") == 3
    workers = shell.run_line_magic("crowd", "workers")
    assert workers.loc[0, "qualifications"] == "english=3"
    shell.run_line_magic("crowd", "qualify alice english --revoke")
    assert shell.run_line_magic("crowd", "workers").loc[0, "qualifications"] is None


def test_status_after_a_kernel_restart_finds_the_stored_run(shell: InteractiveShell, crowd) -> None:
    shell.run_cell(f"%%crowd template t5 --title T --reward 0 --data $DATA\n{PAGE}")
    run = shell.run_line_magic("crowd", "launch")
    crowd.tasks, crowd.runs = {}, {}  # a new kernel knows nothing
    found = shell.run_line_magic("crowd", "status t5")
    assert found.id == run.id


def test_open_refuses_a_folder_without_a_project_unless_told_to_create(shell: InteractiveShell, crowd, tmp_path):
    typo = tmp_path / "nowhere"
    with pytest.raises(UsageError) as refused:
        shell.run_line_magic("crowd", f"open {typo}")
    assert str(refused.value) == (
        f"no crowdnb project at {typo} (no crowdnb.db there); check the path, or start one there: "
        f"%crowd open {typo} --create"
    )
    assert not typo.exists()
    project = shell.run_line_magic("crowd", f"open {typo} --create")
    assert project.root == typo and (typo / "crowdnb.db").is_file()
    assert shell.run_line_magic("crowd", f"open {typo}") is project


def test_a_taken_port_is_one_line_and_leaves_no_run(shell: InteractiveShell, crowd, capfd) -> None:
    shell.run_cell(f"%%crowd template t6 --title T --reward 0 --data $DATA\n{PAGE}")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = shell.run_cell(f"%crowd launch t6 --port {port}")
    assert not result.success
    err = capfd.readouterr().err
    assert err.strip().splitlines() == [
        f"UsageError: port {port} on 127.0.0.1 is already in use; launch with port=0 to take a free one: "
        "task.launch(port=0), %crowd launch --port 0"
    ]
    assert crowd.project.runs == {}
    run = shell.run_line_magic("crowd", "launch t6 --port 0")
    assert run.serving and list(crowd.project.runs) == [run.id]
