"""Data quality for a run's submissions: agreement, aggregation and worker quality, all pure functions.

>>> from crowdnb import quality
>>> quality.krippendorff_alpha(run.df, level="nominal")      # agreement among workers
>>> quality.majority_vote(run.df)                            # one label per item, with share and tie flag
>>> quality.dawid_skene(run.df).labels                        # labels weighted by estimated worker skill
>>> quality.mace(run.df).workers                              # per worker: competence (MACE; spammers near 0)
>>> quality.glad(run.df).items                                # per item: difficulty, with worker ability (GLAD)
>>> quality.worker_accuracy(run.df, gold={3: "pos"})          # per worker: gold accuracy, agreement
>>> run.df[~quality.too_fast(run.df)]                         # drop implausibly quick submissions

Items are ``assignment_id`` (one input row, labelled by several workers), raters ``worker`` and answers
``label`` unless ``item=``, ``worker=`` and ``answer=`` name other columns. Agreement lives in
``agreement``, aggregation in ``aggregate`` and ``models`` (MACE, GLAD); this module adds worker quality and
re-exports the rest.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .aggregate import DawidSkene, dawid_skene, majority_vote
from .agreement import categories, cohen_kappa, fleiss_kappa, krippendorff_alpha, ratings, value_counts
from .models import Glad, Mace, glad, mace

__all__ = [
    "DawidSkene",
    "Glad",
    "Mace",
    "cohen_kappa",
    "dawid_skene",
    "fleiss_kappa",
    "glad",
    "krippendorff_alpha",
    "mace",
    "majority_vote",
    "too_fast",
    "worker_accuracy",
]

Gold = Mapping[Hashable, Hashable] | pd.Series | pd.DataFrame


def worker_accuracy(
    frame: pd.DataFrame,
    gold: Gold | None = None,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
) -> pd.DataFrame:
    """Per worker: ``answers``, ``accuracy`` on ``gold`` items (if given) and ``agreement`` with the others.

    ``agreement`` is leave-one-out: each answer is compared with the majority of the *other* workers on
    that item, so nobody agrees with themselves; a tie among the others' answers gives 1/t credit when
    the worker's answer is one of the t tied ones. ``compared`` counts the answers that had others to
    compare with; ``agreement`` is NaN for a worker who never shared an item. ``gold`` maps item to the
    correct answer (a dict or Series, or a DataFrame with ``item`` and ``answer`` columns); answers are
    compared as they are, so keep the types alike (``"1"`` is not ``1``).
    """
    table = ratings(frame, item, worker, answer)
    cats = categories(table["answer"])
    items, counts = value_counts(table, cats)
    item_idx = items.get_indexer(pd.Index(table["item"]))
    label_idx = table["answer"].map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=int)
    rows = np.arange(len(table))
    others = counts[item_idx]
    others[rows, label_idx] -= 1
    top = others.max(axis=1)
    tied = others == top[:, None]
    compared = others.sum(axis=1) > 0
    credit = np.where(compared, tied[rows, label_idx] / tied.sum(axis=1), np.nan)

    result = pd.DataFrame({"worker": table["worker"], "credit": credit, "compared": compared})
    if gold is not None:
        truth = _gold_series(gold, item, answer)
        known = table["item"].isin(truth.index)
        expected = table["item"].map(truth)
        result["gold"] = known
        result["correct"] = np.where(known, table["answer"] == expected, np.nan)
    grouped = result.groupby("worker", sort=True)
    out = pd.DataFrame({"answers": grouped.size()})
    if gold is not None:
        out["gold_answers"] = grouped["gold"].sum().astype(int)
        out["accuracy"] = grouped["correct"].mean()
    out["compared"] = grouped["compared"].sum().astype(int)
    out["agreement"] = grouped["credit"].mean()
    out.index.name = worker
    return out


def _gold_series(gold: Gold, item: str, answer: str) -> pd.Series:
    """Gold answers as a Series indexed by item."""
    if isinstance(gold, pd.DataFrame):
        if item in gold.columns and answer in gold.columns:
            return gold.set_index(item)[answer].dropna()
        if answer in gold.columns:
            return gold[answer].dropna()
        listed = ", ".join(map(repr, gold.columns))
        raise ConfigError(f"gold frame needs columns {item!r} and {answer!r} (it has {listed}); or pass a dict")
    if isinstance(gold, pd.Series):
        return gold.dropna()
    if isinstance(gold, Mapping):
        return pd.Series(dict(gold), dtype=object).dropna()
    raise ConfigError(f"gold must be a dict, Series or DataFrame of item -> answer, got {type(gold).__name__}")


def too_fast(
    frame: pd.DataFrame, min_seconds: float | None = None, factor: float = 0.25, duration: str = "duration_s"
) -> pd.Series:
    """Flag submissions quicker than ``min_seconds``, or than ``factor`` × the median duration if not given.

    Rows without a duration are not flagged. The Series shares the frame's index, ready for ``frame[~flags]``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame of submissions (such as run.df), got {type(frame).__name__}")
    if duration not in frame.columns:
        listed = ", ".join(map(repr, frame.columns)) or "none"
        raise ConfigError(f"column {duration!r} not in the frame (columns: {listed}); pass duration= naming one")
    if min_seconds is not None and not min_seconds >= 0:
        raise ConfigError(f"min_seconds={min_seconds!r} must be a number of seconds, 0 or more")
    if not factor > 0:
        raise ConfigError(f"factor={factor!r} must be a positive number, e.g. 0.25 for a quarter of the median")
    seconds = pd.to_numeric(frame[duration], errors="coerce").astype(float)
    threshold = min_seconds if min_seconds is not None else factor * float(seconds.median())
    return pd.Series(seconds.to_numpy() < threshold, index=frame.index, name="too_fast", dtype=bool)
