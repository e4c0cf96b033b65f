"""The heroku architect against the fake Platform API: deploy → healthy → teardown, and every failure
leaving nothing billable.

The fake cannot build a slug, so in the end-to-end test it plays the dyno (``run_dynos=True``): scaling
``web`` up runs the built tarball's Procfile command with this venv's crowdnb on the port of the app's
``web_url``, and ``healthy()`` checks that locally started router.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from crowdnb_heroku import HerokuArchitect
from crowdnb_heroku.fake import FakeHeroku
from crowdnb_heroku.platform import HerokuError, Platform
from waiting import wait_until

import crowdnb as cn
import crowdnb.architects
from crowdnb.errors import ConfigError
from crowdnb.plugins import installed, load


@pytest.fixture
def dynos() -> Iterator[FakeHeroku]:
    """The fake, running the web dyno of each app locally."""
    with FakeHeroku(run_dynos=True) as running:
        yield running


def architect(fake: FakeHeroku, wheel: Path | None, **options: object) -> HerokuArchitect:
    platform = Platform(str(options.pop("api_key", fake.api_key)), fake.base_url, backoff=0.0)
    return HerokuArchitect(base_url=fake.base_url, poll_interval=0.01, wheel=wheel, platform=platform, **options)  # type: ignore[arg-type]


def test_deploy_serves_the_run_until_teardown(dynos: FakeHeroku, stopped_run: cn.Run) -> None:
    heroku = architect(dynos, None, app_name="crowdnb-e2e")  # the wheel of the running crowdnb is built here
    url = heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {"CROWDNB_LOG_LEVEL": "INFO"})
    assert url == dynos.apps["crowdnb-e2e"]["web_url"] and url.endswith("/")
    assert dynos.config["crowdnb-e2e"] == {"CROWDNB_LOG_LEVEL": "INFO"}
    assert dynos.formation["crowdnb-e2e"]["web"]["quantity"] == 1

    def up() -> bool:
        assert dynos.dynos.running["crowdnb-e2e"].poll() is None, dynos.dynos.log("crowdnb-e2e")  # the dyno died
        return heroku.healthy()

    wait_until(up, "the dyno's router to answer /healthz")
    unit = requests.get(url + "?worker_id=alice", headers={"Accept": "application/json"}, timeout=10).json()
    assert unit["token"]  # a worker is served by the deployed run
    dyno = dynos.dynos.running["crowdnb-e2e"]
    heroku.teardown()
    assert dynos.apps == {} and dyno.poll() is not None  # the app and its dyno are gone
    assert heroku.healthy() is False
    heroku.teardown()  # a second teardown has nothing left to do
    assert dynos.count("DELETE", "/apps/*") == 1


def test_failed_build_destroys_the_app_it_made(fake: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    fake.fail_next_build("ERROR: Could not find a version that satisfies the requirement gevent")
    heroku = architect(fake, wheel, app_name="crowdnb-fails")
    with pytest.raises(HerokuError, match=r"(?s)failed; its output ends:.*satisfies the requirement gevent"):
        heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert fake.apps == {} and fake.count("DELETE", "/apps/crowdnb-fails") == 1
    assert heroku.app is None


def test_refused_scale_destroys_the_app_it_made(fake: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    heroku = architect(fake, wheel, size="enormous-9x")
    with pytest.raises(HerokuError, match=r"422 invalid_params.*dyno size"):
        heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert fake.apps == {} and fake.count("DELETE", "/apps/*") == 1


def test_taken_name_leaves_the_other_app_alone(fake: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    Platform(fake.api_key, fake.base_url).create_app("crowdnb-taken")
    with pytest.raises(HerokuError, match=r"409 conflict"):
        architect(fake, wheel, app_name="crowdnb-taken").deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert list(fake.apps) == ["crowdnb-taken"] and fake.count("DELETE", "/apps/*") == 0


def test_bad_token_creates_nothing(fake: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    with pytest.raises(HerokuError, match=r"set HEROKU_API_KEY"):
        architect(fake, wheel, api_key="expired").deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert fake.apps == {}


def test_throttled_calls_are_retried_during_a_deploy(dynos: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    fake = dynos  # the deploy returns once the dyno answers
    fake.fail("POST", "/apps", status=429)
    fake.fail("GET", "/apps/*/builds/*", status=429)
    fake.fail("PATCH", "/apps/*/formation/web", status=503)
    heroku = architect(fake, wheel)
    url = heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert heroku.app is not None and url == fake.apps[heroku.app["name"]]["web_url"]
    assert fake.count("POST", "/apps") == 2 and fake.count("PATCH", "/apps/*/formation/web") == 2


def test_invalid_app_name_is_refused_before_any_call() -> None:
    with pytest.raises(ConfigError, match=r"'Study_1' is not a Heroku app name"):
        HerokuArchitect(app_name="Study_1", api_key="k")


def test_options_hold_what_a_resume_needs_and_never_the_key(
    dynos: FakeHeroku, stopped_run: cn.Run, wheel: Path
) -> None:
    fake = dynos  # the deploy returns once the dyno answers
    heroku = architect(fake, wheel, region="eu")
    heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert heroku.app is not None
    assert heroku.options() == {
        "app_name": heroku.app["name"],
        "region": "eu",
        "size": "basic",
        "base_url": fake.base_url,
    }
    assert fake.api_key not in repr(heroku.options()) and fake.api_key not in repr(heroku.platform)
    again = HerokuArchitect(**heroku.options(), api_key=fake.api_key, resume=True)  # type: ignore[arg-type]
    assert again.app == heroku.app and again.healthy()  # a new kernel finds the app again
    heroku.teardown()
    assert HerokuArchitect(**heroku.options(), api_key=fake.api_key, resume=True).app is None  # type: ignore[arg-type]


def test_a_dyno_that_never_answers_destroys_the_app(fake: FakeHeroku, stopped_run: cn.Run, wheel: Path) -> None:
    heroku = architect(fake, wheel, app_name="crowdnb-silent", boot_timeout=0.2)  # no dyno runs in this fake
    with pytest.raises(crowdnb.errors.ArchitectError, match=r"did not answer /healthz within 0.2 s; `heroku logs"):
        heroku.deploy_bundle(stopped_run.store.root, str(stopped_run.id), {})
    assert fake.apps == {} and heroku.app is None


def test_in_process_deploy_says_what_to_use_instead() -> None:
    with pytest.raises(crowdnb.errors.ArchitectError, match=r"deploy_bundle"):
        HerokuArchitect(api_key="k").deploy(None)  # type: ignore[arg-type]


def test_crowdnb_finds_the_heroku_architect_by_name_once_installed() -> None:
    assert "heroku" in installed("architect")
    assert load("architect", "heroku") is HerokuArchitect
    made = crowdnb.architects.create("heroku", app_name="crowdnb-by-name", api_key="k")
    assert isinstance(made, HerokuArchitect) and made.options()["app_name"] == "crowdnb-by-name"
