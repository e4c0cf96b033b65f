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
    ProviderError,
    StateError,
    WorkerRefused,
)
from .gold import Gold
from .onboarding import Onboarding
from .page import available_templates as templates
from .project import Project
from .project import open_project as open
from .qualifications import block, grant, revoke, unblock
from .qualifications import define as define_qualification
from .qualifications import delete as delete_qualification
from .qualifications import describe as describe_qualification
from .requirements import Requirement, allow_list, block_list, requirement
from .run import Run
from .screening import Screening
from .simulate import Simulation, simulate
from .task import Task
from .workers import bonus, message

__version__ = "0.1.0"

__all__ = [
    "ArchitectError",
    "AuthError",
    "ConfigError",
    "CrowdError",
    "DataError",
    "Gold",
    "NotFound",
    "Onboarding",
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
    "describe_qualification",
    "grant",
    "load_ipython_extension",
    "message",
    "open",
    "register",
    "requirement",
    "revoke",
    "simulate",
    "templates",
    "unblock",
]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext crowdnb``: register the ``%crowd`` magics."""
    from .magics import load_ipython_extension as load

    load(ipython)
