"""MACE and GLAD: one answer per item and an estimate of how far to trust each worker, in plain numpy.

* ``mace`` — Hovy, Berg-Kirkpatrick, Vaswani & Hovy (2013), "Learning Whom to Trust with MACE", NAACL-HLT,
  1120–1130. Each worker answers truthfully with probability ``competence`` θ, else "spams" from their own
  distribution ξ over the answers, whatever the truth.
* ``glad`` — Whitehill, Ruvolo, Wu, Bergsma & Movellan (2009), "Whose Vote Should Count More", NIPS 22.
  A worker of ability α answers item i correctly with probability σ(α·β_i), where 1/β_i is the item's
  ``difficulty``; a wrong answer is any of the other K − 1 categories alike (the multi-class extension).

Both read the frame as ``agreement.ratings`` does (missing answers dropped, a worker's last rating of an
item counts), give every category the same prior, start from fixed values (no random restarts, so the
same frame always gives the same result, in any row order) and stop when no posterior moves by more than
``tol``, or after ``max_iter`` rounds. Ties go to the first category of ``order=``, else the smallest answer.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .agreement import categories, ratings, value_counts

_MACE_START = 0.8  # every worker's starting competence; their spam distribution starts uniform
_GLAD_PRIOR = 1.0  # start and mean of the unit-variance Gaussian priors on α and on log β (as crowd-kit's GLAD)
_GLAD_ROUNDS = 5  # Newton rounds (α, then log β) per GLAD M-step
_GLAD_MAX_STEP = 1.0  # cap on any one parameter's move in one round


@dataclass(frozen=True)
class Mace:
    """What ``mace`` estimated: labels, posteriors, each worker's competence and spam distribution."""

    labels: pd.DataFrame  # per item: the most likely answer and its posterior ``probability``
    posteriors: pd.DataFrame  # per item × category: the posterior probability of each true answer
    workers: pd.DataFrame  # per worker: ``answers`` and ``competence`` θ, the chance they answer truthfully
    spam: pd.DataFrame  # per worker × category: ξ, how they answer when they do not
    iterations: int
    converged: bool


@dataclass(frozen=True)
class Glad:
    """What ``glad`` estimated: labels, posteriors, each worker's ability and each item's difficulty."""

    labels: pd.DataFrame  # per item: the most likely answer and its posterior ``probability``
    posteriors: pd.DataFrame  # per item × category: the posterior probability of each true answer
    workers: pd.DataFrame  # per worker: ``answers`` and ``ability`` α; higher is better, σ(αβ) = 1/K is chance
    items: pd.DataFrame  # per item: ``answers`` and ``difficulty`` 1/β (above 0; larger is harder)
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _Data:
    """The ratings as index arrays, one entry per rating, sorted by item then worker."""

    items: pd.Index
    cats: list[Hashable]
    workers: list[str]
    item_idx: np.ndarray
    worker_idx: np.ndarray
    label_idx: np.ndarray


