"""The crowdnb wheel a remote router (EC2, Heroku) installs: built from the source tree, or repacked."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

from crowdnb.architects.wheel import crowdnb_wheel, repack


def test_the_running_crowdnb_is_built_into_a_wheel_with_its_assets(tmp_path: Path) -> None:
    wheel = crowdnb_wheel(tmp_path)  # installed editable here: built from the tree, offline
    names = zipfile.ZipFile(wheel).namelist()
    assert wheel.name.startswith("crowdnb-") and "crowdnb/architects/ec2_userdata.sh" in names
    assert "crowdnb/assets/crowd.js" in names


def test_an_installed_distribution_is_repacked_into_a_wheel_that_installs(tmp_path: Path) -> None:
    # crowdnb is installed editable here, so the repack path is shown on a plain installed package
    wheel = repack(distribution("itsdangerous"), tmp_path)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
    )
    found = subprocess.run(
        [sys.executable, "-c", "import itsdangerous; print(itsdangerous.__file__)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.startswith(str(target))
