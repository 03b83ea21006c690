"""The optimizer plug-in contract, mirroring MLflow's ``BasePromptOptimizer``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BasePromptOptimizer",
    "EvalFn",
    "EvaluationResultRecord",
    "PromptOptimizerOutput",
]


@dataclass(frozen=True)
class EvaluationResultRecord:
    """How one record scored under one set of candidate prompts.

    Attributes:
        inputs: the record's inputs.
        outputs: what ``predict_fn`` returned (``None`` when it raised).
        expectations: the record's expectations, if any.
        score: the aggregated score in [0, 1] (0 when the record failed).
        trace: an optional trace of the prediction.
        rationales: scorer name -> rationale or error text (the feedback the optimizer's
            reflection sees).
        individual_scores: scorer name -> normalised score.
        error: what went wrong on this record, else ``None``.
    """

    inputs: dict[str, Any]
    outputs: Any
    expectations: dict[str, Any] | None
    score: float
    trace: Any = None
    rationales: dict[str, str] = field(default_factory=lambda: {})
    individual_scores: dict[str, float] = field(default_factory=lambda: {})
    error: str | None = None


EvalFn = Callable[[dict[str, str], Sequence[dict[str, Any]]], list[EvaluationResultRecord]]
"""``eval_fn(candidate_prompts, dataset)``: candidate templates by prompt name, records in;
one :class:`EvaluationResultRecord` per record out, in order."""


@dataclass(frozen=True)
class PromptOptimizerOutput:
    """What an optimizer returns.

    Attributes:
        optimized_prompts: prompt name -> optimized template.
        initial_eval_score: the score of the original prompts, if measured.
        final_eval_score: the score of the optimized prompts, if measured.
        initial_eval_score_per_scorer: per-scorer initial scores.
        final_eval_score_per_scorer: per-scorer final scores.
        details: optimizer-specific extras (history, lineage, metric calls used, ...).
    """

    optimized_prompts: dict[str, str]
    initial_eval_score: float | None = None
    final_eval_score: float | None = None
    initial_eval_score_per_scorer: dict[str, float] = field(default_factory=lambda: {})
    final_eval_score_per_scorer: dict[str, float] = field(default_factory=lambda: {})
    details: dict[str, Any] = field(default_factory=lambda: {})


class BasePromptOptimizer(ABC):
    """Subclass this to plug your own optimizer into ``optimize_prompts``."""

    @abstractmethod
    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
    ) -> PromptOptimizerOutput:
        """Improve ``target_prompts`` (name -> template) using ``eval_fn`` on the data."""
