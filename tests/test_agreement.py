"""Tests for judgealign.evaluation._api: agreement metrics, the seeded split, judge comparison.

Every metric is checked against scikit-learn, and the 2x2 case also against the formulas
worked by hand.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from judgealign import (
    AgreementReport,
    ConfigurationError,
    Feedback,
    agreement,
    compare_judges,
    split_records,
)
from judgealign.evaluation._bootstrap import _kappa_from_confusion, _weights
from judgealign.judges._values import ValueSpec

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXPERTQA = SHARED_DATA / "expertqa" / "expertqa.jsonl"
LEVELS = ["Not useful at all", "Partially useful", "Useful"]


def _feedback(value: Any = None, error: str | None = None) -> Feedback:
    return Feedback(name="judge", value=value, error=error)


# -- the hand-computed 2x2 case ---------------------------------------------------------

# SME vs judge, 10 pairs:  (T,T) x4, (T,F) x2, (F,T) x1, (F,F) x3
SME_2X2 = [True] * 6 + [False] * 4
JUDGE_2X2 = [True] * 4 + [False] * 2 + [True] * 1 + [False] * 3


def test_two_by_two_matches_hand_computation_and_sklearn() -> None:
    report = agreement(JUDGE_2X2, SME_2X2, n_bootstrap=0)

    # By hand: rows = SME [False, True], columns = judge [False, True].
    ff, ft, tf, tt = 3, 1, 2, 4
    n = ff + ft + tf + tt
    observed = (ff + tt) / n  # 0.7
    sme_false, sme_true = (ff + ft) / n, (tf + tt) / n  # 0.4, 0.6
    judge_false, judge_true = (ff + tf) / n, (ft + tt) / n  # 0.5, 0.5
    chance = sme_false * judge_false + sme_true * judge_true  # 0.5
    kappa = (observed - chance) / (1 - chance)  # 0.4

    assert report.labels == (False, True)
    assert report.confusion == ((ff, ft), (tf, tt))
    assert report.n == 10 and report.n_failed == 0
    assert report.accuracy == pytest.approx(0.7)
    assert report.kappa == pytest.approx(kappa) == pytest.approx(0.4)
    assert report.kappa == pytest.approx(cohen_kappa_score(SME_2X2, JUDGE_2X2))
    assert report.kappa_weighting == "none"

    # Per label, SME as the truth: True has precision 4/5, recall 4/6.
    true = report.per_label[True]
    assert (true.precision, true.recall, true.support) == (
        pytest.approx(4 / 5),
        pytest.approx(4 / 6),
        6,
    )
    assert true.f1 == pytest.approx(2 * (4 / 5) * (4 / 6) / (4 / 5 + 4 / 6))
    false = report.per_label[False]
    assert (false.precision, false.recall, false.support) == (
        pytest.approx(3 / 5),
        pytest.approx(3 / 4),
        4,
    )
    assert report.disagreeing_ids == ("4", "5", "6")


def test_bool_labels_default_to_false_true_even_when_one_is_unseen() -> None:
    report = agreement([True, True, True], [True, True, False], n_bootstrap=0)
    assert report.labels == (False, True)
    assert report.confusion == ((0, 1), (0, 2))
    # SME uses two labels, so kappa is defined (0: the judge always says True).
    assert report.kappa == pytest.approx(cohen_kappa_score([True, True, False], [True] * 3))


# -- ordinal labels, on real ExpertQA labels --------------------------------------------


def _expertqa_labels() -> list[str]:
    if not EXPERTQA.exists():
        pytest.skip(f"{EXPERTQA} is absent")
    with EXPERTQA.open(encoding="utf-8") as handle:
        return [json.loads(line)["label"] for line in handle if line.strip()]


def _shift_some(labels: Sequence[str], *, share: float, seed: int) -> list[str]:
    """A simulated judge: moves a seeded share of labels one level up or down."""
    rng = random.Random(seed)
    judged: list[str] = []
    for label in labels:
        level = LEVELS.index(label)
        if rng.random() < share:
            level = min(len(LEVELS) - 1, max(0, level + rng.choice((-1, 1))))
        judged.append(LEVELS[level])
    return judged


def test_quadratic_kappa_on_expertqa_matches_sklearn() -> None:
    sme = _expertqa_labels()
    judge = _shift_some(sme, share=0.3, seed=11)
    sme_int = [LEVELS.index(label) for label in sme]
    judge_int = [LEVELS.index(label) for label in judge]

    weighted = agreement(judge, sme, labels=LEVELS, ordinal=True, n_bootstrap=200)
    unweighted = agreement(judge, sme, labels=LEVELS, n_bootstrap=0)

    expected = cohen_kappa_score(sme_int, judge_int, weights="quadratic")
    assert weighted.kappa_weighting == "quadratic"
    assert weighted.kappa == pytest.approx(expected, abs=1e-12)
    assert unweighted.kappa_weighting == "none"
    assert unweighted.kappa == pytest.approx(cohen_kappa_score(sme_int, judge_int), abs=1e-12)
    assert abs(weighted.kappa - unweighted.kappa) > 0.01
    assert weighted.labels == tuple(LEVELS)
    assert weighted.confusion == tuple(
        tuple(row) for row in confusion_matrix(sme_int, judge_int).tolist()
    )
    assert weighted.n == len(sme) and weighted.accuracy == pytest.approx(
        np.mean(np.array(sme_int) == np.array(judge_int))
    )
    low, high = weighted.kappa_ci
    assert low <= weighted.kappa <= high


def test_integer_and_integral_float_labels_are_ordinal_by_default() -> None:
    sme = [1, 2, 3, 3, 2, 1, 3]
    judge = [1.0, 3.0, 3.0, 2.0, 2.0, 1.0, 1.0]
    report = agreement(judge, sme, n_bootstrap=0)
    assert report.labels == (1, 2, 3)
    assert report.kappa_weighting == "quadratic"
    assert report.kappa == pytest.approx(
        cohen_kappa_score(sme, [int(v) for v in judge], weights="quadratic")
    )


def test_string_labels_are_nominal_by_default_and_sorted() -> None:
    report = agreement(["b", "a", "c"], ["b", "a", "a"], n_bootstrap=0)
    assert report.labels == ("a", "b", "c")
    assert report.kappa_weighting == "none"


# -- bootstrap --------------------------------------------------------------------------


def _noisy_pairs(n: int, seed: int) -> tuple[list[int], list[int]]:
    rng = random.Random(seed)
    sme = [rng.randint(0, 2) for _ in range(n)]
    judge = [v if rng.random() < 0.7 else rng.randint(0, 2) for v in sme]
    return sme, judge


def test_bootstrap_interval_contains_estimate_and_is_seeded() -> None:
    sme, judge = _noisy_pairs(120, seed=3)
    first = agreement(judge, sme, seed=5)
    again = agreement(judge, sme, seed=5)
    other = agreement(judge, sme, seed=6)

    assert first.accuracy_ci[0] <= first.accuracy <= first.accuracy_ci[1]
    assert first.kappa_ci[0] <= first.kappa <= first.kappa_ci[1]
    assert first.accuracy_ci[0] < first.accuracy_ci[1]
    assert (first.accuracy_ci, first.kappa_ci) == (again.accuracy_ci, again.kappa_ci)
    assert (first.accuracy_ci, first.kappa_ci) != (other.accuracy_ci, other.kappa_ci)
    # A higher confidence level gives a wider interval.
    wide = agreement(judge, sme, seed=5, confidence=0.99)
    assert wide.accuracy_ci[0] <= first.accuracy_ci[0]
    assert first.accuracy_ci[1] <= wide.accuracy_ci[1]


@pytest.mark.parametrize("weighting", ["none", "quadratic"])
def test_vectorized_bootstrap_kappa_matches_sklearn(
    weighting: Literal["none", "quadratic"],
) -> None:
    rng = np.random.default_rng(0)
    sme = rng.integers(0, 4, size=(25, 40))
    judge = np.where(rng.random((25, 40)) < 0.6, sme, rng.integers(0, 4, size=(25, 40)))
    stack = np.stack(
        [confusion_matrix(s, j, labels=[0, 1, 2, 3]) for s, j in zip(sme, judge, strict=True)]
    ).astype(np.float64)
    ours = _kappa_from_confusion(stack, _weights(4, weighting))
    sk_weights = None if weighting == "none" else "quadratic"
    theirs = [
        cohen_kappa_score(s, j, labels=[0, 1, 2, 3], weights=sk_weights)
        for s, j in zip(sme, judge, strict=True)
    ]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_resamples_with_undefined_kappa_are_skipped_and_counted() -> None:
    # 1 disagreement in 12 pairs: many resamples hold only "a", where kappa is undefined.
    sme = ["a"] * 11 + ["b"]
    judge = ["a"] * 12
    report = agreement(judge, sme, n_bootstrap=300, seed=1)
    assert not math.isnan(report.kappa)
    assert any("resamples held a single label" in note for note in report.notes)
    assert not math.isnan(report.kappa_ci[0])


def test_no_bootstrap_leaves_intervals_undefined() -> None:
    report = agreement([1, 2], [1, 1], n_bootstrap=0)
    assert all(math.isnan(v) for v in (*report.accuracy_ci, *report.kappa_ci))
    assert report.to_dict()["accuracy_ci"] == [None, None]


# -- failures and undefined values ------------------------------------------------------


def test_failed_feedback_is_excluded_counted_and_listed() -> None:
    predictions = [
        _feedback(True),
        _feedback(error="timeout"),
        _feedback(False),
        _feedback(None),
        None,
        _feedback(True),
    ]
    sme = [True, False, True, True, False, True]
    ids = ["a", "b", "c", "d", "e", "f"]
    report = agreement(predictions, sme, ids=ids, n_bootstrap=0)
    assert report.n == 3 and report.n_failed == 3
    assert report.failed_ids == ("b", "d", "e")
    assert report.disagreeing_ids == ("c",)
    assert report.accuracy == pytest.approx(2 / 3)
    assert report.kappa == pytest.approx(cohen_kappa_score([True, True, True], [True, False, True]))


def test_one_class_kappa_is_nan_with_a_note_and_json_null() -> None:
    report = agreement(["Useful"] * 4, ["Useful"] * 4, seed=0)
    assert report.accuracy == 1.0
    assert math.isnan(report.kappa)
    assert any("kappa is undefined" in note for note in report.notes)
    data = report.to_dict()
    assert data["kappa"] is None and data["kappa_ci"] == [None, None]
    json.dumps(data, allow_nan=False)  # JSON-ready: no NaN left
    assert "n/a" in report.format()


def test_all_failed_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"no verdict.*First error: boom"):
        agreement([_feedback(error="boom"), None], [True, False])


@pytest.mark.parametrize(
    ("predictions", "sme", "options", "message"),
    [
        ([True, False], [True], {}, "predictions has 2 items but sme_labels has 1"),
        ([], [], {}, "empty"),
        ([True], [True], {"ids": ["a", "b"]}, "ids has 2 items"),
        ([True, True], [True, True], {"ids": ["a", "a"]}, "ids must be unique"),
        ([True], [None], {}, "no label for id '0'"),
        ([True], ["yes"], {}, "mix value types"),
        ([0.5], [1], {}, "not a label"),
        (["a", "c"], ["a", "b"], {"labels": ["a", "b"]}, "leaves out \\['c'\\]"),
        (["a"], ["a"], {"labels": ["a", "a"]}, "each label once"),
        ([True], [True], {"confidence": 1.0}, "confidence=1.0"),
        ([True], [True], {"n_bootstrap": -1}, "n_bootstrap=-1"),
    ],
)
def test_misuse_raises_configuration_error(
    predictions: list[Any], sme: list[Any], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        agreement(predictions, sme, **options)


# -- report output ----------------------------------------------------------------------


def test_format_and_to_dict_contain_the_key_numbers() -> None:
    ids = [f"q{i}" for i in range(10)]
    report = agreement(JUDGE_2X2, SME_2X2, ids=ids, seed=0)
    text = report.format()
    assert "10 scored, 0 failed" in text
    assert f"0.700 [{report.accuracy_ci[0]:.3f}, {report.accuracy_ci[1]:.3f}]" in text
    assert f"0.400 [{report.kappa_ci[0]:.3f}, {report.kappa_ci[1]:.3f}]" in text
    assert "unweighted" in text
    assert "SME \\ judge  False  True" in text
    assert "Disagreeing ids (3): q4, q5, q6" in text
    assert "0.800   0.667  0.727" in text  # True: precision, recall, f1

    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["confusion"] == [[3, 1], [2, 4]]
    assert data["labels"] == [False, True]
    assert data["per_label"]["True"]["support"] == 6
    assert data["disagreeing_ids"] == ["q4", "q5", "q6"]


def test_format_lists_only_the_first_ten_disagreeing_ids() -> None:
    report = agreement([1] * 15, [2] * 14 + [1], n_bootstrap=0)
    line = next(line for line in report.format().splitlines() if "Disagreeing" in line)
    assert line.startswith("Disagreeing ids (14): 0, 1, 2")
    assert ", 9, ... (4 more)" in line


def test_report_is_frozen() -> None:
    report = agreement([True], [True], n_bootstrap=0)
    assert isinstance(report, AgreementReport)
    with pytest.raises(AttributeError):
        report.n = 3  # type: ignore[misc]


# -- split_records ----------------------------------------------------------------------


def _labelled(n_yes: int, n_no: int) -> list[dict[str, Any]]:
    labels = ["yes"] * n_yes + ["no"] * n_no
    return [{"id": f"r{i}", "label": label} for i, label in enumerate(labels)]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    records = _labelled(30, 10)
    train, held_out = split_records(records, test_size=0.25, seed=4)
    assert split_records(records, test_size=0.25, seed=4) == (train, held_out)
    assert split_records(records, test_size=0.25, seed=5) != (train, held_out)
    train_ids = {r["id"] for r in train}
    held_ids = {r["id"] for r in held_out}
    assert not train_ids & held_ids
    assert train_ids | held_ids == {r["id"] for r in records}
    assert len(held_out) == 10
    # Input order is kept inside each part.
    assert [r["id"] for r in train] == [r["id"] for r in records if r["id"] in train_ids]


def test_split_is_stratified_by_label() -> None:
    records = _labelled(30, 10)
    for seed in range(5):
        train, held_out = split_records(records, test_size=0.3, seed=seed)
        assert Counter(r["label"] for r in held_out) == {"yes": 9, "no": 3}
        assert Counter(r["label"] for r in train) == {"yes": 21, "no": 7}


def test_split_stratifies_objects_and_custom_keys() -> None:
    @dataclass(frozen=True)
    class Row:
        id: str
        label: bool
        field: str

    rows = [Row(f"r{i}", i % 2 == 0, "law" if i < 8 else "med") for i in range(20)]
    _, held_out = split_records(rows, test_size=0.5, seed=0)
    assert Counter(r.label for r in held_out) == {True: 5, False: 5}
    _, held_out = split_records(rows, test_size=0.5, seed=0, stratify_by=lambda r: r.field)
    assert Counter(r.field for r in held_out) == {"law": 4, "med": 6}


def test_split_falls_back_when_a_class_is_too_small() -> None:
    records = [*_labelled(9, 0), {"id": "lonely", "label": "no"}]
    with pytest.warns(UserWarning, match="not stratified"):
        train, held_out = split_records(records, test_size=0.3, seed=0)
    assert len(train) == 7 and len(held_out) == 3


def test_split_without_labels_is_unstratified_and_silent() -> None:
    records = [{"id": i} for i in range(10)]
    train, held_out = split_records(records, test_size=0.2, seed=0)
    assert len(held_out) == 2 and len(train) == 8


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1, True])
def test_split_rejects_a_bad_test_size(test_size: float) -> None:
    with pytest.raises(ConfigurationError, match="test_size"):
        split_records(_labelled(5, 5), test_size=test_size)


def test_split_rejects_too_few_records() -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        split_records(_labelled(1, 0))


# -- compare_judges ---------------------------------------------------------------------


class FakeJudge:
    """Answers from a fixed table of id -> value (or an error string for failures)."""

    def __init__(self, answers: dict[str, Any], value_type: Any = bool) -> None:
        self.answers = answers
        self.value_spec = ValueSpec.from_type(value_type)
        self.calls: list[int] = []

    def evaluate(self, records: Sequence[Any], *, max_workers: int = 8) -> list[Feedback]:
        self.calls.append(max_workers)
        out: list[Feedback] = []
        for record in records:
            answer = self.answers[record["id"]]
            if isinstance(answer, Exception):
                out.append(_feedback(error=str(answer)))
            else:
                out.append(_feedback(answer))
        return out


def test_compare_judges_reports_fixed_and_broken_ids() -> None:
    labels = {"a": "yes", "b": "no", "c": "yes", "d": "no", "e": "yes", "f": "no"}
    records = [{"id": key, "label": label} for key, label in labels.items()]
    base = FakeJudge({"a": True, "b": True, "c": False, "d": False, "e": True, "f": True})
    aligned = FakeJudge(
        {"a": True, "b": False, "c": True, "d": True, "e": True, "f": RuntimeError("x")}
    )

    result = compare_judges(base, aligned, records, max_workers=3, n_bootstrap=100)

    assert base.calls == [3] and aligned.calls == [3]
    # SME "yes"/"no" were coerced to booleans by the judges' value_spec.
    assert result.base.labels == (False, True)
    assert result.base.disagreeing_ids == ("b", "c", "f")
    assert result.aligned.disagreeing_ids == ("d",)
    assert result.aligned.failed_ids == ("f",)
    assert result.fixed_ids == ("b", "c")
    assert result.broken_ids == ("d",)
    assert result.base.accuracy == pytest.approx(3 / 6)
    assert result.aligned.accuracy == pytest.approx(4 / 5)
    assert result.accuracy_delta == pytest.approx(4 / 5 - 3 / 6)
    assert result.kappa_delta == pytest.approx(result.aligned.kappa - result.base.kappa)

    text = result.format()
    assert "Fixed by alignment (2): b, c" in text
    assert "Broken by alignment (1): d" in text
    assert "+0.300" in text  # the accuracy delta
    assert f"{result.base.accuracy:.3f} [" in text and f"{result.aligned.accuracy:.3f} [" in text
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["fixed_ids"] == ["b", "c"] and data["broken_ids"] == ["d"]
    assert data["aligned"]["failed_ids"] == ["f"]


def test_compare_judges_uses_literal_choices_as_label_order() -> None:
    kind = Literal["Not useful at all", "Partially useful", "Useful"]
    records = [
        {"id": "1", "label": "useful"},
        {"id": "2", "label": "partially useful"},
        {"id": "3", "label": "Not useful at all"},
    ]
    base = FakeJudge({"1": "Useful", "2": "Useful", "3": "Useful"}, kind)
    aligned = FakeJudge({"1": "Useful", "2": "Partially useful", "3": "Useful"}, kind)
    result = compare_judges(base, aligned, records, ordinal=True, n_bootstrap=0)
    assert result.base.labels == tuple(LEVELS)
    assert result.base.kappa_weighting == "quadratic"
    assert result.fixed_ids == ("2",) and result.broken_ids == ()
    assert "kappa (quadratic-weighted)" in result.format()


def test_compare_judges_misuse() -> None:
    judge = FakeJudge({"1": True})
    with pytest.raises(ConfigurationError, match="no 'label'"):
        compare_judges(judge, judge, [{"id": "1"}])
    with pytest.raises(ConfigurationError, match="does not fit the base judge"):
        compare_judges(judge, judge, [{"id": "1", "label": "maybe"}])
    with pytest.raises(ConfigurationError, match="no records"):
        compare_judges(judge, judge, [])

    class Short(FakeJudge):
        def evaluate(self, records: Sequence[Any], *, max_workers: int = 8) -> list[Feedback]:
            return []

    with pytest.raises(ConfigurationError, match="returned 0 feedbacks for 1 records"):
        compare_judges(Short({}), judge, [{"id": "1", "label": True}])
