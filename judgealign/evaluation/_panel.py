"""The judge as one more rater of a panel: does it agree with the experts as well as they
agree with each other?

The judge's verdicts become one more column of the panel's rating table. The judge's
mean pairwise kappa with the raters is set beside the raters' mean pairwise kappa with
each other, and their difference gets a bootstrap interval from the same resamples of
the records, so that the comparison is paired: "the judge agrees with your experts as
well as they agree with each other" is said only when that interval holds 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgealign.evaluation._raters import (
    Level,
    RaterAgreement,
    RatingTable,
    _check_bootstrap,  # pyright: ignore[reportPrivateUsage]
    _interval,  # pyright: ignore[reportPrivateUsage]
    _pair_kappa,  # pyright: ignore[reportPrivateUsage]
    matrix_lines,
    nan_mean,
    rater_agreement,
    rating_table,
    resample,
)
from judgealign.evaluation._text import interval_text, json_ready, kappa_name, signed
from judgealign.judges._labels import Label, Weighting, is_number

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["JudgeAmongRaters", "default_level", "is_panel", "judge_among_raters"]


def is_panel(records: Sequence[Any]) -> bool:
    """Whether ``records`` carry ratings from two or more raters in all (a panel)."""
    raters = {r.rater for record in records for r in getattr(record, "ratings", ()) or ()}
    return len(raters) >= 2


@dataclass(frozen=True)
class JudgeAmongRaters:
    """The judge as one more rater of a panel.

    Attributes:
        judge: the judge's column name.
        panel: the raters' agreement with each other (alpha, Fleiss, pairwise kappas).
        n_judged: records with a verdict of the judge (the others have no judge rating).
        judge_kappa: the judge's kappa with each rater; ``judge_kappa_ci`` the intervals.
        judge_mean: the judge's mean kappa with the raters; ``judge_mean_ci``.
        raters_mean: the raters' mean pairwise kappa with each other; ``raters_mean_ci``.
        difference: ``judge_mean - raters_mean``; ``difference_ci`` from the same
            resamples (a paired interval).
        confidence: the intervals' level; ``n_bootstrap`` how many resamples.
    """

    judge: str
    panel: RaterAgreement
    n_judged: int
    judge_kappa: Mapping[str, float]
    judge_kappa_ci: Mapping[str, tuple[float, float]]
    judge_mean: float
    judge_mean_ci: tuple[float, float]
    raters_mean: float
    raters_mean_ci: tuple[float, float]
    difference: float
    difference_ci: tuple[float, float]
    confidence: float
    n_bootstrap: int

    @property
    def names(self) -> tuple[str, ...]:
        """The raters then the judge: the rows and columns of :meth:`kappa_matrix`."""
        return (*self.panel.raters, self.judge)

    def kappa_matrix(self) -> list[list[float]]:
        """Pairwise kappas of the raters and the judge (1 on the diagonal)."""
        rows = [
            [*row, self.judge_kappa[name]]
            for name, row in zip(self.panel.raters, self.panel.kappa_matrix(), strict=True)
        ]
        return [*rows, [*(self.judge_kappa[r] for r in self.panel.raters), 1.0]]

    @property
    def verdict(self) -> str:
        """One sentence: does the judge agree with the experts as well as they do?"""
        low, high = self.difference_ci
        if math.isnan(self.difference):
            return "The judge's and the raters' kappas are undefined; no comparison."
        if math.isnan(low):
            return (
                "No interval for the difference (no bootstrap), so whether the judge agrees "
                "with your experts as well as they agree with each other is not measured."
            )
        if high < 0:
            return (
                "The judge agrees with your experts less well than they agree with each "
                f"other (the whole {self.confidence:.0%} interval of the difference is below 0)."
            )
        if low > 0:
            return (
                "The judge agrees with your experts better than they agree with each other "
                f"(the whole {self.confidence:.0%} interval of the difference is above 0)."
            )
        return (
            "The judge agrees with your experts as well as they agree with each other (the "
            f"{self.confidence:.0%} interval of the difference holds 0)."
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None``."""
        return json_ready(
            {
                "judge": self.judge,
                "panel": self.panel.to_dict(),
                "n_judged": self.n_judged,
                "names": list(self.names),
                "kappa_matrix": self.kappa_matrix(),
                "judge_kappa": dict(self.judge_kappa),
                "judge_kappa_ci": {k: list(v) for k, v in self.judge_kappa_ci.items()},
                "judge_mean_kappa": self.judge_mean,
                "judge_mean_kappa_ci": list(self.judge_mean_ci),
                "raters_mean_kappa": self.raters_mean,
                "raters_mean_kappa_ci": list(self.raters_mean_ci),
                "difference": self.difference,
                "difference_ci": list(self.difference_ci),
                "verdict": self.verdict,
            }
        )

    def format(self) -> str:
        """Plain text: the panel's statistics, the comparison and the kappa matrix."""
        panel = self.panel
        return "\n".join(
            [
                f"Panel: {len(panel.raters)} raters, {panel.n_units} records "
                f"({panel.n_pairable} with 2+ ratings, {self.n_judged} judged), "
                f"{panel.n_ratings} ratings",
                f"  Krippendorff's alpha ({panel.level})   "
                f"{interval_text(panel.alpha, panel.alpha_ci)}",
                f"  Fleiss' kappa                   {interval_text(panel.fleiss, panel.fleiss_ci)}",
                f"  raters' mean pairwise kappa     "
                f"{interval_text(self.raters_mean, self.raters_mean_ci)}",
                f"  judge's mean kappa with raters  "
                f"{interval_text(self.judge_mean, self.judge_mean_ci)}",
                f"  difference (judge - raters)     {signed(self.difference)}"
                + _ci_text(self.difference_ci),
                f"  {self.verdict}",
                "",
                f"Pairwise kappa ({kappa_name(panel.kappa_weighting)})",
                *matrix_lines(self.names, self.kappa_matrix()),
            ]
        )


