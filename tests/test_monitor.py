"""The run's monitor: what a worker's request leaves for it (callbacks, platform calls), its back-off, stop."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

import pytest

import crowdnb as cn
from crowdnb.errors import ProviderError
from crowdnb.notebook.widgets import LivePanel
from crowdnb.providers import Report, RunInfo
from crowdnb.providers.mock import MockProvider
from crowdnb.router.backlog import Backlog
from crowdnb.testing.mturk import FakeMTurk

from .conftest import FORM, SENTENCES, wait_until
from .turkers import Turker


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


def test_a_slow_platform_never_slows_a_submit(on_mturk: Any, mturk: FakeMTurk) -> None:
    gold = cn.Gold([{"text": "a gold sentence", "answers": {"label": "pos"}}], max_wrong=0)
    run = on_mturk(gold=gold, options={"timeout": 90})  # the client waits for MTurk as long as it takes
    held = mturk.hold("AssociateQualificationWithWorker")  # MTurk takes the grant but answers only when told
    alice = Turker(mturk, "A1ALICE")
    alice.accept()
    assert alice.open().json()["input"]["text"] == "a gold sentence"
    alice.submit({"label": "neg"})  # wrong: disqualified; the submit answers (200) while the grant is held
    assert run.project.worker("A1ALICE", "mturk_sandbox").qualifications["turk-gold-disqualified"] == 1
    wait_until(lambda: mturk.count("AssociateQualificationWithWorker") == 1, "the monitor pushing the grant")
    assert mturk.score("turk-gold-disqualified", "A1ALICE") == 1  # done on MTurk; its answer still held
    held.set()
    run.stop()
    assert mturk.count("AssociateQualificationWithWorker") == 1  # exactly once


def test_on_submit_callbacks_run_outside_the_workers_request(run: cn.Run, worker: Any) -> None:
    release, seen = threading.Event(), []
    run.on_submit(lambda event: (release.wait(30), seen.append(event["answers"]["label"])))
    alice = worker("alice")
    alice.enter()
    assert alice.submit({"label": "pos"}).status_code == 200  # answered while the callback waits
    assert seen == []
    release.set()
    wait_until(lambda: seen == ["pos"], "the callback")


def test_callbacks_keep_the_order_of_submissions_and_a_failing_one_stops_nothing(make_run: Any, worker: Any) -> None:
    run = make_run()
    seen: list[str] = []
    run.on_submit(lambda event: 1 / 0)
    run.on_submit(lambda event: seen.append(event["answers"]["why"]))
    for n in range(4):
        bot = worker(f"bot{n}", run)
        bot.enter()
        bot.submit({"label": "pos", "why": str(n)})
    wait_until(lambda: len(seen) == 4, "four callbacks")
    assert seen == ["0", "1", "2", "3"]
    assert run.monitor_error is None  # a callback's failure is logged, not the monitor's


def test_a_full_backlog_runs_the_job_in_the_request_that_brought_it() -> None:
    backlog, done = Backlog(size=2), []
    for n in range(3):
        backlog.later(f"job {n}", lambda n=n: done.append(n))
    assert done == [2] and len(backlog) == 2  # the third found no room: done at once, nothing dropped
    assert backlog.drain() == 2 and done == [2, 0, 1] and len(backlog) == 0


class FlakyPlatform(MockProvider):
    """A platform whose status reads fail while ``down`` is set (passed to launch as an object)."""

    name = "flaky"
    poll_seconds = 0.01

    def __init__(self, store: Any) -> None:
        super().__init__(store)
        self.down = threading.Event()

    def sync(self, run: RunInfo) -> Sequence[Report]:
        if self.down.is_set():
            raise ProviderError("Flaky", "ListAssignments", "503 Service Unavailable")
        return []


def test_a_failing_monitor_backs_off_shows_why_and_recovers(project: cn.Project, caplog: Any) -> None:
    platform = FlakyPlatform(project.store)
    task = cn.Task("flaky", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES, project=project)
    run = task.launch(provider=platform, architect="local")
    panel = None
    try:
        assert run.monitor_error is None
        with caplog.at_level(logging.INFO, logger="crowdnb.monitor"):
            platform.down.set()
            wait_until(lambda: "(2 ticks)" in (run.monitor_error or ""), "two failed ticks", timeout=20)
            pauses = [float(m) for m in re.findall(r"trying again in ([\d.]+) s", caplog.text)]
            assert pauses[:2] == [1.0, 2.0]  # the pause doubles from the half-second tick
            assert "Traceback" in caplog.text and "503 Service Unavailable" in caplog.text  # logged, with its cause
            shown = r"monitor failing since \d\d:\d\d:\d\d \(\d+ ticks\): ProviderError: Flaky ListAssignments failed"
            assert re.search(shown, run.monitor_error or "")
            assert re.search(rf"running \({shown}", run._repr_html_()) and re.search(shown, repr(run))
            panel = LivePanel(run, interval=60)
            assert re.search(shown, panel.title.value)
            assert run.state == "running"  # workers are served meanwhile
            platform.down.clear()
            run.monitor_tick()  # succeeds: the monitor works again
            assert run.monitor_error is None
            assert "works again after" in caplog.text
    finally:
        if panel is not None:
            panel.stop()
        run.stop()


def test_monitor_tick_raises_what_fails_and_needs_a_served_run(project: cn.Project) -> None:
    platform = FlakyPlatform(project.store)
    task = cn.Task("flaky", title="Sentiment", reward=0.1, html=FORM, data=SENTENCES, project=project)
    run = task.launch(provider=platform, architect="local")
    platform.down.set()
    with pytest.raises(ProviderError, match="503"):
        run.monitor_tick()
    platform.down.clear()
    run.stop()
    with pytest.raises(cn.ConfigError, match=rf"run {run.id} is not served by this process; .*run.resume\(\)"):
        run.monitor_tick()


def test_stop_joins_the_monitor_and_the_live_panel(run: cn.Run) -> None:
    panel = LivePanel(run, interval=0.01)
    assert threads_named(f"crowdnb-monitor-{run.id}") and threads_named(f"crowdnb-live-{run.id}")
    panel.stop()
    assert not threads_named(f"crowdnb-live-{run.id}")
    run.stop()
    assert not threads_named(f"crowdnb-monitor-{run.id}")
