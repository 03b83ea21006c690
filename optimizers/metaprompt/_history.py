"""The record a metaprompt run keeps of each step, and the labelling hook it shows examples with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from optimizers._base import EvaluationResultRecord

__all__ = ["IterationRecord", "LabelFn"]

LabelFn = Callable[[EvaluationResultRecord], str]


@dataclass(frozen=True)
class IterationRecord:
    """One step of a metaprompt run.

    Attributes:
        iteration: 0 for the starting prompts, then 1, 2, ...
        prompts: the candidate prompts (name -> template).
        score: their mean score on the ranking data (``None`` when not evaluated).
        per_scorer: scorer name -> mean score.
        accepted: whether the candidate became the best so far.
        diagnosis: the reflection model's analysis.
        note: why a candidate was not evaluated or not accepted.
    """

    iteration: int
    prompts: dict[str, str]
    score: float | None
    per_scorer: dict[str, float] = field(default_factory=lambda: {})
    accepted: bool = False
    diagnosis: str = ""
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)
