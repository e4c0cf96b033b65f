"""Local stand-ins for Heroku dynos, for the fake: a released slug's Procfile command run in a process.

Nothing from ``requirements.txt`` is installed; the command runs with this interpreter's environment
(its ``bin`` folder first on ``PATH``), the app's config vars and ``PORT``, as a dyno would. Stopping
one sends SIGTERM to its process group and SIGKILL after a grace period, as Heroku does.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

GRACE = 30.0  # seconds between SIGTERM and SIGKILL (Heroku's)


class LocalDynos:
    """One web process per app, each in a folder of its own under a temporary directory."""

    def __init__(self) -> None:
        self._root = tempfile.TemporaryDirectory(prefix="fake-heroku-dynos-")
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, app: str, slug: bytes, command: str, env: dict[str, str], port: int) -> None:
        """Unpack ``slug`` (a gzipped tarball) and run ``command`` in it on ``port``."""
        self.stop(app)
        where = Path(self._root.name) / app
        shutil.rmtree(where, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(slug), mode="r:gz") as tar:
            tar.extractall(where, filter="data")
        environment = {**os.environ, **env, "PORT": str(port), "DYNO": "web.1"}
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment.get('PATH', '')}"
        with (where / "dyno.log").open("wb") as log:
            self.running[app] = subprocess.Popen(
                ["/bin/sh", "-c", command], cwd=where, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def stop(self, app: str) -> None:
        """Stop the app's dyno, if it runs."""
        dyno = self.running.pop(app, None)
        if dyno is None:
            return
        if dyno.poll() is None:
            os.killpg(dyno.pid, signal.SIGTERM)
            try:
                dyno.wait(timeout=GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(dyno.pid, signal.SIGKILL)
                dyno.wait()

    def log(self, app: str) -> str:
        """What the app's dyno printed."""
        path = Path(self._root.name) / app / "dyno.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop every dyno and remove their folders."""
        for app in list(self.running):
            self.stop(app)
        self._root.cleanup()
