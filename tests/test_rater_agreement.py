"""Agreement among raters and the judge as one more rater (issue 19, items 2 and 3).

The statistics are checked against published worked examples, written here as fixtures:

* Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", the example
  with four observers, twelve units, values 1-5 and missing ratings: alpha = 0.743
  (nominal), 0.815 (ordinal), 0.849 (interval); and its two-observer binary example:
  alpha = 0.095.
* Fleiss, J. L. (1971), as worked in Wikipedia's "Fleiss' kappa" article: ten subjects,
  fourteen raters, five categories: kappa = 0.210.

Pairwise kappas are compared with scikit-learn's ``cohen_kappa_score``.
"""

from __future__ import annotations

import math
import random

import pytest
from sklearn.metrics import cohen_kappa_score

from judgealign import (
    ConfigurationError,
    Feedback,
    LabeledRecord,
    agreement,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_kappa,
    rater_agreement,
)
from judgealign.evaluation._panel import judge_among_raters
from judgealign.evaluation._raters import rating_table

_ = None  # a missing rating
KRIPPENDORFF_2011 = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    "C": [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
}
BINARY_2011 = {"A": [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], "B": [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]}
# Rows: subjects; columns: how many of the 14 raters chose each of the 5 categories.
FLEISS_1971 = [
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


def _units(columns: dict[str, list[int | None]]) -> dict[str, dict[str, int | None]]:
    n = len(next(iter(columns.values())))
    return {f"u{i}": {rater: values[i] for rater, values in columns.items()} for i in range(n)}


def _fleiss_units() -> dict[str, dict[str, int]]:
    units: dict[str, dict[str, int]] = {}
    for i, row in enumerate(FLEISS_1971):
        labels = [category for category, count in enumerate(row, start=1) for _ in range(count)]
        units[f"s{i}"] = {f"r{j}": label for j, label in enumerate(labels)}
    return units


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_worked_example(level: str, expected: float) -> None:
    alpha = krippendorff_alpha(_units(KRIPPENDORFF_2011), level=level)  # type: ignore[arg-type]
    assert round(alpha, 3) == expected


def test_krippendorff_binary_example() -> None:
    assert round(krippendorff_alpha(_units(BINARY_2011)), 3) == 0.095


def test_fleiss_worked_example() -> None:
    assert round(fleiss_kappa(_fleiss_units()), 3) == 0.210


def test_units_with_one_rating_do_not_change_alpha() -> None:
    # Unit 12 of the worked example has one rating: it is not pairable and must not count.
    units = _units(KRIPPENDORFF_2011)
    without = {k: v for k, v in units.items() if k != "u11"}
    for level in ("nominal", "ordinal", "interval"):
        assert krippendorff_alpha(units, level=level) == pytest.approx(  # type: ignore[arg-type]
            krippendorff_alpha(without, level=level)  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("weighting", ["none", "quadratic"])
def test_pairwise_kappa_matches_sklearn_on_common_units(weighting: str) -> None:
    units = _units(KRIPPENDORFF_2011)
    table = rating_table(units)
    kappas = pairwise_kappa(units, weighting=weighting)  # type: ignore[arg-type]
    for (a, b), kappa in kappas.items():
        common = [u for u in units.values() if u[a] is not None and u[b] is not None]
        expected = cohen_kappa_score(
            [u[a] for u in common],
            [u[b] for u in common],
            labels=list(table.labels),
            weights=None if weighting == "none" else "quadratic",
        )
        assert kappa == pytest.approx(expected), (a, b)


def test_intervals_hold_the_estimate_and_repeat_with_the_seed() -> None:
    units = _units(KRIPPENDORFF_2011)
    first = rater_agreement(units, level="ordinal", n_bootstrap=400, seed=3)
    again = rater_agreement(units, level="ordinal", n_bootstrap=400, seed=3)
    assert first == again
    assert first.alpha == pytest.approx(0.8154, abs=1e-4)
    for value, (low, high) in [
        (first.alpha, first.alpha_ci),
        (first.fleiss, first.fleiss_ci),
        (first.mean_pairwise, first.mean_pairwise_ci),
    ]:
        assert low <= value <= high and low < high
    assert first.n_units == 12 and first.n_pairable == 11 and first.n_ratings == 41
    assert first.kappa_weighting == "quadratic"
    none = rater_agreement(units, n_bootstrap=0)
    assert math.isnan(none.alpha_ci[0]) and "[" not in none.format().splitlines()[1]


def test_bad_panel_input_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match="two or more raters"):
        rater_agreement({"u": {"alice": 1}})
    with pytest.raises(ConfigurationError, match="mix label types"):
        rating_table({"u": {"alice": 1, "bob": "yes"}})
    with pytest.raises(ConfigurationError, match="level='ordinal'"):
        krippendorff_alpha(_units(BINARY_2011), level="ratio")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="holds no ratings"):
        rating_table([LabeledRecord(id="a", outputs="x", label=True)])


