"""``architect="ec2"`` end to end, on this machine: moto holds the account, the instance runs its user data in a
network namespace of its own, a TLS proxy plays the load balancer's HTTPS listener and Route53's records are the
DNS (``tests/instances.py``). The notebook is this process (or a child process that dies), workers are bots and
Chromium, and after the teardown moto shows nothing billable.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

import crowdnb as cn
from crowdnb.architects.ec2 import Ec2Architect, pack, setup_name
from crowdnb.architects.ec2_setup import setup
from crowdnb.architects.wheel import crowdnb_wheel
from crowdnb.cli import cli
from crowdnb.errors import ArchitectError, ConfigError
from crowdnb.store import copies, setups

from .clouds import DOMAIN, REGION, Moto, billable
from .conftest import CHROMIUM, CHROMIUM_ARGS, FORM, SENTENCES, Worker, wait_until
from .instances import Authority, Hypervisor, LoadBalancer, Namespace, authority, hypervisor, namespace, resolving

__all__ = ["hypervisor"]  # a fixture of this module
ROOT = Path(__file__).parent.parent
TEST = '<p>{{ question }}</p><input name="answer">'


@pytest.fixture(scope="module")
def ec2_namespace() -> Iterator[Namespace]:
    with namespace(os.getpid() % 100_000 + 1) as where:
        yield where


@pytest.fixture(scope="module")
def moto_server(ec2_namespace: Namespace) -> Iterator[Moto]:
    """moto where the instances can reach it (the namespace's way out, or 127.0.0.1)."""
    server = Moto(ec2_namespace.host)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return authority(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return crowdnb_wheel(tmp_path_factory.mktemp("wheel"))


@dataclass
class Account:
    cloud: Any
    balancer: LoadBalancer
    hypervisor: Hypervisor


@pytest.fixture
def aws(moto_server: Moto, hypervisor: Hypervisor, tls: Authority, monkeypatch: pytest.MonkeyPatch
        ) -> Iterator[Account]:  # fmt: skip
    """A reset account with the domain set up, its load balancer and DNS played here, its certificate trusted."""
    moto_server.reset()
    cloud = moto_server.cloud()
    setup(cloud, DOMAIN)
    balancer = LoadBalancer(moto_server, hypervisor, tls)
    for name, value in moto_server.env().items():  # the notebook's boto3 finds these as a user's would
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls.ca))  # requests
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.ca))  # the operator's websocket (ssl's default context)
    with resolving(moto_server, balancer, monkeypatch):
        yield Account(cloud, balancer, hypervisor)
    balancer.close()
    assert billable(cloud) == [], "a test left something billable"


def ec2_options(moto: Moto, wheel: Path, **more: Any) -> dict[str, Any]:
    return {"domain": DOMAIN, "endpoint_url": moto.url, "region": REGION, "wheel": str(wheel), "health_timeout": 120,
            **more}  # fmt: skip


def kept(project: cn.Project, moto: Moto) -> None:
    """`crowdnb ec2 setup` once, into the project's database."""
    done = CliRunner().invoke(cli, ["ec2", "setup", DOMAIN, "--home", str(project.root), "--wait", "10",
                                    "--endpoint-url", moto.url, "--region", REGION])  # fmt: skip
    assert done.exit_code == 0, done.output


# --- the setup, kept in the project ---------------------------------------------------------------------
def test_setup_is_kept_in_the_project_database_not_beside_it(aws: Any, moto_server: Moto, project: cn.Project) -> None:
    before = sorted(p.name for p in project.root.iterdir())
    kept(project, moto_server)
    stored = setups.get(project.store, "ec2", setup_name(REGION, DOMAIN))
    assert stored is not None and stored["domain"] == DOMAIN and stored["listener_arn"].startswith("arn:aws:")
    assert sorted(p.name for p in project.root.iterdir()) == before  # no file beside the database
    architect = Ec2Architect(domain=DOMAIN, endpoint_url=moto_server.url, region=REGION)
    architect.bind(project.store)
    assert architect.setup().as_dict() == stored


def test_removing_the_setup_forgets_it_in_the_project(aws: Account, moto_server: Moto, project: cn.Project) -> None:
    kept(project, moto_server)
    done = CliRunner().invoke(cli, ["ec2", "cleanup", "--setup", DOMAIN, "--home", str(project.root),
                                    "--endpoint-url", moto_server.url, "--region", REGION])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "no longer keeps it" in done.output and setups.listed(project.store, "ec2") == {}


