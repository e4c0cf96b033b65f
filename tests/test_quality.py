"""Quality: agreement, aggregation and worker quality, checked against published worked examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import crowdnb as cn
from crowdnb import quality

NAN = float("nan")

# Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School for Communication,
# University of Pennsylvania (repository.upenn.edu/asc_papers/43), section C "Nominal data, any number of
# observers, missing values" and its ordinal/interval/ratio variants: 4 observers × 12 units, NaN = not coded.
# Unit 12 has a single value and is not pairable.
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
    "C": [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
}

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters each, 5 categories; κ = 0.210
# (P̄ = 0.378, P̄e = 0.213). Each row counts the raters who chose categories 1..5 for one subject.
FLEISS_WIKIPEDIA = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def long_frame(matrix: dict[str, list[float]]) -> pd.DataFrame:
    """A run.df-like frame from a coders × units matrix; missing cells become rows with a NaN label."""
    rows = [
        {"unit_id": len(matrix) * unit + i, "assignment_id": unit, "worker": coder, "label": value, "text": f"u{unit}"}
        for i, (coder, values) in enumerate(matrix.items())
        for unit, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def frame_of(rows: list[tuple[object, str, object]]) -> pd.DataFrame:
    """A frame from (item, worker, label) triples."""
    return pd.DataFrame(rows, columns=["assignment_id", "worker", "label"])


@pytest.fixture
def kripp() -> pd.DataFrame:
    return long_frame(KRIPPENDORFF_2011)


# --- Krippendorff's alpha -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_alpha_matches_krippendorff_2011(kripp: pd.DataFrame, level: str, published: float) -> None:
    assert round(quality.krippendorff_alpha(kripp, level=level), 3) == published


def test_alpha_nominal_is_exact_fraction_from_the_paper(kripp: pd.DataFrame) -> None:
    # the paper's coincidence matrix: n = 40 pairable values, 8 off-diagonal coincidences, Σ n_c n_k (c≠k) = 1,216
    assert quality.krippendorff_alpha(kripp) == pytest.approx(1 - 39 * 8 / 1216)


def test_alpha_ordinal_follows_order_for_named_categories(kripp: pd.DataFrame) -> None:
    names = ["very low", "low", "mid", "high", "very high"]
    named = kripp.assign(label=kripp["label"].map(lambda v: NAN if pd.isna(v) else names[int(v) - 1]))
    assert round(quality.krippendorff_alpha(named, level="ordinal", order=names), 3) == 0.815
    assert round(quality.krippendorff_alpha(named, level="nominal"), 3) == 0.743
    with pytest.raises(cn.ConfigError, match=r"order="):
        quality.krippendorff_alpha(named, level="ordinal")  # alphabetical order would be silently wrong


def test_alpha_orders_numeric_strings_by_value(kripp: pd.DataFrame) -> None:
    # form answers arrive as text: "10" must sort after "9", not after "1"
    as_text = kripp.assign(label=kripp["label"].map(lambda v: NAN if pd.isna(v) else str(int(v) * 5)))
    scaled = kripp.assign(label=kripp["label"] * 5)
    assert quality.krippendorff_alpha(as_text, level="ordinal") == pytest.approx(
        quality.krippendorff_alpha(scaled, level="ordinal")
    )
    assert quality.krippendorff_alpha(as_text, level="interval") == pytest.approx(0.849, abs=5e-4)


def test_alpha_ignores_missing_rows_and_unpaired_items(kripp: pd.DataFrame) -> None:
    present = kripp.dropna(subset=["label"])
    lone = frame_of([("extra", "A", 5)]).assign(unit_id=999, text="x")
    assert quality.krippendorff_alpha(pd.concat([present, lone])) == quality.krippendorff_alpha(kripp)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_alpha_agrees_with_the_krippendorff_package(level: str) -> None:
    import krippendorff  # the reference implementation, a dev dependency (GPL-3.0, so not imported by crowdnb)

    pattern = np.array([(3 * u + 5 * c + (u * c) % 4) % 6 + 1 for c in range(5) for u in range(40)], dtype=float)
    matrix = pattern.reshape(5, 40)
    matrix[(np.arange(200).reshape(5, 40) % 7) == 0] = NAN  # about one in seven cells missing
    frame = long_frame({f"w{c}": list(matrix[c]) for c in range(5)})
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement=level)
    assert quality.krippendorff_alpha(frame, level=level) == pytest.approx(expected, abs=1e-12)


def test_alpha_is_one_for_perfect_agreement_and_nan_without_variation() -> None:
    agree = frame_of([(i, w, "pos" if i % 2 else "neg") for i in range(4) for w in ("a", "b")])
    assert quality.krippendorff_alpha(agree) == 1.0
    assert math.isnan(quality.krippendorff_alpha(frame_of([(i, w, "pos") for i in range(3) for w in ("a", "b")])))


# --- Cohen's and Fleiss' kappa ----------------------------------------------------------------------------


def wikipedia_cohen() -> pd.DataFrame:
    # Wikipedia, "Cohen's kappa", simple example: 50 grant proposals, readers A and B say yes/no;
    # both yes 20, A yes B no 5, A no B yes 10, both no 15 → p_o = 0.7, p_e = 0.5, κ = 0.4.
    cells = [("Yes", "Yes")] * 20 + [("Yes", "No")] * 5 + [("No", "Yes")] * 10 + [("No", "No")] * 15
    return frame_of([r for i, (a, b) in enumerate(cells) for r in ((i, "A", a), (i, "B", b))])


def test_cohen_kappa_matches_wikipedia_example() -> None:
    assert quality.cohen_kappa(wikipedia_cohen()) == pytest.approx(0.4)


def test_cohen_kappa_uses_only_items_both_workers_rated() -> None:
    frame = pd.concat(
        [
            wikipedia_cohen(),
            frame_of([(100, "A", "Yes"), (101, "B", "No"), (102, "A", None), (102, "B", "Yes")]),
            frame_of([(i, "C", "Yes") for i in range(50)]),
        ]
    )
    assert quality.cohen_kappa(frame, workers=("A", "B")) == pytest.approx(0.4)
    assert quality.cohen_kappa(frame, workers=("B", "A")) == pytest.approx(0.4)


def test_cohen_kappa_needs_two_workers() -> None:
    with pytest.raises(cn.ConfigError, match=r"two workers; the frame has 1 \('A'\)"):
        quality.cohen_kappa(frame_of([(1, "A", "x"), (2, "A", "y")]))
    three = pd.concat([wikipedia_cohen(), frame_of([(1, "C", "Yes")])])
    with pytest.raises(cn.ConfigError, match=r"has 3 .*pass workers=\(a, b\)"):
        quality.cohen_kappa(three)
    with pytest.raises(cn.ConfigError, match=r"worker 'Z' has no rating in the frame; workers: 'A', 'B', 'C'"):
        quality.cohen_kappa(three, workers=("A", "Z"))
    with pytest.raises(cn.ConfigError, match=r"rated no item in common"):
        quality.cohen_kappa(frame_of([(1, "A", "x"), (2, "B", "y")]))


def wikipedia_fleiss() -> pd.DataFrame:
    rows = []
    for subject, counts in enumerate(FLEISS_WIKIPEDIA):
        labels = [category + 1 for category, n in enumerate(counts) for _ in range(n)]
        rows += [(subject, f"r{subject}-{rater}", label) for rater, label in enumerate(labels)]
    return frame_of(rows)


def test_fleiss_kappa_matches_wikipedia_example() -> None:
    assert quality.fleiss_kappa(wikipedia_fleiss()) == pytest.approx(0.20993, abs=1e-5)


def test_fleiss_kappa_refuses_unequal_rating_counts() -> None:
    frame = wikipedia_fleiss()
    short = frame.drop(index=frame.index[frame["assignment_id"] == 3][:2])
    with pytest.raises(
        cn.ConfigError, match=r"9 items with 14, 1 items with 12 \(e.g. item 3 has 12\).*krippendorff_alpha"
    ):
        quality.fleiss_kappa(short)


# --- aggregation --------------------------------------------------------------------------------------------


def test_majority_vote_reports_share_votes_and_ties() -> None:
    frame = frame_of(
        [(1, "a", "pos"), (1, "b", "pos"), (1, "c", "neg"), (2, "a", "neg"), (2, "b", "pos"), (3, "a", None)]
    )
    votes = quality.majority_vote(frame)
    assert votes.index.name == "assignment_id" and list(votes.index) == [1, 2]
    assert votes.loc[1].tolist() == ["pos", pytest.approx(2 / 3), 3, False]
    # a tie goes to the smallest answer, or to the first in order=
    assert votes.loc[2, "label"] == "neg" and bool(votes.loc[2, "tie"])
    assert quality.majority_vote(frame, order=["pos", "neg"]).loc[2, "label"] == "pos"


def test_majority_vote_counts_a_workers_last_answer_once() -> None:
    frame = frame_of([(1, "a", "pos"), (1, "a", "neg"), (1, "b", "neg")])
    assert quality.majority_vote(frame).loc[1].tolist() == ["neg", 1.0, 2, False]


def lazy_crowd() -> tuple[pd.DataFrame, pd.Series]:
    """One careful worker and three who answer "a" unless the item happens to catch their eye."""
    truth = pd.Series({i: "abc"[i % 3] for i in range(30)})
    rows = [(i, "expert", t) for i, t in truth.items()]
    rows += [(i, f"lazy{j}", t if (i + j) % 4 == 0 else "a") for i, t in truth.items() for j in range(3)]
    return frame_of(rows), truth


def test_dawid_skene_recovers_truth_where_majority_fails() -> None:
    frame, truth = lazy_crowd()
    majority = (quality.majority_vote(frame)["label"] == truth).mean()
    result = quality.dawid_skene(frame)
    assert result.converged and result.iterations < 100
    assert majority < 0.5
    assert (result.labels["label"] == truth).all()
    assert result.labels["probability"].min() > 0.95
    assert result.workers.loc["expert", "accuracy"] > 0.95
    assert (result.workers.drop("expert")["accuracy"] < 0.6).all()
    assert result.workers["answers"].tolist() == [30, 30, 30, 30]
    # lazy workers answer "a" whatever the truth: their confusion matrix says so
    assert result.confusion["lazy0"].loc["b", "a"] > 0.6


def test_dawid_skene_posteriors_are_distributions() -> None:
    result = quality.dawid_skene(lazy_crowd()[0])
    assert np.allclose(result.posteriors.sum(axis=1), 1.0)
    assert result.priors.sum() == pytest.approx(1.0)
    for matrix in result.confusion.values():
        assert np.allclose(matrix.sum(axis=1), 1.0)
    best = result.posteriors.max(axis=1)
    assert np.allclose(result.labels["probability"], best)


def test_dawid_skene_is_deterministic() -> None:
    frame = lazy_crowd()[0]
    first, again = quality.dawid_skene(frame), quality.dawid_skene(frame)
    shuffled = quality.dawid_skene(frame.iloc[::-1].reset_index(drop=True))
    for other in (again, shuffled):
        pd.testing.assert_frame_equal(first.labels, other.labels)
        pd.testing.assert_frame_equal(first.posteriors, other.posteriors, atol=1e-12, rtol=0)
        assert first.iterations == other.iterations


def test_dawid_skene_stops_at_max_iter() -> None:
    result = quality.dawid_skene(lazy_crowd()[0], max_iter=2)
    assert result.iterations == 2 and not result.converged
    with pytest.raises(cn.ConfigError, match=r"max_iter=0"):
        quality.dawid_skene(lazy_crowd()[0], max_iter=0)


# --- worker quality ---------------------------------------------------------------------------------------


def test_worker_accuracy_against_gold_and_leave_one_out_consensus() -> None:
    first = [(1, "a", "pos"), (1, "b", "pos"), (1, "c", "neg"), (2, "a", "neg"), (2, "b", "neg"), (2, "c", "neg")]
    frame = frame_of([*first, (3, "a", "pos"), (3, "b", "pos"), (4, "c", "pos")])
    table = quality.worker_accuracy(frame, gold={1: "pos", 2: "pos", 99: "neg"})
    assert list(table.columns) == ["answers", "gold_answers", "accuracy", "compared", "agreement"]
    assert table["answers"].tolist() == [3, 3, 3]
    assert table["gold_answers"].tolist() == [2, 2, 2]
    assert table["accuracy"].tolist() == [0.5, 0.5, 0.0]
    # item 4 is c's alone, so it is not compared; item 3 has one other rating each for a and b
    assert table["compared"].tolist() == [3, 3, 2]
    # a: item 1 others pos/neg tied (½), items 2 and 3 others agree (1); c: item 1 outvoted (0), item 2 (1)
    assert table["agreement"].tolist() == pytest.approx([5 / 6, 5 / 6, 1 / 2])


def test_worker_accuracy_gives_tie_credit_and_accepts_gold_frames() -> None:
    frame = frame_of([(1, "a", "x"), (1, "b", "x"), (1, "c", "y")])
    # for b the others are x and y, tied: half credit; for c the others are both x: none
    assert quality.worker_accuracy(frame)["agreement"].tolist() == [0.5, 0.5, 0.0]
    gold = pd.DataFrame({"assignment_id": [1], "label": ["y"]})
    assert quality.worker_accuracy(frame, gold=gold)["accuracy"].tolist() == [0.0, 0.0, 1.0]
    with pytest.raises(cn.ConfigError, match=r"gold frame needs columns 'assignment_id' and 'label'"):
        quality.worker_accuracy(frame, gold=pd.DataFrame({"answer": ["y"]}))


def test_a_lone_worker_cannot_agree_with_themselves() -> None:
    table = quality.worker_accuracy(frame_of([(1, "solo", "x"), (2, "solo", "y")]))
    assert table.loc["solo", "compared"] == 0 and math.isnan(table.loc["solo", "agreement"])


def test_too_fast_flags_against_median_or_fixed_seconds() -> None:
    frame = pd.DataFrame({"duration_s": [40.0, 2.0, 30.0, NAN, 9.0]}, index=[10, 11, 12, 13, 14])
    flags = quality.too_fast(frame)  # median 19.5 s → under 4.875 s
    assert flags.index.tolist() == [10, 11, 12, 13, 14] and flags.dtype == bool
    assert flags.tolist() == [False, True, False, False, False]
    assert quality.too_fast(frame, factor=0.5).tolist() == [False, True, False, False, True]
    assert quality.too_fast(frame, min_seconds=35).tolist() == [False, True, True, False, True]
    assert quality.too_fast(frame.iloc[:0]).empty
    with pytest.raises(cn.ConfigError, match=r"factor=0"):
        quality.too_fast(frame, factor=0)


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        quality.krippendorff_alpha,
        quality.fleiss_kappa,
        quality.cohen_kappa,
        quality.majority_vote,
        quality.dawid_skene,
        quality.worker_accuracy,
    ],
)
def test_unknown_column_and_empty_frame_are_config_errors(kripp: pd.DataFrame, call) -> None:
    with pytest.raises(
        cn.ConfigError, match=r"column 'answer' not in the frame \(columns: 'unit_id', .*'label', 'text'\)"
    ):
        call(kripp, answer="answer")
    with pytest.raises(cn.ConfigError, match=r"no ratings"):
        call(kripp.iloc[:0])


def test_bad_arguments_name_the_value(kripp: pd.DataFrame) -> None:
    with pytest.raises(cn.ConfigError, match=r"level='cardinal' is not one of nominal, ordinal, interval, ratio"):
        quality.krippendorff_alpha(kripp, level="cardinal")
    with pytest.raises(cn.ConfigError, match=r"answers \[5\.0\] are not in order=\[1, 2, 3, 4\]"):
        quality.majority_vote(kripp, order=[1, 2, 3, 4])
    with pytest.raises(cn.ConfigError, match=r"column 'seconds' not in the frame"):
        quality.too_fast(kripp, duration="seconds")
    text = kripp.assign(label="some text")
    with pytest.raises(cn.ConfigError, match=r"interval alpha needs numeric answers; 'label' has \['some text'\]"):
        quality.krippendorff_alpha(text, level="interval")
    tags = frame_of([(1, "a", ["x", "y"]), (1, "b", ["x"])])
    with pytest.raises(cn.ConfigError, match=r"lists, sets or dicts"):
        quality.majority_vote(tags)


# --- on a real run ---------------------------------------------------------------------------------------


def test_quality_reads_a_real_run_frame(make_run) -> None:
    run = make_run(units_per_assignment=3)
    sim = cn.simulate(run, workers=3, answer=lambda row: {"label": "pos" if row["text"][-1] in "02" else "neg"})
    assert sim.wait(timeout=30).errors == []
    frame = run.df
    assert len(frame) == 18
    assert quality.krippendorff_alpha(frame) == 1.0
    votes = quality.majority_vote(frame)
    assert (votes["votes"] == 3).all() and (votes["share"] == 1.0).all()
    assert votes["label"].value_counts().to_dict() == {"neg": 4, "pos": 2}
    assert (quality.worker_accuracy(frame)["agreement"] == 1.0).all()
    assert quality.dawid_skene(frame).labels["label"].equals(votes["label"])
    assert not quality.too_fast(frame, min_seconds=0).any()
