"""crowdnb: run human data-collection studies from a Jupyter notebook.

>>> import crowdnb as cn
>>> task = cn.Task("sentiment", title="Sentiment", reward=0.1, template="text_classification", data="s.csv")
>>> run = task.launch()              # mock crowd, router in a thread of this process
>>> run.df                           # every submission so far
"""

from __future__ import annotations

from typing import Any

from .attach import attach
from .credentials import register
from .errors import (
    ArchitectError,
    AuthError,
    ConfigError,
    CrowdError,
    DataError,
    NotFound,
    ProcedureError,
    ProviderError,
    StateError,
    WorkerRefused,
)
from .notebook import views as _notebook_views
from .options import describe
from .pages.page import available_templates as templates
from .project import Project, restore
from .project import open_project as open
from .quality.gold import Gold
from .quality.onboarding import Onboarding
from .quality.requirements import Requirement, allow_list, block_list, requirement
from .quality.screening import Screening
from .router.rooms import Chat
from .run import Run
from .simulate import Simulation, simulate
from .task import Task
from .views import install as _install_views
from .workers import block, bonus, grant, message, revoke, unblock
from .workers import define as define_qualification
from .workers import delete as delete_qualification
from .workers import describe as describe_qualification

__version__ = "0.1.0"

__all__ = [
    "ArchitectError",
    "AuthError",
    "Chat",
    "ConfigError",
    "CrowdError",
    "DataError",
    "Gold",
    "NotFound",
    "Onboarding",
    "ProcedureError",
    "Project",
    "ProviderError",
    "Requirement",
    "Run",
    "Screening",
    "Simulation",
    "StateError",
    "Task",
    "WorkerRefused",
    "__version__",
    "allow_list",
    "attach",
    "block",
    "block_list",
    "bonus",
    "define_qualification",
    "delete_qualification",
    "describe",
    "describe_qualification",
    "grant",
    "load_ipython_extension",
    "message",
    "open",
    "register",
    "requirement",
    "restore",
    "revoke",
    "simulate",
    "templates",
    "unblock",
]


_install_views(_notebook_views)  # Task.preview_widget, Run.live and Run.review return these widgets


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext crowdnb``: register the ``%crowd`` magics."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)
