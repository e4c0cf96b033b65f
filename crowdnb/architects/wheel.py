"""A wheel of the crowdnb running now, for a router that runs elsewhere (an EC2 instance, a Heroku dyno), so it
serves with the same code as the notebook.

Built from the source tree when crowdnb is installed from one (``pip install -e``: ``pip wheel`` with no build
isolation, so no network: hatchling is a dependency of the dev and heroku installs), else repacked from the
installed files as the distribution's RECORD lists them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from importlib.metadata import Distribution, distribution
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import ArchitectError


def crowdnb_wheel(out: Path) -> Path:
    """A wheel of the crowdnb running now, written into the folder ``out``; returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    dist = distribution("crowdnb")
    tree = source_tree(dist)
    if tree is not None:
        return _pip_wheel(tree, out)
    return repack(dist, out)


def source_tree(dist: Distribution) -> Path | None:
    """The folder ``dist`` was installed from (an editable or local install), if it still has its pyproject."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    url = urlsplit(info.get("url", ""))
    if "dir_info" not in info or url.scheme != "file":
        return None
    tree = Path(unquote(url.path))
    return tree if (tree / "pyproject.toml").is_file() else None


def _pip_wheel(tree: Path, out: Path) -> Path:
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
    done = subprocess.run([*command, str(tree)], capture_output=True, text=True, check=False)
    wheels = sorted(out.glob("crowdnb-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ArchitectError(
            f"could not build a wheel of crowdnb from {tree}: {done.stderr.strip()[-600:]}; "
            "pass wheel= a crowdnb wheel built with `pip wheel --no-deps`"
        )
    return wheels[-1]


def repack(dist: Distribution, out: Path) -> Path:
    """A wheel made again from an installed (not editable) distribution's files, as listed in its RECORD."""
    import zipfile

    name = dist.metadata["Name"].replace("-", "_")
    wheel = out / f"{name}-{dist.version}-py3-none-any.whl"
    records: list[str] = []
    info_dir = ""
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in dist.files or ():
            parts = file.parts
            # scripts live outside site-packages (pip makes them again from entry_points.txt);
            # caches and install markers are not part of a wheel
            if parts[0] == ".." or "__pycache__" in parts or file.name in {"RECORD", "INSTALLER", "REQUESTED"}:
                continue
            if file.name == "direct_url.json":
                continue
            if parts[0].endswith(".dist-info"):
                info_dir = parts[0]
            data = Path(str(file.locate())).read_bytes()
            archive.writestr(file.as_posix(), data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{file.as_posix()},sha256={digest},{len(data)}")
        if not info_dir:
            raise ArchitectError(f"cannot repack {name} {dist.version}: its RECORD lists no .dist-info folder")
        records.append(f"{info_dir}/RECORD,,")
        archive.writestr(f"{info_dir}/RECORD", "\n".join(records) + "\n")
    return wheel
