"""Figures for tracked runs: an agreement confusion matrix, a panel's kappa matrix and an
optimization curve.

matplotlib is imported when a figure is built (trackers build them off the caller's
thread, and the no-op tracker never does). Figures use matplotlib's object API with the
Agg canvas, never ``pyplot``, so building one from a background thread is safe and opens
no window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["confusion_figure", "curve_figure", "kappa_matrix_figure"]


def confusion_figure(
    labels: Sequence[object], confusion: Sequence[Sequence[int]], *, title: str
) -> Any:
    """A heat map of ``confusion`` (rows: the experts' labels, columns: the judge's)."""
    figure, axes = _figure(max(3.2, 1.1 * len(labels) + 1.5))
    names = [str(label) for label in labels]
    axes.imshow([list(row) for row in confusion], cmap="Blues")
    axes.set_xticks(range(len(names)), names)
    axes.set_yticks(range(len(names)), names)
    axes.set_xlabel("judge")
    axes.set_ylabel("experts")
    axes.set_title(title)
    peak = max((max(row) for row in confusion if row), default=0)
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            axes.text(j, i, str(count), ha="center", va="center", color=color)
    figure.tight_layout()
    return figure


def kappa_matrix_figure(
    names: Sequence[str], matrix: Sequence[Sequence[float]], *, title: str
) -> Any:
    """A heat map of the pairwise kappas of a panel's raters and the judge (the last row
    and column); colours span kappa's range from -1 to 1, undefined cells are blank."""
    import math

    figure, axes = _figure(max(3.6, 0.9 * len(names) + 2.2))
    cells = [[math.nan if math.isnan(v) else v for v in row] for row in matrix]
    image = axes.imshow(cells, cmap="RdYlGn", vmin=-1.0, vmax=1.0)
    axes.set_xticks(range(len(names)), list(names), rotation=45, ha="right")
    axes.set_yticks(range(len(names)), list(names))
    axes.set_title(title)
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            text = "n/a" if math.isnan(value) else f"{value:.2f}"
            axes.text(j, i, text, ha="center", va="center", color="black")
    figure.colorbar(image, ax=axes, label="Cohen's kappa")
    figure.tight_layout()
    return figure


def curve_figure(
    steps: Sequence[int],
    scores: Sequence[float | None],
    best: Sequence[float],
    *,
    title: str,
) -> Any:
    """Each candidate's score per iteration (dots) and the best so far (a line)."""
    figure, axes = _figure(5.0, height=3.2)
    shown = [(s, v) for s, v in zip(steps, scores, strict=True) if v is not None]
    if shown:
        axes.scatter([s for s, _ in shown], [v for _, v in shown], label="candidate", zorder=3)
    axes.step(list(steps), list(best), where="post", label="best so far")
    axes.set_xlabel("iteration")
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


def _figure(width: float, *, height: float | None = None) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height or width))
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()
