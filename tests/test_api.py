"""The public surface is pinned; plugins are found through entry points."""

from __future__ import annotations

import crowdnb as cn
from crowdnb import plugins


def test_public_names_are_pinned() -> None:
    assert sorted(cn.__all__) == [
        "ArchitectError", "AuthError", "Chat", "ConfigError", "CrowdError", "DataError", "Gold", "NotFound", "Onboarding",
        "ProcedureError", "Project",
        "ProviderError", "Requirement", "Run", "Screening", "Simulation", "StateError", "Task", "WorkerRefused",
        "__version__", "allow_list", "attach", "block", "block_list", "bonus", "define_qualification",
        "delete_qualification", "describe_qualification", "grant", "load_ipython_extension", "message", "open", "register",
        "requirement", "restore", "revoke", "simulate", "templates", "unblock",
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
