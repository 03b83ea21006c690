"""PNG figures written by the ``judgealign`` command.

The confusion matrix and the optimization curve are the tracking figures of
:mod:`judgealign.tracking._plots` (the same pictures land in the output folder and in MLflow);
this module adds the base-versus-aligned agreement chart and writes PNG files. matplotlib
is imported only when a figure is built, through its object API with the Agg canvas.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judgealign.cli._optimization_view import Proposal

__all__ = [
    "comparison_figure",
    "confusion_factory",
    "curve_factory",
    "kappa_factory",
    "proposals_figure",
    "save_png",
]

FigureFactory = Callable[[], Any]
_BASE_COLOR = "#9aa5b1"
_ALIGNED_COLOR = "#2f6fba"
_REJECTED_COLOR = "#c0392b"
_FLOOR = -0.1  # where proposals that were never scored are drawn


def save_png(factory: FigureFactory, path: Path) -> Path:
    """Build the figure and write it to ``path`` as a PNG; returns ``path``.

    Raises:
        MissingExtraError: when matplotlib is not installed.
    """
    try:
        figure = factory()
    except ImportError as exc:
        from judgealign.core._errors import MissingExtraError

        raise MissingExtraError("Writing plots", "dev", f"matplotlib ({exc})") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def confusion_factory(report: Any, title: str) -> FigureFactory:
    """A factory of the confusion-matrix heat map of an ``AgreementReport``."""
    labels = [_label_text(label) for label in report.labels]
    confusion = [list(row) for row in report.confusion]

    def build() -> Any:
        from judgealign.tracking._plots import confusion_figure

        figure = confusion_figure(labels, confusion, title=title)
        # Colours from 0, so that the white-on-dark counts (those above half the peak)
        # always sit on dark cells, whatever the smallest count.
        peak = max((max(row) for row in confusion if row), default=0)
        for image in figure.axes[0].images:
            image.set_clim(0, max(peak, 1))
        return figure

    return build


def kappa_factory(panel: Any, title: str) -> FigureFactory:
    """A factory of the heat map of a panel's kappa matrix, the judge last."""
    names = list(panel.names)
    matrix = panel.kappa_matrix()

    def build() -> Any:
        from judgealign.tracking._plots import kappa_matrix_figure

        return kappa_matrix_figure(names, matrix, title=title)

    return build


def curve_factory(result: Any, title: str) -> FigureFactory | None:
    """A factory of the optimization figure: every proposal per step (scored ones at their
    score, rejected ones as crosses on the floor with their reason) and the best so far;
    ``None`` when there is nothing to draw."""
    from judgealign.cli._optimization_view import proposals

    rows = proposals(result)
    if len(rows) <= 1 and rows[0].score is None:
        return None
    return lambda: proposals_figure(rows, title=title)


