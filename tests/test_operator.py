"""The notebook as operator of a router in another process (``architect="process"``): the live frame,
decisions applied where the data lives (money once), notebook Python called from the router, the notebook
away and back, and the rows brought home at stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

import crowdnb as cn

from .conftest import FORM, SENTENCES, Worker, wait_until

TEST = '<p>{{ question }}</p><input name="answer">'


def launch(project: cn.Project, **options: Any) -> cn.Run:
    task = cn.Task(
        "sentiment", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES[:4], project=project, **options
    )
    return task.launch(provider="mock", architect="process")


@pytest.fixture
def remote_runs() -> Any:
    runs: list[cn.Run] = []
    yield runs
    for run in runs:
        if run.serving:
            run.stop()


def router_pid(run: cn.Run) -> int:
    return int(run.config["architect"]["options"]["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/status").read_text().count("zombie")


def test_a_run_in_a_child_process_is_operated_from_the_notebook(project: cn.Project, remote_runs: list) -> None:
    run = launch(project)
    remote_runs.append(run)
    pid = router_pid(run)
    assert pid != os.getpid() and alive(pid)
    assert run.url.startswith("http://127.0.0.1:") and requests.get(run.url + "healthz", timeout=5).ok

    sim = cn.simulate(run, workers=2, answer=lambda row: {"label": "pos", "why": row["text"]})
    assert sim.errors == [] and sim.submitted == 4
    wait_until(lambda: len(run.df) == 4, "the four submissions in the notebook's frame")
    frame = run.df
    assert sorted(frame["why"]) == sorted(s["text"] for s in SENTENCES[:4])
    assert project.store.query("SELECT count(*) AS n FROM submissions")[0]["n"] == 0  # the router holds them

    ids = [int(u) for u in frame["unit_id"]]
    assert run.approve(ids[:3], bonus=0.25, note="Thanks!") == 3
    assert run.approve(ids[:3], bonus=0.25, note="Thanks!") == 0  # twice: applied and paid once
    assert run.reject(ids[3:], note="Empty answer") == 1
    assert sorted(run.df["status"]) == ["accepted", "accepted", "accepted", "rejected"]
    assert run.spend["bonuses"] == pytest.approx(0.75)

    run.stop()
    assert not alive(pid)
    home = cn.open(project.root).run(run.id)
    assert home.state == "stopped" and not home.serving
    assert sorted(home.df["status"]) == ["accepted", "accepted", "accepted", "rejected"]
    bonuses = project.store.query("SELECT actor, amount FROM reviews WHERE action = 'bonus'")
    assert [(b["actor"], b["amount"]) for b in bonuses] == [("operator", 0.25)] * 3


def test_onboarding_judged_by_notebook_python(project: cn.Project, remote_runs: list) -> None:
    judged: list[str] = []

    def validate(answers: dict[str, Any]) -> bool:
        judged.append(answers["answer"])
        return answers["answer"].strip().lower() == "ready"

    onboarding = cn.Onboarding(html=TEST, data={"question": "Type 'ready'."}, validate=validate)
    run = launch(project, onboarding=onboarding)
    remote_runs.append(run)
    alice, bob = Worker(run, "alice"), Worker(run, "bob")
    assert alice.enter().json()["status"] == "onboarding"
    assert alice.submit({"answer": " Ready "}).status_code == 200
    assert alice.enter().json()["status"] == "assigned"
    assert bob.enter().json()["status"] == "onboarding"
    assert bob.submit({"answer": "nope"}).status_code == 403
    assert judged == [" Ready ", "nope"]  # run in this process, by the function itself


def test_a_forged_operator_is_refused(project: cn.Project, remote_runs: list) -> None:
    run = launch(project)
    remote_runs.append(run)
    for headers in ({}, {"Authorization": "Bearer forged"}, {"Authorization": f"Bearer {run.feed_token}"}):
        assert requests.get(run.url + "_crowd/operator/database", headers=headers, timeout=5).status_code == 401
        assert requests.post(run.url + "_crowd/operator/stop", headers=headers, timeout=5).status_code == 401
    assert run.state == "running"


NOTEBOOK = """
import sys, crowdnb as cn
project = cn.open(sys.argv[1], create=True)
def validate(answers):
    return answers["answer"] == "ready"