def _ci_text(interval: tuple[float, float]) -> str:
    return "" if math.isnan(interval[0]) else f" [{interval[0]:+.3f}, {interval[1]:+.3f}]"


def judge_among_raters(
    records: Sequence[Any],
    verdicts: Sequence[Label | None],
    *,
    judge: str = "judge",
    labels: Sequence[Label] | None = None,
    level: Level | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> JudgeAmongRaters:
    """The judge's agreement with each rater of a panel next to theirs with each other.

    Args:
        records: panel records (with ``ratings``), one per verdict.
        verdicts: the judge's label on each record, ``None`` where it gave none.
        judge: the judge's column name (must differ from every rater's).
        labels: the label order; ``level``: alpha's level (see
            :func:`judgealign.evaluation._raters.rater_agreement`).
        n_bootstrap: resamples of the records; 0 skips the intervals.
        confidence: the intervals' level; ``seed`` seeds the resamples.

    Raises:
        ConfigurationError: fewer than two raters, bad options, or bad data.
    """
    _check_bootstrap(n_bootstrap, confidence)
    raters_only = rating_table(records, labels=labels)
    panel = rater_agreement(
        raters_only,
        level=level,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=seed,
    )
    table = raters_only.with_rater(judge, verdicts)
    compare = _Comparison(table, panel.kappa_weighting)
    point = compare.compute(_ones(table))
    boot = resample(table, compare.compute, n_bootstrap=n_bootstrap, seed=seed)
    ci = {name: _interval(boot.get(name), confidence) for name in point}
    raters = table.raters[:-1]
    return JudgeAmongRaters(
        judge=judge,
        panel=panel,
        n_judged=sum(v is not None for v in verdicts),
        judge_kappa={r: float(point[r][0]) for r in raters},
        judge_kappa_ci={r: ci[r] for r in raters},
        judge_mean=float(point["\x00judge"][0]),
        judge_mean_ci=ci["\x00judge"],
        raters_mean=float(point["\x00raters"][0]),
        raters_mean_ci=ci["\x00raters"],
        difference=float(point["\x00difference"][0]),
        difference_ci=ci["\x00difference"],
        confidence=confidence,
        n_bootstrap=n_bootstrap,
    )


def _ones(table: RatingTable) -> NDArray[np.float64]:
    import numpy as np

    return np.ones((1, len(table.unit_ids)), dtype=np.float64)


class _Comparison:
    """The judge's kappas (the last column) and the raters' mean kappa, per weight row."""

    def __init__(self, table: RatingTable, weighting: Weighting) -> None:
        self.table = table
        self.weighting: Weighting = weighting

    def compute(self, weights: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        import numpy as np

        table, last = self.table, len(self.table.raters) - 1
        judge = [_pair_kappa(table, r, last, weights, self.weighting) for r in range(last)]
        among = [
            _pair_kappa(table, a, b, weights, self.weighting)
            for a in range(last)
            for b in range(a + 1, last)
        ]
        out = {name: kappa for name, kappa in zip(table.raters, judge, strict=False)}
        out["\x00judge"] = nan_mean(np.stack(judge, axis=1))
        out["\x00raters"] = nan_mean(np.stack(among, axis=1))
        out["\x00difference"] = out["\x00judge"] - out["\x00raters"]
        return out


def default_level(labels: Sequence[Label], ordinal: bool) -> Level:
    """Alpha's level for :func:`judgealign.agreement`'s label order and ordering."""
    if not ordinal:
        return "nominal"
    return "interval" if labels and is_number(labels[0]) else "ordinal"
