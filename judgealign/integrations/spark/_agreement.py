"""``agreement_spark``: the agreement report from counts Spark computes, not from rows.

Spark counts each (SME label, verdict) pair with one ``groupBy``; the driver receives at
most labels x labels counts. Every figure of :class:`~judgealign.AgreementReport` follows
from that confusion matrix: accuracy is its trace over its total, Cohen's kappa (weighted
like :func:`judgealign.agreement`) and per-label precision/recall/F1 are functions of it,
and a bootstrap resample of the pairs is a multinomial draw of the matrix's cells (the
same distribution as drawing pairs with replacement, without materialising them).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import ConfigurationError

# The in-process agreement's own helpers, shared so that the two cannot drift apart.
from judgealign.evaluation._bootstrap import (
    _kappa_from_confusion,  # pyright: ignore[reportPrivateUsage]
    _percentile_interval,  # pyright: ignore[reportPrivateUsage]
    _weights,  # pyright: ignore[reportPrivateUsage]
)
from judgealign.evaluation._metrics import (
    _Pairs,  # pyright: ignore[reportPrivateUsage]
    _resolve_labels,  # pyright: ignore[reportPrivateUsage]
    _resolve_ordinal,  # pyright: ignore[reportPrivateUsage]
)
from judgealign.evaluation._report import AgreementReport, LabelMetrics
from judgealign.integrations.spark._session import check_dataframe
from judgealign.judges._labels import Label, normalize_label

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from pyspark.sql import Column, DataFrame

__all__ = ["agreement_spark"]

_RESAMPLES_PER_BATCH = 1000


def agreement_spark(
    df: DataFrame,
    label_col: str,
    verdict_col: str,
    *,
    id_col: str | None = None,
    labels: Sequence[Any] | None = None,
    ordinal: bool | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    max_ids: int = 1000,
) -> AgreementReport:
    """How a judge's verdicts in ``df`` agree with the experts' labels.

    Args:
        df: one row per record.
        label_col: the SME's label (boolean, integer or string).
        verdict_col: the judge's verdict: ``evaluate_spark``'s result struct (its
            ``value``; a row with an ``error`` counts as failed, a row the aligned judge
            holds in memory is left out with a warning) or a plain column (null: failed).
        id_col: the records' ids, for ``disagreeing_ids``, ``failed_ids`` and
            ``excluded_ids`` (at most ``max_ids`` of each, smallest first; a note says
            when there were more). Without it those lists are empty.
        labels, ordinal, n_bootstrap, confidence, seed: as in :func:`judgealign.agreement`.
        max_ids: how many ids of each list are brought to the driver.

    Raises:
        ConfigurationError: a column is missing, a label is null, or nothing can be scored.
    """
    frame = check_dataframe(df)
    from pyspark.sql import functions as F

    for option, name in (
        ("label_col", label_col),
        ("verdict_col", verdict_col),
        ("id_col", id_col),
    ):
        if name is not None and name not in frame.columns:
            raise ConfigurationError(
                f"Column {name!r} ({option}) is not in the DataFrame; its columns are "
                f"{', '.join(frame.columns)}."
            )
    verdict, failed, held = _verdict_columns(frame, verdict_col)
    state = F.when(held, F.lit("excluded")).when(failed, F.lit("failed")).otherwise(F.lit("scored"))
    rows = (
        frame.select(F.col(label_col).alias("sme"), verdict.alias("judge"), state.alias("state"))
        .groupBy("sme", "judge", "state")
        .count()
        .collect()
    )
    if any(row["sme"] is None for row in rows):
        raise ConfigurationError(
            f"Column {label_col!r} (label_col) has null labels; drop unlabelled records "
            "before measuring agreement (df.dropna(subset=[...]))."
        )
    counts = {
        (normalize_label(r["sme"], label_col), normalize_label(r["judge"], verdict_col)): int(
            r["count"]
        )
        for r in rows
        if r["state"] == "scored"
    }
    n_failed = sum(int(r["count"]) for r in rows if r["state"] == "failed")
    n_held = sum(int(r["count"]) for r in rows if r["state"] == "excluded")
    return _report(
        frame, counts, n_failed, n_held, state, label_col, verdict, id_col,
        labels=labels, ordinal=ordinal, n_bootstrap=n_bootstrap, confidence=confidence,
        seed=seed, max_ids=max_ids,
    )  # fmt: skip


def _verdict_columns(frame: DataFrame, verdict_col: str) -> tuple[Column, Column, Column]:
    """The verdict, whether the row failed, and whether the judge holds the record."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    kind = frame.schema[verdict_col].dataType
    column = F.col(verdict_col)
    if isinstance(kind, StructType) and "value" in kind.fieldNames():
        names = kind.fieldNames()
        error = column["error"].isNotNull() if "error" in names else F.lit(False)
        held = (
            column["memorised_record_id"].isNotNull()
            if "memorised_record_id" in names
            else F.lit(False)
        )
        value = column["value"]
        return value, error | value.isNull(), held
    return column, column.isNull(), F.lit(False)


