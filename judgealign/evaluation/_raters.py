"""Agreement among several raters: Krippendorff's alpha, Fleiss' kappa, pairwise kappa.

The data is a table of units (records) by raters, with missing ratings allowed. Every
statistic is written as a function of per-unit weights, so that the point estimate
(every unit once) and each bootstrap resample (units drawn with replacement: a unit's
weight is how often it was drawn) are the same code, vectorised with numpy over a whole
batch of resamples.

* **Krippendorff's alpha** (Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability"): ``1 - (n - 1) * sum(o_ck * d_ck) / sum(n_c * n_k * d_ck)`` over the
  coincidence matrix ``o`` of the pairable values (units with two or more ratings), with
  the squared difference ``d`` of the level: nominal (``c != k``), ordinal (the number of
  values between ``c`` and ``k``, halves of the ends) or interval (``(c - k) ** 2``).
* **Fleiss' kappa** (Fleiss 1971), generalised to units rated by different numbers of
  raters: each unit's agreement ``P_i`` is averaged over units with two or more ratings,
  and chance comes from the pooled label shares. With the same number of raters on every
  unit it is Fleiss' formula.
* **Pairwise Cohen's kappa** between every two raters on the units both rated, with the
  same formula and weights as :func:`judgealign.agreement` (quadratic for ordered labels).

Intervals are bootstrap percentile intervals over units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from judgealign.core._errors import ConfigurationError
from judgealign.evaluation._bootstrap import _kappa_from_confusion, _percentile_interval, _weights  # pyright: ignore[reportPrivateUsage]
from judgealign.evaluation._text import interval_text, json_ready, table
from judgealign.judges._labels import Label, Weighting, is_number, normalize_label

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "Level",
    "RaterAgreement",
    "RatingTable",
    "fleiss_kappa",
    "krippendorff_alpha",
    "pairwise_kappa",
    "rater_agreement",
    "rating_table",
]

Level = Literal["nominal", "ordinal", "interval"]
_LEVELS = ("nominal", "ordinal", "interval")
_BATCH_CELLS = 4_000_000  # unit weights drawn per numpy batch; bounds memory


@dataclass(frozen=True)
class RatingTable:
    """Units by raters: ``codes[u, r]`` is the position in ``labels`` of rater ``r``'s
    label for unit ``u``, or -1 when ``r`` did not rate ``u``.

    Attributes:
        unit_ids: the units (record ids), in order.
        raters: the raters, in order of first appearance.
        labels: the label order; ordinal distances and kappa weights follow it.
        codes: the (units, raters) integer array.
    """

    unit_ids: tuple[str, ...]
    raters: tuple[str, ...]
    labels: tuple[Label, ...]
    codes: NDArray[np.intp]

    @property
    def n_ratings(self) -> int:
        """How many ratings the table holds."""
        return int((self.codes >= 0).sum())

    def with_rater(self, name: str, labels: Sequence[Label | None]) -> RatingTable:
        """This table with one more rater column (``None`` where it gave no label)."""
        import numpy as np

        if name in self.raters:
            raise ConfigurationError(
                f"{name!r} is already a rater of this panel; give the judge another name."
            )
        if len(labels) != len(self.unit_ids):
            raise ConfigurationError(
                f"the new rater has {len(labels)} labels for {len(self.unit_ids)} units."
            )
        position = {label: i for i, label in enumerate(self.labels)}
        column = np.array([-1 if v is None else position[v] for v in labels], dtype=np.intp)
        codes = np.concatenate([self.codes, column[:, None]], axis=1)
        return RatingTable(self.unit_ids, (*self.raters, name), self.labels, codes)


def rating_table(
    data: Sequence[Any] | Mapping[str, Mapping[str, Any]],
    *,
    labels: Sequence[Any] | None = None,
) -> RatingTable:
    """A :class:`RatingTable` from panel records or ``{unit: {rater: label}}``.

    Args:
        data: records with ``ratings`` (:class:`judgealign.LabeledRecord`, loaded in
            nested or long form) or a mapping of unit ids to ``{rater: label}``;
            ``None`` or a missing rater is a missing rating.
        labels: the label order; defaults to ``[False, True]`` for booleans and the
            sorted labels seen otherwise.

    Raises:
        ConfigurationError: no ratings, mixed label types, or a label missing from
            ``labels``.
    """
    import numpy as np

    rows = _unit_rows(data)
    raters: list[str] = []
    for _, ratings in rows:
        raters += [r for r in ratings if r not in raters]
    seen = {v for _, ratings in rows for v in ratings.values()}
    if not seen:
        raise ConfigurationError(
            "the panel holds no ratings; give records with ratings, e.g. "
            '{"id": ..., "ratings": [{"rater": "alice", "label": ...}, ...]}.'
        )
    order = _label_order(seen, labels)
    position = {label: i for i, label in enumerate(order)}
    codes = np.full((len(rows), len(raters)), -1, dtype=np.intp)
    column = {rater: j for j, rater in enumerate(raters)}
    for i, (_, ratings) in enumerate(rows):
        for rater, label in ratings.items():
            codes[i, column[rater]] = position[label]
    return RatingTable(tuple(uid for uid, _ in rows), tuple(raters), order, codes)


def _unit_rows(
    data: Sequence[Any] | Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, dict[str, Label]]]:
    rows: list[tuple[str, dict[str, Label]]] = []
    if isinstance(data, Mapping):
        for uid, ratings in data.items():
            where = f"unit {uid!r}"
            rows.append(
                (
                    str(uid),
                    {
                        str(rater): normalize_label(label, f"{where}, rater {rater!r}")
                        for rater, label in ratings.items()
                        if not _missing(label)
                    },
                )
            )
        return rows
    for index, record in enumerate(data):
        ratings = getattr(record, "ratings", None)
        uid = str(getattr(record, "id", index))
        if ratings is None:
            raise ConfigurationError(
                f"item {index} has no ratings; pass panel records (LabeledRecord with "
                "ratings, e.g. from load_jsonl or load_csv) or {unit: {rater: label}}."
            )
        rows.append(
            (
                uid,
                {
                    r.rater: normalize_label(r.label, f"record {uid!r}, rater {r.rater!r}")
                    for r in cast("Sequence[Any]", ratings)
                },
            )
        )
    return rows


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _label_order(seen: set[Label], labels: Sequence[Any] | None) -> tuple[Label, ...]:
    kinds = {"bool" if isinstance(v, bool) else type(v).__name__ for v in seen}
    kinds = {"number" if k == "int" else k for k in kinds}
    if len(kinds) > 1:
        raise ConfigurationError(
            f"the ratings mix label types ({', '.join(sorted(kinds))}); load them with the "
            "judge (judge=...) so that every label is coerced to its value type."
        )
    if labels is None:
        return (False, True) if kinds == {"bool"} else tuple(sorted(seen, key=_sort_key))
    given = tuple(normalize_label(v, "labels") for v in labels)
    unknown = sorted(seen - set(given), key=str)
    if unknown or len(set(given)) != len(given):
        raise ConfigurationError(
            f"labels={list(given)!r} must list each label once and include every rated "
            f"label; missing: {unknown!r}."
        )
    return given


def _sort_key(value: Label) -> tuple[int, float, str]:
    return (0, float(value), "") if is_number(value) else (1, 0.0, str(value))


# -- the statistics, as functions of per-unit weights (batch, units) --------------------


def _counts(table: RatingTable) -> NDArray[np.float64]:
    """(units, labels): how many raters gave each label to each unit."""
    import numpy as np

    k = len(table.labels)
    counts = np.zeros((len(table.unit_ids), k), dtype=np.float64)
    for j in range(len(table.raters)):
        rated = table.codes[:, j] >= 0
        counts[np.nonzero(rated)[0], table.codes[rated, j]] += 1.0
    return counts


def _alpha(table: RatingTable, weights: NDArray[np.float64], level: Level) -> NDArray[np.float64]:
    import numpy as np

    counts = _counts(table)
    m = counts.sum(axis=1)
    pairable = m >= 2
    k = counts.shape[1]
    per_unit = counts[:, :, None] * counts[:, None, :] - np.eye(k)[None] * counts[:, :, None]
    per_unit[pairable] /= (m[pairable] - 1.0)[:, None, None]
    per_unit[~pairable] = 0.0
    flat: NDArray[np.float64] = np.reshape(per_unit, (len(m), k * k))
    coincidence: NDArray[np.float64] = np.reshape(weights @ flat, (-1, k, k))
    n_c = coincidence.sum(axis=2)
    n = n_c.sum(axis=1)
    delta = _delta(table.labels, n_c, level)
    observed = (coincidence * delta).sum(axis=(1, 2))
    expected = (n_c[:, :, None] * n_c[:, None, :] * delta).sum(axis=(1, 2))
    defined = expected > 0
    ratio = np.divide((n - 1.0) * observed, expected, out=np.zeros_like(n), where=defined)
    result: NDArray[np.float64] = np.where(defined, 1.0 - ratio, np.nan)
    return result


def _delta(labels: Sequence[Label], n_c: NDArray[np.float64], level: Level) -> NDArray[np.float64]:
    """Squared differences of the level, (batch, k, k); ordinal depends on ``n_c``."""
    import numpy as np

    k = len(labels)
    batch = n_c.shape[0]
    if level == "nominal":
        return np.broadcast_to(1.0 - np.eye(k), (batch, k, k))
    if level == "interval":
        values = np.array(
            [float(v) if is_number(v) else float(i) for i, v in enumerate(labels)],
            dtype=np.float64,
        )
        return np.broadcast_to((values[:, None] - values[None, :]) ** 2, (batch, k, k))
    through = np.cumsum(n_c, axis=1)  # values up to and including each label
    before = through - n_c
    index = np.arange(k)
    low = np.minimum(index[:, None], index[None, :])
    high = np.maximum(index[:, None], index[None, :])
    between = through[:, high] - before[:, low]
    ends = (n_c[:, :, None] + n_c[:, None, :]) / 2.0
    return (between - ends) ** 2


def _undefined(weights: NDArray[np.float64]) -> NDArray[np.float64]:
    import numpy as np

    result: NDArray[np.float64] = np.full(len(weights), np.nan, dtype=np.float64)
    return result


def _fleiss(table: RatingTable, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    import numpy as np

    all_counts = _counts(table)
    keep = all_counts.sum(axis=1) >= 2
    if not keep.any():
        return _undefined(weights)
    counts = all_counts[keep]
    m = counts.sum(axis=1)
    w = weights[:, keep]
    per_unit = ((counts**2).sum(axis=1) - m) / (m * (m - 1.0))
    total = w.sum(axis=1)
    observed = (w @ per_unit) / total
    shares = (w @ counts) / (w @ m)[:, None]
    chance = (shares**2).sum(axis=1)
    defined = chance < 1.0
    ratio = np.divide(observed - chance, 1.0 - chance, out=np.zeros_like(total), where=defined)
    result: NDArray[np.float64] = np.where(defined, ratio, np.nan)
    return result


def _pair_kappa(
    table: RatingTable, a: int, b: int, weights: NDArray[np.float64], weighting: Weighting
) -> NDArray[np.float64]:
    import numpy as np

    k = len(table.labels)
    both = (table.codes[:, a] >= 0) & (table.codes[:, b] >= 0)
    if not both.any():
        return _undefined(weights)
    cells = np.zeros((len(table.unit_ids), k * k), dtype=np.float64)
    rows = np.nonzero(both)[0]
    cells[rows, table.codes[rows, a] * k + table.codes[rows, b]] = 1.0
    confusion: NDArray[np.float64] = np.reshape(weights @ cells, (-1, k, k))
    return _kappa_from_confusion(confusion, _weights(k, weighting))


# -- public functions -----------------------------------------------------------------


def _ones(table: RatingTable) -> NDArray[np.float64]:
    import numpy as np

    return np.ones((1, len(table.unit_ids)), dtype=np.float64)


def _table(
    data: RatingTable | Sequence[Any] | Mapping[str, Mapping[str, Any]],
    labels: Sequence[Any] | None,
) -> RatingTable:
    return data if isinstance(data, RatingTable) else rating_table(data, labels=labels)


def krippendorff_alpha(
    data: RatingTable | Sequence[Any] | Mapping[str, Mapping[str, Any]],
    *,
    level: Level = "nominal",
    labels: Sequence[Any] | None = None,
) -> float:
    """Krippendorff's alpha of a panel (see the module docstring); ``nan`` when undefined.

    Args:
        data: a :class:`RatingTable`, panel records or ``{unit: {rater: label}}``.
        level: ``"nominal"``, ``"ordinal"`` (distances follow the order of ``labels``)
            or ``"interval"`` (numeric labels; text labels use their positions).
        labels: the label order (see :func:`rating_table`).
    """
    _check_level(level)
    table = _table(data, labels)
    return float(_alpha(table, _ones(table), level)[0])


def fleiss_kappa(
    data: RatingTable | Sequence[Any] | Mapping[str, Mapping[str, Any]],
    *,
    labels: Sequence[Any] | None = None,
) -> float:
    """Fleiss' kappa of a panel (see the module docstring); ``nan`` when undefined."""
    table = _table(data, labels)
    return float(_fleiss(table, _ones(table))[0])


