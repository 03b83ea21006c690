"""A judge as a DSPy metric: ``judge.as_dspy_metric()`` and :func:`as_dspy_metric`.

The metric takes either of DSPy's metric signatures. Called as
``metric(example, prediction, trace=None)`` (``dspy.Evaluate``, most optimizers) it
returns the judge's verdict as a float in [0, 1]. Called with GEPA's five arguments
``(gold, pred, trace, pred_name, pred_trace)`` it returns
``dspy.Prediction(score=..., feedback=...)`` whose feedback is the judge's rationale: the
text a reflective optimizer learns from. The verdict is on the program's output, so it
does not depend on ``pred_name``: a call naming a predictor reuses the verdict just given
on the same example and prediction objects (``dspy.GEPA`` asks once per predictor after
scoring), and ``feedback_per_predictor = False`` tells ``optimize_program`` not to ask.

A judge that fails on one record (the model times out, the reply does not parse) gives
score 0 with the error as feedback; nothing is raised inside DSPy's evaluation threads.
Misuse is raised: an example that is not a ``dspy.Example`` or lacks a field the judge
reads (:meth:`JudgeMetric.check_example` finds that before any model call).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.core._redact import redact  # provider errors can echo an API key
from judgealign.integrations.dspy._fields import FieldMap, FieldSpec
from judgealign.integrations.dspy._outcome import (
    FeedbackMetric,
    MetricOutcome,
    check_label_score_values,
    read_result,
)
from judgealign.integrations.dspy._recent import RecentVerdicts
from judgealign.judges._feedback import Feedback

__all__ = ["JudgeMetric", "as_dspy_metric"]

_MAX_ERROR_CHARS = 1000


class JudgeMetric(FeedbackMetric):
    """A judge (or any judgealign scorer) wrapped as a DSPy metric.

    Build it with :func:`as_dspy_metric` or ``judge.as_dspy_metric(...)``.

    Attributes:
        judge: the wrapped judge.
        name: the metric's name (the judge's by default).
        fields: how examples and predictions become the judge's fields.
        label_scores: scores of labels the judge returns, when the judge has none itself.
        feedback_per_predictor: ``False``: the feedback is the same for every predictor.
    """

    feedback_per_predictor = False

    def __init__(
        self,
        judge: Any,
        *,
        fields: FieldMap,
        label_scores: Mapping[str, float] | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(judge):
            raise ConfigurationError(
                f"as_dspy_metric needs a judge (make_judge(...), an aligned judge, or a "
                f"callable taking inputs=/outputs=/expectations=), got {judge!r:.80}"
            )
        self.judge = judge
        self.name = name or str(getattr(judge, "name", None) or type(judge).__name__)
        self.fields = fields
        self.label_scores = dict(label_scores or {})
        _check_scale(judge, self.name, self.label_scores)
        self._accepted = _accepted_fields(judge, self.name)
        self._recent = RecentVerdicts[MetricOutcome]()

    def __repr__(self) -> str:
        return f"JudgeMetric(name={self.name!r})"

    def check_example(self, example: Any) -> None:
        """Raise unless the judge can read ``example`` (called before any model call).

        Raises:
            ConfigurationError: naming the example, the missing field and the fix.
        """
        given = self.fields.example_fields(example)
        variables = cast("tuple[str, ...]", getattr(self.judge, "variables", ()))
        for role in ("inputs", "expectations"):
            if role in variables and given[role] in (None, {}):
                raise ConfigurationError(
                    f"metric {self.name!r}: the judge reads {{{{ {role} }}}} but the example "
                    f"{example!r:.120} gives none; add {role} fields to every example "
                    f"(the fields not named in with_inputs(...) are expectations) or map "
                    f"{role}= explicitly"
                )

    def evaluate(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        *,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> MetricOutcome:
        """The verdict on ``pred``; a call naming a predictor reuses the verdict just
        given on the same two objects instead of asking the judge again (``trace`` and
        ``pred_trace`` do not change it: see the module docstring).

        Raises:
            ConfigurationError: on misuse (a missing field, an unscorable verdict).
        """
        if isinstance(pred_name, str):
            kept = self._recent.get(gold, pred)
            if kept is not None:
                return kept
        outcome = self._ask_judge(gold, pred)
        self._recent.put(gold, pred, outcome)
        return outcome

    def _ask_judge(self, gold: Any, pred: Any) -> MetricOutcome:
        """The judge's verdict on one prediction as score and feedback.

        Raises:
            ConfigurationError: on misuse (a missing field, an unscorable verdict).
        """
        fields = self.fields.fields(gold, pred)
        try:
            result = self.judge(**{k: v for k, v in fields.items() if k in self._accepted})
        except ConfigurationError:
            raise
        except Exception as exc:  # one failed record is data, never an abort
            return _failed(f"the judge {self.name!r} raised {type(exc).__name__}: {exc}")
        return self._outcome(result)

    def _outcome(self, result: object) -> MetricOutcome:
        if not isinstance(result, Feedback):
            return read_result(result, self.label_scores, owner=f"judge {self.name!r}")
        if result.error:
            return _failed(f"the judge {self.name!r} could not score this output: {result.error}")
        score = _normalised(self.judge, result.value)
        if score is None:
            score = read_result(result.value, self.label_scores, owner=self.name).score
        rationale = result.rationale or "(no rationale)"
        return MetricOutcome(score, f"{self.name} rated this {result.value!r}: {rationale}")


def as_dspy_metric(
    judge: Any,
    *,
    inputs: FieldSpec = None,
    outputs: FieldSpec = None,
    expectations: FieldSpec = None,
    label_scores: Mapping[str, float] | None = None,
    name: str | None = None,
) -> JudgeMetric:
    """Wrap a judge as a DSPy metric (see :class:`JudgeMetric`).

    Args:
        judge: a judge from ``make_judge``, an aligned judge, or any callable taking
            ``inputs=`` / ``outputs=`` / ``expectations=`` and returning a ``Feedback``,
            a bool, a number in [0, 1] or a label.
        inputs: the example fields shown as ``inputs``; default: its input fields.
        outputs: the prediction fields shown as ``outputs``; default: all but
            ``reasoning`` (one field's value alone).
        expectations: the example fields shown as ``expectations``; default: its label
            fields.
        label_scores: what each label is worth (e.g. ``{"excellent": 1, "fair": 0.5,
            "poor": 0}``) when the judge returns labels and declares no scores itself.
        name: the metric's name (default: the judge's).

    Raises:
        ConfigurationError: a mapping that is not a field name, list or function; a judge
            with an unranged numeric verdict (a 4 out of 5 is not a score in [0, 1]).
    """
    owner = f"as_dspy_metric({name or getattr(judge, 'name', 'judge')!r})"
    fields = FieldMap(inputs, outputs, expectations, owner=owner)
    return JudgeMetric(judge, fields=fields, label_scores=label_scores, name=name)


def _accepted_fields(judge: Any, name: str) -> frozenset[str]:
    """The fields ``judge`` takes by keyword (a plain callable may take only some)."""
    every = frozenset(("inputs", "outputs", "expectations"))
    try:
        params = list(inspect.signature(judge).parameters.values())
    except (TypeError, ValueError):  # no signature: offer everything
        return every
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return every
    accepted = every & {p.name for p in params if p.kind is not p.POSITIONAL_ONLY}
    if not accepted:
        raise ConfigurationError(
            f"metric {name!r}: the judge must take some of inputs=, outputs=, expectations= "
            f"by keyword; its parameters are {[p.name for p in params]}"
        )
    return accepted


def _normalised(judge: Any, value: Any) -> float | None:
    normalize = getattr(judge, "normalize", None)
    if not callable(normalize):
        return None
    score: Any = normalize(value)
    return None if score is None else float(score)


def _check_scale(judge: Any, name: str, label_scores: Mapping[str, float]) -> None:
    spec = getattr(judge, "value_spec", None)
    kind = getattr(spec, "kind", None)
    unranged = getattr(spec, "low", None) is None or getattr(spec, "high", None) is None
    if kind in ("int", "float") and unranged:
        raise ConfigurationError(
            f"metric {name!r}: the judge returns an unranged {kind}, which is not a score in "
            "[0, 1]; declare its scale, e.g. make_judge(..., feedback_value_type=int, "
            "value_range=(1, 5))"
        )
    check_label_score_values(label_scores, f"metric {name!r}")


def _failed(error: str) -> MetricOutcome:
    text = redact(error)[:_MAX_ERROR_CHARS]
    return MetricOutcome(0.0, text, text)
