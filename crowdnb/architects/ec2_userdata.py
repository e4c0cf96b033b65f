"""The user data of a run's instance: ``ec2_userdata.sh`` with the run's values filled in."""

from __future__ import annotations

import re
import shlex
from importlib.resources import files

SCRIPT = "ec2_userdata.sh"
LIMIT = 16 * 1024  # EC2 refuses larger user data
_SLOT = re.compile(r"@(RUN_ID|BUNDLE_URL|PUBLIC_URL|SNAPSHOT_URI|SNAPSHOT_SECONDS|REGION)@")


def template() -> str:
    """The script as shipped, its ``@NAME@`` slots unfilled."""
    return (files(__package__) / SCRIPT).read_text(encoding="utf-8")


def render(*, run_id: int, bundle_url: str, public_url: str, snapshot_uri: str, region: str,
           snapshot_seconds: int = 300) -> str:  # fmt: skip
    """The script for one run; each value is shell-quoted into its slot."""
    if snapshot_seconds < 1:
        raise ValueError(f"snapshot_seconds {snapshot_seconds!r} must be at least 1")
    values = {
        "RUN_ID": str(int(run_id)), "BUNDLE_URL": bundle_url, "PUBLIC_URL": public_url,
        "SNAPSHOT_URI": snapshot_uri, "SNAPSHOT_SECONDS": str(int(snapshot_seconds)), "REGION": region,
    }  # fmt: skip
    script = _SLOT.sub(lambda m: shlex.quote(values[m.group(1)]), template())
    if len(script.encode()) > LIMIT:
        raise ValueError(f"the user data is {len(script.encode())} bytes; EC2 takes {LIMIT} at most")
    return script
