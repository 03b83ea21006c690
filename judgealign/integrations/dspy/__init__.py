"""DSPy integration: judges as DSPy metrics, programs as prompts (the only dspy importer).

Install with ``pip install "judgealign[dspy]"``. A judge becomes a metric with
``judge.as_dspy_metric()`` (or :func:`as_dspy_metric`); :func:`combine_metrics` averages
or weights several; :func:`ratings_metric` scores with stored SME ratings. Each takes
DSPy's ``metric(example, prediction, trace=None)`` call (returning a float) and GEPA's
five-argument call (returning ``dspy.Prediction(score=..., feedback=...)`` with the
judge's rationale as feedback), so it works with ``dspy.Evaluate``, ``dspy.GEPA`` and
``optimizers.optimize_program``.

dspy itself is imported only when a metric first answers GEPA's call.
"""

from __future__ import annotations

from judgealign.integrations.dspy._combine import CombinedMetric, combine_metrics
from judgealign.integrations.dspy._fields import FieldMap, FieldSpec
from judgealign.integrations.dspy._metric import JudgeMetric, as_dspy_metric
from judgealign.integrations.dspy._outcome import MetricOutcome
from judgealign.integrations.dspy._program import (
    ProgramRun,
    ProgramSteps,
    instructions_of,
    load_dspy,
    predictors_of,
    run_program,
    run_traced,
    with_instructions,
)
from judgealign.integrations.dspy._ratings import RatingsMetric, ratings_metric

__all__ = [
    "CombinedMetric",
    "FieldMap",
    "FieldSpec",
    "JudgeMetric",
    "MetricOutcome",
    "ProgramRun",
    "ProgramSteps",
    "RatingsMetric",
    "as_dspy_metric",
    "combine_metrics",
    "instructions_of",
    "load_dspy",
    "predictors_of",
    "ratings_metric",
    "run_program",
    "run_traced",
    "with_instructions",
]
