"""The verdict a judge (or an expert) gives on one record."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AssessmentSource", "AssessmentSourceType", "Feedback", "FeedbackValue"]


class AssessmentSourceType(str, Enum):
    """Who produced a verdict (MLflow's names)."""

    LLM_JUDGE = "LLM_JUDGE"
    HUMAN = "HUMAN"
    CODE = "CODE"


class AssessmentSource(BaseModel):
    """Where a verdict came from.

    Attributes:
        source_type: an LLM judge, a human expert, or code.
        source_id: the model URI for judges, the annotator id for humans.
    """

    model_config = ConfigDict(frozen=True)

    source_type: AssessmentSourceType
    source_id: str = ""


class FeedbackValue(BaseModel):
    """A verdict's value and error, as MLflow's ``Feedback.feedback`` holds them.

    Attributes:
        value: the verdict, or ``None``.
        error: why there is no verdict, or ``None``.
    """

    model_config = ConfigDict(frozen=True)

    value: bool | int | float | str | None = None
    error: str | None = None


class Feedback(BaseModel):
    """One verdict on one record.

    Exactly one of ``value`` and ``error`` is set for a judge's feedback: a record the
    judge could not score comes back with ``value=None`` and ``error`` saying why.

    Attributes:
        name: the judge's name.
        value: the verdict, of the judge's declared type.
        rationale: the judge's explanation.
        error: why no verdict could be produced, else ``None``.
        source: who produced the verdict.
        metadata: model, tokens, cost, latency and, for aligned judges, the retrieved
            example ids and the guidelines used.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    value: bool | int | float | str | None = None
    rationale: str = ""
    error: str | None = None
    source: AssessmentSource | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the feedback carries a value and no error."""
        return self.error is None and self.value is not None

    @property
    def feedback(self) -> FeedbackValue:
        """The value and error together (``feedback.feedback.value``), as in MLflow."""
        return FeedbackValue(value=self.value, error=self.error)
