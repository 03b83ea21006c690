"""Judges as DSPy metrics, and DSPy programs seen as prompts: the public face of
:mod:`judgealign.integrations.dspy`.

``from judgealign.dspy import as_dspy_metric, combine_metrics, ratings_metric``; needs
``pip install "judgealign[dspy]"`` to score inside DSPy. ``optimizers.optimize_program``
reads and rewrites a program's predictors through :func:`predictors_of`,
:func:`instructions_of`, :func:`with_instructions` and :func:`run_traced`.
"""

from __future__ import annotations

from judgealign.integrations.dspy import (
    CombinedMetric,
    FieldMap,
    FieldSpec,
    JudgeMetric,
    MetricOutcome,
    ProgramRun,
    ProgramSteps,
    RatingsMetric,
    as_dspy_metric,
    combine_metrics,
    instructions_of,
    load_dspy,
    predictors_of,
    ratings_metric,
    run_program,
    run_traced,
    with_instructions,
)

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
