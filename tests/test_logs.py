"""The project's log: JSON lines with the run, the agent and the request id; errors also in ``run.errors``;
``crowdnb logs [--run ID] [--follow]``; rotation. Never answers nor full worker ids."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests
from click.testing import CliRunner

import crowdnb as cn
from crowdnb import logs
from crowdnb.cli import cli
from crowdnb.errors import ProviderError
from crowdnb.providers.mock import MockProvider

from .conftest import FORM, SENTENCES, wait_until

PAGE = '<p>{{ text }}</p><input name="answer"><button data-crowd-call="judge">?</button>'


def lines(project: cn.Project, **where: Any) -> list[dict[str, Any]]:
    return [line for line in project.logs() if all(line.get(k) == v for k, v in where.items())]


def test_a_procedure_error_is_logged_with_run_agent_and_request_and_kept_in_run_errors(
    project: cn.Project, make_run: Any
) -> None:
    task = cn.Task("judged", title="T", reward=0.1, html=PAGE, data=SENTENCES[:2], project=project)

    @task.procedure
    def judge(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        raise RuntimeError("the model is not loaded")

    run = task.launch()
    try:
        http = requests.Session()
        http.headers["Accept"] = "application/json"
        unit = http.get(run.worker_url("WorkerSecretName42"), timeout=10).json()
        reply = http.post(
            run.url + "call",
            json={"token": unit["token"], "id": "call-0001", "name": "judge", "args": {"text": "TOPSECRETANSWER"}},
            headers={"X-Request-Id": "req-from-proxy-1"},
            timeout=10,
        )
        assert reply.headers["X-Request-Id"] == "req-from-proxy-1"
        assert reply.json()["ok"] is False
        (line,) = wait_until(lambda: lines(project, request="req-from-proxy-1", level="ERROR"), "the error line")
        assert line["run"] == run.id and line["agent"] == int(unit["agent_id"]) and line["logger"].startswith("crowdnb")
        assert "the model is not loaded" in line["message"]
        assert any("the model is not loaded" in e for e in run.errors)  # the run's state says so too
        # a request without a usable id gets one of its own
        other = http.get(run.url + "healthz", headers={"X-Request-Id": "bad id!"}, timeout=10)
        assert len(other.headers["X-Request-Id"]) == 16 and other.headers["X-Request-Id"] != "bad id!"
        body = {"token": unit["token"], "submission_id": "sub-00000001", "answers": {"answer": "TOPSECRETANSWER"}}
        assert http.post(run.url + "submit", json=body, timeout=10).ok
    finally:
        run.stop()
    text = project.log_path.read_text()
    assert "TOPSECRETANSWER" not in text and "WorkerSecretName42" not in text
    assert all(json.loads(raw)["at"].endswith("Z") for raw in text.splitlines())


def test_a_platform_error_is_logged_and_kept_in_run_errors(on_mturk: Any, mturk: Any, project: cn.Project) -> None:
    mturk.fail("CreateHITWithHITType", "500", times=1)
    run = on_mturk()
    (line, *_) = lines(project, run=run.id, level="WARNING", logger="crowdnb.providers.meter")
    assert "CreateHITWithHITType" in line["message"] and "(transient)" in line["message"]
    assert any("CreateHITWithHITType" in e and e.startswith("WARNING") for e in run.errors)


class BrokenSync(MockProvider):
    """A provider whose platform keeps failing the sync the monitor makes."""

    poll_seconds = 0.05

    def sync(self, run: Any) -> Any:
        raise ProviderError("Mockplatform", "ListChanges", "HTTP 503 Service Unavailable", transient=True)


def test_a_failing_monitor_tick_is_logged_with_its_traceback(project: cn.Project) -> None:
    task = cn.Task("ticking", title="T", reward=0.1, html=FORM, data=SENTENCES[:1], project=project)
    run = task.launch(provider=BrokenSync(project.store))
    try:
        found = wait_until(lambda: lines(project, run=run.id, level="ERROR", logger="crowdnb.monitor"), "a failed tick")
        assert "ListChanges failed: HTTP 503" in found[0]["error"] and "Traceback" in found[0]["error"]
        assert any("failed a tick" in e for e in run.errors)
    finally:
        run.stop()


def test_crowdnb_logs_prints_a_runs_lines_and_follows(project: cn.Project, make_run: Any) -> None:
    first, second = make_run("first"), make_run("second")
    first.stop()
    second.stop()
    runner = CliRunner()
    shown = runner.invoke(cli, ["logs", "--home", str(project.root), "--run", str(first.id)])
    assert shown.exit_code == 0, shown.output
    assert f"run={first.id}" in shown.output and f"run={second.id}" not in shown.output
    assert f"run {first.id} stopped" in shown.output
    raw = runner.invoke(cli, ["logs", "--home", str(project.root), "--json"]).output.splitlines()
    assert {json.loads(r).get("run") for r in raw} >= {first.id, second.id}
    bad = runner.invoke(cli, ["logs", "--home", str(project.root), "--run", "12345"])
    assert bad.exit_code == 1 and "no run 12345" in bad.output and "crowdnb runs" in bad.output

    follower = subprocess.Popen(
        [sys.executable, "-m", "crowdnb", "logs", "--home", str(project.root), "--follow", "--json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        seen = [json.loads(follower.stdout.readline()) for _ in raw]  # what was there already
        assert [s.get("message") for s in seen] == [json.loads(r).get("message") for r in raw]
        third = make_run("third")  # written after the follower reached the end
        third.stop()
        later = json.loads(follower.stdout.readline())
        assert later.get("run") == third.id or "third" in later["message"]
    finally:
        follower.terminate()
        follower.wait(timeout=10)
        follower.stdout.close()


def test_the_log_rotates_and_is_read_back_whole(tmp_path: Path) -> None:
    handler = logs.ProjectLogs()
    handler.attach(tmp_path, max_bytes=2000)
    logger = logging.getLogger("crowdnb.tests.rotation")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with logs.bound(project=tmp_path, run=7):
            for i in range(100):
                logger.warning("line %d", i)
    finally:
        logger.removeHandler(handler)
        handler.detach(tmp_path)
    assert (tmp_path / "logs" / "crowdnb.log.1").is_file()
    kept = list(logs.lines(tmp_path, run=7))
    numbers = [int(line["message"].split()[1]) for line in kept]
    assert numbers == sorted(numbers) and numbers[-1] == 99 and len(numbers) >= 60  # 5 backups of ~2 KB
