"""One answer per item from many workers: majority vote and Dawid–Skene.

Both read the frame as ``agreement.ratings`` does (missing answers dropped, a worker's last rating of an
item counts) and break ties the same way: towards the first category of ``order=``, else the smallest
answer (numerically when every answer is a number).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .agreement import categories, ratings, value_counts

# Pseudo-count added to every confusion-matrix cell and class count, so that no probability is exactly 0
# (a single surprising answer would otherwise veto a class for good).
_SMOOTHING = 0.01


def majority_vote(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    order: Sequence[Hashable] | None = None,
) -> pd.DataFrame:
    """Per item: the most frequent answer, its ``share`` of the votes, the number of ``votes`` and a ``tie`` flag.

    A tie goes to the first tied category of ``order=``, else to the smallest tied answer.
    """
    table = ratings(frame, item, worker, answer)
    cats = categories(table["answer"], order)
    items, counts = value_counts(table, cats)
    votes = counts.sum(axis=1)
    top = counts.max(axis=1)
    return pd.DataFrame(
        {
            answer: pd.Series([cats[i] for i in counts.argmax(axis=1)], index=items, dtype=object),
            "share": top / votes,
            "votes": votes.astype(int),
            "tie": (counts == top[:, None]).sum(axis=1) > 1,
        },
        index=items.rename(item),
    )


@dataclass(frozen=True)
class DawidSkene:
    """What ``dawid_skene`` estimated: labels, posteriors, and each worker's accuracy and confusion matrix."""

    labels: pd.DataFrame  # per item: the most likely answer and its posterior ``probability``
    posteriors: pd.DataFrame  # per item × category: the posterior probability of each true answer
    workers: pd.DataFrame  # per worker: ``answers`` and expected ``accuracy``
    confusion: dict[str, pd.DataFrame]  # per worker: P(given answer | true answer); rows are true answers
    priors: pd.Series  # estimated share of each true answer
    iterations: int
    converged: bool


def dawid_skene(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    order: Sequence[Hashable] | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> DawidSkene:
    """Dawid & Skene (1979) EM: per-worker confusion matrices and a posterior over each item's true answer.

    Starts from the vote shares of ``majority_vote`` and stops when no posterior moves by more than ``tol``
    or after ``max_iter`` rounds. Deterministic: no random start. A worker's ``accuracy`` is the expected
    share of their answers that are correct under the posteriors.
    """
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter={max_iter!r} must be a positive whole number")
    if not tol > 0:
        raise ConfigError(f"tol={tol!r} must be a positive number")
    table = ratings(frame, item, worker, answer)
    cats = categories(table["answer"], order)
    items, counts = value_counts(table, cats)
    item_idx = items.get_indexer(pd.Index(table["item"]))
    codes, names = pd.factorize(table["worker"], sort=True)
    worker_idx = np.asarray(codes)
    label_idx = table["answer"].map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=int)
    k, w = len(cats), len(names)

    posterior = counts / counts.sum(axis=1, keepdims=True)
    iterations, converged = 0, False
    while iterations < max_iter and not converged:
        iterations += 1
        priors, confusion = _m_step(posterior, item_idx, worker_idx, label_idx, k, w)
        updated = _e_step(priors, confusion, item_idx, worker_idx, label_idx, len(items))
        converged = float(np.abs(updated - posterior).max()) < tol
        posterior = updated
    priors, confusion = _m_step(posterior, item_idx, worker_idx, label_idx, k, w)

    best = posterior.argmax(axis=1)
    labels = pd.DataFrame(
        {
            answer: pd.Series([cats[i] for i in best], index=items, dtype=object),
            "probability": posterior[np.arange(len(items)), best],
        },
        index=items.rename(item),
    )
    correct = np.bincount(worker_idx, weights=posterior[item_idx, label_idx], minlength=w)
    answered = np.bincount(worker_idx, minlength=w)
    worker_names = [str(n) for n in names]
    return DawidSkene(
        labels=labels,
        posteriors=pd.DataFrame(posterior, index=items.rename(item), columns=pd.Index(cats)),
        workers=pd.DataFrame(
            {"answers": answered, "accuracy": correct / answered}, index=pd.Index(worker_names, name=worker)
        ),
        confusion={
            name: pd.DataFrame(confusion[j], index=pd.Index(cats, name="true"), columns=pd.Index(cats, name="given"))
            for j, name in enumerate(worker_names)
        },
        priors=pd.Series(priors, index=pd.Index(cats), name="prior"),
        iterations=iterations,
        converged=converged,
    )


def _m_step(
    posterior: np.ndarray, item_idx: np.ndarray, worker_idx: np.ndarray, label_idx: np.ndarray, k: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class priors and row-normalised confusion matrices (worker × true × given) from the posteriors."""
    priors = posterior.sum(axis=0) + _SMOOTHING
    given_true = np.full((w, k, k), _SMOOTHING)  # worker × given × true
    np.add.at(given_true, (worker_idx, label_idx), posterior[item_idx])
    confusion = given_true.transpose(0, 2, 1)
    return priors / priors.sum(), confusion / confusion.sum(axis=2, keepdims=True)


def _e_step(
    priors: np.ndarray,
    confusion: np.ndarray,
    item_idx: np.ndarray,
    worker_idx: np.ndarray,
    label_idx: np.ndarray,
    n_items: int,
) -> np.ndarray:
    """Posterior over each item's true answer given the priors and every worker's confusion matrix."""
    log_post = np.tile(np.log(priors), (n_items, 1))
    np.add.at(log_post, item_idx, np.log(confusion[worker_idx, :, label_idx]))
    log_post -= log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post)
    return np.asarray(post / post.sum(axis=1, keepdims=True))
