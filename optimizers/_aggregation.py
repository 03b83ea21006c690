"""Aggregation functions in both shapes: MLflow's one-argument form and the two-argument one.

MLflow calls ``aggregation(scores)`` with one dict: scorer name -> what the scorer
returned (a bool, a number, a label, or a Feedback, whose value user code reads as
``.value`` or ``.feedback.value``). judgealign's original form is
``aggregation(scores, feedback)``: the normalised number per scorer, then the raw results.
Which one a function is follows from how many positional arguments it accepts, so code
written for MLflow gets exactly what MLflow gives it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from judgealign import ConfigurationError

__all__ = ["AggregationFn", "bind_aggregation"]

AggregationFn = (
    Callable[[dict[str, Any]], float] | Callable[[dict[str, float], dict[str, Any]], float]
)
"""``aggregation(raw)`` (MLflow's form: scorer name -> the scorer's raw result) or
``aggregation(scores, raw)`` (scorer name -> normalised number, then the raw results).
A scorer that raised appears in ``raw`` as a :class:`~judgealign.Feedback` with ``error``."""

Combine = Callable[[dict[str, float], dict[str, Any]], object]
"""What the evaluator calls: always ``(scores, raw)``."""


def bind_aggregation(aggregation: AggregationFn | None) -> Combine | None:
    """Adapt ``aggregation`` to the evaluator's ``(scores, raw)`` call.

    Raises:
        ConfigurationError: when ``aggregation`` is not callable or takes neither one nor
            two positional arguments.
    """
    if aggregation is None:
        return None
    if not callable(aggregation):  # pyright: ignore[reportUnnecessaryComparison]
        raise ConfigurationError(
            f"aggregation={aggregation!r} must be a function scores -> float (MLflow's form, "
            "scores: scorer name -> the scorer's result), or None for the mean of the scorers."
        )
    if _positional_count(aggregation) == 1:
        one: Callable[[dict[str, Any]], object] = aggregation  # type: ignore[assignment]
        return lambda _scores, raw: one(raw)
    two: Combine = aggregation  # type: ignore[assignment]
    return two


def _positional_count(function: Callable[..., Any]) -> int:
    """1 for a function that needs exactly one positional argument, else 2.

    Required arguments decide: ``def f(scores, weights=W)`` is MLflow's form.
    """
    try:
        params = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):  # a C callable: assume MLflow's form
        return 1
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    count = sum(1 for p in params if p.kind in positional and p.default is p.empty)
    if count == 0 and any(p.kind in positional for p in params):
        count = 1  # every argument has a default: the scores still come first
    if count == 0:
        raise ConfigurationError(
            "aggregation must take the scores dict as its first positional argument."
        )
    return 1 if count == 1 else 2
