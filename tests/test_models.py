"""MACE and GLAD (crowdnb.quality.models): spammers found, truth recovered, and crowd-kit's small examples reproduced."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import crowdnb as cn
from crowdnb import quality
from crowdnb.quality import models

RELIABLE = ["good0", "good1", "good2"]
SPAMMERS = ["always_a0", "always_a1", "random"]


def crowd(seed: int = 3, n: int = 60, cats: str = "abc") -> tuple[pd.DataFrame, pd.Series]:
    """Three workers right 90% of the time (else a wrong answer at random), two who always answer "a"
    and one who answers at random; majority vote suffers, as a tie among six goes to "a"."""
    rng = np.random.default_rng(seed)
    truth = pd.Series([cats[i] for i in rng.integers(0, len(cats), n)])
    rows = []
    for i, t in truth.items():
        for name in RELIABLE:
            wrong = [c for c in cats if c != t]
            rows.append((i, name, t if rng.random() < 0.9 else wrong[rng.integers(0, len(wrong))]))
        rows += [(i, "always_a0", "a"), (i, "always_a1", "a"), (i, "random", cats[rng.integers(0, len(cats))])]
    return pd.DataFrame(rows, columns=["assignment_id", "worker", "label"]), truth


def accuracy(labels: pd.DataFrame, truth: pd.Series) -> float:
    return float((labels["label"] == truth.reindex(labels.index)).mean())


# crowd-kit (github.com/Toloka/crowd-kit), tests/conftest.py: the "toy YSDA" set (toy_answers_df and
# toy_ground_truth_df) and the "simple" set imitating Toloka answers (simple_answers_df, simple_ground_truth;
# worker and task ids shortened here, answers unchanged). Its tests/aggregation/test_mace_aggregation.py and
# test_glad_aggregation.py assert that MACE and GLAD recover every true label of the toy set, and GLAD every
# one of the simple set (MACE's plain EM, from crowd-kit's random start, 9 of 10).
TOY = "w1 t1 no|w1 t2 yes|w1 t3 yes|w1 t4 yes|w1 t5 yes|w2 t1 yes|w2 t2 yes|w2 t3 no|w2 t4 yes|w2 t5 no|w3 t2 yes|w3 t3 no|w3 t4 yes|w3 t5 no|w4 t1 yes|w4 t2 no|w4 t3 yes|w4 t4 yes|w4 t5 no|w5 t1 no|w5 t2 no|w5 t3 no|w5 t4 yes|w5 t5 no"
TOY_TRUTH = {"t1": "yes", "t2": "yes", "t3": "no", "t4": "yes", "t5": "no"}
SIMPLE = (
    "bde eec goose|bde efb parrot|bde f03 goose|bde f05 goose|bde f02 parrot|bde f08 parrot|"
    "b17 efb parrot|b17 ee8 chicken|b17 f07 parrot|b17 efd chicken|b17 ee4 chicken|b17 f03 goose|"
    "a45 ee8 chicken|a45 eec goose|a45 f05 goose|a45 f02 parrot|a45 f08 parrot|"
    "0f6 eec goose|0f6 ee8 chicken|0f6 f03 goose|0f6 ee4 chicken|"
    "0c3 eec parrot|0c3 efb parrot|0c3 f07 parrot|0c3 efd parrot|0c3 ee4 parrot|0c3 f05 parrot|"
    "e56 efb parrot|e56 ee8 goose|e56 f02 parrot|e56 f08 parrot|e56 f07 parrot|e56 efd goose"
)
SIMPLE_TRUTH = {"eec": "goose", "f03": "goose", "f05": "goose", "efb": "parrot", "f02": "parrot", "f08": "parrot"}
SIMPLE_TRUTH |= {"f07": "parrot", "ee8": "chicken", "efd": "chicken", "ee4": "chicken"}


def triples(text: str) -> pd.DataFrame:
    return pd.DataFrame([row.split() for row in text.split("|")], columns=["worker", "task", "label"])


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_mace_gives_spammers_low_competence_and_beats_majority_vote(seed: int) -> None:
    frame, truth = crowd(seed)
    result = quality.mace(frame)
    competence = result.workers["competence"]
    assert result.workers["answers"].tolist() == [60] * 6
    # over seeds 0-99: reliable workers 0.63-0.90, spammers at most 0.19 (the random one; always-"a" ~0)
    assert competence[RELIABLE].min() > 0.6 and competence[SPAMMERS].max() < 0.25
    # the two who always answer "a" spend their spam on "a"
    assert (result.spam.loc[["always_a0", "always_a1"], "a"] > 0.95).all()
    assert np.allclose(result.spam.sum(axis=1), 1.0)
    majority = accuracy(quality.majority_vote(frame), truth)
    assert majority < 0.85 and accuracy(result.labels, truth) >= max(majority, 0.9)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_glad_gives_reliable_workers_more_ability_and_beats_majority_vote(seed: int) -> None:
    frame, truth = crowd(seed)
    result = quality.glad(frame)
    assert result.converged and result.iterations < 100
    ability = result.workers["ability"]
    assert ability[RELIABLE].min() > ability[SPAMMERS].max() + 0.5
    assert result.items.index.name == "assignment_id" and (result.items["answers"] == 6).all()
    assert (result.items["difficulty"] > 0).all()
    majority = accuracy(quality.majority_vote(frame), truth)
    assert accuracy(result.labels, truth) >= max(majority, 0.9)


@pytest.mark.parametrize("method", [models.mace, models.glad])
def test_posteriors_are_distributions_and_labels_their_maxima(method) -> None:
    result = method(crowd()[0])
    assert list(result.posteriors.columns) == ["a", "b", "c"]
    assert np.allclose(result.posteriors.sum(axis=1), 1.0)
    assert ((result.posteriors >= 0) & (result.posteriors <= 1)).all().all()
    assert np.allclose(result.labels["probability"], result.posteriors.max(axis=1))
    assert (result.labels["label"] == result.posteriors.idxmax(axis=1)).all()


@pytest.mark.parametrize("method", [models.mace, models.glad])
def test_results_are_deterministic_and_ignore_row_order(method) -> None:
    frame = crowd()[0]
    first, again = method(frame), method(frame)
    shuffled = method(frame.sample(frac=1.0, random_state=1).reset_index(drop=True))
    for other in (again, shuffled):
        pd.testing.assert_frame_equal(first.labels, other.labels)
        pd.testing.assert_frame_equal(first.posteriors, other.posteriors, atol=1e-12, rtol=0)
        pd.testing.assert_frame_equal(first.workers, other.workers, atol=1e-12, rtol=0)
        assert (first.iterations, first.converged) == (other.iterations, other.converged)


@pytest.mark.parametrize("method", [models.mace, models.glad])
def test_crowd_kit_toy_and_simple_sets_are_recovered(method) -> None:
    toy = method(triples(TOY), item="task")
    assert toy.labels["label"].to_dict() == TOY_TRUTH
    assert quality.majority_vote(triples(TOY), item="task").loc["t1", "label"] == "no"  # a 2–2 tie, lost
    simple = method(triples(SIMPLE), item="task")
    assert simple.labels["label"].to_dict() == SIMPLE_TRUTH
    # the worker who always answers "parrot" is the least trusted
    column = "competence" if method is models.mace else "ability"
    assert simple.workers[column].idxmin() == "0c3"


def test_glad_e_step_matches_crowd_kit_at_its_starting_point() -> None:
    # crowd-kit tests/aggregation/test_glad_aggregation.py, test_glad_e_step: the simple set's task ...eec
    # (three "goose", one "parrot") at α = 1 and log β = 1 gives posteriors [0.995664, 0.004336]
    # (= σ(2e), as K = 2 there).
    data = models._prepare(
        triples(SIMPLE)[lambda f: f["task"] == "eec"], "task", "worker", "label", None, 1, 1e-6, "glad"
    )
    posterior = models._glad_e_step(np.ones(len(data.workers)), np.ones(1), data)
    assert data.cats == ["goose", "parrot"]
    assert posterior == pytest.approx(np.array([[0.995664, 0.004336]]), abs=1e-6)


def test_glad_em_never_lowers_the_log_posterior() -> None:
    data = models._prepare(crowd()[0], "assignment_id", "worker", "label", None, 1, 1e-6, "glad")
    k = len(data.cats)

    def log_posterior(ability: np.ndarray, log_beta: np.ndarray) -> float:
        x = ability[data.worker_idx] * np.exp(log_beta[data.item_idx])
        wrong = np.log(models._sigmoid(-x)) - np.log(k - 1)
        table = np.zeros((len(data.items), k))
        np.add.at(table, data.item_idx, wrong[:, None] * np.ones(k))
        np.add.at(table, (data.item_idx, data.label_idx), np.log(models._sigmoid(x)) - wrong)
        top = table.max(axis=1)
        likelihood = (top + np.log(np.exp(table - top[:, None]).mean(axis=1))).sum()
        return float(likelihood - ((ability - 1) ** 2).sum() / 2 - ((log_beta - 1) ** 2).sum() / 2)

    ability, log_beta = np.ones(len(data.workers)), np.ones(len(data.items))
    values = [log_posterior(ability, log_beta)]
    for _ in range(30):
        posterior = models._glad_e_step(ability, log_beta, data)
        ability, log_beta = models._glad_m_step(posterior, ability, log_beta, data)
        values.append(log_posterior(ability, log_beta))
    assert np.diff(values).min() > -1e-9 and values[-1] > values[0] + 100


@pytest.mark.parametrize("method", [models.mace, models.glad])
def test_a_single_category_is_certain_and_order_sets_the_columns(method) -> None:
    same = pd.DataFrame({"assignment_id": [1, 1, 2], "worker": ["a", "b", "a"], "label": ["x", "x", "x"]})
    result = method(same)
    assert result.labels["label"].tolist() == ["x", "x"] and (result.labels["probability"] == 1.0).all()
    ordered = method(crowd()[0], order=["c", "b", "a"])
    assert list(ordered.posteriors.columns) == ["c", "b", "a"]


@pytest.mark.parametrize("method", [models.mace, models.glad])
def test_stops_at_max_iter(method) -> None:
    result = method(crowd()[0], max_iter=2)
    assert result.iterations == 2 and not result.converged


@pytest.mark.parametrize("method", [quality.mace, quality.glad])
def test_bad_input_is_a_config_error_naming_it(method) -> None:
    frame = crowd()[0]
    with pytest.raises(cn.ConfigError, match=r"column 'answer' not in the frame \(columns: 'assignment_id', "):
        method(frame, answer="answer")
    with pytest.raises(cn.ConfigError, match=r"no ratings"):
        method(frame.iloc[:0])
    solo = frame[frame["worker"] == "good0"]
    with pytest.raises(
        cn.ConfigError,
        match=r"(mace|glad) weighs workers against each other, so it needs two or more; column 'worker' names only 'good0'",
    ):
        method(solo)
    with pytest.raises(cn.ConfigError, match=r"max_iter=0 must be a positive whole number"):
        method(frame, max_iter=0)
    with pytest.raises(cn.ConfigError, match=r"tol=0 must be a positive number"):
        method(frame, tol=0)
    with pytest.raises(cn.ConfigError, match=r"answers \['a'\] are not in order=\['b', 'c'\]"):
        method(frame, order=["b", "c"])


def test_mace_refuses_non_positive_smoothing() -> None:
    with pytest.raises(cn.ConfigError, match=r"smoothing=0 must be a positive number"):
        quality.mace(crowd()[0], smoothing=0)
