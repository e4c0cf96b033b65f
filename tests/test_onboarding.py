"""Onboarding: a test before the first unit; pass and fail are kept across runs; one worker can be reset."""

from __future__ import annotations

import pytest
import requests

import crowdnb as cn
from crowdnb import ConfigError

from .conftest import FORM, SENTENCES, Worker

TEST = '<p>{{ question }}</p><input name="answer">'
DATA = {"question": "Type the word 'ready'."}


def onboarding(**kwargs) -> cn.Onboarding:
    return cn.Onboarding(html=TEST, **({"data": DATA, "expected": {"answer": "ready"}} | kwargs))


@pytest.fixture
def trained(make_run) -> cn.Run:
    return make_run(onboarding=onboarding())


def take_test(run: cn.Run, name: str, answer: str) -> requests.Response:
    worker = Worker(run, name)
    entry = worker.enter().json()
    assert entry["status"] == "onboarding" and entry["input"] == DATA
    assert [f["name"] for f in entry["fields"]] == ["answer"]
    return worker.submit({"answer": answer})


def test_passing_worker_then_gets_units(trained: cn.Run) -> None:
    reply = take_test(trained, "alice", "ready")
    assert reply.status_code == 200 and reply.json()["completion"]["kind"] == "reload"
    assert Worker(trained, "alice").enter().json()["status"] == "assigned"
    project = cn.open(trained.store.root)
    assert project.worker("alice").qualifications == {"sentiment-onboarded": 1}
    attempt = project.store.query("SELECT details FROM reviews WHERE action = 'onboarding'")[0]["details"]
    assert '"answers": {"answer": "ready"}' in attempt and '"passed": true' in attempt


def test_failing_worker_is_refused_clearly_in_every_later_run(trained: cn.Run, make_run) -> None:
    reply = take_test(trained, "bob", "nope")
    assert reply.status_code == 403 and "did not pass the qualification test" in reply.json()["message"]
    again = Worker(trained, "bob").enter()
    assert again.status_code == 403 and "did not pass the qualification test" in again.json()["message"]
    assert cn.open(trained.store.root).worker("bob").qualifications == {
        "sentiment-onboarded": 0,
        "sentiment-onboarded-failed": 1,
    }
    take_test(trained, "alice", "ready")
    trained.stop()
    second = make_run(onboarding=onboarding())  # same task, a new run: results are reused
    assert Worker(second, "bob").enter().status_code == 403
    assert Worker(second, "alice").enter().json()["status"] == "assigned"


def test_reset_lets_one_worker_try_again(project: cn.Project) -> None:
    task = cn.Task(
        "sentiment", title="T", reward=0.1, html=FORM, data=SENTENCES, onboarding=onboarding(), project=project
    )
    run = task.launch()
    try:
        take_test(run, "bob", "nope")
        assert task.reset_onboarding("bob") is True
        assert take_test(run, "bob", "ready").status_code == 200
    finally:
        run.stop()


def test_double_submitted_test_is_judged_once(trained: cn.Run) -> None:
    worker = Worker(trained, "carol")
    worker.enter()
    first, second = worker.submit({"answer": "ready"}), worker.submit({"answer": "wrong"})
    assert first.status_code == second.status_code == 200
    assert trained.store.scalar("SELECT count(*) FROM reviews WHERE action = 'onboarding'") == 1


def test_validation_function_and_resume(make_run) -> None:
    run = make_run(onboarding=cn.Onboarding(html=TEST, data=DATA, validate=lambda a: a["answer"].strip() == "ready"))
    assert take_test(run, "dana", "  ready ").status_code == 200
    run.stop()
    reopened = cn.open(run.store.root).run(run.id)  # as in a new kernel: the function is not stored
    with pytest.raises(ConfigError, match=r"pass it again: run.resume\(onboarding_validate=fn\)"):
        reopened.resume()
    assert reopened.counts["expired"] == 6  # nothing was relaunched by the refused resume
    reopened.resume(onboarding_validate=lambda a: True)
    try:
        assert take_test(reopened, "erin", "anything").status_code == 200
    finally:
        reopened.stop()


def test_form_post_without_javascript_redirects_back_to_the_task(trained: cn.Run) -> None:
    http = requests.Session()
    page = http.get(trained.worker_url("fred"), timeout=10).text
    assert "Qualification test" in page and "Type the word" in page
    token = page.split('name="_crowd_token" value="')[1].split('"')[0]
    back = page.split('name="_crowd_return" value="')[1].split('"')[0]
    form = {"_crowd_token": token, "_crowd_submission_id": "onb-000001", "_crowd_return": back, "answer": "ready"}
    reply = http.post(trained.url + "submit", data=form, allow_redirects=False, timeout=10)
    assert reply.status_code == 303 and reply.headers["Location"].endswith("/?worker_id=fred")
    assert "sentence number" in http.get(trained.url + "?worker_id=fred", timeout=10).text


def test_bots_take_the_test(make_run) -> None:
    run = make_run(onboarding=onboarding())
    sim = cn.simulate(run, workers=3, onboarding_answer=lambda data: {"answer": "ready"})
    assert sim.errors == [] and sim.submitted == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expected": None}, "onboarding needs expected= answers or a validate= function"),
        ({"validate": "yes"}, "validate= must be a function"),
        ({"data": {}}, "the onboarding page uses question; give them in onboarding data="),
        ({"qualification": "bad name"}, "qualification name 'bad name' is not valid"),
    ],
)
def test_bad_onboarding_is_refused(kwargs, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        onboarding(**kwargs)