def mace(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    order: Sequence[Hashable] | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> Mace:
    """MACE by EM: a posterior over each item's true answer, each worker's competence and spam distribution.

    Starts with every competence at 0.8 and every spam distribution uniform, so the first posteriors are a
    softened majority vote. The E-step gives the posterior over each item's true answer and, per rating,
    the chance that the worker answered truthfully; the M-step sets each competence and spam distribution
    from those expected counts plus ``smoothing`` (the paper's add-δ smoothing). Competence and spam come
    from a last M-step on the final posteriors.
    """
    if not smoothing > 0:
        raise ConfigError(f"smoothing={smoothing!r} must be a positive number, e.g. 0.01")
    data = _prepare(frame, item, worker, answer, order, max_iter, tol, "mace")
    k, w = len(data.cats), len(data.workers)
    competence, spam = np.full(w, _MACE_START), np.full((w, k), 1.0 / k)
    posterior = _mace_e_step(competence, spam, data)
    iterations, converged = 0, False
    while iterations < max_iter and not converged:
        iterations += 1
        competence, spam = _mace_m_step(posterior, competence, spam, data, smoothing)
        updated = _mace_e_step(competence, spam, data)
        converged = float(np.abs(updated - posterior).max()) < tol
        posterior = updated
    competence, spam = _mace_m_step(posterior, competence, spam, data, smoothing)
    labels, posteriors = _labels(posterior, data, item, answer)
    return Mace(
        labels=labels,
        posteriors=posteriors,
        workers=_per_worker(data, worker, competence=competence),
        spam=pd.DataFrame(spam, index=pd.Index(data.workers, name=worker), columns=pd.Index(data.cats)),
        iterations=iterations,
        converged=converged,
    )


def glad(
    frame: pd.DataFrame,
    item: str = "assignment_id",
    worker: str = "worker",
    answer: str = "label",
    order: Sequence[Hashable] | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> Glad:
    """GLAD by EM: a posterior over each item's true answer, each worker's ability and each item's difficulty.

    β is kept as exp(b) so that it stays positive. Every α and b starts at 1 and has a Gaussian prior of
    mean 1 and variance 1, as in crowd-kit's GLAD, which keeps a flawless worker's ability finite. The
    E-step is exact; the M-step raises the expected log-likelihood plus log-priors by 5 rounds of Newton
    steps (all α at once, then all b), each step its coordinate's gradient over its expected curvature,
    capped at ±1: no randomness and no scipy. Abilities and difficulties come from a last M-step.
    """
    data = _prepare(frame, item, worker, answer, order, max_iter, tol, "glad")
    ability, log_beta = np.full(len(data.workers), _GLAD_PRIOR), np.full(len(data.items), _GLAD_PRIOR)
    posterior = _glad_e_step(ability, log_beta, data)
    iterations, converged = 0, False
    while iterations < max_iter and not converged:
        iterations += 1
        ability, log_beta = _glad_m_step(posterior, ability, log_beta, data)
        updated = _glad_e_step(ability, log_beta, data)
        converged = float(np.abs(updated - posterior).max()) < tol
        posterior = updated
    ability, log_beta = _glad_m_step(posterior, ability, log_beta, data)
    labels, posteriors = _labels(posterior, data, item, answer)
    return Glad(
        labels=labels,
        posteriors=posteriors,
        workers=_per_worker(data, worker, ability=ability),
        items=pd.DataFrame(
            {"answers": np.bincount(data.item_idx, minlength=len(data.items)), "difficulty": np.exp(-log_beta)},
            index=data.items.rename(item),
        ),
        iterations=iterations,
        converged=converged,
    )


def _prepare(
    frame: pd.DataFrame,
    item: str,
    worker: str,
    answer: str,
    order: Sequence[Hashable] | None,
    max_iter: int,
    tol: float,
    method: str,
) -> _Data:
    """Check the arguments and turn the ratings into index arrays, in an order that ignores the frame's."""
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter={max_iter!r} must be a positive whole number")
    if not tol > 0:
        raise ConfigError(f"tol={tol!r} must be a positive number")
    table = ratings(frame, item, worker, answer)
    cats = categories(table["answer"], order)
    items, _ = value_counts(table, cats)
    codes, names = pd.factorize(table["worker"], sort=True)
    if len(names) < 2:
        raise ConfigError(
            f"{method} weighs workers against each other, so it needs two or more; column {worker!r} names only {names[0]!r}"
        )
    item_idx = items.get_indexer(pd.Index(table["item"]))
    worker_idx = np.asarray(codes)
    label_idx = table["answer"].map({c: i for i, c in enumerate(cats)}).to_numpy(dtype=int)
    rows = np.lexsort((worker_idx, item_idx))
    return _Data(items, cats, [str(n) for n in names], item_idx[rows], worker_idx[rows], label_idx[rows])


def _labels(posterior: np.ndarray, data: _Data, item: str, answer: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The most likely answer per item with its probability, and the posteriors as a frame."""
    best = posterior.argmax(axis=1)
    index = data.items.rename(item)
    labels = pd.DataFrame(
        {
            answer: pd.Series([data.cats[i] for i in best], index=data.items, dtype=object),
            "probability": posterior[np.arange(len(data.items)), best],
        },
        index=index,
    )
    return labels, pd.DataFrame(posterior, index=index, columns=pd.Index(data.cats))


def _per_worker(data: _Data, worker: str, **columns: np.ndarray) -> pd.DataFrame:
    """Per worker: the number of ``answers`` and the given columns."""
    answered = np.bincount(data.worker_idx, minlength=len(data.workers))
    return pd.DataFrame({"answers": answered, **columns}, index=pd.Index(data.workers, name=worker))


def _normalise(log_post: np.ndarray) -> np.ndarray:
    """Rows of unnormalised log-probabilities as probability distributions."""
    post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    return np.asarray(post / post.sum(axis=1, keepdims=True))


def _mace_e_step(competence: np.ndarray, spam: np.ndarray, data: _Data) -> np.ndarray:
    """Posterior over each item's true answer under MACE.

    P(answer a | truth t) = (1 − θ)·ξ[a] + θ·[a = t]. The (1 − θ)·ξ[a] factor is the same for every t, so
    only the ratio 1 + θ / ((1 − θ)·ξ[a]) at t = a matters; priors over the truth are uniform.
    """
    theta = competence[data.worker_idx]
    guess = (1 - theta) * spam[data.worker_idx, data.label_idx]
    log_post = np.zeros((len(data.items), len(data.cats)))
    np.add.at(log_post, (data.item_idx, data.label_idx), np.log1p(theta / guess))
    return _normalise(log_post)


def _mace_m_step(
    posterior: np.ndarray, competence: np.ndarray, spam: np.ndarray, data: _Data, smoothing: float
) -> tuple[np.ndarray, np.ndarray]:
    """Competence and spam distributions from the expected counts of truthful and spam answers."""
    w, k = spam.shape
    theta = competence[data.worker_idx]
    guess = (1 - theta) * spam[data.worker_idx, data.label_idx]
    # P(not spamming | data) = P(truth = the answer given) · θ / (θ + (1 − θ)·ξ[answer])
    truthful = posterior[data.item_idx, data.label_idx] * theta / (theta + guess)
    answered = np.bincount(data.worker_idx, minlength=w)
    knew = np.bincount(data.worker_idx, weights=truthful, minlength=w)
    guessed = np.full((w, k), smoothing)
    np.add.at(guessed, (data.worker_idx, data.label_idx), 1 - truthful)
    return (knew + smoothing) / (answered + 2 * smoothing), guessed / guessed.sum(axis=1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow for large |x|."""
    return np.asarray(0.5 * (1 + np.tanh(x / 2)))


def _glad_e_step(ability: np.ndarray, log_beta: np.ndarray, data: _Data) -> np.ndarray:
    """Posterior over each item's true answer under GLAD.

    log P(answer a | truth t) is log σ(αβ) when a = t, else log(1 − σ(αβ)) − log(K − 1); the difference,
    αβ + log(K − 1), is all that separates the candidate truths. Priors over the truth are uniform.
    """
    x = ability[data.worker_idx] * np.exp(log_beta[data.item_idx])
    log_post = np.zeros((len(data.items), len(data.cats)))
    np.add.at(log_post, (data.item_idx, data.label_idx), x + np.log(max(len(data.cats) - 1, 1)))
    return _normalise(log_post)


def _glad_m_step(
    posterior: np.ndarray, ability: np.ndarray, log_beta: np.ndarray, data: _Data
) -> tuple[np.ndarray, np.ndarray]:
    """Raise Q(α, b) = Σ c·log σ(x) + (1 − c)·log(1 − σ(x)) − ½Σ(α − 1)² − ½Σ(b − 1)², with x = α·exp(b).

    c is the posterior probability that the rating is correct. dQ/dx = c − σ(x); each round takes one
    Newton step in every α (Q is concave in α) and then one Fisher-scoring step in every b.
    """
    correct = posterior[data.item_idx, data.label_idx]
    w, n = len(ability), len(log_beta)
    for _ in range(_GLAD_ROUNDS):
        beta = np.exp(log_beta)[data.item_idx]
        p = _sigmoid(ability[data.worker_idx] * beta)
        grad = np.bincount(data.worker_idx, weights=(correct - p) * beta, minlength=w) - (ability - _GLAD_PRIOR)
        curvature = np.bincount(data.worker_idx, weights=p * (1 - p) * beta**2, minlength=w) + 1.0
        ability = ability + np.clip(grad / curvature, -_GLAD_MAX_STEP, _GLAD_MAX_STEP)
        x = ability[data.worker_idx] * beta
        p = _sigmoid(x)
        grad = np.bincount(data.item_idx, weights=(correct - p) * x, minlength=n) - (log_beta - _GLAD_PRIOR)
        curvature = np.bincount(data.item_idx, weights=p * (1 - p) * x**2, minlength=n) + 1.0
        log_beta = log_beta + np.clip(grad / curvature, -_GLAD_MAX_STEP, _GLAD_MAX_STEP)
    return ability, log_beta
