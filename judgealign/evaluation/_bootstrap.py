"""Bootstrap percentile intervals of accuracy and Cohen's kappa.

This recomputes scikit-learn's kappa with numpy over whole batches of resampled confusion
matrices, because a thousand calls to scikit-learn per report would take seconds. numpy
is imported on first use, so that importing judgealign stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from judgealign.judges._labels import Label, Weighting

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["BootstrapIntervals", "bootstrap_intervals"]

_BOOTSTRAP_CELLS = 2_000_000  # resampled pairs drawn per numpy batch; bounds memory


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals, and how many resamples had no defined kappa."""

    accuracy_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    skipped: int


def bootstrap_intervals(
    sme: Sequence[Label],
    judge: Sequence[Label],
    labels: Sequence[Label],
    weighting: Weighting,
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
) -> BootstrapIntervals:
    """Resample the (SME, judge) pairs ``n_bootstrap`` times with ``numpy`` and ``seed``.

    Kappa's disagreement weights follow the positions in ``labels``. Resamples in which
    kappa is undefined are left out of its interval and counted in ``skipped``; an
    interval with no resamples is ``(nan, nan)``.
    """
    return _bootstrap(
        _indices(sme, labels),
        _indices(judge, labels),
        _weights(len(labels), weighting),
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )


def _indices(values: Sequence[Label], labels: Sequence[Label]) -> NDArray[np.intp]:
    import numpy as np

    position = {label: i for i, label in enumerate(labels)}
    return np.array([position[value] for value in values], dtype=np.intp)


def _weights(n_labels: int, weighting: Weighting) -> NDArray[np.float64]:
    """Disagreement weights as scikit-learn defines them, by position in the label order."""
    import numpy as np

    position = np.arange(n_labels, dtype=np.float64)
    if weighting == "quadratic":
        return (position[:, None] - position[None, :]) ** 2
    return 1.0 - np.eye(n_labels)


def _kappa_from_confusion(
    confusion: NDArray[np.float64], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Cohen's kappa of each confusion matrix in a (batch, k, k) stack; nan when undefined."""
    import numpy as np

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
    import numpy as np

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
) -> BootstrapIntervals:
    import numpy as np

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
    return BootstrapIntervals(
        accuracy_ci=_percentile_interval(accuracy, confidence),
        kappa_ci=_percentile_interval(defined, confidence),
        skipped=int(kappa.size - defined.size),
    )


def _percentile_interval(values: NDArray[np.float64], confidence: float) -> tuple[float, float]:
    import numpy as np

    if values.size == 0:
        return (math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return (float(low), float(high))
