"""The public surface is pinned; plugins are found through entry points."""

from __future__ import annotations

import pytest

import crowdnb as cn
from crowdnb import plugins


def test_public_names_are_pinned() -> None:
    assert sorted(cn.__all__) == [
        "ArchitectError", "AuthError", "Chat", "ConfigError", "CrowdError", "DataError", "Gold", "NotFound", "Onboarding",
        "ProcedureError", "Project",
        "ProviderError", "Requirement", "Run", "Screening", "Simulation", "StateError", "Task", "WorkerRefused",
        "__version__", "allow_list", "attach", "block", "block_list", "bonus", "define_qualification",
        "delete_qualification", "describe", "describe_qualification", "grant", "load_ipython_extension", "message",
        "open", "register", "requirement", "restore", "revoke", "simulate", "templates", "unblock",
    ]  # fmt: skip
    for name in cn.__all__:
        assert hasattr(cn, name)


def test_errors_share_one_root() -> None:
    for name in [
        "ArchitectError",
        "AuthError",
        "ConfigError",
        "DataError",
        "NotFound",
        "ProcedureError",
        "ProviderError",
        "StateError",
        "WorkerRefused",
    ]:
        assert issubclass(getattr(cn, name), cn.CrowdError)


def test_builtins_register_through_entry_points() -> None:
    assert "mock" in plugins.installed("provider")
    assert "local" in plugins.installed("architect")
    assert plugins.load("provider", "mock").__name__ == "MockProvider"


def test_a_plugin_installed_while_the_process_runs_is_found(tmp_path) -> None:
    assert "mock" in plugins.installed("provider")  # entry points read (and kept) before the install
    dist = tmp_path / "crowdnb_lateplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: crowdnb-lateplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[crowdnb.providers]\nlate = crowdnb.providers.mock:MockProvider\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(tmp_path))  # what `pip install` in a running kernel amounts to
        assert plugins.load("provider", "late").__name__ == "MockProvider"
        assert "late" in plugins.installed("provider")
        with pytest.raises(cn.ConfigError, match=r"unknown provider 'nope'; installed: .*late.*mock"):
            plugins.load("provider", "nope")
    assert "late" not in plugins.installed("provider", fresh=True)  # uninstalled: gone once read again
