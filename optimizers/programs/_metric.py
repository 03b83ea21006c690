"""What a DSPy program is scored by: a DSPy metric, or judgealign scorers.

* ``metric``: DSPy's ``metric(example, prediction, trace=None)`` or GEPA's
  ``metric(gold, pred, trace, pred_name, pred_trace)``. Examples are scored with
  ``pred_name=None`` (one program-level verdict); when GEPA reflects on one predictor, a
  five-argument metric is asked again for the reflection minibatch only, with
  ``pred_name`` and that predictor's ``pred_trace``, so its feedback can say what that
  predictor did wrong (:meth:`ProgramMetric.predictor_feedback`). A metric whose
  feedback does not depend on ``pred_name`` says so with an attribute
  ``feedback_per_predictor = False`` (judgealign's own DSPy metrics do) and is never
  asked twice. It returns a bool, a number in [0, 1], a label (with
  ``label_scores``) or ``dspy.Prediction(score=..., feedback=...)``; the feedback is what
  GEPA's reflection reads. ``judge.as_dspy_metric()`` is such a metric.
* ``scorers``: judges or scorer callables as for ``optimize_prompts``, given
  ``inputs`` (the example's input fields), ``outputs`` (the prediction's fields other than
  ``reasoning``; the value alone when one is left) and ``expectations`` (the example's
  label fields, ``None`` when it has none). Their normalised scores are averaged, or
  combined by ``aggregation``.

A metric that raises on one record scores it 0 with the error as feedback; the strict mode
used on the first record raises instead, so that a broken metric is reported at once.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from judgealign import ConfigurationError
from optimizers._aggregation import AggregationFn, bind_aggregation
from optimizers._scoring import (
    _bind_scorers,  # pyright: ignore[reportPrivateUsage]
    _check_label_scores,  # pyright: ignore[reportPrivateUsage]
    _error_text,  # pyright: ignore[reportPrivateUsage]
    _outcome,  # pyright: ignore[reportPrivateUsage]
    _UnscorableError,  # pyright: ignore[reportPrivateUsage]
)
from optimizers._unit_score import outside_unit_range

__all__ = ["ProgramMetric", "Scored", "example_fields", "prediction_outputs"]

_HIDDEN_OUTPUTS = frozenset({"reasoning"})


@dataclass(frozen=True)
class Scored:
    """One prediction's score.

    Attributes:
        score: in [0, 1] (0 on error).
        rationales: name -> feedback text, for the reflection model.
        individual_scores: name -> score.
        error: why the record was not scored, else ``None``.
    """

    score: float
    rationales: dict[str, str] = field(default_factory=lambda: {})
    individual_scores: dict[str, float] = field(default_factory=lambda: {})
    error: str | None = None


def example_fields(example: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input fields, label fields) of a ``dspy.Example``."""
    keys = set(cast("set[str]", example._input_keys or set()))  # pyright: ignore[reportPrivateUsage]
    items = dict(example.toDict())
    return (
        {k: v for k, v in items.items() if k in keys},
        {k: v for k, v in items.items() if k not in keys},
    )


def prediction_outputs(prediction: Any) -> Any:
    """The prediction's fields other than ``reasoning``: the value alone when one is left."""
    items = dict(prediction.toDict()) if hasattr(prediction, "toDict") else {"output": prediction}
    shown = {k: v for k, v in items.items() if k not in _HIDDEN_OUTPUTS} or items
    return next(iter(shown.values())) if len(shown) == 1 else shown


