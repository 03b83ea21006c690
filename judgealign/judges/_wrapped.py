"""The base of judges built around another judge (the aligned judge is one).

:class:`WrappedJudge` gives such a judge every member of the base judge it does not
change, by delegation, written once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judgealign.core._usage import Usage
    from judgealign.judges._judge import Judge
    from judgealign.judges._values import ValueSpec
    from judgealign.models._chat import ChatModel

from judgealign.judges._protocol import JudgeBase

__all__ = ["WrappedJudge"]


class WrappedJudge(JudgeBase):
    """A judge built around ``base_judge``: every member it does not override is the base's.

    Args:
        base: the judge being wrapped.
    """

    def __init__(self, base: Judge) -> None:
        self.base_judge = base

    @property
    def name(self) -> str:
        """The base judge's name."""
        return self.base_judge.name

    @property
    def instructions(self) -> str:
        """The base judge's instructions."""
        return self.base_judge.instructions

    @property
    def variables(self) -> tuple[str, ...]:
        """The template variables of the instructions."""
        return self.base_judge.variables

    @property
    def description(self) -> str | None:
        """The base judge's description."""
        return self.base_judge.description

    @property
    def label_scores(self) -> dict[str, float] | None:
        """The base judge's score per label (``Literal`` judges)."""
        return self.base_judge.label_scores

    @property
    def value_spec(self) -> ValueSpec:
        """The verdict type."""
        return self.base_judge.value_spec

    @property
    def model(self) -> ChatModel:
        """The judging model (the base judge's)."""
        return self.base_judge.model

    @property
    def model_uri(self) -> str:
        """The URI of the judging model."""
        return self.base_judge.model_uri

    @property
    def usage(self) -> Usage:
        """Tokens, cost and latency of every call the base judge made."""
        return self.base_judge.usage

    def normalize(self, value: Any) -> float | None:
        """Map a verdict to [0, 1], as :meth:`Judge.normalize`."""
        return self.base_judge.normalize(value)

    def collect_fields(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Check a record's fields, as :meth:`Judge.collect_fields`."""
        return self.base_judge.collect_fields(
            inputs=inputs,
            outputs=outputs,
            expectations=expectations,
            trace=trace,
            conversation=conversation,
        )