def pairwise_kappa(
    data: RatingTable | Sequence[Any] | Mapping[str, Mapping[str, Any]],
    *,
    labels: Sequence[Any] | None = None,
    weighting: Weighting = "none",
) -> dict[tuple[str, str], float]:
    """Cohen's kappa of every two raters on the units both rated, keyed by the pair in
    rater order; ``nan`` for a pair with no common unit or no variation."""
    table = _table(data, labels)
    ones = _ones(table)
    return {
        (table.raters[a], table.raters[b]): float(_pair_kappa(table, a, b, ones, weighting)[0])
        for a in range(len(table.raters))
        for b in range(a + 1, len(table.raters))
    }


def _check_level(level: object) -> None:
    if level not in _LEVELS:
        raise ConfigurationError(
            f"level={level!r} must be one of {', '.join(_LEVELS)}; e.g. level='ordinal' for "
            "ordered labels."
        )


@dataclass(frozen=True)
class RaterAgreement:
    """How a panel's raters agree with each other, with bootstrap intervals over units.

    Attributes:
        raters: the raters, in table order.
        n_units: units in the table; ``n_pairable`` of them have two or more ratings
            (only those inform alpha and Fleiss' kappa).
        n_ratings: ratings in the table.
        level: alpha's level of measurement.
        alpha: Krippendorff's alpha, ``alpha_ci`` its interval.
        fleiss: Fleiss' kappa, ``fleiss_ci`` its interval.
        kappa_weighting: the weighting of the pairwise kappas.
        pairwise: Cohen's kappa of every two raters (both orders present), ``nan`` when
            undefined; ``pairwise_ci`` their intervals.
        mean_pairwise: the mean of the defined pairwise kappas; ``mean_pairwise_ci``.
        confidence: the intervals' level; ``n_bootstrap`` how many resamples.
    """

    raters: tuple[str, ...]
    n_units: int
    n_pairable: int
    n_ratings: int
    level: Level
    alpha: float
    alpha_ci: tuple[float, float]
    fleiss: float
    fleiss_ci: tuple[float, float]
    kappa_weighting: Weighting
    pairwise: Mapping[tuple[str, str], float]
    pairwise_ci: Mapping[tuple[str, str], tuple[float, float]]
    mean_pairwise: float
    mean_pairwise_ci: tuple[float, float]
    confidence: float
    n_bootstrap: int

    def kappa_matrix(self) -> list[list[float]]:
        """The pairwise kappas as a square matrix in ``raters`` order (1 on the diagonal)."""
        return [
            [1.0 if a == b else self.pairwise[(a, b)] for b in self.raters] for a in self.raters
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None``."""
        return json_ready(
            {
                "raters": list(self.raters),
                "n_units": self.n_units,
                "n_pairable": self.n_pairable,
                "n_ratings": self.n_ratings,
                "level": self.level,
                "alpha": self.alpha,
                "alpha_ci": list(self.alpha_ci),
                "fleiss_kappa": self.fleiss,
                "fleiss_kappa_ci": list(self.fleiss_ci),
                "kappa_weighting": self.kappa_weighting,
                "kappa_matrix": self.kappa_matrix(),
                "mean_pairwise_kappa": self.mean_pairwise,
                "mean_pairwise_kappa_ci": list(self.mean_pairwise_ci),
                "confidence": self.confidence,
                "n_bootstrap": self.n_bootstrap,
            }
        )

    def format(self) -> str:
        """A plain-text summary with the kappa matrix."""
        header = [
            f"Panel: {len(self.raters)} raters, {self.n_units} records "
            f"({self.n_pairable} with 2+ ratings), {self.n_ratings} ratings",
            f"  Krippendorff's alpha ({self.level})  {interval_text(self.alpha, self.alpha_ci)}",
            f"  Fleiss' kappa                {interval_text(self.fleiss, self.fleiss_ci)}",
            f"  mean pairwise kappa          "
            f"{interval_text(self.mean_pairwise, self.mean_pairwise_ci)}",
        ]
        return "\n".join([*header, "", *matrix_lines(self.raters, self.kappa_matrix())])


def matrix_lines(names: Sequence[str], matrix: Sequence[Sequence[float]]) -> list[str]:
    """The kappa matrix as an indented text table."""
    rows = [["kappa", *names]]
    rows += [
        [name, *("n/a" if math.isnan(v) else f"{v:.2f}" for v in row)]
        for name, row in zip(names, matrix, strict=True)
    ]
    return ["  " + line for line in table(rows)]


def rater_agreement(
    data: RatingTable | Sequence[Any] | Mapping[str, Mapping[str, Any]],
    *,
    level: Level | None = None,
    labels: Sequence[Any] | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RaterAgreement:
    """Krippendorff's alpha, Fleiss' kappa and pairwise kappas of a panel, with intervals.

    Args:
        data: a :class:`RatingTable`, panel records or ``{unit: {rater: label}}``.
        level: alpha's level; defaults to ``"interval"`` for numeric labels and
            ``"nominal"`` otherwise. The pairwise kappas are quadratic-weighted unless
            the level is nominal.
        labels: the label order (see :func:`rating_table`).
        n_bootstrap: resamples of the units; 0 skips the intervals.
        confidence: the intervals' level, in (0, 1).
        seed: seeds ``numpy.random.default_rng``.

    Raises:
        ConfigurationError: bad options, fewer than two raters, or bad data (see
            :func:`rating_table`).
    """
    table = _table(data, labels)
    if len(table.raters) < 2:
        raise ConfigurationError(
            f"agreement among raters needs two or more raters; the panel has {list(table.raters)}."
        )
    chosen: Level = level or ("interval" if is_number(table.labels[0]) else "nominal")
    _check_level(chosen)
    _check_bootstrap(n_bootstrap, confidence)
    weighting: Weighting = "none" if chosen == "nominal" else "quadratic"
    stats = _Statistics(table, chosen, weighting)
    point = stats.compute(_ones(table))
    boot = resample(table, stats.compute, n_bootstrap=n_bootstrap, seed=seed)
    ci = {name: _interval(boot.get(name), confidence) for name in point}
    pairs = stats.pairs()
    pairwise = {p: float(point[_pair_name(p)][0]) for p in pairs}
    pairwise_ci = {p: ci[_pair_name(p)] for p in pairs}
    pairwise |= {(b, a): v for (a, b), v in list(pairwise.items())}
    pairwise_ci |= {(b, a): v for (a, b), v in list(pairwise_ci.items())}
    return RaterAgreement(
        raters=table.raters,
        n_units=len(table.unit_ids),
        n_pairable=int(((table.codes >= 0).sum(axis=1) >= 2).sum()),
        n_ratings=table.n_ratings,
        level=chosen,
        alpha=float(point["alpha"][0]),
        alpha_ci=ci["alpha"],
        fleiss=float(point["fleiss"][0]),
        fleiss_ci=ci["fleiss"],
        kappa_weighting=weighting,
        pairwise=pairwise,
        pairwise_ci=pairwise_ci,
        mean_pairwise=float(point["mean_pairwise"][0]),
        mean_pairwise_ci=ci["mean_pairwise"],
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def _pair_name(pair: tuple[str, str]) -> str:
    return f"pair\x00{pair[0]}\x00{pair[1]}"


class _Statistics:
    """Every statistic of a table as a function of a (batch, units) weight array."""

    def __init__(self, table: RatingTable, level: Level, weighting: Weighting) -> None:
        self.table = table
        self.level: Level = level
        self.weighting: Weighting = weighting

    def pairs(self) -> list[tuple[str, str]]:
        names = self.table.raters
        return [(names[a], names[b]) for a in range(len(names)) for b in range(a + 1, len(names))]

    def compute(self, weights: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        import numpy as np

        out = {
            "alpha": _alpha(self.table, weights, self.level),
            "fleiss": _fleiss(self.table, weights),
        }
        index = {name: i for i, name in enumerate(self.table.raters)}
        kappas = [
            _pair_kappa(self.table, index[a], index[b], weights, self.weighting)
            for a, b in self.pairs()
        ]
        for pair, kappa in zip(self.pairs(), kappas, strict=True):
            out[_pair_name(pair)] = kappa
        out["mean_pairwise"] = nan_mean(np.stack(kappas, axis=1))
        return out


def nan_mean(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """The mean of each row's defined values; ``nan`` for a row with none."""
    import numpy as np

    defined = ~np.isnan(values)
    count = defined.sum(axis=1)
    total = np.where(defined, values, 0.0).sum(axis=1)
    return np.divide(total, count, out=np.full(len(count), np.nan), where=count > 0)


def resample(
    table: RatingTable,
    compute: Any,
    *,
    n_bootstrap: int,
    seed: int,
) -> dict[str, NDArray[np.float64]]:
    """``compute`` on ``n_bootstrap`` resamples of the units (weights = draw counts)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(table.unit_ids)
    parts: dict[str, list[NDArray[np.float64]]] = {}
    done = 0
    while done < n_bootstrap:
        batch = min(max(1, _BATCH_CELLS // max(n, 1)), n_bootstrap - done)
        draw = rng.integers(0, n, size=(batch, n))
        offset = np.arange(batch)[:, None] * n
        counts: NDArray[np.int64] = np.bincount((draw + offset).ravel(), minlength=batch * n)
        weights = np.reshape(counts, (batch, n)).astype(np.float64)
        computed = cast("dict[str, NDArray[np.float64]]", compute(weights))
        for name, values in computed.items():
            parts.setdefault(name, []).append(values)
        done += batch
    return {name: np.concatenate(values) for name, values in parts.items()}


def _interval(values: NDArray[np.float64] | None, confidence: float) -> tuple[float, float]:
    import numpy as np

    if values is None:
        return (math.nan, math.nan)
    return _percentile_interval(values[~np.isnan(values)], confidence)


def _check_bootstrap(n_bootstrap: object, confidence: object) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int) or n_bootstrap < 0:
        raise ConfigurationError(
            f"n_bootstrap={n_bootstrap!r} must be a whole number >= 0 (0 skips the intervals)."
        )
    if not is_number(confidence) or not 0 < cast(float, confidence) < 1:
        raise ConfigurationError(
            f"confidence={confidence!r} must be strictly between 0 and 1, for example 0.95."
        )