class ProgramMetric:
    """Scores one (example, prediction) pair with a metric or with scorers.

    Raises:
        ConfigurationError: neither or both of ``metric`` and ``scorers``; a metric that is
            not callable; a bad scorer, ``aggregation`` or ``label_scores``.
    """

    def __init__(
        self,
        metric: Callable[..., Any] | None,
        scorers: Sequence[Any] | None,
        *,
        aggregation: AggregationFn | None = None,
        label_scores: Mapping[str, float] | None = None,
    ) -> None:
        if (metric is None) == (not scorers):
            raise ConfigurationError(
                "optimize_program needs exactly one of metric= (a DSPy metric, e.g. "
                "judge.as_dspy_metric()) and scorers= (a list of judges)"
            )
        if metric is not None and not callable(metric):
            raise ConfigurationError(
                f"metric={metric!r:.80} is not callable; pass a function "
                "metric(example, prediction, trace=None) -> float"
            )
        self._metric = metric
        self._five_args = metric is not None and _takes_five(metric)
        self.per_predictor = self._five_args and (
            getattr(metric, "feedback_per_predictor", True) is not False
        )
        """Whether reflection asks the metric for each predictor's own feedback."""
        self._scorers = _bind_scorers(list(scorers or []), aggregated=aggregation is not None)
        self._aggregation = bind_aggregation(aggregation)
        self._label_scores = _check_label_scores(label_scores)
        self.name = _metric_name(metric) if metric is not None else "scorers"

    def check_example(self, example: Any) -> None:
        """Raise before any model call when the metric cannot read ``example``.

        Raises:
            ConfigurationError: from the metric's own ``check_example``, or a scorer that
                reads ``{{ expectations }}`` while the example has no label fields.
        """
        if self._metric is not None:
            check = getattr(self._metric, "check_example", None)
            if callable(check):
                check(example)
            return
        _, labels = example_fields(example)
        for scorer in self._scorers:
            variables = cast("tuple[str, ...]", getattr(scorer.call, "variables", ()))
            if "expectations" in variables and not labels:
                raise ConfigurationError(
                    f"scorer {scorer.name!r} reads {{{{ expectations }}}} but the example "
                    f"{example!r:.120} has no label fields; add them (every field not named "
                    "in with_inputs(...) is a label)"
                )

    def score(self, example: Any, prediction: Any, *, strict: bool = False) -> Scored:
        """Score one prediction; ``strict`` raises on a failing metric instead of scoring 0.

        Raises:
            ConfigurationError: on misuse (always), or a failing metric (when strict).
        """
        if self._metric is not None:
            return self._score_metric(example, prediction, strict)
        return self._score_scorers(example, prediction, strict)

    def _score_metric(self, example: Any, prediction: Any, strict: bool) -> Scored:
        metric = cast("Callable[..., Any]", self._metric)
        try:
            if self._five_args:
                result = metric(example, prediction, None, None, None)
            else:
                result = metric(example, prediction, None)
            value, feedback = _read(result, self._label_scores)
        except ConfigurationError:
            raise
        except _UnscorableError as exc:
            if strict:
                raise ConfigurationError(f"{self.name}: {exc}") from None
            text = f"not scored: {exc}"
            return Scored(0.0, {self.name: text}, {self.name: 0.0}, text)
        except Exception as exc:
            text = f"{self.name} raised {_error_text(exc)}"
            if strict:
                raise ConfigurationError(
                    f"{text} on the first example; a metric must return a score for every "
                    "prediction (catch the failure and return 0 with feedback instead)"
                ) from exc
            return Scored(0.0, {self.name: text}, {self.name: 0.0}, text)
        if outside_unit_range(value):
            raise ConfigurationError(
                f"{self.name} returned {value!r}, outside [0, 1]; GEPA reads 1 as perfect, so "
                "map the metric's scale to [0, 1] (e.g. divide a 1-5 rating: (x - 1) / 4)"
            )
        return Scored(value, {self.name: feedback}, {self.name: value})

    def predictor_feedback(
        self, example: Any, prediction: Any, trace: list[Any], pred_name: str, pred_trace: Any
    ) -> tuple[str, str | None]:
        """(feedback, error) of the five-argument metric for one predictor's steps.

        Never raises: a failing call is reported as the error (the program-level feedback
        is still shown to the reflection model).
        """
        metric = cast("Callable[..., Any]", self._metric)
        try:
            result = metric(example, prediction, trace, pred_name, pred_trace)
            _, feedback = _read(result, self._label_scores)
        except Exception as exc:  # reflection goes on with the program-level feedback
            return "", f"{self.name} raised {_error_text(exc)} for predictor {pred_name!r}"
        return feedback, None

    def _score_scorers(self, example: Any, prediction: Any, strict: bool) -> Scored:
        inputs, labels = example_fields(example)
        fields = {
            "inputs": inputs,
            "outputs": prediction_outputs(prediction),
            "expectations": labels or None,
        }
        scores: dict[str, float] = {}
        rationales: dict[str, str] = {}
        raw: dict[str, Any] = {}
        errors: list[str] = []
        for scorer in self._scorers:
            try:
                result = scorer.call(**{k: fields[k] for k in scorer.args})
                outcome = _outcome(
                    result, scorer.call, self._label_scores, self._aggregation is None
                )
                scores[scorer.name], rationales[scorer.name] = outcome.score, outcome.rationale
                raw[scorer.name] = outcome.raw
                if outcome.error:
                    errors.append(f"{scorer.name}: {outcome.error}")
            except ConfigurationError:
                raise
            except Exception as exc:
                if strict and isinstance(exc, _UnscorableError):
                    raise ConfigurationError(f"Scorer {scorer.name!r}: {exc}.") from None
                text = f"scorer raised {_error_text(exc)}"
                if strict:
                    raise ConfigurationError(f"Scorer {scorer.name!r}: {text}") from exc
                scores[scorer.name], rationales[scorer.name], raw[scorer.name] = 0.0, text, None
                errors.append(f"{scorer.name}: {text}")
        score = self._combine(scores, raw)
        return Scored(score, rationales, scores, "; ".join(errors) or None)

    def _combine(self, scores: dict[str, float], raw: dict[str, Any]) -> float:
        if self._aggregation is None:
            return sum(scores.values()) / len(scores)
        value = self._aggregation(dict(scores), dict(raw))
        if (
            not isinstance(value, int | float)
            or not math.isfinite(value)
            or outside_unit_range(value)
        ):
            raise ConfigurationError(f"aggregation returned {value!r}, not a number in [0, 1]")
        return float(value)


def _takes_five(metric: Callable[..., Any]) -> bool:
    try:
        inspect.signature(metric).bind(None, None, None, None, None)
    except (TypeError, ValueError):
        return False
    return True


def _metric_name(metric: object) -> str:
    name = getattr(metric, "name", None) or getattr(metric, "__name__", None)
    return str(name) if isinstance(name, str) and name else type(metric).__name__


def _read(result: object, label_scores: Mapping[str, float]) -> tuple[float, str]:
    """(score, feedback) of what a metric returned."""
    value: object = result
    feedback = ""
    if isinstance(result, Mapping):
        table = cast("Mapping[str, Any]", result)
        value, feedback = table.get("score"), str(table.get("feedback") or "")
    elif hasattr(result, "score") and not isinstance(result, int | float | str):
        value = getattr(result, "score", None)
        feedback = str(getattr(result, "feedback", "") or "")
    if isinstance(value, bool):
        return (1.0 if value else 0.0), feedback
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value), feedback
    if isinstance(value, str) and value.strip() in label_scores:
        return label_scores[value.strip()], feedback
    if isinstance(value, str):
        raise _UnscorableError(
            f"the label {value!r} has no score; pass label_scores={{{value!r}: <0..1>, ...}}"
        )
    raise _UnscorableError(
        f"it returned {value!r:.80}, not a score; return a bool, a number in [0, 1], a label "
        "with label_scores, or dspy.Prediction(score=..., feedback=...)"
    )