# -- the judge as one more rater ---------------------------------------------------------


def _panel(n: int, accuracy: float, seed: int) -> tuple[list[LabeledRecord], list[bool]]:
    rng = random.Random(seed)
    records: list[LabeledRecord] = []
    truth: list[bool] = []
    for i in range(n):
        value = rng.random() < 0.5
        ratings = [
            {"rater": name, "label": value if rng.random() < accuracy else not value}
            for name in ("alice", "bob", "carol")
        ]
        records.append(LabeledRecord(id=f"r{i}", outputs="x", ratings=ratings))
        truth.append(value)
    return records, truth


def test_a_judge_that_copies_a_rater_has_kappa_one_with_it() -> None:
    records, _truth = _panel(80, 0.8, seed=1)
    bob = [next(r.label for r in rec.ratings if r.rater == "bob") for rec in records]
    result = judge_among_raters(records, bob, n_bootstrap=0)
    assert result.judge_kappa["bob"] == pytest.approx(1.0)
    table = rating_table(records).with_rater("judge", bob)
    everyone = pairwise_kappa(table)
    assert result.judge_kappa["alice"] == pytest.approx(everyone[("alice", "judge")])
    raters_mean = sum(everyone[p] for p in [("alice", "bob"), ("alice", "carol"), ("bob", "carol")])
    assert result.raters_mean == pytest.approx(raters_mean / 3)
    assert result.judge_mean == pytest.approx(sum(result.judge_kappa.values()) / 3)
    assert result.difference == pytest.approx(result.judge_mean - result.raters_mean)
    assert result.kappa_matrix()[-1][1] == pytest.approx(1.0)  # judge row, bob's column
    assert "not measured" in result.verdict


def test_verdicts_better_as_well_and_worse() -> None:
    records, truth = _panel(300, 0.75, seed=2)
    better = judge_among_raters(records, truth, n_bootstrap=300)
    assert better.difference_ci[0] > 0 and "better than" in better.verdict
    rng = random.Random(5)
    noise = [rng.random() < 0.5 for _ in truth]
    worse = judge_among_raters(records, noise, n_bootstrap=300)
    assert worse.difference_ci[1] < 0 and "less well" in worse.verdict
    like = [t if rng.random() < 0.75 else not t for t in truth]  # as noisy as a rater
    same = judge_among_raters(records, like, n_bootstrap=300)
    low, high = same.difference_ci
    assert low < 0 < high and "as well as they agree" in same.verdict


def test_agreement_on_panel_records_adds_the_judge_among_raters() -> None:
    records, truth = _panel(60, 0.85, seed=4)
    verdicts: list[Feedback | bool | None] = list(truth)
    verdicts[0] = Feedback(name="j", error="timeout")
    report = agreement(verdicts, records, n_bootstrap=200)
    assert report.panel is not None
    assert report.n == 59 and report.failed_ids == ("r0",)  # ids come from the records
    assert report.panel.n_judged == 59
    assert report.panel.panel.raters == ("alice", "bob", "carol")
    text = report.format()
    assert "judge's mean kappa with raters" in text and "Krippendorff's alpha" in text
    assert report.to_dict()["panel"]["names"] == ["alice", "bob", "carol", "judge"]
    plain = agreement(truth, [r.label for r in records], n_bootstrap=0)
    assert plain.panel is None and "Panel" not in plain.format()
