"""crowdnb's Heroku architect: ``task.launch(architect="heroku")`` once this package is installed.

It registers under the ``crowdnb.architects`` entry point; crowdnb itself never imports it.
"""

from __future__ import annotations

from .architect import HerokuArchitect
from .platform import HerokuError, Platform

__all__ = ["HerokuArchitect", "HerokuError", "Platform"]
