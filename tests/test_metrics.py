"""``/metrics``: Prometheus' text format for the operator, scraped over real HTTP and parsed with
prometheus-client's own parser; its figures agree with ``run.counts`` and ``run.spend``."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import crowdnb as cn
from crowdnb.router.metrics import call_name, read

from .conftest import FORM, wait_until
from .serving import free_port, start_server

JSON = {"Accept": "application/json"}


def scrape(run: cn.Run, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or run.metrics_token}"} if token != "" else {}
    return requests.get(run.url + "metrics", headers=headers, timeout=10)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_scrape_during_a_simulated_run_agrees_with_counts_and_spend(make_run: Any) -> None:
    run = make_run(data=[{"text": f"s{i}"} for i in range(24)])
    sim = cn.simulate(run, workers=3, think=(0.01, 0.04), wait=False, seed=3)
    during = []
    while not sim.done:  # scrapes while bots submit: every one parses, and submissions only grow
        reply = scrape(run)
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain; version=")
        during.append(read(text_string_to_metric_families(reply.text))["submissions"])
    sim.wait()
    assert during == sorted(during) and len(during) >= 2
    assert sim.submitted == 24
    run.approve(run.df["unit_id"][:10], bonus=0.05)
    run.reject(run.df["unit_id"][10:12], note="empty")

    found = samples(scrape(run).text)
    counts, spend = run.counts, run.spend
    for state, n in counts.items():
        assert value(found, "crowdnb_units", state=state) == n, state
    for kind in ("rewards", "pending", "bonuses", "fees", "total"):
        assert value(found, "crowdnb_spend_dollars", kind=kind) == pytest.approx(spend[kind]), kind
    assert value(found, "crowdnb_spend_dollars", kind="rewards") == pytest.approx(1.0)
    assert value(found, "crowdnb_submissions_total", outcome="saved") == len(run.df) == 24
    assert value(found, "crowdnb_agents", state="approved") == 10
    assert value(found, "crowdnb_agents", state="rejected") == 2
    assert value(found, "crowdnb_run_info", run=str(run.id), task="sentiment", provider="mock", architect="local") == 1
    # requests by the route's rule, never the path: GET / with 24 worker ids is one series
    assert value(found, "crowdnb_http_requests_total", route="/submit", method="POST", status="200") == 24
    assert value(found, "crowdnb_http_request_duration_seconds_count", route="/submit") == 24
    routes = {dict(labels)["route"] for (name, labels) in found if name == "crowdnb_http_requests_total"}
    assert routes <= {"/", "/submit", "/ws", "/metrics", "/_crowd/<path:name>"}, routes
    # each bot's last visit was refused: no work left, or the run already finished
    ended = value(found, "crowdnb_refusals_total", reason="no_work") + value(
        found, "crowdnb_refusals_total", reason="finished"
    )
    assert ended >= 3
    # the platform calls the mock provider would have made, by call
    assert value(found, "crowdnb_platform_calls_total", platform="mock", call="setup_run") == 1
    assert value(found, "crowdnb_platform_calls_total", platform="mock", call="approve") == 10
    assert value(found, "crowdnb_platform_calls_total", platform="mock", call="bonus") == 10
    # and the figures the live panel shows are the same series, read in the kernel
    figures = run.figures
    assert figures["units"] == counts and figures["spend"] == pytest.approx(spend) and figures["submissions"] == 24


def test_only_the_operator_reads_metrics(run: cn.Run, worker: Any) -> None:
    alice = worker("alice")
    alice.enter()
    assert scrape(run, token="").status_code == 401  # a worker: no token at all
    assert scrape(run, token=alice.unit["token"]).status_code == 401  # a worker's own token
    assert scrape(run, token=run.feed_token).status_code == 401  # the feed's token follows submissions only
    assert scrape(run, token=run.metrics_token + "x").status_code == 401
    assert scrape(run, token=run.metrics_token).status_code == 200
    from crowdnb.router import operator

    assert scrape(run, token=operator.token(str(run.store.get_run(run.id)["secret"]), run.id)).status_code == 200
    found = samples(scrape(run).text)
    assert value(found, "crowdnb_http_requests_total", route="/metrics", method="GET", status="401") == 4


def test_connected_pages_count_open_sockets(run: cn.Run, worker: Any) -> None:
    import websocket

    alice = worker("alice")
    alice.enter()
    ws = websocket.create_connection(run.url.replace("http", "ws") + "ws?token=" + alice.unit["token"], timeout=5)
    try:
        wait_until(lambda: run.figures["connected"] == 1, "alice's page to count as connected")
        assert value(samples(scrape(run).text), "crowdnb_connected_pages") == 1
    finally:
        ws.close()
    wait_until(lambda: run.figures["connected"] == 0, "alice's page to be gone")


def test_two_runs_in_one_kernel_keep_their_own_counts(make_run: Any, worker: Any) -> None:
    first, second = make_run("first"), make_run("second")
    cn.simulate(first, workers=2)
    found = samples(scrape(second).text)
    assert value(found, "crowdnb_submissions_total", outcome="saved") == 0
    assert value(samples(scrape(first).text), "crowdnb_submissions_total", outcome="saved") == 6


def test_a_stopped_run_reads_its_figures_from_the_store(run: cn.Run) -> None:
    cn.simulate(run, workers=2)
    run.stop()
    again = cn.open(run.store.root).runs[run.id]
    assert again.figures["units"] == again.counts and again.figures["spend"] == again.spend
    assert again.figures["requests"] == 0  # nothing is counted where nothing is served


@pytest.mark.parametrize(
    ("call", "label"),
    [
        ("CreateHIT", "CreateHIT"),
        ("POST studies/", "POST studies/"),
        ("GET studies/6578a1b2c3d4e5f601234567/submissions/", "GET studies/{id}/submissions/"),
        (
            "GET https://api.prolific.com/api/v1/studies/65aa11bb22cc33dd44ee55ff/submissions/?page=2",
            "GET studies/{id}/submissions/",
        ),
        ("POST submissions/5f1e2d3c4b5a69788796a5b4/transition/", "POST submissions/{id}/transition/"),
        ("GET users/me/", "GET users/me/"),
    ],
)
def test_platform_calls_are_labelled_without_ids(call: str, label: str) -> None:
    assert call_name(call) == label


def test_live_panel_shows_what_a_scrape_reads(run: cn.Run, worker: Any) -> None:
    from crowdnb.notebook.widgets import LivePanel

    cn.simulate(run, workers=2)
    run.approve(run.df["unit_id"][:4], bonus=0.25)
    panel = LivePanel(run)
    panel.close()
    scraped = read(text_string_to_metric_families(scrape(run).text))
    submitted = sum(scraped["units"][s] for s in ("completed", "accepted", "rejected", "soft_rejected"))
    assert panel.figures["submitted"] == submitted == 6
    for kind in ("rewards", "pending", "bonuses", "total"):
        assert panel.figures[kind] == pytest.approx(scraped["spend"][kind]), kind
    assert scraped["spend"]["total"] == pytest.approx(1.40)  # 4 x 0.10 + 4 x 0.25
    assert "$1.40 paid" in panel.stats.value


def test_platform_calls_and_failures_are_counted_by_call(on_mturk: Any, mturk: Any) -> None:
    mturk.fail("CreateHITWithHITType", "500", times=2)  # retried: each attempt is a call, two of them failed
    run = on_mturk()
    found = samples(scrape(run).text)
    create = {"platform": "MTurk", "call": "CreateHITWithHITType"}
    assert value(found, "crowdnb_platform_calls_total", **create) == mturk.count("CreateHITWithHITType") == 5
    assert value(found, "crowdnb_platform_failures_total", **create, kind="transient") == 2
    assert value(found, "crowdnb_platform_calls_total", platform="MTurk", call="CreateHITType") == 1
    assert value(found, "crowdnb_platform_call_duration_seconds_count", platform="MTurk") == sum(
        v for (name, labels), v in found.items() if name == "crowdnb_platform_calls_total"
    )


def test_serve_counts_across_worker_processes(tmp_path: Path) -> None:
    project = cn.open(tmp_path / "served", create=True)
    rows = [{"text": f"row {i}"} for i in range(6)]
    run = cn.Task("served", title="T", reward=0.1, html='<input name="answer">', data=rows, project=project).launch()
    run.stop()
    folder = project.root / "metrics" / f"run{run.id}"
    folder.mkdir(parents=True)
    (folder / "counter_999999.db").write_bytes(b"left by an earlier server")  # wiped at start
    port = free_port()
    server = start_server(project.root, port)
    base, auth = f"http://127.0.0.1:{port}/", {"Authorization": f"Bearer {run.metrics_token}"}
    try:
        for name in ("alice", "bob"):
            unit = requests.get(f"{base}?worker_id={name}", headers=JSON, timeout=10).json()
            body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": "yes"}}
            assert requests.post(base + "submit", json=body, headers=JSON, timeout=10).ok
        assert requests.get(base + "metrics", timeout=10).status_code == 401
        found = samples(requests.get(base + "metrics", headers=auth, timeout=10).text)
        assert value(found, "crowdnb_submissions_total", outcome="saved") == 2
        assert value(found, "crowdnb_units", state="completed") == 2
        assert not (folder / "counter_999999.db").exists()
        (worker_pid,) = {int(p.stem.split("_")[-1]) for p in folder.glob("counter_*.db")}
        # gunicorn replaces a worker that died: the counts go on from the dead one's files
        os.kill(worker_pid, signal.SIGKILL)
        wait_until(lambda: _answers(base) and len(list(folder.glob("counter_*.db"))) == 2, "a new worker", 30)
        unit = requests.get(f"{base}?worker_id=carol", headers=JSON, timeout=10).json()
        body = {"token": unit["token"], "submission_id": uuid.uuid4().hex, "answers": {"answer": "no"}}
        assert requests.post(base + "submit", json=body, headers=JSON, timeout=10).ok
        found = samples(requests.get(base + "metrics", headers=auth, timeout=10).text)
        assert value(found, "crowdnb_submissions_total", outcome="saved") == 3
        assert value(found, "crowdnb_http_requests_total", route="/submit", method="POST", status="200") == 3
        assert value(found, "crowdnb_units", state="completed") == 3
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    logged = (project.root / "logs" / "crowdnb.log").read_text()  # the server's lines, in the project's log
    assert f"serving run {run.id}" in logged and f'"run": {run.id}' in logged
    assert run.metrics_token not in logged and run.feed_token not in logged  # credentials are never logged


def _answers(base: str) -> bool:
    try:
        return requests.get(base + "healthz", timeout=2).ok
    except requests.RequestException:
        return False


def test_a_run_served_elsewhere_reads_its_figures_from_its_metrics(project: cn.Project) -> None:
    rows = [{"text": f"s{i}"} for i in range(4)]
    run = cn.Task("far", title="Far", reward=0.1, html=FORM, data=rows, project=project).launch(architect="process")
    try:
        cn.simulate(run, workers=2)
        wait_until(lambda: len(run.df) == 4, "the four submissions in the notebook's frame")
        run.approve(run.df["unit_id"][:2])
        found = samples(scrape(run).text)
        assert value(found, "crowdnb_operator_connected") == 1  # this notebook
        assert value(found, "crowdnb_run_info", run=str(run.id), task="far", provider="mock", architect="hosted") == 1
        figures = run.figures
        assert figures["units"] == requests.get(run.url + "healthz", timeout=10).json()["units"]
        assert figures["units"]["accepted"] == 2 and figures["submissions"] == 4
        assert figures["spend"]["rewards"] == pytest.approx(0.2)
    finally:
        run.stop()


def test_the_grafana_dashboard_asks_only_for_series_a_run_serves(run: cn.Run) -> None:
    import json
    import re

    dashboard = json.loads((Path(cn.__file__).parent / "assets" / "grafana.json").read_text())
    families = {f.name for f in text_string_to_metric_families(scrape(run).text)}
    asked = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"crowdnb_\w+", target["expr"])
    }
    assert len(asked) >= 10 and asked <= families, asked - families
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
