"""``task.launch(architect="heroku")`` end to end against the fake Platform API, whose dyno runs the built
Procfile here (``run_dynos=True``): the notebook operates the run (live frame, decisions, notebook Python),
closes and comes back, and ``run.stop()`` brings the rows home and destroys the app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from crowdnb_heroku.fake import FakeHeroku
from waiting import wait_until

import crowdnb as cn

PAGE = '<p>{{ text }}</p><input name="answer">'
TEST = '<p>{{ question }}</p><input name="answer">'


@pytest.fixture
def dynos(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHeroku]:
    """The fake, running each app's web dyno locally; its key is the notebook's $HEROKU_API_KEY."""
    with FakeHeroku(run_dynos=True) as running:
        monkeypatch.setenv("HEROKU_API_KEY", running.api_key)
        yield running


def test_a_notebook_operates_a_run_served_from_a_dyno(dynos: FakeHeroku, tmp_path: Path, wheel: Path) -> None:
    project = cn.open(tmp_path / "study", create=True)
    judged: list[str] = []

    def validate(answers: dict[str, Any]) -> bool:  # notebook Python, called from the dyno
        judged.append(answers["answer"])
        return answers["answer"] == "ready"

    task = cn.Task("dyno", title="T", reward=0.1, html=PAGE, data=[{"text": f"row {i}"} for i in range(3)],
                   project=project, onboarding=cn.Onboarding(html=TEST, data={"question": "q"}, validate=validate))  # fmt: skip
    options = {"base_url": dynos.base_url, "app_name": "crowdnb-launch", "poll_interval": 0.01, "wheel": str(wheel)}
    run = task.launch(provider="mock", architect="heroku", architect_options=options)
    try:
        assert run.url == dynos.apps["crowdnb-launch"]["web_url"]
        assert run.config["architect"]["options"]["app_name"] == "crowdnb-launch"
        sim = cn.simulate(run, workers=2, answer=lambda row: {"answer": row["text"]},
                          onboarding_answer=lambda data: {"answer": "ready"})  # fmt: skip
        assert sim.errors == [] and sim.submitted == 3 and judged == ["ready", "ready"]
        wait_until(lambda: len(run.df) == 3, "the dyno's submissions in the notebook's frame")
        ids = [int(u) for u in run.df["unit_id"]]
        assert run.approve(ids, bonus=0.1) == 3 and run.approve(ids, bonus=0.1) == 0  # paid once

        run.detach()  # the notebook closes: the dyno keeps serving
        assert requests.get(run.url + "healthz", timeout=5).ok
        again = cn.open(project.root).run(run.id).resume(onboarding_validate=validate)  # a new notebook
        assert again.serving and sorted(again.df["status"]) == ["accepted"] * 3
        again.detach()
    finally:
        run.stop()  # from the first notebook's object: it reattaches to stop the run there
    assert dynos.apps == {} and dynos.dynos.running == {}  # the app and its dyno are gone
    home = cn.open(project.root).run(run.id)
    assert home.state == "stopped" and sorted(home.df["answer"]) == ["row 0", "row 1", "row 2"]
    paid = project.store.query("SELECT amount FROM reviews WHERE action = 'bonus' AND task_run_id = ?", (run.id,))
    assert [p["amount"] for p in paid] == [0.1] * 3
