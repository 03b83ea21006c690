"""How well a judge agrees with subject-matter experts (SMEs).

MLflow reports no agreement metric at all (its FR #22947 asks for kappa, accuracy, a
confusion matrix and the ids of disagreeing records). This module provides them:

* :func:`agreement` scores one judge's verdicts against SME labels: accuracy, Cohen's
  kappa (quadratic-weighted for ordered labels), the confusion matrix, per-label
  precision/recall/F1, bootstrap intervals, and which ids disagree or failed.
* :func:`split_records` makes a seeded train/held-out split, stratified by label.
* :func:`compare_judges` runs a base and an aligned judge on the same held-out records and
  reports both, the change, and which ids alignment fixed or broke.

Point estimates come from scikit-learn. The bootstrap recomputes the same formulas with
numpy over whole batches of resampled confusion matrices, because a thousand calls to
scikit-learn per report would take seconds.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from judgealign._errors import ConfigurationError
from judgealign._feedback import Feedback

__all__ = [
    "AgreementReport",
    "JudgeComparison",
    "LabelMetrics",
    "SupportsEvaluate",
    "agreement",
    "compare_judges",
    "split_records",
]

Label = bool | int | str
"""A label after normalization: integral floats such as ``3.0`` become ``3``."""

RawLabel = bool | int | float | str
Weighting = Literal["none", "quadratic"]
R = TypeVar("R")

_SHOWN_IDS = 10
_BOOTSTRAP_CELLS = 2_000_000  # resampled pairs drawn per numpy batch; bounds memory
_MISSING = object()


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelMetrics:
    """Precision, recall and F1 of one label, taking the SME labels as the truth.

    Attributes:
        precision: of the pairs the judge gave this label, the share the SME agreed with.
        recall: of the pairs the SME gave this label, the share the judge found.
        f1: the harmonic mean of precision and recall.
        support: how many scored pairs the SME gave this label.
    """

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


@dataclass(frozen=True)
class AgreementReport:
    """How one judge's verdicts agree with SME labels.

    Undefined numbers are ``nan`` (``None`` in :meth:`to_dict`) and ``notes`` says why.
    Kappa is undefined when the SME and the judge both used one and the same label
    throughout: there is no variation to measure agreement beyond chance.

    Attributes:
        n: pairs scored (records where the judge gave a verdict).
        n_failed: records where the judge gave no verdict; excluded from every metric.
        accuracy: share of scored pairs where the judge matches the SME.
        kappa: Cohen's kappa, quadratic-weighted when ``kappa_weighting == "quadratic"``.
        kappa_weighting: ``"quadratic"`` for ordered labels, else ``"none"``.
        labels: the labels, in the order used by ``confusion`` and the kappa weights.
        confusion: counts; rows are the SME's labels, columns the judge's.
        per_label: precision, recall, F1 and support of each label.
        accuracy_ci: bootstrap percentile interval of the accuracy.
        kappa_ci: bootstrap percentile interval of kappa; resamples in which kappa is
            undefined are skipped (counted in ``notes``).
        confidence: the intervals' confidence level.
        n_bootstrap: how many resamples of the scored pairs were drawn.
        disagreeing_ids: ids where the judge and the SME differ, in input order.
        failed_ids: ids where the judge gave no verdict, in input order.
        notes: explanations of undefined or skipped values.
    """

    n: int
    n_failed: int
    accuracy: float
    kappa: float
    kappa_weighting: Weighting
    labels: tuple[Label, ...]
    confusion: tuple[tuple[int, ...], ...]
    per_label: Mapping[Label, LabelMetrics]
    accuracy_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    confidence: float
    n_bootstrap: int
    disagreeing_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None`` and per-label keys become text."""
        data: dict[str, Any] = {
            "n": self.n,
            "n_failed": self.n_failed,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "kappa": self.kappa,
            "kappa_ci": list(self.kappa_ci),
            "kappa_weighting": self.kappa_weighting,
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
            "per_label": {str(k): m.to_dict() for k, m in self.per_label.items()},
            "disagreeing_ids": list(self.disagreeing_ids),
            "failed_ids": list(self.failed_ids),
            "notes": list(self.notes),
        }
        return _json_ready(data)

    def format(self) -> str:
        """A plain-text summary: metrics with intervals, confusion matrix, per-label table."""
        lines = [
            f"Agreement with SME labels: {self.n} scored, {self.n_failed} failed",
            f"  accuracy  {_interval_text(self.accuracy, self.accuracy_ci)}",
            f"  kappa     {_interval_text(self.kappa, self.kappa_ci)}"
            f"  ({_kappa_name(self.kappa_weighting)})",
            f"  intervals: {self.confidence:.0%} bootstrap percentile, "
            f"{self.n_bootstrap} resamples",
            "",
            "Confusion matrix (rows = SME, columns = judge)",
            *_indent(_table(self._confusion_rows())),
            "",
            *_indent(_table(self._per_label_rows())),
            "",
            _id_line("Disagreeing ids", self.disagreeing_ids),
            _id_line("Failed ids", self.failed_ids),
        ]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines)

    def _confusion_rows(self) -> list[list[str]]:
        header = ["SME \\ judge", *(str(label) for label in self.labels)]
        body = [
            [str(label), *(str(count) for count in row)]
            for label, row in zip(self.labels, self.confusion, strict=True)
        ]
        return [header, *body]

    def _per_label_rows(self) -> list[list[str]]:
        rows = [["label", "precision", "recall", "f1", "support"]]
        for label, m in self.per_label.items():
            scores = (_number_text(m.precision), _number_text(m.recall), _number_text(m.f1))
            rows.append([str(label), *scores, str(m.support)])
        return rows


