"""Inter-rater agreement over a submissions frame: Krippendorff's alpha, Cohen's and Fleiss' kappa.

Every function reads one tidy frame (one row per rating, like ``run.df``) through ``ratings``: rows with
a missing item, worker or answer are dropped, and when a worker rated an item more than once only their
last row counts. Filter the frame first to leave out, say, rejected units.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def ratings(frame: pd.DataFrame, item: str, worker: str, answer: str) -> pd.DataFrame:
    """The ``item``, ``worker`` and ``answer`` columns of the rated rows, one row per item and worker."""
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"expected a pandas DataFrame of submissions (such as run.df), got {type(frame).__name__}")
    for role, name in (("item", item), ("worker", worker), ("answer", answer)):
        if name not in frame.columns:
            listed = ", ".join(map(repr, frame.columns)) or "none"
            raise ConfigError(f"column {name!r} not in the frame (columns: {listed}); pass {role}= naming one of them")
    table = frame[[item, worker, answer]].dropna()
    table.columns = pd.Index(["item", "worker", "answer"])
    if table.empty:
        raise ConfigError(f"no ratings: the frame has no row with an item, a worker and a {answer!r} answer")
    if table["answer"].map(lambda v: isinstance(v, list | dict | set)).any():
        raise ConfigError(f"answers in {answer!r} are lists, sets or dicts; these measures need one value per rating")
    return table.drop_duplicates(["item", "worker"], keep="last").reset_index(drop=True)


def categories(values: pd.Series, order: Sequence[Hashable] | None = None, ordered: bool = False) -> list[Hashable]:
    """The answer categories: ``order`` as given, else sorted (numerically when every answer is a number)."""
    seen = values.drop_duplicates().tolist()
    if order is not None:
        listed = list(order)
        known = set(listed)
        if len(known) != len(listed) or not listed:
            raise ConfigError(f"order={listed!r} must list each category once")
        unknown = [v for v in seen if v not in known]
        if unknown:
            raise ConfigError(f"answers {unknown[:5]!r} are not in order={listed!r}; add them or fix the answers")
        return listed
    numbers = pd.to_numeric(pd.Series(seen, dtype=object), errors="coerce")
    if numbers.notna().all():
        return [seen[i] for i in np.argsort(numbers.to_numpy(dtype=float), kind="stable")]
    if ordered:
        raise ConfigError("ordinal answers that are not numbers need order=[...], from the lowest category up")
    return sorted(seen, key=lambda v: (type(v).__name__, str(v)))


def value_counts(table: pd.DataFrame, cats: Sequence[Hashable]) -> tuple[pd.Index, np.ndarray]:
    """Items (sorted) and an items × categories matrix of how many workers gave each answer."""
    items, item_codes = _factorize(table["item"])
    codes = table["answer"].map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=int)
    counts = np.zeros((len(items), len(cats)))
    np.add.at(counts, (item_codes, codes), 1.0)
    return items, counts


def _factorize(values: pd.Series) -> tuple[pd.Index, np.ndarray]:
    """Sorted unique values and each value's position among them."""
    codes, uniques = pd.factorize(values, sort=True)
    return pd.Index(uniques), np.asarray(codes)


def _distances(level: str, cats: Sequence[Hashable], n_c: np.ndarray) -> np.ndarray:
    """Krippendorff's squared difference δ² between every pair of categories."""
    if level == "nominal":
        return 1.0 - np.eye(len(cats))
    if level == "ordinal":
        # δ²(c, k) = (n_c/2 + Σ n_g for g strictly between c and k + n_k/2)², from the pairable-value counts
        low = np.minimum.outer(np.arange(len(cats)), np.arange(len(cats)))
        high = np.maximum.outer(np.arange(len(cats)), np.arange(len(cats)))
        cum = np.cumsum(n_c)
        between = cum[high] - cum[low] + n_c[low]
        return np.asarray((between - (n_c[low] + n_c[high]) / 2) ** 2)
    v = np.asarray(cats, dtype=float)
    diff = np.subtract.outer(v, v)
    if level == "interval":
        return np.asarray(diff**2)
    total = np.add.outer(v, v)
    return np.asarray(np.divide(diff, total, out=np.zeros_like(diff), where=total != 0) ** 2)


