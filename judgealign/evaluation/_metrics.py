"""Scoring one judge's verdicts against SME labels: :func:`agreement`.

Point estimates come from scikit-learn, imported on first use; the intervals come from
:mod:`judgealign.evaluation._bootstrap`.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.evaluation._bootstrap import bootstrap_intervals
from judgealign.evaluation._leakage import leak_warning, refuse_all_leaked
from judgealign.evaluation._panel import (
    JudgeAmongRaters,
    default_level,
    is_panel,
    judge_among_raters,
)
from judgealign.evaluation._report import AgreementReport, LabelMetrics
from judgealign.evaluation._text import SHOWN_IDS
from judgealign.judges._feedback import Feedback
from judgealign.judges._labels import Label, RawLabel, Weighting, is_number, normalize_label
from judgealign.judges._memorised import is_memorised

if TYPE_CHECKING:
    from judgealign.judges._records import LabeledRecord

__all__ = ["agreement"]


@dataclass(frozen=True)
class _Pairs:
    """The scored (SME, judge) pairs, the ids the judge failed on and the ids left out
    because the judge holds them in memory."""

    ids: tuple[str, ...]
    sme: tuple[Label, ...]
    judge: tuple[Label, ...]
    failed_ids: tuple[str, ...]
    excluded_ids: tuple[str, ...] = ()


def agreement(
    predictions: Sequence[Feedback | RawLabel | None],
    sme_labels: Sequence[RawLabel] | Sequence[LabeledRecord],
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
            ``failed_ids``. An aligned judge's Feedback on a record it holds in memory
            (metadata ``memorised_record_id``) is no held-out evidence: it is left out
            with a warning and listed in ``excluded_ids``.
        sme_labels: the experts' labels, one per prediction; or panel records (with
            ``ratings`` from two or more raters), whose resolved ``label`` is the SME
            label and whose ids are the default ``ids``. A panel adds ``panel`` to the
            report: the raters' agreement with each other and the judge as one more
            rater (:class:`judgealign.evaluation._panel.JudgeAmongRaters`).
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
        ConfigurationError: on mismatched lengths, empty input, no verdict at all, every
            record in the judge's memory, values that are not labels (mixed types,
            non-integral floats, missing SME labels), or a value missing from ``labels``.
    """
    _check_options(n_bootstrap=n_bootstrap, confidence=confidence)
    records = cast("list[LabeledRecord]", list(sme_labels)) if is_panel(sme_labels) else None
    expert: Sequence[RawLabel] = (
        cast("Sequence[RawLabel]", sme_labels)
        if records is None
        else [r.label for r in records]  # a panel: the resolved labels; the judge rates too
    )
    if records is not None and ids is None:
        ids = [r.id for r in records]
    keys = _resolve_ids(ids, len(predictions), len(expert))
    pairs = _collect_pairs(predictions, expert, keys)
    if pairs.excluded_ids:
        message = leak_warning(pairs.excluded_ids, len(keys), "the agreement")
        warnings.warn(message, UserWarning, stacklevel=2)
    order = _resolve_labels(pairs, labels)
    weighting: Weighting = "quadratic" if _resolve_ordinal(order, ordinal) else "none"
    accuracy, kappa = _point_scores(pairs, order, weighting)
    boot = bootstrap_intervals(
        pairs.sme,
        pairs.judge,
        order,
        weighting,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    notes = _kappa_notes(pairs, kappa, boot.skipped, n_bootstrap)
    options = {"n_bootstrap": n_bootstrap, "confidence": confidence, "seed": seed}
    return AgreementReport(
        panel=None
        if records is None
        else _judge_as_rater(records, pairs, keys, order, weighting, labels, options),
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
        excluded_ids=pairs.excluded_ids,
    )


def _judge_as_rater(
    records: Sequence[LabeledRecord],
    pairs: _Pairs,
    keys: Sequence[str],
    order: tuple[Label, ...],
    weighting: Weighting,
    labels: Sequence[RawLabel] | None,
    options: dict[str, Any],
) -> JudgeAmongRaters:
    """The panel statistics with the judge's verdicts as one more rater's."""
    verdict = dict(zip(pairs.ids, pairs.judge, strict=True))
    rated = {
        normalize_label(r.label, f"record {key!r}, rater {r.rater!r}")
        for key, record in zip(keys, records, strict=True)
        for r in record.ratings
    }
    extra = sorted(rated - set(order), key=str)
    if extra and labels is not None:
        raise ConfigurationError(
            f"labels={list(order)!r} leaves out {extra!r}, which raters gave. Add them to "
            "labels or fix the ratings."
        )
    panel_order = order if not extra else tuple(sorted({*order, *extra}, key=_panel_sort))
    return judge_among_raters(
        records,
        [verdict.get(key) for key in keys],
        labels=panel_order,
        level=default_level(panel_order, weighting == "quadratic"),
        **options,
    )


def _panel_sort(value: Label) -> tuple[int, float, str]:
    return (0, float(value), "") if is_number(value) else (1, 0.0, str(value))


# -- inputs: options, ids, verdicts and the label order --------------------------------


def _check_options(*, n_bootstrap: int, confidence: float) -> None:
    if not _is_whole(n_bootstrap) or n_bootstrap < 0:
        raise ConfigurationError(
            f"n_bootstrap={n_bootstrap!r} must be a whole number >= 0 (0 skips the "
            "intervals); the default is 1000."
        )
    if not is_number(confidence) or not 0 < confidence < 1:
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
            f"ids must be unique; these repeat: {duplicates[:SHOWN_IDS]}. Give every record "
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
    excluded: list[str] = []
    errors: list[str] = []
    for key, prediction, raw_label in zip(keys, predictions, sme_labels, strict=True):
        if _is_missing(raw_label):
            raise ConfigurationError(
                f"sme_labels has no label for id {key!r}; drop unlabelled records before "
                "measuring agreement."
            )
        label = normalize_label(raw_label, f"sme_labels (id {key!r})")
        if is_memorised(prediction):
            excluded.append(key)
            continue
        verdict = _verdict(prediction)
        if _is_missing(verdict):
            failed.append(key)
            if isinstance(prediction, Feedback) and prediction.error:
                errors.append(prediction.error)
            continue
        scored.append(key)
        sme.append(label)
        judge.append(normalize_label(verdict, f"predictions (id {key!r})"))
    if not scored and not failed:
        raise refuse_all_leaked(len(excluded), "agreement")
    if not scored:
        first = f" First error: {errors[0]}" if errors else ""
        held = f" (and {len(excluded)} more are in the judge's memory)" if excluded else ""
        raise ConfigurationError(
            f"All {len(failed)} predictions have no verdict (an error or a None value){held}, "
            "so there is nothing to score. Fix the judge's failures and evaluate again."
            f"{first}"
        )
    return _Pairs(tuple(scored), tuple(sme), tuple(judge), tuple(failed), tuple(excluded))


def _verdict(prediction: object) -> object:
    if isinstance(prediction, Feedback):
        return None if prediction.error is not None else prediction.value
    return prediction


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Label) -> str:
    if isinstance(value, bool):
        return "bool"
    return "str" if isinstance(value, str) else "number"


def _resolve_labels(pairs: _Pairs, labels: Sequence[RawLabel] | None) -> tuple[Label, ...]:
    seen = set(pairs.sme) | set(pairs.judge)
    given = None if labels is None else [normalize_label(v, "labels") for v in labels]
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
    import numpy as np

    metrics = _sklearn("sklearn.metrics")
    with _labels_passed():
        matrix = metrics.confusion_matrix(list(pairs.sme), list(pairs.judge), labels=list(labels))
    counts: list[list[int]] = np.asarray(matrix, dtype=np.int64).tolist()
    return tuple(tuple(row) for row in counts)


def _per_label(pairs: _Pairs, labels: Sequence[Label]) -> dict[Label, LabelMetrics]:
    import numpy as np

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