task = cn.Task("sentiment", title="Sentiment", reward=0.1, html={form!r}, data={rows!r}, project=project,
               onboarding=cn.Onboarding(html={test!r}, data={{"question": "q"}}, validate=validate))
run = task.launch(provider="mock", architect="process")
print(run.id, flush=True)
sys.stdin.read()  # until killed
"""


def test_the_study_goes_on_while_the_notebook_is_away(tmp_path: Path) -> None:
    root = tmp_path / "project"
    script = NOTEBOOK.format(form=FORM, rows=SENTENCES[:4], test=TEST)
    kernel = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        run_id = int(kernel.stdout.readline())  # type: ignore[union-attr]
        run = cn.open(root).run(run_id)
        alice = Worker(run, "alice")
        assert alice.enter().json()["status"] == "onboarding"
        assert alice.submit({"answer": "ready"}).status_code == 200  # judged in the first kernel
        alice.enter()
        assert alice.submit({"label": "pos", "why": "before"}).status_code == 200
    finally:
        kernel.send_signal(signal.SIGKILL)  # the notebook dies; its router does not
        kernel.communicate()
    pid = int(run.config["architect"]["options"]["pid"])
    assert alive(pid)
    carol = Worker(run, "carol")
    away = carol.enter()  # her onboarding needs notebook Python: held, with a clear message
    assert away.status_code == 503 and "notebook is away" in away.json()["message"]
    alice.enter()  # work that needs no notebook goes on
    assert alice.submit({"label": "neg", "why": "while away"}).status_code == 200

    run.resume(onboarding_validate=lambda answers: answers["answer"] == "ready")  # a new kernel reattaches
    try:
        assert run.serving and int(run.config["architect"]["options"]["pid"]) == pid
        wait_until(lambda: len(run.df) == 2, "both of alice's answers, caught up")
        frame = run.df
        assert sorted(frame["why"]) == ["before", "while away"]
        assert carol.enter().json()["status"] == "onboarding"
        assert carol.submit({"answer": "ready"}).status_code == 200
    finally:
        run.stop()
    assert not alive(pid)
    assert sorted(cn.open(root).run(run_id).df["why"]) == ["before", "while away"]  # home, no duplicate


def test_a_procedure_in_the_notebook_answers_a_page_served_elsewhere(project: cn.Project, remote_runs: list) -> None:
    task = cn.Task("guess", title="Guess", reward=0.1, html=FORM, data=SENTENCES[:2], project=project)
    seen: list[tuple[str, str]] = []

    @task.procedure
    def guess(args: dict[str, Any], worker: Any) -> dict[str, Any]:
        seen.append((worker.name, args["text"]))
        if args["text"] == "boom":
            raise cn.ProcedureError("The model is resting; try again in a minute.")
        return {"label": "pos" if "good" in args["text"] else "neg", "pid": os.getpid()}

    run = task.launch(provider="mock", architect="process")
    remote_runs.append(run)
    alice = Worker(run, "alice")
    alice.enter()

    def call(text: str, call_id: str) -> requests.Response:
        body = {"token": alice.unit["token"], "id": call_id, "name": "guess", "args": {"text": text}}
        return alice.http.post(run.url + "call", json=body, timeout=20)

    reply = call("a good day", "call-0001").json()
    assert reply["ok"] and reply["result"] == {"label": "pos", "pid": os.getpid()}  # ran in this process
    assert call("a good day", "call-0001").json() == reply  # a retry is answered once, from the router's store
    refused = call("boom", "call-0002").json()
    assert not refused["ok"] and refused["message"] == "The model is resting; try again in a minute."
    assert seen == [("alice", "a good day"), ("alice", "boom")]
    run.stop()
    calls = cn.open(project.root).run(run.id).calls_df
    assert sorted(calls["call_id"]) == ["call-0001", "call-0002"]  # the calls came home with the run


def test_the_review_table_and_worker_decisions_reach_the_router(project: cn.Project, remote_runs: list) -> None:
    run = launch(project)
    remote_runs.append(run)
    cn.simulate(run, workers=1, prefix="ann", answer=lambda row: {"label": "pos", "why": "fine"})
    wait_until(lambda: len(run.df) == 4, "four submissions in the frame")
    grid = run.review()  # the same review grid as in-kernel
    grid.set_state({"selected": [row["id"] for row in grid.rows], "note": "Thanks"})  # as the browser sends
    grid._message(grid, {"action": "approve", "units": list(grid.selected)}, [])  # "approve" with the selection
    wait_until(lambda: set(run.df["status"]) == {"accepted"}, "the approvals applied on the router")
    grid.status = "accepted"
    units = [row["id"] for row in grid.rows]
    grid._message(grid, {"action": "bonus", "units": units}, [])
    grid._message(grid, {"action": "bonus", "units": units}, [])  # a double click pays once
    assert run.spend["bonuses"] == pytest.approx(4 * grid.amount)

    assert cn.block("mallory", "spam", project=project) is True  # recorded here and on the router
    refused = Worker(run, "mallory").enter()
    assert refused.status_code == 403 and "no longer take" in refused.json()["message"]
    assert cn.bonus("ann-1", 0.5, "make-up", project=project) is True
    assert cn.bonus("ann-1", 0.5, "make-up", project=project) is False  # once
    run.stop()
    paid = project.store.query("SELECT count(*) AS n FROM reviews WHERE action = 'bonus' AND unit_id IS NULL")
    assert paid[0]["n"] == 1  # paid on the router, once, and home with the run


def test_a_process_launch_that_fails_leaves_no_run(project: cn.Project, remote_runs: list) -> None:
    """The child cannot listen (its port is taken), or the data cannot go elsewhere (a generator): no run,
    no units, no task, no router folder is left, and the next launch works."""
    task = cn.Task("sentiment", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES[:4], project=project)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(cn.ArchitectError, match=f"port {port} on 127.0.0.1 is already in use"):
            task.launch(provider="mock", architect="process", architect_options={"port": port})
    endless = cn.Task("endless", title="E", reward=0.1, html=FORM, data=({"text": "x"} for _ in iter(int, 1)),
                      project=project)  # fmt: skip
    with pytest.raises(cn.ConfigError, match="needs its data up front"):
        endless.launch(provider="mock", architect="process")
    for table in ("task_runs", "units", "assignments", "tasks"):
        assert project.store.query(f"SELECT * FROM {table}") == [], table
    assert not (project.root / "routers").exists() or not any((project.root / "routers").iterdir())
    assert project.served == {} and project.runs == {}
    run = task.launch(provider="mock", architect="process")
    remote_runs.append(run)
    assert run.serving and list(project.runs) == [run.id] and run.counts["launched"] == 4


def test_a_router_that_never_answers_at_its_address_offered_nothing_and_leaves_no_run(project: cn.Project) -> None:
    """The router answers on 127.0.0.1, but the notebook is told to operate it at an address nobody serves: it was
    held (nothing offered, the provider never told), so the launch leaves no run behind."""
    task = cn.Task("sentiment", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES[:4], project=project)
    with pytest.raises(cn.ArchitectError):
        task.launch(provider="mock", architect="process",
                    architect_options={"public_url": "http://127.0.0.1:9/", "start_timeout": 5})  # fmt: skip
    assert project.runs == {} and project.store.query("SELECT * FROM units") == []


def test_a_process_launch_that_fails_after_the_provider_was_told_is_kept_stopped(
    project: cn.Project, mturk: Any
) -> None:
    """The notebook told the router to publish, and the platform refused: the run stays, stopped, so that
    whatever the platform holds is not forgotten; its folder keeps its rows."""
    from .turkers import FAST

    mturk.fail("CreateHITType", "500", times=100)
    task = cn.Task("turk", title="Sentiment", description="Read a sentence.", reward=0.5, html=FORM,
                   data=SENTENCES[:2], project=project)  # fmt: skip
    with pytest.raises(cn.CrowdError):
        task.launch(provider="mturk_sandbox", provider_options=FAST, architect="process")
    (run_id,) = project.runs
    assert project.run(run_id).state == "stopped" and not project.run(run_id).serving
    assert (project.root / "routers" / f"run{run_id}" / "crowdnb.db").is_file()


def test_a_notebook_that_exits_leaves_its_router_serving(tmp_path: Path) -> None:
    root = tmp_path / "project"
    script = NOTEBOOK.format(form=FORM, rows=SENTENCES[:4], test=TEST).replace(
        "sys.stdin.read()", "sys.stdin.readline()"
    )
    kernel = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    run_id = int(kernel.stdout.readline())  # type: ignore[union-attr]
    kernel.communicate("\n", timeout=60)  # the kernel shuts down normally: its projects close at exit
    assert kernel.returncode == 0
    run = cn.open(root).run(run_id)
    pid = int(run.config["architect"]["options"]["pid"])
    try:
        assert alive(pid) and requests.get(run.url + "healthz", timeout=5).ok  # the study goes on
        assert run.state == "running"
    finally:
        run.stop()  # a new kernel stops it without resuming it first: there, and its rows come home
    assert not alive(pid) and cn.open(root).run(run_id).state == "stopped"


def test_no_hit_is_made_before_the_router_answers_at_its_address(project: cn.Project, mturk: Any) -> None:
    from .serving import free_port
    from .turkers import FAST

    port = free_port()
    release = mturk.hold("CreateHITWithHITType")  # the first HIT is made, and answered when the test has looked
    answered: list[bool] = []

    def look() -> None:
        try:
            wait_until(lambda: mturk.count("CreateHITWithHITType"), "the first HIT", timeout=60)
            answered.append(requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok)
        except (requests.RequestException, AssertionError):
            answered.append(False)
        finally:
            release.set()

    watcher = threading.Thread(target=look)
    watcher.start()
    task = cn.Task("turk", title="Sentiment", description="Read a sentence.", reward=0.5, html=FORM,
                   data=SENTENCES[:2], project=project)  # fmt: skip
    run = task.launch(provider="mturk_sandbox", provider_options=FAST, architect="process",
                      architect_options={"port": port})  # fmt: skip
    try:
        watcher.join(timeout=90)
        assert answered == [True]  # the provider was told the URL once it answered there
        assert len(mturk.hits()) == 2
    finally:
        run.stop()


def test_an_http_router_makes_no_hit_on_live_mturk_whatever_the_architect(project: cn.Project, mturk: Any) -> None:
    task = cn.Task("turk", title="Sentiment", description="Read a sentence.", reward=0.5, html=FORM,
                   data=SENTENCES[:2], project=project)  # fmt: skip
    with pytest.raises(cn.ConfigError, match=r"MTurk shows tasks only from HTTPS addresses"):
        task.launch(provider="mturk_sandbox", provider_options={"poll_seconds": 0.2}, architect="process")
    assert mturk.calls == []
    assert [r for r in project.store.query("SELECT status FROM task_runs") if r["status"] == "running"] == []


def test_uploads_come_home_with_the_rows(project: cn.Project, remote_runs: list) -> None:
    page = '<p>{{ text }}</p><input type="file" name="photo"><input name="why">'
    task = cn.Task("photos", title="Photos", reward=0.1, html=page, data=SENTENCES[:1], project=project)
    run = task.launch(provider="mock", architect="process")
    remote_runs.append(run)
    unit = Worker(run, "alice").enter().json()
    form = {"_crowd_token": unit["token"], "_crowd_submission_id": unit["submission_id"], "why": "a kitchen"}
    sent = requests.post(run.url + "submit", data=form, files=[("photo", ("kitchen.png", b"PNG bytes", "image/png"))],
                         headers={"Accept": "application/json"}, timeout=10)  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert not (project.root / "files").exists()  # the router holds it
    run.stop()
    home = cn.open(project.root).run(run.id).df
    assert (project.root / home.loc[0, "photo"]).read_bytes() == b"PNG bytes"  # where the row says, here
