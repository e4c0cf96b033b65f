"""A run's life: launch, live frame, callbacks, stop, resume, reopen elsewhere, collate, review."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from urllib.parse import urlsplit

import pytest
import requests

import crowdnb as cn
from crowdnb import StateError
from crowdnb.frame.live import LiveFrame

from .conftest import FORM, wait_until


def test_launch_returns_quickly_with_a_url(project: cn.Project) -> None:
    task = cn.Task("big", title="T", reward=0.1, html="{{ text }}<input name=a>",
                   data=[{"text": str(i)} for i in range(5000)], project=project)  # fmt: skip
    started = time.monotonic()
    run = task.launch()
    elapsed = time.monotonic() - started
    try:
        assert run.url.startswith("http://127.0.0.1:")
        assert run.counts["launched"] == 5000
        assert elapsed < 10  # the issue asks for < 1 s; benchmarks/ measures it, this only catches a hang
    finally:
        run.stop()


def test_stop_expires_units_and_frees_the_port(run: cn.Run, worker) -> None:
    worker("alice").enter()
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    run.stop()
    assert run.state == "stopped" and not run.serving
    assert run.counts["expired"] == 6
    assert run.store.scalar("SELECT status FROM agents") == "expired"
    with pytest.raises(requests.ConnectionError):
        requests.get(run.url, timeout=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # the port is free again
    calls = [r["call"] for r in run.store.query("SELECT call FROM provider_calls ORDER BY id")]
    assert calls[0] == "setup_run" and "expire" in calls and calls[-1] == "cleanup_run"


def test_resume_serves_the_rest_on_the_same_port(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    alice.submit({"label": "pos"})
    url = run.url
    run.stop()
    run.resume()
    assert run.serving and run.state == "running" and run.url == url
    assert run.counts == run.counts | {"completed": 1, "launched": 5, "expired": 0}
    cn.simulate(run, workers=2)
    assert run.counts["completed"] == 6
    wait_until(lambda: run.state == "completed")


def test_another_process_reopens_everything(run: cn.Run, worker) -> None:
    alice = worker("alice")
    alice.enter()
    alice.submit({"label": "pos", "why": "because"})
    script = textwrap.dedent(f"""
        import crowdnb as cn
        project = cn.open({str(run.store.root)!r})
        run = project.runs[{run.id}]
        print(run.state, run.spec.title, run.spec.units_per_assignment, len(run.df), run.df.loc[0, "why"])
        print(project.tasks.loc[0, "name"], run.config["provider"]["name"], run.config["architect"]["name"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split("\n")[:2] == ["running Sentiment 1 1 because", "sentiment mock local"]


SERVING_CHILD = """
import sys
import crowdnb as cn
task = cn.Task("sentiment", title="Sentiment", reward=0.1, html=sys.argv[2], data=[{"text": "s%d" % i} for i in range(6)],
               project=cn.open(sys.argv[1], create=True))
run = task.launch(provider="mock", architect="local")
print(run.id, run.url, flush=True)
sys.stdin.read()  # serves until killed
"""


def test_crashed_run_can_be_resumed_from_a_new_process(tmp_path) -> None:
    """A kernel that died leaves the run 'running'; cn.open + resume() continue it."""
    root = tmp_path / "project"
    child = subprocess.Popen([sys.executable, "-c", SERVING_CHILD, str(root), FORM], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, child.stderr.read() if child.stderr else "no output"
        run_id, url = line.split()
        taken = requests.get(url + "?worker_id=alice", headers={"Accept": "application/json"}, timeout=10)
        assert taken.status_code == 200 and taken.json()["status"] == "assigned"
    finally:
        child.kill()  # SIGKILL: no clean-up of any kind, as when a kernel dies
        child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    script = textwrap.dedent(f"""
        import crowdnb as cn
        run = cn.open({str(root)!r}).runs[{run_id}]
        print(run.state, run.counts["assigned"])
        run.stop(); run.resume()
        sim = cn.simulate(run, workers=2)
        print(run.counts["completed"], sim.errors)
        run.stop()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split("\n")[:2] == ["running 1", "6 []"]


def test_open_projects_close_at_interpreter_exit(tmp_path) -> None:
    """A script that ends without run.stop() stops its runs cleanly: no run is left 'running' as by a crash."""
    script = textwrap.dedent(f"""
        import threading
        import crowdnb as cn
        project = cn.open({str(tmp_path / "p")!r}, create=True)
        assert cn.open({str(tmp_path / "p")!r}) is project  # opened twice: one object
        task = cn.Task("t", title="T", reward=0.1, html={FORM!r}, data=[{{"text": "x"}}], project=project)
        run = task.launch(provider="mock", architect="local")
        print(run.id, run.state, sorted(t.name for t in threading.enumerate() if t.name.startswith("crowdnb-monitor")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    run_id, state, threads = out.stdout.split(" ", 2)
    assert state == "running" and threads.strip() == f"['crowdnb-monitor-{run_id}']"
    project = cn.open(tmp_path / "p")
    run = project.runs[int(run_id)]
    assert run.state == "stopped" and run.counts["expired"] == 1  # stopped at exit, as run.stop() does


def test_a_closed_project_opens_afresh(tmp_path) -> None:
    project = cn.open(tmp_path / "p", create=True)
    run = cn.Task("t", title="T", reward=0.1, html=FORM, data=[{"text": "x"}], project=project).launch()
    project.close()
    assert not run.serving and run.state == "stopped"
    again = cn.open(tmp_path / "p")
    assert again is not project and again.runs[run.id].state == "stopped"
    again.close()


def test_reruns_collate_in_the_task_frame(make_run) -> None:
    first = make_run()
    cn.simulate(first, workers=2)
    first.stop()
    second = make_run()
    cn.simulate(second, workers=2)
    frame = cn.open(second.store.root).task_frame("sentiment")
    assert len(frame) == 12 and set(frame["run_id"]) == {first.id, second.id}
    assert [r.id for r in cn.open(second.store.root).task_runs("sentiment")] == [first.id, second.id]


def test_generator_data_is_fed_lazily_and_completes_when_exhausted(make_run) -> None:
    pulled = []

    def rows():
        for i in range(150):  # two batches of the feed
            pulled.append(i)
            yield {"text": f"g{i}"}

    run = make_run(data=rows())
    assert len(pulled) <= 101  # one batch, not the whole generator
    assert run.state == "running"
    cn.simulate(run, workers=4)
    wait_until(lambda: run.state == "completed", timeout=30)
    assert len(run.df) == 150 and len(pulled) == 150


def test_bad_row_in_a_generator_is_reported_not_fatal(make_run) -> None:
    def rows():
        yield {"text": "fine"}
        yield {"nope": 1}

    run = make_run(data=rows())
    cn.simulate(run, workers=1)
    wait_until(lambda: run.errors, timeout=5)
    assert "generator, row 2: column 'text' is missing" in run.errors[0]
    assert len(run.df) == 1


def test_on_submit_is_called_after_the_commit(run: cn.Run, worker) -> None:
    seen = []
    run.on_submit(
        lambda event: seen.append((event["answers"]["label"], run.store.scalar("SELECT count(*) FROM submissions")))
    )
    alice = worker("alice")
    alice.enter()
    alice.submit({"label": "neg"})
    wait_until(lambda: seen, "the on_submit callback")
    assert seen == [("neg", 1)]


def test_live_frame_reflects_review_decisions(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    frame = run.df
    assert set(frame["status"]) == {"completed"}
    run.approve(frame["unit_id"][:2])
    run.reject(int(frame["unit_id"][2]), note="did not read the sentence")
    assert list(run.df["status"][:3]) == ["accepted", "accepted", "rejected"]
    assert frame["status"].eq("completed").all()  # a frame already handed out does not change under the user
    cold = LiveFrame(run.store, "run", run.id).refresh()  # what a new process reads: reviews moved revisions
    assert cold.equals(run.df)  # same rows, same (submission) order


def test_approving_twice_pays_once(run: cn.Run) -> None:
    cn.simulate(run, workers=1)
    unit = int(run.df.loc[0, "unit_id"])
    assert run.approve(unit) == 1
    assert run.approve(unit) == 0
    assert cn.open(run.store.root).run(run.id).approve(unit) == 0
    payments = run.store.query("SELECT * FROM provider_calls WHERE call = 'approve'")
    assert len(payments) == 1 and payments[0]["amount"] == 0.1
    reviews = run.store.query("SELECT action, actor FROM reviews")
    assert reviews == [{"action": "accepted", "actor": "requester"}]


def test_illegal_review_is_refused(run: cn.Run, worker) -> None:
    cn.simulate(run, workers=1)
    unit = int(run.df.loc[0, "unit_id"])
    run.approve(unit)
    with pytest.raises(StateError, match="from 'accepted' to 'rejected'"):
        run.reject(unit)
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'reject'") == 0


def test_unknown_provider_lists_the_installed_ones(project: cn.Project) -> None:
    task = cn.Task("t", title="T", reward=0, html="<input name=a>", project=project)
    with pytest.raises(cn.ConfigError, match=r"unknown provider 'mturkk'; installed: .*mock"):
        task.launch(provider="mturkk")
    assert project.store.query("SELECT * FROM task_runs") == []


def test_resume_falls_back_to_a_free_port_when_its_port_is_taken(run: cn.Run) -> None:
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    run.stop()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        run.resume()
        assert run.serving and run.url != f"http://127.0.0.1:{port}/"
    assert requests.get(run.url + "healthz", timeout=5).json()["ok"] is True


def test_resume_with_more_data_from_a_generator(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    run.stop()
    run.resume(data=({"text": f"more {i}"} for i in range(3)))
    cn.simulate(run, workers=2)
    wait_until(lambda: run.state == "completed")
    assert len(run.df) == 9 and sorted(run.df["row_index"]) == list(range(9))


def test_taken_port_is_one_line_with_a_hint_that_works_and_leaves_no_run(project: cn.Project, capfd) -> None:
    task = cn.Task("t", title="T", reward=0, html="<input name=a>", data=[{}] * 3, project=project)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(cn.ArchitectError) as failed:
            task.launch(architect_options={"port": port})
        message = str(failed.value)
        assert message == (
            f"port {port} on 127.0.0.1 is already in use; "
            "launch with port=0 to take a free one: task.launch(port=0), %crowd launch --port 0"
        )
        assert failed.value.__cause__ is None and failed.value.__suppress_context__  # no chained traceback
        assert capfd.readouterr().err == ""  # werkzeug printed its own lines to stderr
        assert project.store.query("SELECT * FROM task_runs") == [] and project.runs == {}
        assert project.store.query("SELECT * FROM units") == [] and project.store.query("SELECT * FROM tasks") == []
        assert project.served == {}
        with pytest.raises(cn.ArchitectError, match="is already in use"):
            task.launch(port=port)  # what the hint says users type
        run = task.launch(port=0)
    try:
        assert run.serving and list(project.runs) == [run.id] and run.counts["launched"] == 3
    finally:
        run.stop()


def test_port_given_twice_is_refused_before_anything_is_written(project: cn.Project) -> None:
    task = cn.Task("t", title="T", reward=0, html="<input name=a>", project=project)
    with pytest.raises(cn.ConfigError, match=r"port=0 and architect_options\['port'\]=8000 disagree"):
        task.launch(port=0, architect_options={"port": 8000})
    assert project.store.query("SELECT * FROM task_runs") == []


def test_a_launch_failing_after_its_units_were_stored_leaves_no_run(project: cn.Project) -> None:
    class Broken:  # an architect that cannot deploy, after the run's units were stored
        name = "broken"

        def deploy(self, app: object) -> str:
            raise cn.ArchitectError("no room on the cloud")

        def shutdown(self) -> None:
            pass

        def options(self) -> dict[str, object]:
            return {}

    earlier = cn.Task("other", title="T", reward=0, html="<input name=a>", project=project).launch()
    earlier.stop()
    task = cn.Task("t", title="T", reward=0, html="<input name=a>", data=[{}] * 4, project=project)
    with pytest.raises(cn.ArchitectError, match="no room on the cloud"):
        task.launch(architect=Broken())
    assert list(project.runs) == [earlier.id]
    assert [r["name"] for r in project.store.query("SELECT name FROM tasks")] == ["other"]
    assert project.store.scalar("SELECT count(*) FROM units WHERE task_run_id != ?", (earlier.id,)) == 0
    assert project.store.scalar("SELECT count(*) FROM assignments WHERE task_run_id != ?", (earlier.id,)) == 0
    assert task.runs == [] and task.df.empty


def test_project_folder_comes_from_crowdnb_home(tmp_path) -> None:
    script = "import crowdnb as cn; t = cn.Task('t', title='T', reward=0, html='<input name=a>'); print(t.project.root)"
    env = {**os.environ, "CROWDNB_HOME": str(tmp_path / "home")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == str(tmp_path / "home")
    assert (tmp_path / "home" / "crowdnb.db").is_file()


def test_links_for_a_remote_notebook(run: cn.Run, monkeypatch, caplog) -> None:
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    assert run.link() == run.url  # a plain Python process: the router's own address
    for name in ("JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_HOST", "CROWDNB_PUBLIC_URL", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", "nb.ipynb")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    with caplog.at_level(logging.WARNING, logger="crowdnb.architects.links"):
        # jupyter-server-proxy is installed, but nothing tells the Hub's public address: a path and a hint
        assert run.link("alice") == f"/user/ada/proxy/{port}/?worker_id=alice"
    assert "set CROWDNB_PUBLIC_URL" in caplog.text and "/user/ada/proxy/{port}/" in caplog.text
    monkeypatch.setenv("JUPYTERHUB_PUBLIC_URL", "https://hub.example.org/")  # c.JupyterHub.public_url
    assert run.link("alice") == f"https://hub.example.org/user/ada/proxy/{port}/?worker_id=alice"
    monkeypatch.setenv("JUPYTERHUB_HOST", "https://ada.hub.example.org")  # a Hub with user subdomains
    assert run.link() == f"https://ada.hub.example.org/user/ada/proxy/{port}/"
    monkeypatch.setenv("CROWDNB_PUBLIC_URL", "https://hub.example.org/user/ada/proxy/{port}")
    assert run.link() == f"https://hub.example.org/user/ada/proxy/{port}/"


@pytest.mark.parametrize(
    ("ip", "url", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8890/lab-base/", "http://127.0.0.1:8890/lab-base/proxy/{port}/"),
        ("localhost", "https://localhost:8890/", "https://localhost:8890/proxy/{port}/"),
        ("0.0.0.0", "http://3f2a9c1e7b4d:8890/", "/proxy/{port}/"),  # a container's name: not the browser's
    ],
)
def test_links_through_the_jupyter_server_that_started_the_kernel(
    run: cn.Run, monkeypatch, caplog, tmp_path, ip: str, url: str, expected: str
) -> None:
    """A kernel finds its server's runtime file by ``$JPY_PARENT_PID`` (the fields jupyter_server writes)."""
    port = int(run.url.rsplit(":", 1)[1].strip("/"))
    for name in ("JUPYTERHUB_SERVICE_PREFIX", "CROWDNB_PUBLIC_URL", "JPY_SESSION_NAME"):
        monkeypatch.delenv(name, raising=False)
    info = {"url": url, "hostname": ip, "port": 8890, "sock": "", "secure": url.startswith("https"), "pid": 4242}
    (tmp_path / "jpserver-4242.json").write_text(json.dumps({**info, "base_url": urlsplit(url).path}))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("JPY_PARENT_PID", "4242")
    with caplog.at_level(logging.WARNING, logger="crowdnb.architects.links"):
        assert run.link("bo") == expected.format(port=port) + "?worker_id=bo"
    assert ("CROWDNB_PUBLIC_URL" in caplog.text) == expected.startswith("/")
    monkeypatch.setenv("JPY_PARENT_PID", "4243")  # another server's kernel: its file is not there
    assert run.link() == f"/proxy/{port}/"


def test_a_batch_with_one_bad_unit_changes_nothing(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    ids = [int(u) for u in run.df["unit_id"]]
    run.approve(ids[2])
    with pytest.raises(StateError, match="from 'accepted' to 'rejected'"):
        run.reject(ids[:4], note="batch")
    assert run.counts["rejected"] == 0 and run.counts["accepted"] == 1
    assert run.store.scalar("SELECT count(*) FROM provider_calls WHERE call = 'reject'") == 0
