"""What every judge offers, the call every judge shares, and what an aligner offers.

:class:`SupportsJudging` is the shape that code taking "a judge" is typed against: a
plain :class:`~judgealign.Judge`, an :class:`~judgealign.AlignedJudge`, or any object of
the user's with the same members. :class:`SupportsAlign` is what ``judge.align(records,
optimizer=...)`` needs of an optimizer; the judge it returns is typed by the optimizer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from judgealign.judges._extensions import dspy_metric, spark_udf

if TYPE_CHECKING:
    from judgealign.core._usage import Usage
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._feedback import Feedback
    from judgealign.judges._values import ValueSpec

__all__ = ["JudgeBase", "SupportsAlign", "SupportsJudging"]


@runtime_checkable
class SupportsJudging(Protocol):
    """A judge: judges one record when called, a batch with :meth:`evaluate`."""

    @property
    def name(self) -> str:
        """The judge's name (its feedback carries it)."""
        ...

    @property
    def value_spec(self) -> ValueSpec:
        """The verdict type: coerces labels and replies, normalises verdicts."""
        ...

    @property
    def model_uri(self) -> str:
        """The URI of the judging model."""
        ...

    @property
    def usage(self) -> Usage:
        """Tokens, cost and latency of every call made so far."""
        ...

    def __call__(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> Feedback:
        """Judge one record; a failure is a feedback with ``error``."""
        ...

    def evaluate(
        self, records: Iterable[Any], *, max_workers: int = 8, progress: bool | None = None
    ) -> EvaluationResult:
        """Judge many records; one feedback per record, in record order."""
        ...

    def normalize(self, value: Any) -> float | None:
        """A verdict mapped to [0, 1] (``None`` when it cannot be)."""
        ...

    def collect_fields(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A record's fields as the judge reads them (checked)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (no secrets)."""
        ...


AlignedT = TypeVar("AlignedT", bound=SupportsJudging, covariant=True)


class SupportsAlign(Protocol[AlignedT]):
    """An alignment optimizer, such as ``MemAlignOptimizer``: makes an aligned judge."""

    def align(self, judge: Any, records: Any = None) -> AlignedT:
        """Align ``judge`` with expert-labelled ``records``; returns the aligned judge."""
        ...


class JudgeBase(ABC):
    """The call shared by every judge of this library: check the record, then score it.

    Subclasses say how a record's fields are read (:meth:`collect_fields`) and judged
    (:meth:`score_fields`); calling the judge is the two in turn.
    """

    @abstractmethod
    def collect_fields(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A record's fields as the judge reads them (checked)."""

    @abstractmethod
    def score_fields(self, fields: Mapping[str, Any]) -> Feedback:
        """Judge already-checked fields; a failure is a feedback with ``error``."""

    def as_dspy_metric(self, **options: Any) -> Any:
        """This judge as a DSPy metric (a ``JudgeMetric``); the options are those of
        :func:`judgealign.dspy.as_dspy_metric` (field mapping, ``label_scores``, ``name``).
        Needs ``judgealign[dspy]``."""
        # The DSPy integration sits above judges: the composition root plugs it in.
        return dspy_metric(self, **options)

    def to_spark_udf(self, **options: Any) -> Any:
        """This judge as a Spark UDF returning ``evaluate_spark``'s result struct, for
        ``df.withColumn("verdict", udf(inputs="question", outputs="answer"))``; the options
        are those of :func:`judgealign.spark.to_spark_udf` (``concurrency_per_task``,
        ``rate_limit``, ...). Needs ``judgealign[spark]`` and an active Spark session."""
        # The Spark integration sits above judges: the composition root plugs it in.
        return spark_udf(self, **options)

    def __call__(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> Feedback:
        """Judge one record.

        Raises:
            ConfigurationError: a field the instructions use is missing or malformed.
        """
        fields = self.collect_fields(
            inputs=inputs,
            outputs=outputs,
            expectations=expectations,
            trace=trace,
            conversation=conversation,
        )
        return self.score_fields(fields)
