"""Judges as DSPy metrics: the public face of :mod:`judgealign.integrations.dspy`.

``from judgealign.dspy import as_dspy_metric, combine_metrics``; needs
``pip install "judgealign[dspy]"`` to score inside DSPy.
"""

from __future__ import annotations

from judgealign.integrations.dspy import (
    CombinedMetric,
    FieldMap,
    FieldSpec,
    JudgeMetric,
    MetricOutcome,
    as_dspy_metric,
    combine_metrics,
)

__all__ = [
    "CombinedMetric",
    "FieldMap",
    "FieldSpec",
    "JudgeMetric",
    "MetricOutcome",
    "as_dspy_metric",
    "combine_metrics",
]
