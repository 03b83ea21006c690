"""What an alignment changed: :class:`AlignmentResult`, and how it is reported.

Every ``align`` and ``unalign`` leaves its result on the aligned judge (``last_alignment``,
``history``). Anything worth a warning (nothing changed, a failed distillation batch,
unknown source ids, no usable guideline, rejected records) is both sent through
:func:`warnings.warn`, pointed at the caller's line, and kept in
``AlignmentResult.warnings``: alignment never fails silently.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from judgealign._distill import DistillationOutcome, FailedBatch
from judgealign._records import DuplicateRecord, RecordProblem, duplicates_message
from judgealign._usage import ZERO_USAGE, Usage

__all__ = ["AlignmentResult", "RunLog", "caller_stacklevel"]


@dataclass(frozen=True)
class AlignmentResult:
    """What one ``align`` or ``unalign`` changed, and what it cost.

    Attributes:
        records_added: ids newly stored.
        records_updated: ids whose content changed; forgotten, then learned again.
        records_removed: ids forgotten (``unalign``).
        records_unchanged: ids already in memory with the same content (no cost).
        guidelines_added: ids of guidelines created (distilled or consolidated).
        guidelines_merged: ids of guidelines (existing or just added) that absorbed a
            near-duplicate instead of it being added (their source ids grew).
        guidelines_removed: ids of guidelines removed because every source was forgotten
            or because consolidation replaced them.
        failed_batches: distillation batches that failed twice (their records stay
            ``pending`` and are retried by the next ``align``).
        problems: records rejected before alignment (bad label, missing field...).
        duplicates: ids given more than once, and how they were resolved.
        distilled_ids: ids the reflection model learned from in this call.
        disagreement_ids: in disagreement mode, ids where the base judge differed from
            the experts (``None`` in the default mode).
        dropped_source_ids: ids the reflection model cited that were not in its batch.
        warnings: every warning issued, also sent through :func:`warnings.warn`.
        usage: reflection and base-judge calls made by this alignment.
        texts_embedded: how many texts were embedded (records and guidelines).
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

    @property
    def changed(self) -> bool:
        """Whether memory changed at all."""
        return bool(
            self.records_added
            or self.records_updated
            or self.records_removed
            or self.guidelines_added
            or self.guidelines_merged
            or self.guidelines_removed
        )

    def format(self) -> str:
        """A short human report."""
        lines = [
            f"records: +{len(self.records_added)} added, {len(self.records_updated)} "
            f"updated, -{len(self.records_removed)} removed, {len(self.records_unchanged)} "
            f"unchanged, {len(self.problems)} rejected",
            f"guidelines: +{len(self.guidelines_added)} added, {len(self.guidelines_merged)} "
            f"merged, -{len(self.guidelines_removed)} removed",
            f"model calls: {self.usage.calls}, texts embedded: {self.texts_embedded}",
        ]
        if self.failed_batches:
            lines.append(f"failed distillation batches: {len(self.failed_batches)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)


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
        if outcome.unsourced:
            self.warn(
                f"{len(outcome.unsourced)} guideline(s) cited no valid record id and were dropped."
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


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside judgealign."""
    package = Path(__file__).resolve().parent
    frame = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
    level = 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().parent == package:
        frame = frame.f_back
        level += 1
    return level