def krippendorff_alpha(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    level: str = "nominal",
    order: Sequence[Hashable] | None = None,
) -> float:
    """Krippendorff's alpha at ``level`` nominal, ordinal, interval or ratio; missing ratings are allowed.

    Items rated once carry no pairable value and are left out, as in Krippendorff (2011). Ordinal answers
    follow ``order`` (lowest first), or numeric order; interval and ratio answers must be numbers. The
    result is NaN when the pairable answers never vary (alpha is undefined then).
    """
    if level not in LEVELS:
        raise ConfigError(f"level={level!r} is not one of {', '.join(LEVELS)}")
    table = ratings(frame, item, worker, answer)
    if level in ("interval", "ratio"):
        if order is not None:
            raise ConfigError(f"order= applies to nominal and ordinal answers; {level} answers are numbers")
        numbers = pd.to_numeric(table["answer"], errors="coerce")
        if numbers.isna().any():
            bad = table.loc[numbers.isna(), "answer"].unique()[:5].tolist()
            raise ConfigError(f"{level} alpha needs numeric answers; {answer!r} has {bad!r}; use level='nominal'")
        table = table.assign(answer=numbers.astype(float))
    cats = categories(table["answer"], order, ordered=level == "ordinal")
    _, counts = value_counts(table, cats)
    per_item = counts.sum(axis=1)
    counts = counts[per_item >= 2]
    if not len(counts):
        raise ConfigError("alpha needs at least one item rated by two or more workers; none is yet")
    weights = counts / (counts.sum(axis=1) - 1)[:, None]
    coincidences = weights.T @ counts - np.diag(weights.sum(axis=0))
    n_c = coincidences.sum(axis=0)
    delta = _distances(level, cats, n_c)
    expected = (np.outer(n_c, n_c) * delta).sum()
    if expected == 0:
        return float("nan")
    return float(1.0 - (n_c.sum() - 1) * (coincidences * delta).sum() / expected)


def cohen_kappa(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    workers: tuple[str, str] | None = None,
    order: Sequence[Hashable] | None = None,
) -> float:
    """Cohen's kappa between two workers on the items both rated (``workers`` may be left out if only two).

    NaN when both workers gave one and the same answer throughout (chance agreement is 1).
    """
    table = ratings(frame, item, worker, answer)
    present = sorted(table["worker"].unique())
    if workers is None:
        if len(present) != 2:
            raise ConfigError(
                f"cohen_kappa compares two workers; the frame has {len(present)} ({_some(present)}); pass workers=(a, b)"
            )
        workers = (present[0], present[1])
    if len(workers) != 2 or workers[0] == workers[1]:
        raise ConfigError(f"workers={workers!r} must name two different workers")
    for name in workers:
        if name not in present:
            raise ConfigError(f"worker {name!r} has no rating in the frame; workers: {_some(present)}")
    wide = table.pivot(index="item", columns="worker", values="answer")[list(workers)].dropna()
    if wide.empty:
        raise ConfigError(f"workers {workers[0]!r} and {workers[1]!r} rated no item in common")
    cats = categories(pd.concat([wide[workers[0]], wide[workers[1]]]), order)
    index = {c: i for i, c in enumerate(cats)}
    table2 = np.zeros((len(cats), len(cats)))
    np.add.at(table2, (wide[workers[0]].map(index).to_numpy(int), wide[workers[1]].map(index).to_numpy(int)), 1.0)
    table2 /= table2.sum()
    observed = np.trace(table2)
    chance = float(table2.sum(axis=1) @ table2.sum(axis=0))
    if chance == 1:
        return float("nan")
    return float((observed - chance) / (1 - chance))


def fleiss_kappa(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    order: Sequence[Hashable] | None = None,
) -> float:
    """Fleiss' kappa; every item must have the same number of ratings (else use ``krippendorff_alpha``).

    The workers may differ from item to item. NaN when every rating is the same answer.
    """
    table = ratings(frame, item, worker, answer)
    items, counts = value_counts(table, categories(table["answer"], order))
    per_item = counts.sum(axis=1).astype(int)
    sizes = pd.Series(per_item).value_counts()
    if len(sizes) > 1:
        usual = int(sizes.index[0])
        odd = items[per_item != usual].tolist()[0]
        found = ", ".join(f"{n} items with {k}" for k, n in sizes.items())
        raise ConfigError(
            f"fleiss_kappa needs the same number of ratings on every item; found {found} (e.g. item {odd!r} has "
            f"{per_item[per_item != usual][0]}); keep items with {usual} ratings, or use krippendorff_alpha"
        )
    n = int(per_item[0])
    if n < 2:
        raise ConfigError("fleiss_kappa needs two or more ratings per item; every item has one")
    shares = counts.sum(axis=0) / counts.sum()
    observed = float(((counts**2).sum(axis=1) - n).mean() / (n * (n - 1)))
    chance = float((shares**2).sum())
    if chance == 1:
        return float("nan")
    return (observed - chance) / (1 - chance)


def _some(names: Sequence[Hashable], limit: int = 10) -> str:
    """A short listing of names for an error message."""
    shown = ", ".join(map(repr, names[:limit]))
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"