@dataclass(frozen=True)
class JudgeComparison:
    """A base and an aligned judge scored against the same SME labels.

    Attributes:
        base: the base judge's agreement.
        aligned: the aligned judge's agreement.
        accuracy_delta: ``aligned.accuracy - base.accuracy``.
        kappa_delta: ``aligned.kappa - base.kappa`` (``nan`` when either is undefined).
        fixed_ids: ids the base judge got wrong and the aligned judge gets right.
        broken_ids: ids the base judge got right and the aligned judge gets wrong.
            Ids where either judge gave no verdict are in neither list; see the reports'
            ``failed_ids``.
    """

    base: AgreementReport
    aligned: AgreementReport
    accuracy_delta: float
    kappa_delta: float
    fixed_ids: tuple[str, ...]
    broken_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None``."""
        data: dict[str, Any] = {
            "base": self.base.to_dict(),
            "aligned": self.aligned.to_dict(),
            "accuracy_delta": self.accuracy_delta,
            "kappa_delta": self.kappa_delta,
            "fixed_ids": list(self.fixed_ids),
            "broken_ids": list(self.broken_ids),
        }
        return _json_ready(data)

    def format(self) -> str:
        """A plain-text side-by-side table of both judges, the deltas and fixed/broken ids."""
        base, aligned = self.base, self.aligned
        kappa = f"kappa ({_kappa_name(base.kappa_weighting)})"
        rows = [
            ["", "base", "aligned", "delta"],
            ["scored", str(base.n), str(aligned.n), f"{aligned.n - base.n:+d}"],
            ["failed", str(base.n_failed), str(aligned.n_failed), ""],
            [
                "accuracy",
                *self._pair(base.accuracy, base.accuracy_ci, aligned.accuracy, aligned.accuracy_ci),
                _signed(self.accuracy_delta),
            ],
            [
                kappa,
                *self._pair(base.kappa, base.kappa_ci, aligned.kappa, aligned.kappa_ci),
                _signed(self.kappa_delta),
            ],
        ]
        lines = [
            f"Base vs aligned judge ({base.confidence:.0%} bootstrap intervals)",
            *_indent(_table(rows)),
            "",
            _id_line("Fixed by alignment", self.fixed_ids),
            _id_line("Broken by alignment", self.broken_ids),
        ]
        lines += [f"Note (base): {note}" for note in base.notes]
        lines += [f"Note (aligned): {note}" for note in aligned.notes]
        return "\n".join(lines)

    @staticmethod
    def _pair(
        first: float, first_ci: tuple[float, float], second: float, second_ci: tuple[float, float]
    ) -> list[str]:
        return [_interval_text(first, first_ci), _interval_text(second, second_ci)]


class SupportsEvaluate(Protocol):
    """Anything that judges a batch of records, like :class:`judgealign.Judge`.

    It may also carry ``value_spec`` (with ``coerce``), used to coerce SME labels to the
    judge's value type, so that an SME's ``"yes"`` matches a boolean judge's ``True``.
    """

    def evaluate(self, records: Sequence[Any], /, *, max_workers: int) -> Sequence[Feedback]:
        """Return one :class:`Feedback` per record, in record order."""
        ...


# -- agreement --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pairs:
    """The scored (SME, judge) pairs and the ids the judge failed on."""

    ids: tuple[str, ...]
    sme: tuple[Label, ...]
    judge: tuple[Label, ...]
    failed_ids: tuple[str, ...]


def agreement(
    predictions: Sequence[Feedback | RawLabel | None],
    sme_labels: Sequence[RawLabel],
    *,
    ids: Sequence[str | int] | None = None,
    labels: Sequence[RawLabel] | None = None,
    ordinal: bool | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> AgreementReport:
    """Measure how a judge's verdicts agree with SME labels.

    Args:
        predictions: the judge's verdicts: :class:`Feedback` objects (their ``value``) or
            plain values. A Feedback with an ``error``, or a ``None`` value, is "no
            verdict": excluded from the metrics, counted in ``n_failed`` and listed in
            ``failed_ids``.
        sme_labels: the experts' labels, one per prediction.
        ids: one id per record; defaults to ``"0"``, ``"1"``, ...
        labels: the label order. Defaults to ``[False, True]`` for booleans and the sorted
            labels seen otherwise. For ordered text labels pass them in order, with
            ``ordinal=True``.
        ordinal: whether the labels are ordered. Defaults to True for numbers and False for
            booleans and text. Ordered labels get quadratic-weighted kappa, whose weights
            follow the positions in ``labels`` (not the numeric values).
        n_bootstrap: resamples of the scored pairs for the intervals; 0 skips them.
        confidence: the intervals' confidence level, in (0, 1).
        seed: seeds ``numpy.random.default_rng`` for the bootstrap.

    Returns:
        The :class:`AgreementReport`.

    Raises:
        ConfigurationError: on mismatched lengths, empty input, no verdict at all, values
            that are not labels (mixed types, non-integral floats, missing SME labels), or
            a value missing from ``labels``.
    """
    _check_options(n_bootstrap=n_bootstrap, confidence=confidence)
    keys = _resolve_ids(ids, len(predictions), len(sme_labels))
    pairs = _collect_pairs(predictions, sme_labels, keys)
    order = _resolve_labels(pairs, labels)
    weighting: Weighting = "quadratic" if _resolve_ordinal(order, ordinal) else "none"
    accuracy, kappa = _point_scores(pairs, order, weighting)
    sme_idx, judge_idx = _indices(pairs.sme, order), _indices(pairs.judge, order)
    boot = _bootstrap(
        sme_idx,
        judge_idx,
        _weights(len(order), weighting),
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    notes = _kappa_notes(pairs, kappa, boot.skipped, n_bootstrap)
    return AgreementReport(
        n=len(pairs.ids),
        n_failed=len(pairs.failed_ids),
        accuracy=accuracy,
        kappa=kappa,
        kappa_weighting=weighting,
        labels=order,
        confusion=_confusion(pairs, order),
        per_label=_per_label(pairs, order),
        accuracy_ci=boot.accuracy_ci,
        kappa_ci=boot.kappa_ci,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        disagreeing_ids=tuple(
            k for k, s, j in zip(pairs.ids, pairs.sme, pairs.judge, strict=True) if s != j
        ),
        failed_ids=pairs.failed_ids,
        notes=notes,
    )


def _check_options(*, n_bootstrap: int, confidence: float) -> None:
    if not _is_whole(n_bootstrap) or n_bootstrap < 0:
        raise ConfigurationError(
            f"n_bootstrap={n_bootstrap!r} must be a whole number >= 0 (0 skips the "
            "intervals); the default is 1000."
        )
    if not _is_number(confidence) or not 0 < confidence < 1:
        raise ConfigurationError(
            f"confidence={confidence!r} must be strictly between 0 and 1, for example 0.95."
        )


def _resolve_ids(ids: Sequence[str | int] | None, n_predictions: int, n_labels: int) -> list[str]:
    if n_predictions != n_labels:
        raise ConfigurationError(
            f"predictions has {n_predictions} items but sme_labels has {n_labels}; pass one "
            "SME label per prediction, in the same order."
        )
    if n_predictions == 0:
        raise ConfigurationError(
            "predictions and sme_labels are empty; agreement needs at least one labelled record."
        )
    if ids is None:
        return [str(i) for i in range(n_predictions)]
    keys = [str(key) for key in ids]
    if len(keys) != n_predictions:
        raise ConfigurationError(
            f"ids has {len(keys)} items but predictions has {n_predictions}; pass one id per "
            "prediction, or leave ids out to number them."
        )
    duplicates = sorted(key for key, count in Counter(keys).items() if count > 1)
    if duplicates:
        raise ConfigurationError(
            f"ids must be unique; these repeat: {duplicates[:_SHOWN_IDS]}. Give every record "
            "its own id."
        )
    return keys


def _collect_pairs(
    predictions: Sequence[Feedback | RawLabel | None],
    sme_labels: Sequence[RawLabel],
    keys: Sequence[str],
) -> _Pairs:
    scored: list[str] = []
    sme: list[Label] = []
    judge: list[Label] = []
    failed: list[str] = []
    errors: list[str] = []
    for key, prediction, raw_label in zip(keys, predictions, sme_labels, strict=True):
        if _is_missing(raw_label):
            raise ConfigurationError(
                f"sme_labels has no label for id {key!r}; drop unlabelled records before "
                "measuring agreement."
            )
        label = _normalize(raw_label, f"sme_labels (id {key!r})")
        verdict = _verdict(prediction)
        if _is_missing(verdict):
            failed.append(key)
            if isinstance(prediction, Feedback) and prediction.error:
                errors.append(prediction.error)
            continue
        scored.append(key)
        sme.append(label)
        judge.append(_normalize(verdict, f"predictions (id {key!r})"))
    if not scored:
        first = f" First error: {errors[0]}" if errors else ""
        raise ConfigurationError(
            f"All {len(failed)} predictions have no verdict (an error or a None value), so "
            f"there is nothing to score. Fix the judge's failures and evaluate again.{first}"
        )
    return _Pairs(tuple(scored), tuple(sme), tuple(judge), tuple(failed))


def _verdict(prediction: object) -> object:
    if isinstance(prediction, Feedback):
        return None if prediction.error is not None else prediction.value
    return prediction


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _normalize(value: object, where: str) -> Label:
    if isinstance(value, np.generic):  # numpy scalars, e.g. from a pandas column
        value = cast("np.generic[Any]", value).item()
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigurationError(
        f"{where} has the value {value!r}, which is not a label. Agreement needs bool, int, "
        "str, or floats with whole values such as 3.0; round or bin continuous scores first."
    )


def _kind(value: Label) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "number"


def _resolve_labels(pairs: _Pairs, labels: Sequence[RawLabel] | None) -> tuple[Label, ...]:
    seen = set(pairs.sme) | set(pairs.judge)
    given = None if labels is None else [_normalize(v, "labels") for v in labels]
    kinds = {_kind(v) for v in [*seen, *(given or [])]}
    if len(kinds) > 1:
        raise ConfigurationError(
            f"sme_labels, predictions and labels mix value types ({', '.join(sorted(kinds))}). "
            "Convert them to one type first, for example with the judge's value_spec.coerce."
        )
    if given is None:
        return (False, True) if kinds == {"bool"} else tuple(sorted(seen))
    if not given or len(set(given)) != len(given):
        raise ConfigurationError(
            f"labels={list(given)!r} must list each label once, for example "
            "['Not useful at all', 'Partially useful', 'Useful']."
        )
    unknown = sorted(seen - set(given), key=str)
    if unknown:
        raise ConfigurationError(
            f"labels={list(given)!r} leaves out {unknown!r}, which appear in sme_labels or "
            "predictions. Add them to labels or fix the values."
        )
    return tuple(given)


def _resolve_ordinal(labels: Sequence[Label], ordinal: bool | None) -> bool:
    if ordinal is None:
        return _kind(labels[0]) == "number"
    return bool(ordinal)


def _indices(values: Sequence[Label], labels: Sequence[Label]) -> NDArray[np.intp]:
    position = {label: i for i, label in enumerate(labels)}
    return np.array([position[value] for value in values], dtype=np.intp)


# -- metrics (scikit-learn for the reported point estimates) ---------------------------


def _single_label(pairs: _Pairs) -> bool:
    return len(set(pairs.sme) | set(pairs.judge)) == 1


def _point_scores(
    pairs: _Pairs, labels: Sequence[Label], weighting: Weighting
) -> tuple[float, float]:
    metrics = _sklearn("sklearn.metrics")
    accuracy = float(metrics.accuracy_score(list(pairs.sme), list(pairs.judge)))
    if _single_label(pairs):
        return accuracy, math.nan
    weights = "quadratic" if weighting == "quadratic" else None
    kappa = metrics.cohen_kappa_score(
        list(pairs.sme), list(pairs.judge), labels=list(labels), weights=weights
    )
    return accuracy, float(kappa)


def _confusion(pairs: _Pairs, labels: Sequence[Label]) -> tuple[tuple[int, ...], ...]:
    metrics = _sklearn("sklearn.metrics")
    with _labels_passed():
        matrix = metrics.confusion_matrix(list(pairs.sme), list(pairs.judge), labels=list(labels))
    counts: list[list[int]] = np.asarray(matrix, dtype=np.int64).tolist()
    return tuple(tuple(row) for row in counts)


def _per_label(pairs: _Pairs, labels: Sequence[Label]) -> dict[Label, LabelMetrics]:
    metrics = _sklearn("sklearn.metrics")
    with _labels_passed():
        scores = metrics.precision_recall_fscore_support(
            list(pairs.sme), list(pairs.judge), labels=list(labels), average=None, zero_division=0
        )
    precision, recall, f1, support = (np.asarray(column).tolist() for column in scores)
    return {
        label: LabelMetrics(float(p), float(r), float(f), int(s))
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    }


@contextmanager
def _labels_passed() -> Iterator[None]:
    """Silence scikit-learn's advice to pass ``labels`` when one label occurs: we always do."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        yield