def _report(
    frame: DataFrame,
    counts: dict[tuple[Label, Label], int],
    n_failed: int,
    n_held: int,
    state: Column,
    label_col: str,
    verdict: Column,
    id_col: str | None,
    *,
    labels: Sequence[Any] | None,
    ordinal: bool | None,
    n_bootstrap: int,
    confidence: float,
    seed: int,
    max_ids: int,
) -> AgreementReport:
    import numpy as np

    if not counts:
        raise ConfigurationError(
            f"No row of the DataFrame has a verdict to score ({n_failed} failed, {n_held} in "
            "the judge's memory); fix the judge's failures and evaluate again."
        )
    pairs = _Pairs(
        ids=tuple(str(i) for i in range(len(counts))),
        sme=tuple(s for s, _ in counts),
        judge=tuple(j for _, j in counts),
        failed_ids=(),
    )
    order = _resolve_labels(pairs, labels)
    weighting = "quadratic" if _resolve_ordinal(order, ordinal) else "none"
    position = {label: i for i, label in enumerate(order)}
    matrix = np.zeros((len(order), len(order)), dtype=np.int64)
    for (sme, judge), count in counts.items():
        matrix[position[sme], position[judge]] += count
    weights = _weights(len(order), weighting)
    n = int(matrix.sum())
    kappa = float(_kappa_from_confusion(matrix[None].astype(np.float64), weights)[0])
    accuracy_ci, kappa_ci, skipped = _bootstrap(matrix, weights, n_bootstrap, confidence, seed)
    notes: list[str] = []
    if math.isnan(kappa):
        notes.append(
            "kappa is undefined: the SME and the judge both used only one label, so there is "
            "no variation to measure agreement beyond chance. Accuracy still holds."
        )
    if skipped:
        notes.append(
            f"kappa interval: {skipped} of {n_bootstrap} resamples held a single label "
            "(kappa undefined) and were skipped."
        )
    ids = _ids(frame, state, label_col, verdict, id_col, max_ids, notes)
    if n_held:
        warnings.warn(
            f"{n_held} records are in the aligned judge's memory and were left out of the "
            "agreement (no held-out evidence).",
            UserWarning,
            stacklevel=3,
        )
    return AgreementReport(
        n=n,
        n_failed=n_failed,
        accuracy=float(np.trace(matrix)) / n,
        kappa=kappa,
        kappa_weighting=weighting,
        labels=order,
        confusion=tuple(tuple(int(c) for c in row) for row in matrix.tolist()),
        per_label=_per_label(matrix, order),
        accuracy_ci=accuracy_ci,
        kappa_ci=kappa_ci,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        disagreeing_ids=ids["disagreeing"],
        failed_ids=ids["failed"],
        notes=tuple(notes),
        excluded_ids=ids["excluded"],
    )


def _per_label(matrix: NDArray[np.int64], order: Sequence[Label]) -> dict[Label, LabelMetrics]:
    """Precision, recall and F1 per label (0 where undefined, as scikit-learn's
    ``zero_division=0``), from the confusion matrix."""
    result: dict[Label, LabelMetrics] = {}
    for i, label in enumerate(order):
        hit, predicted, actual = int(matrix[i, i]), int(matrix[:, i].sum()), int(matrix[i].sum())
        precision = hit / predicted if predicted else 0.0
        recall = hit / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        result[label] = LabelMetrics(precision, recall, f1, actual)
    return result


def _bootstrap(
    matrix: NDArray[np.int64],
    weights: NDArray[np.float64],
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile intervals from multinomial resamples of the confusion matrix."""
    import numpy as np

    if n_bootstrap <= 0:
        return (math.nan, math.nan), (math.nan, math.nan), 0
    rng = np.random.default_rng(seed)
    n, k = int(matrix.sum()), matrix.shape[0]
    cells = matrix.ravel().astype(np.float64) / n
    accuracies: list[NDArray[np.float64]] = []
    kappas: list[NDArray[np.float64]] = []
    done = 0
    while done < n_bootstrap:
        batch = min(_RESAMPLES_PER_BATCH, n_bootstrap - done)
        draws: NDArray[np.int64] = rng.multinomial(n, cells, size=batch)
        stack = np.reshape(draws, (batch, k, k)).astype(np.float64)
        accuracies.append(np.trace(stack, axis1=1, axis2=2) / n)
        kappas.append(_kappa_from_confusion(stack, weights))
        done += batch
    kappa = np.concatenate(kappas)
    defined = kappa[~np.isnan(kappa)]
    return (
        _percentile_interval(np.concatenate(accuracies), confidence),
        _percentile_interval(defined, confidence),
        int(kappa.size - defined.size),
    )


def _ids(
    frame: DataFrame,
    state: Column,
    label_col: str,
    verdict: Column,
    id_col: str | None,
    max_ids: int,
    notes: list[str],
) -> dict[str, tuple[str, ...]]:
    """Up to ``max_ids`` ids of each kind (the smallest, for a stable listing)."""
    from pyspark.sql import functions as F

    kinds = {
        "disagreeing": (state == "scored") & (F.col(label_col) != verdict),
        "failed": state == "failed",
        "excluded": state == "excluded",
    }
    found: dict[str, tuple[str, ...]] = {kind: () for kind in kinds}
    if id_col is None:
        notes.append(
            "No id_col was given, so the disagreeing, failed and excluded records are counted "
            "but not listed; pass id_col='<column>' to list their ids."
        )
        return found
    for kind, condition in kinds.items():
        chosen = frame.where(condition).select(F.col(id_col).cast("string").alias("id"))
        taken = [str(r["id"]) for r in chosen.orderBy("id").limit(max_ids + 1).collect()]
        if len(taken) > max_ids:
            notes.append(f"{kind}_ids lists the first {max_ids} ids only (sorted); there are more.")
        found[kind] = tuple(taken[:max_ids])
    return found