def test_a_domain_never_set_up_names_the_command_and_makes_nothing(aws: Any, moto_server: Moto, project: cn.Project,
                                                                   wheel: Path) -> None:  # fmt: skip
    task = cn.Task("nowhere", title="T", reward=0.1, html=FORM, data=SENTENCES[:1], project=project)
    options = ec2_options(moto_server, wheel, domain="other.example.org")
    with pytest.raises(ConfigError, match=r"run `crowdnb ec2 setup other.example.org` first"):
        task.launch(architect="ec2", architect_options=options)
    assert billable(aws.cloud) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [({}, r"needs the domain"), ({"domain": "localhost"}, r"not a DNS name"),
     ({"domain": DOMAIN, "subdomain": "No Spaces"}, r"not a DNS label"),
     ({"domain": DOMAIN, "snapshot_seconds": 0}, r"snapshot_seconds=0"),
     ({"domain": DOMAIN, "wheel": "/nowhere/crowdnb.whl"}, r"is not a file")],
)  # fmt: skip
def test_bad_options_are_refused_before_anything_is_made(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Ec2Architect(**options)


def test_the_run_copy_for_a_router_leaves_the_setups_out(project: cn.Project, tmp_path: Path) -> None:
    setups.keep(project.store, "ec2", "us-east-1/study.example.org", {"zone_id": "Z1"})
    copy = copies.backup(project.store, tmp_path / "copy" / "crowdnb.db")
    copies.keep_only(copy, 1)
    import sqlite3

    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM architect_setups").fetchone() == (0,)


def test_the_bundle_carries_a_consistent_database_the_wheel_and_the_environment(project: cn.Project, wheel: Path,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    import tarfile

    (project.root / "files").mkdir(exist_ok=True)
    (project.root / "files" / "a.txt").write_text("upload")
    (project.root / "router.log").write_text("not shipped")
    out = pack(project.root, tmp_path / "b.tar.gz", wheel, {"CROWDNB_LOG_LEVEL": "INFO"})
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("environment").read() == b'CROWDNB_LOG_LEVEL="INFO"\n'  # type: ignore[union-attr]
    assert names == {"project/crowdnb.db", "project/files/a.txt", wheel.name, "environment"}
    with pytest.raises(ConfigError, match=r"cannot go to the instance"):
        pack(project.root, tmp_path / "c.tar.gz", wheel, {"X": "$(reboot)"})


# --- one argument changed: local, process, ec2 -------------------------------------------------------------
@pytest.mark.parametrize("where", ["local", "process", "ec2"])
def test_a_notebook_launches_the_same_task_anywhere(where: str, request: pytest.FixtureRequest, project: cn.Project,
                                                     wheel: Path) -> None:  # fmt: skip
    options: dict[str, Any] = {}
    if where == "ec2":
        request.getfixturevalue("aws")
        moto = request.getfixturevalue("moto_server")
        kept(project, moto)
        options = ec2_options(moto, wheel, subdomain="sentiment")
    judged: list[str] = []

    def validate(answers: dict[str, Any]) -> bool:  # notebook Python, called by the router wherever it runs
        judged.append(answers["answer"])
        return answers["answer"].strip().lower() == "ready"

    onboarding = cn.Onboarding(html=TEST, data={"question": "Type 'ready'."}, validate=validate)
    task = cn.Task("sentiment", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES[:4], project=project,
                   onboarding=onboarding)  # fmt: skip
    run = task.launch(provider="mock", architect=where, architect_options=options)  # the one argument changed
    try:
        assert run.url == {"ec2": f"https://sentiment.{DOMAIN}/"}.get(where, run.url)
        sim = cn.simulate(run, workers=2, answer=lambda row: {"label": "pos", "why": row["text"]},
                          onboarding_answer=lambda data: {"answer": "ready"})  # fmt: skip
        assert sim.errors == [] and sim.submitted == 4
        wait_until(
            lambda: len(run.df) == 4, "the four submissions in the notebook's frame", timeout=30
        )  # the live frame
        assert sorted(run.df["why"]) == sorted(s["text"] for s in SENTENCES[:4])
        assert judged == ["ready", "ready"]  # each bot's onboarding, judged in this process
        ids = [int(u) for u in run.df["unit_id"]]
        assert run.approve(ids[:3], bonus=0.25, note="Thanks!") == 3
        assert run.approve(ids[:3], bonus=0.25, note="Thanks!") == 0  # twice: paid once
        assert run.reject(ids[3:], note="Empty answer") == 1
        assert sorted(run.df["status"]) == ["accepted", "accepted", "accepted", "rejected"]
    finally:
        run.stop()
    home = cn.open(project.root).run(run.id)
    assert home.state == "stopped" and sorted(home.df["status"]) == ["accepted", "accepted", "accepted", "rejected"]
    bonuses = project.store.query("SELECT amount FROM reviews WHERE action = 'bonus' AND task_run_id = ?", (run.id,))
    assert [b["amount"] for b in bonuses] == [0.25] * 3
    if where == "ec2":
        account = request.getfixturevalue("aws")
        assert len(account.hypervisor.booted) == 1 and account.hypervisor.running() == []  # booted, then gone
        assert billable(account.cloud) == []


# --- the notebook closes; the study goes on; the notebook comes back --------------------------------------
NOTEBOOK = """
import socket, sys
from tests.instances import patch_resolver
patch_resolver({moto!r}, {port!r})
import crowdnb as cn
project = cn.open(sys.argv[1])
def validate(answers):
    return answers["answer"] == "ready"
task = cn.Task("sentiment", title="Sentiment", reward=0.1, html={form!r}, data={rows!r}, project=project,
               onboarding=cn.Onboarding(html={test!r}, data={{"question": "q"}}, validate=validate))
run = task.launch(provider="mock", architect="ec2", architect_options={options!r})
print(run.id, flush=True)
sys.stdin.read()  # until killed
"""


def test_the_study_goes_on_while_the_notebook_is_away(aws: Account, moto_server: Moto, project: cn.Project,
                                                      wheel: Path) -> None:  # fmt: skip
    kept(project, moto_server)
    options = ec2_options(moto_server, wheel, subdomain="away")
    script = NOTEBOOK.format(moto=moto_server.url, port=aws.balancer.port, form=FORM, rows=SENTENCES[:4], test=TEST,
                             options=options)  # fmt: skip
    kernel = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(project.root)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        run_id = int(kernel.stdout.readline())  # type: ignore[union-attr]
        run = project.run(run_id)
        assert run.url == f"https://away.{DOMAIN}/"
        alice = Worker(run, "alice")
        assert alice.enter().json()["status"] == "onboarding"
        assert alice.submit({"answer": "ready"}).status_code == 200  # judged in the first notebook
        alice.enter()
        assert alice.submit({"label": "pos", "why": "before"}).status_code == 200
    finally:
        kernel.send_signal(signal.SIGKILL)  # the notebook dies (the laptop closes); the instance does not
        kernel.communicate()
    assert aws.hypervisor.running() and requests.get(run.url + "healthz", timeout=10).ok
    carol = Worker(run, "carol")
    away = carol.enter()  # her onboarding needs notebook Python: held, with a clear message
    assert away.status_code == 503 and "notebook is away" in away.json()["message"]
    alice.enter()  # work that needs no notebook goes on
    assert alice.submit({"label": "neg", "why": "while away"}).status_code == 200

    run.resume(onboarding_validate=lambda answers: answers["answer"] == "ready")  # a new notebook reattaches
    try:
        assert run.serving and len(aws.hypervisor.booted) == 1  # the same instance
        wait_until(lambda: len(run.df) == 2, "both of alice's answers, caught up", timeout=30)
        assert sorted(run.df["why"]) == ["before", "while away"]
        assert carol.enter().json()["status"] == "onboarding"
        assert carol.submit({"answer": "ready"}).status_code == 200
        assert run.approve([int(u) for u in run.df["unit_id"]], note="Thanks") == 2  # review from the notebook
    finally:
        run.stop()
    home = cn.open(project.root).run(run_id)
    assert sorted(home.df["why"]) == ["before", "while away"] and set(home.df["status"]) == {"accepted"}
    assert aws.hypervisor.running() == [] and billable(aws.cloud) == []


def test_a_reattach_to_a_router_that_does_not_answer_says_so(aws: Account, moto_server: Moto, project: cn.Project,
                                                              wheel: Path) -> None:  # fmt: skip
    kept(project, moto_server)
    task = cn.Task("gone", title="T", reward=0.1, html=FORM, data=SENTENCES[:2], project=project)
    run = task.launch(architect="ec2", architect_options=ec2_options(moto_server, wheel, subdomain="gone"))
    run.detach()  # the notebook closes
    (instance,) = aws.hypervisor.booted
    aws.hypervisor.shut_down(instance)  # the router dies with it
    with pytest.raises(ArchitectError, match=r"is not answering; it keeps the run's data: try run.resume\(\) again"):
        project.run(run.id).resume()
    Ec2Architect(**run.config["architect"]["options"]).teardown()  # what `crowdnb ec2 teardown RUN` does
    assert billable(aws.cloud) == []


@pytest.mark.browser
def test_a_worker_in_chromium_works_on_an_ec2_run(aws: Account, moto_server: Moto, project: cn.Project,
                                                   wheel: Path) -> None:  # fmt: skip
    from playwright.sync_api import sync_playwright

    kept(project, moto_server)
    task = cn.Task("browser", title="T", reward=0.1, html=FORM, data=SENTENCES[:1], project=project)
    run = task.launch(architect="ec2", architect_options=ec2_options(moto_server, wheel, subdomain="browser"))
    try:
        rules = f"--host-resolver-rules=MAP *.{DOMAIN} 127.0.0.1:{aws.balancer.port}"
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, rules])
            try:
                page = chromium.new_context(ignore_https_errors=True).new_page()  # the test authority's certificate
                page.goto(run.worker_url("ada"))
                page.check("input[value=neg]")
                page.fill("input[name=why]", "typed in Chromium")
                page.click("button[type=submit]")
                wait_until(lambda: len(run.df) == 1, "the browser's submission in the notebook's frame", timeout=30)
            finally:
                chromium.close()
        assert run.df.loc[0, "why"] == "typed in Chromium" and run.df.loc[0, "worker"] == "ada"
    finally:
        run.stop()