def _sklearn(module: str) -> Any:
    """Import a scikit-learn module on first use (it has no type stubs: Any stops here)."""
    return importlib.import_module(module)


def _kappa_notes(pairs: _Pairs, kappa: float, skipped: int, n_bootstrap: int) -> tuple[str, ...]:
    notes: list[str] = []
    if math.isnan(kappa) and _single_label(pairs):
        notes.append(
            f"kappa is undefined: the SME and the judge both used only {pairs.sme[0]!r}, so "
            "there is no variation to measure agreement beyond chance. Accuracy still holds."
        )
    if skipped:
        notes.append(
            f"kappa interval: {skipped} of {n_bootstrap} resamples held a single label "
            "(kappa undefined) and were skipped."
        )
    return tuple(notes)


# -- bootstrap (numpy, vectorized over resamples) --------------------------------------


@dataclass(frozen=True)
class _Bootstrap:
    accuracy_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    skipped: int


def _weights(n_labels: int, weighting: Weighting) -> NDArray[np.float64]:
    """Disagreement weights as scikit-learn defines them, by position in the label order."""
    position = np.arange(n_labels, dtype=np.float64)
    if weighting == "quadratic":
        return (position[:, None] - position[None, :]) ** 2
    return 1.0 - np.eye(n_labels)


