"""How well a judge agrees with subject-matter experts (SMEs).

MLflow reports no agreement metric at all (its FR #22947 asks for kappa, accuracy, a
confusion matrix and the ids of disagreeing records). This module gathers the pieces that
provide them:

* :func:`agreement` scores one judge's verdicts against SME labels: accuracy, Cohen's
  kappa (quadratic-weighted for ordered labels), the confusion matrix, per-label
  precision/recall/F1, bootstrap intervals, and which ids disagree or failed
  (``_agreement_metrics``; the result is an :class:`AgreementReport` from
  ``_agreement_report``, the intervals come from ``_bootstrap``).
* :func:`split_records` makes a seeded train/held-out split, stratified by label
  (``_split``).
* :func:`compare_judges` runs a base and an aligned judge on the same held-out records and
  reports both, the change, and which ids alignment fixed or broke (``_comparison``).

Point estimates come from scikit-learn. The bootstrap recomputes the same formulas with
numpy over whole batches of resampled confusion matrices, because a thousand calls to
scikit-learn per report would take seconds. Both are imported on first use, so importing
judgealign stays fast.
"""

from __future__ import annotations

from judgealign.evaluation._comparison import JudgeComparison, SupportsEvaluate, compare_judges
from judgealign.evaluation._metrics import agreement
from judgealign.evaluation._report import AgreementReport, LabelMetrics
from judgealign.evaluation._split import split_records

__all__ = [
    "AgreementReport",
    "JudgeComparison",
    "LabelMetrics",
    "SupportsEvaluate",
    "agreement",
    "compare_judges",
    "split_records",
]