def proposals_figure(rows: Sequence[Proposal], *, title: str) -> Any:
    """The figure of :func:`curve_factory` for ``rows``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.8))
    FigureCanvasAgg(figure)
    axes: Any = figure.add_subplot()
    placed = list(zip(_spread([row.step for row in rows]), rows, strict=True))
    best = [(x, row.best) for x, row in placed if row.best is not None]
    if best:
        axes.step([x for x, _ in best], [b for _, b in best], where="post", label="best so far")
    kept = [(x, row.score) for x, row in placed if row.score is not None and _kept(row)]
    beaten = [(x, row.score) for x, row in placed if row.score is not None and not _kept(row)]
    for shown, color, label in (
        (kept, _ALIGNED_COLOR, "original / new best"),
        (beaten, _BASE_COLOR, "scored, not better"),
    ):
        if shown:
            axes.scatter(
                [x for x, _ in shown], [y for _, y in shown], color=color, zorder=3, label=label
            )
    unscored = [(x, row) for x, row in placed if row.score is None and row.step > 0]
    if unscored:
        axes.scatter(
            [x for x, _ in unscored],
            [_FLOOR] * len(unscored),
            marker="x",
            color=_REJECTED_COLOR,
            zorder=3,
            label="not scored",
        )
    for x, row in unscored:
        axes.annotate(
            _short(row.reason or row.outcome),
            (x, _FLOOR),
            xytext=(0, 6),
            textcoords="offset points",
            rotation=60,
            fontsize=6.5,
            color=_REJECTED_COLOR,
        )
    steps = sorted({row.step for row in rows})
    axes.set_xticks(steps)
    axes.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
    axes.set_ylim(_FLOOR - 0.05, 1.05)
    axes.set_xlabel("step (0: the original prompt)")
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=7)
    figure.tight_layout()
    return figure


def _kept(row: Proposal) -> bool:
    from judgealign.cli._optimization_view import NEW_BEST, ORIGINAL

    return row.outcome in (NEW_BEST, ORIGINAL)


def _spread(steps: Sequence[int]) -> list[float]:
    """x positions: proposals of the same step side by side around the step."""
    counts: dict[int, int] = {}
    for step in steps:
        counts[step] = counts.get(step, 0) + 1
    seen: dict[int, int] = {}
    xs: list[float] = []
    for step in steps:
        n, i = counts[step], seen.get(step, 0)
        seen[step] = i + 1
        xs.append(step + (i - (n - 1) / 2) * min(0.25, 0.8 / n))
    return xs


def _short(text: str, width: int = 40) -> str:
    """The specific part of a reason (after ``kind: ``), on one line, cut to ``width``."""
    flat = " ".join(text.split())
    flat = flat.split(": ", 1)[1] if ": " in flat else flat
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def comparison_figure(comparison: Any, *, title: str) -> Any:
    """Accuracy and kappa of the base and the aligned judge, side by side, with their
    bootstrap intervals as whiskers and the values written on the bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 3.9))
    FigureCanvasAgg(figure)
    axes: Any = figure.add_subplot()
    metrics = [("accuracy", "accuracy_ci"), ("kappa", "kappa_ci")]
    width = 0.36
    bars_of = ((-width / 2, "base", _BASE_COLOR), (width / 2, "aligned", _ALIGNED_COLOR))
    for offset, role, color in bars_of:
        report = getattr(comparison, role)
        values = [_finite(getattr(report, m)) for m, _ in metrics]
        errors = [_whisker(getattr(report, m), getattr(report, ci)) for m, ci in metrics]
        xs = [i + offset for i in range(len(metrics))]
        bars: Any = axes.bar(
            xs,
            values,
            width,
            color=color,
            label=f"{role} judge",
            yerr=[[e[0] for e in errors], [e[1] for e in errors]],
            capsize=4,
            ecolor="#444444",
        )
        for bar, (metric, _), (_, above) in zip(bars, metrics, errors, strict=True):
            raw = getattr(report, metric)
            text = "n/a" if math.isnan(raw) else f"{raw:.2f}"
            axes.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0.0) + above),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=9,
            )
    axes.set_xticks(range(len(metrics)), ["accuracy", "Cohen's kappa"])
    lows = [
        _finite(v)
        for report in (comparison.base, comparison.aligned)
        for v in (report.kappa, report.kappa_ci[0], report.accuracy_ci[0])
    ]
    axes.set_ylim(min(-0.1, min(lows) - 0.1), 1.15)
    axes.axhline(0, color="#444444", linewidth=0.8)
    axes.set_ylabel("agreement with the experts")
    axes.set_title(title)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _whisker(value: float, interval: tuple[float, float]) -> tuple[float, float]:
    low, high = interval
    if math.isnan(value) or math.isnan(low) or math.isnan(high):
        return 0.0, 0.0
    return max(0.0, value - low), max(0.0, high - value)


def _label_text(label: object) -> str:
    if isinstance(label, bool):
        return "yes" if label else "no"
    return str(label)