def _kappa_from_confusion(
    confusion: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cohen's kappa of each confusion matrix in a (batch, k, k) stack; nan when undefined."""
    total = confusion.sum(axis=(1, 2))
    expected = confusion.sum(axis=2)[:, :, None] * confusion.sum(axis=1)[:, None, :]
    expected = expected / total[:, None, None]
    observed_cost = (weights * confusion).sum(axis=(1, 2))
    expected_cost = (weights * expected).sum(axis=(1, 2))
    defined = expected_cost > 0
    ratio = np.divide(observed_cost, expected_cost, out=np.zeros_like(total), where=defined)
    return np.where(defined, 1.0 - ratio, np.nan)


def _confusion_stack(
    sme: NDArray[np.intp], judge: NDArray[np.intp], n_labels: int
) -> NDArray[np.float64]:
    """Confusion matrices of each row of two (batch, n) index arrays."""
    batch = sme.shape[0]
    offset: NDArray[np.intp] = np.arange(batch, dtype=np.intp)[:, None] * n_labels * n_labels
    cell: NDArray[np.intp] = sme * n_labels + judge + offset
    counts: NDArray[np.int64] = np.bincount(cell.ravel(), minlength=batch * n_labels * n_labels)
    shape = (batch, n_labels, n_labels)
    return np.reshape(counts, shape).astype(np.float64)


def _bootstrap(
    sme: NDArray[np.intp],
    judge: NDArray[np.intp],
    weights: NDArray[np.float64],
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> _Bootstrap:
    rng = np.random.default_rng(seed)
    n, n_labels = sme.size, weights.shape[0]
    accuracies: list[NDArray[np.float64]] = []
    kappas: list[NDArray[np.float64]] = []
    done = 0
    while done < n_bootstrap:
        batch = min(max(1, _BOOTSTRAP_CELLS // n), n_bootstrap - done)
        draw = rng.integers(0, n, size=(batch, n))
        accuracies.append((sme[draw] == judge[draw]).mean(axis=1))
        kappas.append(
            _kappa_from_confusion(_confusion_stack(sme[draw], judge[draw], n_labels), weights)
        )
        done += batch
    kappa = np.concatenate(kappas) if kappas else np.empty(0)
    defined = kappa[~np.isnan(kappa)]
    accuracy = np.concatenate(accuracies) if accuracies else np.empty(0)
    return _Bootstrap(
        accuracy_ci=_percentile_interval(accuracy, confidence),
        kappa_ci=_percentile_interval(defined, confidence),
        skipped=int(kappa.size - defined.size),
    )


def _percentile_interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    if values.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))


# -- split ------------------------------------------------------------------------------


def split_records(
    records: Sequence[R],
    *,
    test_size: float = 0.3,
    seed: int = 0,
    stratify_by: Callable[[R], Hashable] | None = None,
) -> tuple[list[R], list[R]]:
    """Split records into a train set and a held-out set, reproducibly.

    The same records, ``test_size`` and ``seed`` always give the same split. Both parts
    keep the input order. The split is stratified by ``stratify_by(record)`` when given,
    else by each record's ``label`` (key or attribute) when every record has one. When a
    class has fewer than 2 members, or there are more classes than records in a part, the
    split falls back to unstratified and warns.

    Args:
        records: dicts or objects.
        test_size: share of records held out, strictly between 0 and 1 (rounded up).
        seed: the random seed.
        stratify_by: a function giving each record's class.

    Returns:
        ``(train, held_out)``: disjoint lists that together hold every record.

    Raises:
        ConfigurationError: when ``test_size`` is outside (0, 1) or leaves a part empty.
    """
    items = list(records)
    n_test = _held_out_count(len(items), test_size)
    strata = _strata(items, stratify_by)
    if strata is not None and not _can_stratify(strata, n_test, len(items) - n_test):
        warnings.warn(
            "split_records: a class has fewer than 2 records, or there are more classes than "
            "records in one part; the split is not stratified.",
            UserWarning,
            stacklevel=2,
        )
        strata = None
    split = _sklearn("sklearn.model_selection").train_test_split
    train, test = split(
        list(range(len(items))), test_size=n_test, random_state=seed, shuffle=True, stratify=strata
    )
    train_idx: list[int] = sorted(train)
    test_idx: list[int] = sorted(test)
    return [items[i] for i in train_idx], [items[i] for i in test_idx]


def _held_out_count(n: int, test_size: float) -> int:
    if not _is_number(test_size) or not 0 < test_size < 1:
        raise ConfigurationError(
            f"test_size={test_size!r} must be a fraction strictly between 0 and 1, for example 0.3."
        )
    n_test = math.ceil(test_size * n)
    if n_test >= n or n_test < 1:
        raise ConfigurationError(
            f"split_records got {n} records; test_size={test_size!r} would leave the train "
            "or held-out part empty. Pass at least 2 records or change test_size."
        )
    return n_test


def _strata(items: Sequence[R], stratify_by: Callable[[R], Hashable] | None) -> list[int] | None:
    if stratify_by is None:
        keys: list[object] = [_field(item, "label") for item in items]
        if any(key is _MISSING for key in keys):
            return None
    else:
        keys = [stratify_by(item) for item in items]
    codes: dict[object, int] = {}
    try:
        return [codes.setdefault(key, len(codes)) for key in keys]
    except TypeError as err:
        raise ConfigurationError(
            "split_records could not group records by label: the labels must be hashable "
            "(str, int, bool). Pass stratify_by returning a hashable class."
        ) from err


def _can_stratify(strata: Sequence[int], n_test: int, n_train: int) -> bool:
    counts = np.bincount(np.asarray(strata))
    return int(counts.min()) >= 2 and counts.size <= min(n_test, n_train)


def _field(record: object, name: str) -> object:
    if isinstance(record, Mapping):
        return cast("Mapping[str, object]", record).get(name, _MISSING)
    return getattr(record, name, _MISSING)


# -- comparison -------------------------------------------------------------------------


def compare_judges(
    base: SupportsEvaluate,
    aligned: SupportsEvaluate,
    records: Sequence[Any],
    *,
    max_workers: int = 8,
    labels: Sequence[RawLabel] | None = None,
    ordinal: bool | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> JudgeComparison:
    """Run a base and an aligned judge on labelled records and compare their agreement.

    Each record's SME label is ``record["label"]`` (or ``record.label``) and its id is
    ``record["id"]`` (or ``record.id``, else its position). When a judge has a
    ``value_spec`` with ``coerce``, the SME labels are coerced with it first, so ``"yes"``
    matches ``True``; a ``Literal`` judge's choices become the default label order.

    Args:
        base: the judge before alignment.
        aligned: the judge after alignment.
        records: held-out labelled records (never the records used for alignment).
        max_workers: passed to each judge's ``evaluate``.
        labels: the label order (see :func:`agreement`).
        ordinal: whether the labels are ordered (see :func:`agreement`).
        seed: the bootstrap seed, shared by both reports.
        n_bootstrap: bootstrap resamples per report.
        confidence: the intervals' confidence level.

    Returns:
        The :class:`JudgeComparison`.

    Raises:
        ConfigurationError: when records are empty or lack labels, a label does not fit a
            judge's value type, or a judge returns the wrong number of feedbacks.
    """
    items = list(records)
    if not items:
        raise ConfigurationError("compare_judges got no records; pass labelled held-out records.")
    ids = [_record_id(item, i) for i, item in enumerate(items)]
    sme = [_record_label(item, key) for item, key in zip(items, ids, strict=True)]

    def score(judge: SupportsEvaluate, role: str) -> AgreementReport:
        feedback = _evaluate(judge, role, items, max_workers)
        spec = getattr(judge, "value_spec", None)
        return agreement(
            feedback,
            _coerce_labels(spec, sme, ids, role),
            ids=ids,
            labels=_spec_labels(spec) if labels is None else labels,
            ordinal=ordinal,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )

    return _comparison(score(base, "base"), score(aligned, "aligned"), ids)


def _record_id(record: object, position: int) -> str:
    value = _field(record, "id")
    return str(position) if value is _MISSING or value is None else str(value)


def _record_label(record: object, key: str) -> object:
    value = _field(record, "label")
    if value is _MISSING or value is None:
        raise ConfigurationError(
            f"record {key!r} has no 'label' (key or attribute); compare_judges needs the SME "
            "label of every record."
        )
    return value


def _evaluate(
    judge: SupportsEvaluate, role: str, items: list[Any], max_workers: int
) -> list[Feedback]:
    feedback = list(judge.evaluate(items, max_workers=max_workers))
    if len(feedback) != len(items):
        raise ConfigurationError(
            f"The {role} judge's evaluate() returned {len(feedback)} feedbacks for "
            f"{len(items)} records; it must return one per record, in order."
        )
    return feedback


def _spec_labels(spec: object) -> list[RawLabel] | None:
    """A Literal judge's choices, in declared order; None for other judges."""
    choices = getattr(spec, "choices", None)
    if isinstance(choices, tuple) and choices:
        return [str(choice) for choice in cast("tuple[object, ...]", choices)]
    return None


def _coerce_labels(spec: object, sme: list[object], ids: list[str], role: str) -> list[Label]:
    """SME labels as the judge's type when it declares a ``value_spec.coerce``."""
    coerce = getattr(spec, "coerce", None)
    coerced: list[Label] = []
    for key, value in zip(ids, sme, strict=True):
        if callable(coerce):
            try:
                value = coerce(value)
            except ValueError as err:
                describe = getattr(spec, "describe", None)
                wanted = f" (expected {describe()})" if callable(describe) else ""
                raise ConfigurationError(
                    f"The SME label {value!r} of record {key!r} does not fit the {role} "
                    f"judge's value type{wanted}: {err}. Fix the label or the judge's "
                    "feedback_value_type."
                ) from err
        coerced.append(_normalize(value, f"the SME label of record {key!r}"))
    return coerced


def _comparison(base: AgreementReport, aligned: AgreementReport, ids: list[str]) -> JudgeComparison:
    before, after = _outcomes(base, ids), _outcomes(aligned, ids)
    return JudgeComparison(
        base=base,
        aligned=aligned,
        accuracy_delta=aligned.accuracy - base.accuracy,
        kappa_delta=aligned.kappa - base.kappa,
        fixed_ids=tuple(k for k in ids if before[k] is False and after[k] is True),
        broken_ids=tuple(k for k in ids if before[k] is True and after[k] is False),
    )


def _outcomes(report: AgreementReport, ids: list[str]) -> dict[str, bool | None]:
    """Per id: True when the judge agreed, False when it disagreed, None when it failed."""
    failed, wrong = set(report.failed_ids), set(report.disagreeing_ids)
    return {k: None if k in failed else k not in wrong for k in ids}


# -- text and JSON helpers --------------------------------------------------------------


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in cast("dict[str, Any]", value).items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in cast("list[Any]", value)]
    return value


def _kappa_name(weighting: Weighting) -> str:
    return "quadratic-weighted" if weighting == "quadratic" else "unweighted"


def _number_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def _interval_text(value: float, interval: tuple[float, float]) -> str:
    if math.isnan(interval[0]):
        return _number_text(value)
    return f"{_number_text(value)} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _signed(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def _id_line(title: str, ids: Sequence[str]) -> str:
    if not ids:
        return f"{title} (0): none"
    shown = ", ".join(ids[:_SHOWN_IDS])
    more = f", ... ({len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return f"{title} ({len(ids)}): {shown}{more}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]
