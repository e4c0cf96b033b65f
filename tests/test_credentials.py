"""Platform keys live outside the project, owner-only; retries back off on transient platform errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import crowdnb as cn
from crowdnb import credentials
from crowdnb.cli import cli
from crowdnb.errors import ProviderError
from crowdnb.providers.retry import retried


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CROWDNB_CONFIG", str(tmp_path / "config"))
    return tmp_path / "config"


def test_register_writes_owner_only_file(config: Path) -> None:
    path = cn.register("prolific", api_token="tok-123")
    assert path == config / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.lookup("prolific") == {"api_token": "tok-123"}
    assert credentials.lookup("mturk") == {}


def test_register_keeps_other_platforms_and_forget_removes_one() -> None:
    cn.register("prolific", api_token="p")
    cn.register("mturk", aws_access_key_id="AK", aws_secret_access_key="SK", region="us-east-1")
    assert credentials.lookup("prolific") == {"api_token": "p"}
    assert credentials.forget("prolific") is True
    assert credentials.forget("prolific") is False
    assert credentials.lookup("mturk")["aws_secret_access_key"] == "SK"


@pytest.mark.parametrize(
    ("platform", "keys", "message"),
    [
        ("mechanical", {"api_token": "x"}, "unknown platform 'mechanical'"),
        ("prolific", {}, "prolific needs api_token"),
        ("mturk", {"aws_access_key_id": "AK"}, "mturk needs aws_secret_access_key"),
        ("prolific", {"api_token": "x", "password": "y"}, "not password"),
    ],
)
def test_bad_registration_is_refused_and_writes_nothing(
    config: Path, platform: str, keys: dict[str, str], message: str
) -> None:
    with pytest.raises(cn.ConfigError, match=message):
        cn.register(platform, **keys)
    assert not (config / "credentials.json").exists()


def test_a_world_readable_file_is_refused(config: Path) -> None:
    path = cn.register("prolific", api_token="p")
    path.chmod(0o644)
    with pytest.raises(cn.ConfigError, match="chmod 600"):
        credentials.lookup("prolific")


def test_cli_register_prompts_without_echoing_the_secret(config: Path) -> None:
    result = CliRunner().invoke(cli, ["register", "prolific"], input="secret-token\n")
    assert result.exit_code == 0, result.output
    assert "secret-token" not in result.output
    assert credentials.lookup("prolific") == {"api_token": "secret-token"}
    result = CliRunner().invoke(cli, ["register", "mturk", "--access-key-id", "AK", "--secret-access-key", "SK"])
    assert result.exit_code == 0 and "SK" not in result.output


def test_retried_backs_off_on_transient_errors_then_succeeds() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ProviderError("Prolific", "GET studies/", "503 Service Unavailable", transient=True, status=503)
        return "ok"

    assert retried(flaky, sleep=sleeps.append, base_delay=1.0) == "ok"
    assert len(calls) == 3
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0


def test_retried_gives_up_after_the_last_attempt_and_never_retries_a_refusal() -> None:
    calls: list[int] = []

    def down() -> None:
        calls.append(1)
        raise ProviderError("MTurk", "CreateHIT", "timed out", transient=True)

    with pytest.raises(ProviderError, match="MTurk CreateHIT failed: timed out"):
        retried(down, attempts=3, sleep=lambda s: None)
    assert len(calls) == 3

    def refused() -> None:
        calls.append(1)
        raise ProviderError("MTurk", "CreateHIT", "RequestError: reward too low", status=400)

    calls.clear()
    with pytest.raises(ProviderError, match="reward too low"):
        retried(refused, sleep=lambda s: None)
    assert len(calls) == 1
