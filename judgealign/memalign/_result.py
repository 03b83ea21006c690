"""What an alignment changed: :class:`AlignmentResult`, and how it is reported.

Every change to an aligned judge's memory leaves a result in its ``history``: ``align`` and
``unalign`` (the latest of those is ``last_alignment``), and each guideline added, edited,
pinned, unpinned or removed by hand. The history is saved with the judge's file.

Anything worth a warning (nothing changed, a failed distillation batch, unknown source
ids, no usable guideline, rejected records) is both sent through :func:`warnings.warn`,
pointed at the caller's line, and kept in ``AlignmentResult.warnings``: alignment never
fails silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

from judgealign.core._caller import caller_stacklevel
from judgealign.core._usage import ZERO_USAGE, Usage
from judgealign.judges._records import DuplicateRecord, RecordProblem, duplicates_message
from judgealign.memalign._distill import DistillationOutcome, FailedBatch

__all__ = ["AlignmentResult", "Operation", "RunLog"]

Operation = Literal[
    "align",
    "unalign",
    "add_guideline",
    "edit_guideline",
    "pin_guideline",
    "unpin_guideline",
    "remove_guideline",
]


@dataclass(frozen=True)
class AlignmentResult:
    """What one change to an aligned judge's memory did, and what it cost.

    Attributes:
        records_added: ids newly stored.
        records_updated: ids whose content changed; forgotten, then learned again.
        records_removed: ids forgotten (``unalign``).
        records_unchanged: ids already in memory with the same content (no cost).
        guidelines_added: ids of guidelines created (distilled, consolidated, or added by
            a person) and still in memory at the end of the change.
        guidelines_merged: ids of guidelines (existing or just added) that absorbed a
            near-duplicate, or other guidelines during consolidation, instead of a new
            guideline being added (their source ids grew).
        guidelines_removed: ids of guidelines that existed before the change and were
            removed: every source was forgotten, consolidation replaced them, or a person
            removed them.
        failed_batches: distillation batches that failed twice (their records stay
            ``pending`` and are retried by the next ``align``).
        problems: records rejected before alignment (bad label, missing field...).
        duplicates: ids given more than once, and how they were resolved.
        distilled_ids: ids the reflection model learned from in this call.
        disagreement_ids: in disagreement mode, ids where the judge as aligned so far
            differed from the experts (``None`` in the default mode).
        dropped_source_ids: ids the reflection model cited that were not in its batch
            (a guideline citing none of its batch is attributed to the whole batch).
        warnings: every warning issued, also sent through :func:`warnings.warn`.
        usage: reflection and judge calls made by this alignment.
        texts_embedded: how many texts were embedded (records and guidelines).
        operation: what made the change: ``"align"``, ``"unalign"``, or the guideline
            method (``"add_guideline"``, ``"edit_guideline"``, ``"pin_guideline"``,
            ``"unpin_guideline"``, ``"remove_guideline"``).
        guidelines_edited: ids of guidelines whose text or pin a person changed.
    """

    records_added: tuple[str, ...] = ()
    records_updated: tuple[str, ...] = ()
    records_removed: tuple[str, ...] = ()
    records_unchanged: tuple[str, ...] = ()
    guidelines_added: tuple[str, ...] = ()
    guidelines_merged: tuple[str, ...] = ()
    guidelines_removed: tuple[str, ...] = ()
    failed_batches: tuple[FailedBatch, ...] = ()
    problems: tuple[RecordProblem, ...] = ()
    duplicates: tuple[DuplicateRecord, ...] = ()
    distilled_ids: tuple[str, ...] = ()
    disagreement_ids: tuple[str, ...] | None = None
    dropped_source_ids: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    usage: Usage = field(default_factory=lambda: ZERO_USAGE)
    texts_embedded: int = 0
    operation: Operation = "align"
    guidelines_edited: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether memory changed at all."""
        return bool(
            self.records_added
            or self.records_updated
            or self.records_removed
            or self.guidelines_added
            or self.guidelines_merged
            or self.guidelines_edited
            or self.guidelines_removed
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (how the history is saved), inverse of :meth:`from_dict`."""
        return _json_ready(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlignmentResult:
        """Rebuild a result saved by :meth:`to_dict`; unknown keys are ignored.

        Raises:
            ValueError: a field has the wrong shape or an unknown ``operation``.
        """
        if data.get("operation", "align") not in get_args(Operation):
            raise ValueError(f"unknown operation {data.get('operation')!r}")
        values: dict[str, Any] = {}
        for item in fields(cls):
            if item.name not in data:
                continue
            value = data[item.name]
            decode = _DECODERS.get(item.name)
            if decode is not None:
                value = decode(value)
            elif isinstance(value, list):
                value = _strings(value)
            values[item.name] = value
        return cls(**values)

    def format(self) -> str:
        """A short human report."""
        lines = [
            f"records: +{len(self.records_added)} added, {len(self.records_updated)} "
            f"updated, -{len(self.records_removed)} removed, {len(self.records_unchanged)} "
            f"unchanged, {len(self.problems)} rejected",
            f"guidelines: +{len(self.guidelines_added)} added, {len(self.guidelines_merged)} "
            f"merged, "
            + (f"{len(self.guidelines_edited)} edited, " if self.guidelines_edited else "")
            + f"-{len(self.guidelines_removed)} removed",
            f"model calls: {self.usage.calls}, texts embedded: {self.texts_embedded}",
        ]
        if self.failed_batches:
            lines.append(f"failed distillation batches: {len(self.failed_batches)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]  # pyright: ignore[reportUnknownVariableType]
    return value


def _usage(data: Any) -> Usage:
    return Usage(**dict(data))


def _strings(items: Any) -> tuple[str, ...]:
    return tuple(str(item) for item in list(items))


def _failed_batches(items: Any) -> tuple[FailedBatch, ...]:
    batches: list[FailedBatch] = []
    for item in list(items):
        values: dict[str, Any] = dict(item)
        values["record_ids"] = _strings(values.get("record_ids", ()))
        if isinstance(values.get("usage"), Mapping):
            values["usage"] = _usage(values["usage"])
        batches.append(FailedBatch(**values))
    return tuple(batches)


def _problems(items: Any) -> tuple[RecordProblem, ...]:
    return tuple(RecordProblem(**dict(item)) for item in list(items))


def _duplicates(items: Any) -> tuple[DuplicateRecord, ...]:
    found: list[DuplicateRecord] = []
    for item in list(items):
        values: dict[str, Any] = dict(item)
        values["locations"] = _strings(values.get("locations", ()))
        values["labels"] = tuple(list(values.get("labels", ())))
        found.append(DuplicateRecord(**values))
    return tuple(found)


def _optional_strings(items: Any) -> tuple[str, ...] | None:
    return None if items is None else _strings(items)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "usage": _usage,
    "failed_batches": _failed_batches,
    "problems": _problems,
    "duplicates": _duplicates,
    "disagreement_ids": _optional_strings,
    "texts_embedded": int,
    "operation": str,
}


@dataclass
class RunLog:
    """Mutable bookkeeping of one update (never shared between threads)."""

    problems: tuple[RecordProblem, ...]
    duplicates: tuple[DuplicateRecord, ...]
    usage: Usage = ZERO_USAGE
    embedded: int = 0
    messages: list[str] = field(default_factory=lambda: [])
    result_fields: dict[str, Any] = field(default_factory=lambda: {})

    def warn(self, message: str) -> None:
        self.messages.append(message)

    def report_distillation(self, outcome: DistillationOutcome, count: int) -> None:
        self.result_fields["failed_batches"] = outcome.failed
        self.result_fields["distilled_ids"] = outcome.distilled_ids
        self.result_fields["dropped_source_ids"] = outcome.unknown_source_ids
        if outcome.failed:
            ids = sum(len(b.record_ids) for b in outcome.failed)
            self.warn(
                f"{len(outcome.failed)} distillation batch(es) covering {ids} record(s) "
                f"failed twice (last error: {outcome.failed[0].error}); those records "
                "are stored as examples and their distillation is retried by the next "
                "align."
            )
        if outcome.unknown_source_ids:
            self.warn(
                f"The reflection model cited {len(outcome.unknown_source_ids)} unknown "
                f"record id(s) {list(outcome.unknown_source_ids[:5])}; they were dropped."
            )
        if outcome.batch_attributed:
            self.warn(
                f"{len(outcome.batch_attributed)} guideline(s) cited no record id of their "
                "batch; they were kept and attributed to all the records of their batch "
                "(unalign removes them with those records)."
            )
        if outcome.distilled_ids and not outcome.guidelines:
            self.warn(
                f"The reflection model returned no usable guideline from {count} "
                "record(s); the judge gained examples but no guidelines."
            )

    def finish(self) -> AlignmentResult:
        if self.problems:
            self.warn(
                f"{len(self.problems)} record(s) were rejected: {self.problems[0]}"
                f"{' ...' if len(self.problems) > 1 else ''}"
            )
        if self.duplicates:
            self.warn(duplicates_message(self.duplicates))
        for message in self.messages:
            warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())
        return AlignmentResult(
            problems=self.problems,
            duplicates=self.duplicates,
            usage=self.usage,
            texts_embedded=self.embedded,
            warnings=tuple(self.messages),
            **self.result_fields,
        )
