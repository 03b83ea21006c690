"""Several metrics as one: a weighted mean of their scores, their feedback side by side.

Guides that optimize a DSPy program with several LLM judges average them into one metric;
:func:`combine_metrics` does it with weights, keeps each judge's rationale in the feedback
(labelled with its name and score) and, like a single judge metric, answers GEPA's
five-argument call with ``dspy.Prediction(score=..., feedback=...)``. ``pred_name`` and
``pred_trace`` reach every part that takes them; the combined metric gives feedback per
predictor when one of its parts does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from judgealign.core._errors import ConfigurationError
from judgealign.core._redact import redact  # provider errors can echo an API key
from judgealign.integrations.dspy._fields import FieldMap
from judgealign.integrations.dspy._metric import JudgeMetric
from judgealign.integrations.dspy._outcome import (
    FeedbackMetric,
    MetricOutcome,
    call_metric,
    feedback_per_predictor,
)

__all__ = ["CombinedMetric", "as_metric", "combine_metrics", "metric_outcome"]


class CombinedMetric(FeedbackMetric):
    """The weighted mean of several metrics (see :func:`combine_metrics`).

    Attributes:
        metrics: the parts, in order.
        weights: each part's weight, summing to 1.
        name: the metric's name.
    """

    def __init__(
        self, metrics: Sequence[Callable[..., Any]], weights: Sequence[float], name: str
    ) -> None:
        self.metrics = tuple(metrics)
        total = sum(weights)
        self.weights = tuple(w / total for w in weights)
        self.name = name
        self.feedback_per_predictor = any(feedback_per_predictor(m) for m in self.metrics)
        """Whether some part's feedback may depend on ``pred_name``."""

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{_name(m)}: {w:.3g}" for m, w in zip(self.metrics, self.weights, strict=True)
        )
        return f"CombinedMetric({parts})"

    def check_example(self, example: Any) -> None:
        """Raise unless every part can read ``example`` (before any model call).

        Raises:
            ConfigurationError: from the first part that cannot.
        """
        for metric in self.metrics:
            check = getattr(metric, "check_example", None)
            if callable(check):
                check(example)

    def evaluate(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        *,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> MetricOutcome:
        """Every part's outcome, combined (``pred_name`` and ``pred_trace`` passed on).

        Raises:
            ConfigurationError: from a part, on misuse.
        """
        score, lines, errors = 0.0, list[str](), list[str]()
        for metric, weight in zip(self.metrics, self.weights, strict=True):
            outcome = metric_outcome(metric, gold, pred, trace, pred_name, pred_trace)
            score += weight * outcome.score
            lines.append(f"[{_name(metric)}, score {outcome.score:.3f}] {outcome.feedback}")
            if outcome.error:
                errors.append(f"{_name(metric)}: {outcome.error}")
        return MetricOutcome(score, "\n".join(lines), "; ".join(errors) or None)


def combine_metrics(
    metrics: Sequence[Any] | Mapping[Any, float],
    weights: Sequence[float] | None = None,
    *,
    name: str = "combined",
) -> CombinedMetric:
    """Combine judges and DSPy metrics into one metric: the weighted mean of their scores.

    Args:
        metrics: judges (wrapped with the default field mapping), metrics from
            :func:`as_dspy_metric`, or any DSPy metric returning a bool, a number in
            [0, 1] or ``dspy.Prediction(score=..., feedback=...)``; or a mapping from
            each to its weight.
        weights: one non-negative weight per metric (default: equal); normalised to sum
            to 1, so the combined score stays in [0, 1].
        name: the combined metric's name.

    Raises:
        ConfigurationError: no metrics, a weight that is negative or not a number, the
            wrong number of weights, or all weights zero.
    """
    if isinstance(metrics, Mapping):
        if weights is not None:
            raise ConfigurationError(
                "combine_metrics: give weights either as the mapping's values or as weights=, "
                "not both"
            )
        parts, weights = list(metrics.keys()), list(metrics.values())
    else:
        parts = list(metrics)
    if not parts:
        raise ConfigurationError("combine_metrics needs at least one metric")
    weights = [1.0] * len(parts) if weights is None else list(weights)
    if len(weights) != len(parts):
        raise ConfigurationError(
            f"combine_metrics got {len(weights)} weights for {len(parts)} metrics; give one "
            "weight per metric"
        )
    for weight in weights:
        ok = isinstance(weight, int | float) and not isinstance(weight, bool)  # pyright: ignore[reportUnnecessaryIsInstance]
        if not ok or not math.isfinite(weight) or weight < 0:
            raise ConfigurationError(
                f"combine_metrics: weight {weight!r} must be a finite number >= 0"
            )
    if sum(weights) <= 0:
        raise ConfigurationError("combine_metrics: at least one weight must be above 0")
    return CombinedMetric([as_metric(p, "combine_metrics") for p in parts], weights, name)


def as_metric(
    part: Any,
    user: str,
    *,
    fields: FieldMap | None = None,
    label_scores: Mapping[str, float] | None = None,
) -> Callable[..., Any]:
    """``part`` as a DSPy metric: a judge is wrapped (with ``fields``, default mapping),
    a metric is kept.

    Raises:
        ConfigurationError: ``part`` is neither (``user`` names who was given it).
    """
    if not callable(part):
        raise ConfigurationError(f"{user}: {part!r:.80} is not a judge or a metric")
    if isinstance(part, JudgeMetric | CombinedMetric) or not _is_judge(part):
        return part
    owner = f"{user} part {getattr(part, 'name', '?')!r}"
    fields = fields or FieldMap(owner=owner)
    return JudgeMetric(part, fields=fields, label_scores=label_scores)


def _is_judge(part: object) -> bool:
    """A judgealign judge (or look-alike): it scores named fields, not (example, pred)."""
    return hasattr(part, "value_spec") and hasattr(part, "collect_fields")


def metric_outcome(
    metric: Callable[..., Any],
    gold: Any,
    pred: Any,
    trace: Any,
    pred_name: str | None,
    pred_trace: Any,
    *,
    label_scores: Mapping[str, float] | None = None,
) -> MetricOutcome:
    """What ``metric`` says of ``pred``; a metric that raises scores 0 with the error as
    feedback (one failed record is data).

    Raises:
        ConfigurationError: on misuse, raised by the metric or reading its result.
    """
    if isinstance(metric, FeedbackMetric):
        return metric.evaluate(gold, pred, trace, pred_name=pred_name, pred_trace=pred_trace)
    try:
        return call_metric(
            metric,
            gold,
            pred,
            trace,
            label_scores=label_scores,
            pred_name=pred_name,
            pred_trace=pred_trace,
        )
    except ConfigurationError:
        raise
    except Exception as exc:  # one failed record is data, never an abort
        text = redact(f"{_name(metric)} raised {type(exc).__name__}: {exc}")
        return MetricOutcome(0.0, text, text)


def _name(metric: object) -> str:
    return str(getattr(metric, "name", None) or getattr(metric, "__name__", "metric"))
