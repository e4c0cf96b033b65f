"""Platform credentials, kept outside every project folder with owner-only permissions.

``crowdnb register mturk|prolific`` (or ``cn.register``) writes them to
``$CROWDNB_CONFIG/credentials.json`` (default ``~/.config/crowdnb``), mode 0600. Providers read
them with ``lookup``, after the platform's own conventions: the AWS credential chain for MTurk,
``PROLIFIC_API_TOKEN`` for Prolific. Nothing here is ever logged, stored in a project database or
exported.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

from .errors import ConfigError

PLATFORMS: dict[str, tuple[str, ...]] = {
    "mturk": ("aws_access_key_id", "aws_secret_access_key"),
    "prolific": ("api_token",),
}


def config_dir() -> Path:
    """Where crowdnb keeps per-user configuration: ``$CROWDNB_CONFIG`` or ``~/.config/crowdnb``."""
    return Path(os.environ.get("CROWDNB_CONFIG") or Path.home() / ".config" / "crowdnb").expanduser()


def _path() -> Path:
    return config_dir() / "credentials.json"


def _read() -> dict[str, dict[str, str]]:
    path = _path()
    if not path.is_file():
        return {}
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix it or delete it and register again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object of platform → keys")
    return data


def register(platform: str, **keys: str) -> Path:
    """Store ``keys`` for ``platform`` (replacing earlier ones); returns the file written."""
    if platform not in PLATFORMS:
        raise ConfigError(f"unknown platform {platform!r}; crowdnb stores credentials for {', '.join(PLATFORMS)}")
    needed = PLATFORMS[platform]
    missing = [k for k in needed if not str(keys.get(k) or "").strip()]
    if missing:
        raise ConfigError(f"{platform} needs {', '.join(missing)}")
    unknown = sorted(set(keys) - set(needed) - {"region", "base_url", "endpoint_url"})
    if unknown:
        raise ConfigError(
            f"{platform} takes {', '.join(needed)} (and optional region/base_url); not {', '.join(unknown)}"
        )
    data = _read()
    data[platform] = {k: str(v).strip() for k, v in keys.items() if v is not None}
    return _write(data)


def lookup(platform: str) -> dict[str, str]:
    """The stored keys of ``platform`` ({} when none were registered)."""
    return dict(_read().get(platform, {}))


def forget(platform: str) -> bool:
    """Delete the stored keys of ``platform``; True if there were any."""
    data = _read()
    if data.pop(platform, None) is None:
        return False
    _write(data)
    return True


def _write(data: dict[str, dict[str, str]]) -> Path:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # mkstemp creates the file 0600: the keys are never readable by others, even for a moment
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".credentials-")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
    os.replace(tmp, _path())
    return _path()
