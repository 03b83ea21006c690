"""Calling any DSPy metric and reading what it returned as (score, feedback).

DSPy metrics come in two shapes: ``metric(example, prediction, trace=None)`` and GEPA's
``metric(gold, pred, trace, pred_name, pred_trace)``. They return a bool, a number, or a
``dspy.Prediction`` (or dict) with ``score`` and ``feedback``. A label such as
``"excellent"`` is accepted too when ``label_scores`` says what it is worth.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from judgealign.core._errors import ConfigurationError, MissingExtraError

__all__ = [
    "FeedbackMetric",
    "MetricOutcome",
    "accepts_feedback_args",
    "call_metric",
    "check_label_score_values",
    "feedback_per_predictor",
    "feedback_prediction",
    "read_result",
]


@dataclass(frozen=True)
class MetricOutcome:
    """One metric's verdict on one prediction.

    Attributes:
        score: the score (0 when ``error`` is set).
        feedback: text for a reflective optimizer: the judge's rationale, or the error.
        error: why no score could be given, else ``None``.
    """

    score: float
    feedback: str
    error: str | None = None


_UNSET: Any = object()


class FeedbackMetric:
    """DSPy's two metric shapes over one :meth:`evaluate`: ``metric(gold, pred,
    trace=None)`` returns the score; called with GEPA's five arguments, it returns
    ``dspy.Prediction(score=..., feedback=...)``."""

    def evaluate(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        *,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> MetricOutcome:
        """The verdict on ``pred`` for ``gold`` (each metric says how it is reached)."""
        raise NotImplementedError

    def __call__(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        pred_name: Any = _UNSET,
        pred_trace: Any = _UNSET,
    ) -> Any:
        """A float, or ``dspy.Prediction(score, feedback)`` for GEPA's five arguments.

        Raises:
            ConfigurationError: on misuse, from :meth:`evaluate`.
        """
        named = None if pred_name is _UNSET else cast("str | None", pred_name)
        steps = None if pred_trace is _UNSET else pred_trace
        outcome = self.evaluate(gold, pred, trace, pred_name=named, pred_trace=steps)
        if pred_name is _UNSET and pred_trace is _UNSET:
            return outcome.score
        return feedback_prediction(outcome)


def feedback_prediction(outcome: MetricOutcome) -> Any:
    """``dspy.Prediction(score=..., feedback=...)``: GEPA's feedback-metric result.

    dspy, the integration's one dependency, is imported here, when first needed.

    Raises:
        MissingExtraError: when dspy is not installed.
    """
    try:
        dspy: Any = importlib.import_module("dspy")
    except ImportError as exc:
        raise MissingExtraError("A DSPy metric's feedback", "dspy", "dspy") from exc
    return dspy.Prediction(score=outcome.score, feedback=outcome.feedback)


def check_label_score_values(label_scores: Mapping[Any, Any], owner: str) -> None:
    """Raise unless every score in ``label_scores`` is a number in [0, 1].

    Raises:
        ConfigurationError: naming ``owner``, the label and its score.
    """
    for label, score in label_scores.items():
        ok = isinstance(score, int | float) and not isinstance(score, bool)
        if not ok or not 0.0 <= score <= 1.0:
            raise ConfigurationError(
                f"{owner}: label_scores[{label!r}]={score!r} must be a number in [0, 1]"
            )


def feedback_per_predictor(metric: Callable[..., Any]) -> bool:
    """Whether ``metric``'s feedback may depend on ``pred_name``: it takes GEPA's five
    arguments and does not declare ``feedback_per_predictor = False``."""
    declared = getattr(metric, "feedback_per_predictor", True)
    return declared is not False and accepts_feedback_args(metric)


def accepts_feedback_args(metric: Callable[..., Any]) -> bool:
    """Whether ``metric`` can be called with GEPA's five arguments."""
    try:
        inspect.signature(metric).bind(None, None, None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature (a C callable): call it the plain way
        return False
    return True


def call_metric(
    metric: Callable[..., Any],
    gold: Any,
    pred: Any,
    trace: Any = None,
    *,
    label_scores: Mapping[str, float] | None = None,
    pred_name: str | None = None,
    pred_trace: Any = None,
) -> MetricOutcome:
    """Call ``metric`` (with GEPA's arguments when it takes them) and read its result.

    Raises:
        ConfigurationError: raised by the metric, or a result that is not a score.
    """
    if accepts_feedback_args(metric):
        result = metric(gold, pred, trace, pred_name, pred_trace)
    else:
        result = metric(gold, pred, trace)
    return read_result(result, label_scores, owner=_name(metric))


def read_result(
    result: object, label_scores: Mapping[str, float] | None, *, owner: str
) -> MetricOutcome:
    """A metric's return value as a :class:`MetricOutcome`.

    Raises:
        ConfigurationError: when the value cannot be read as a number.
    """
    feedback = ""
    value: object = result
    if isinstance(result, Mapping):
        table = cast("Mapping[str, Any]", result)
        value, feedback = table.get("score"), str(table.get("feedback") or "")
    elif hasattr(result, "score") and not isinstance(result, int | float | str):
        value = getattr(result, "score", None)
        feedback = str(getattr(result, "feedback", "") or "")
    return MetricOutcome(_number(value, label_scores, owner), feedback)


def _number(value: object, label_scores: Mapping[str, float] | None, owner: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and label_scores and value.strip() in label_scores:
        return float(label_scores[value.strip()])
    if isinstance(value, str):
        raise ConfigurationError(
            f"{owner} returned the label {value!r}, which has no score; pass "
            f"label_scores={{{value!r}: <0..1>, ...}}"
        )
    raise ConfigurationError(
        f"{owner} returned {value!r:.80}, not a score; a metric must return a bool, a "
        "finite number, a label with label_scores, or dspy.Prediction(score=..., feedback=...)"
    )


def _name(metric: object) -> str:
    name = getattr(metric, "name", None) or getattr(metric, "__name__", None)
    return f"metric {name!r}" if isinstance(name, str) else f"metric {type(metric).__name__}"
