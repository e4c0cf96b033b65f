"""Quality: qualification requirements and grants, onboarding tests, screening and gold units, agreement,
aggregation (majority vote, Dawid-Skene, MACE, GLAD) and worker quality.

The analysis functions are re-exported here, so ``from crowdnb import quality`` then
``quality.krippendorff_alpha(run.df)`` reads as before (see :mod:`crowdnb.quality.workers`).
"""

from __future__ import annotations

from .workers import *  # noqa: F403  (the public analysis API: agreement, aggregation, worker quality)
from .workers import __all__ as __all__
