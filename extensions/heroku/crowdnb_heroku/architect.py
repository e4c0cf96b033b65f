"""The ``heroku`` architect: a run's router on a Heroku web dyno, deployed through the Platform API.

A deploy makes a new app, sets its config vars, uploads the run's source tarball (``source.py``),
builds it, and scales one ``web`` dyno, then hands back the app's HTTPS URL. If any step fails the app
is destroyed again, so a failed deploy leaves nothing billable. ``teardown()`` destroys the app.

One dyno only: the run's database of record is a SQLite file on the dyno's (ephemeral) disk, and two
dynos would be two databases. See the README for what a dyno restart means for that file.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from crowdnb.errors import ArchitectError, ConfigError

from .platform import API, NAME_RULE, HerokuApp, HerokuError, Platform
from .source import build_source, sha256

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)


class HerokuArchitect:
    """Serve a run from a Heroku app of its own (``architect_options={...}``).

    Args:
        app_name: the Heroku app's name (3-30 lower-case letters, digits and dashes); None lets Heroku choose
        region: the Heroku region the app runs in (us, eu)
        api_key: the Heroku API key; None: ``$HEROKU_API_KEY``
        base_url: the Heroku Platform API's address (a local fake's for dry runs)
        size: the web dyno's size (basic, standard-1x, …)
        build_timeout: seconds the app's build may take before the deploy fails (and the app is destroyed)
        boot_timeout: seconds the web dyno may take to answer ``/healthz`` after the build, likewise
        poll_interval: seconds between two looks at the build and the dyno
        wheel: a crowdnb wheel to ship instead of one built from the running crowdnb
        platform: a Platform API client to use instead of one made from api_key and base_url (tests)
        resume: set by run.resume(): the app named ``app_name`` is the run's, deployed by an earlier kernel
    """

    name = "heroku"

    def __init__(
        self,
        app_name: str | None = None,
        region: str = "us",
        api_key: str | None = None,
        base_url: str = API,
        size: str = "basic",
        *,
        build_timeout: float = 900.0,
        boot_timeout: float = 180.0,
        poll_interval: float = 3.0,
        wheel: str | Path | None = None,
        platform: Platform | None = None,
        resume: bool = False,
    ) -> None:
        if app_name is not None and not re.fullmatch(NAME_RULE.strip("^$"), app_name):
            raise ConfigError(
                f"app_name {app_name!r} is not a Heroku app name: 3–30 lower-case letters, digits and dashes, "
                "starting with a letter (or None to let Heroku choose)"
            )
        self.app_name, self.region, self.base_url, self.size = app_name, region, base_url, size
        self.build_timeout, self.boot_timeout, self.poll_interval = build_timeout, boot_timeout, poll_interval
        self.wheel = Path(wheel) if wheel else None
        self.platform = platform or Platform(api_key, base_url)
        self.app: HerokuApp | None = None
        if resume and app_name is not None:
            try:
                self.app = self.platform.app_info(app_name)
            except HerokuError as exc:
                if exc.status != 404:
                    raise
                log.warning("Heroku app %s is gone: nothing to reattach to", app_name)

    def deploy(self, app: Flask) -> str:
        """Not served in this process: the run is deployed as a bundle (``deploy_bundle``)."""
        raise ArchitectError(
            "the heroku architect deploys a run's project folder with deploy_bundle(), not an in-process app: "
            "launch with task.launch(architect='heroku'), or use architect='local'"
        )

    def deploy_bundle(self, bundle: Path, run_id: str, env: dict[str, str]) -> str:
        """Create the app, build the run's source and start one web dyno; returns the public URL (ending "/") once
        the dyno answers there."""
        if self.app is not None:
            raise ArchitectError(f"this architect already deployed app {self.app['name']!r}; call teardown() first")
        self.app = self.platform.create_app(self.app_name, self.region)
        name = self.app["name"]
        url = self.app["web_url"].rstrip("/") + "/"
        log.info("Heroku app %s created for run %s (%s)", name, run_id, url)
        try:
            if env:
                self.platform.set_config(name, dict(env))
            with tempfile.TemporaryDirectory(prefix="crowdnb-heroku-") as tmp:
                tarball = build_source(
                    Path(bundle), run_id, Path(tmp) / "source.tar.gz", public_url=url, wheel=self.wheel
                )
                blob = self.platform.create_source()
                self.platform.upload(blob["put_url"], tarball.read_bytes())
                build = self.platform.create_build(
                    name, blob["get_url"], version=f"run-{run_id}", checksum=sha256(tarball)
                )
            log.info("building %s (build %s)", name, build["id"])
            self.platform.wait_build(name, build["id"], timeout=self.build_timeout, interval=self.poll_interval)
            self.platform.scale(name, "web", 1, self.size)
            self._wait_healthy(name)  # the provider is told the URL only once it answers there
        except BaseException as exc:  # an interrupt too: nothing billable is left behind
            self._destroy_after(exc)
            raise
        log.info("run %s deployed on %s", run_id, url)
        return url

    def _wait_healthy(self, name: str) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ArchitectError(
                    f"the web dyno of {name} did not answer /healthz within {self.boot_timeout:g} s; "
                    f"`heroku logs --app {name}` shows why"
                )
            time.sleep(self.poll_interval)

    def healthy(self) -> bool:
        """Whether the deployed router answers ``GET /healthz`` with ``{"ok": true}``."""
        if self.app is None:
            return False
        url = self.app["web_url"].rstrip("/") + "/healthz"
        try:
            answer = requests.get(url, timeout=5)
            return answer.status_code == 200 and answer.json().get("ok") is True
        except (requests.RequestException, ValueError, AttributeError):
            return False

    def teardown(self) -> None:
        """Destroy the app (its dyno, config and slug); a no-op when there is none."""
        if self.app is None:
            return
        name = self.app["name"]
        try:
            self.platform.destroy(name)
        except HerokuError as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise
        log.info("Heroku app %s destroyed", name)
        self.app = None

    def shutdown(self) -> None:
        """The local architect's word for ``teardown``."""
        self.teardown()

    def options(self) -> dict[str, object]:
        """What a resume needs (never the API key): the app actually made, region, size, API root."""
        return {
            "app_name": self.app["name"] if self.app else self.app_name,
            "region": self.region,
            "size": self.size,
            "base_url": self.base_url,
        }

    def _destroy_after(self, failure: BaseException) -> None:
        assert self.app is not None
        name = self.app["name"]
        try:
            self.platform.destroy(name)
            log.info("deploy failed; Heroku app %s destroyed", name)
            self.app = None
        except HerokuError as exc:
            log.error("deploy failed and Heroku app %s could not be destroyed: %s", name, exc)
            failure.add_note(f"the Heroku app {name!r} may still exist: `heroku apps:destroy {name}` removes it")
