"""Expert-labelled records: the record type, label rules and load reports.

A :class:`LabeledRecord` is one subject-matter expert (SME) verdict on one record: the
fields a judge sees (``inputs``, ``outputs``, ``expectations``, ``conversation``,
``trace``), the expert's ``label`` and ``rationale``, who gave it and when. The loaders
in :mod:`judgealign.judges._loaders` return a :class:`LoadResult` with the records that loaded,
the :class:`RecordProblem` s that were rejected and the :class:`DuplicateRecord` s that
were resolved.

Label rule (:func:`coerce_label`, applied by every loader given a judge and by ``align``):
each label is first looked up in ``label_map`` when one is given (by exact value, then by
trimmed case-insensitive text), then coerced by the judge's value type, whose vocabulary
is documented in :mod:`judgealign.judges._values`: for a ``bool`` judge ``yes/no``,
``true/false``, ``pass/fail``, ``correct/incorrect``, ``y/n``, ``1/0``; for a ``Literal``
judge the declared labels in any case; numbers and numeric strings for ``int`` and
``float`` judges, within the declared range. Anything else is rejected with an error that
names the label and the accepted values.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from judgealign.core._errors import ConfigurationError
from judgealign.judges._values import ValueCoercionError, ValueSpec

__all__ = [
    "FIELD_NAMES",
    "DuplicateRecord",
    "Label",
    "LabeledRecord",
    "LoadResult",
    "RecordProblem",
    "canonical_json",
    "coerce_label",
    "duplicates_message",
]

Label = bool | int | float | str
FIELD_NAMES = ("inputs", "outputs", "expectations", "conversation", "trace")
_COLUMN_KEYS = frozenset({"id", *FIELD_NAMES, "label", "rationale", "annotator", "created_at"})
_MAX_LISTED = 10


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces, non-JSON values as ``str``."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class LabeledRecord(BaseModel):
    """One expert verdict on one record.

    Attributes:
        id: a stable identifier, used to update or forget the record later.
        inputs: what the judged system received.
        outputs: what it produced.
        expectations: ground truth or reference values, as a dict.
        conversation: a list of chat messages, for conversation judges.
        trace: a JSON-like trace (``{"request": ..., "response": ...}``).
        label: the expert's verdict.
        rationale: the expert's explanation (the richest input for distilled guidelines).
        annotator: who gave the verdict.
        created_at: when it was given; breaks ties between conflicting labels.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    inputs: Any = None
    outputs: Any = None
    expectations: dict[str, Any] | None = None
    conversation: list[dict[str, Any]] | None = None
    trace: Any = None
    label: Label
    rationale: str = ""
    annotator: str | None = None
    created_at: datetime | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id must be a non-empty string")
        return value.strip()

    @field_validator("label", mode="before")
    @classmethod
    def _check_label(cls, value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError("label is missing")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value

    def judge_fields(self) -> dict[str, Any]:
        """The record's judge fields, as keyword arguments for ``Judge.collect_fields``."""
        return {name: getattr(self, name) for name in FIELD_NAMES}

    @property
    def content_hash(self) -> str:
        """SHA-256 of the fields, label and rationale: what alignment depends on.

        ``annotator`` and ``created_at`` are left out; changing them changes nothing the
        judge learns.
        """
        payload = {**self.judge_fields(), "label": self.label, "rationale": self.rationale}
        return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

    def with_label_for(
        self, spec: ValueSpec, label_map: Mapping[Any, Any] | None = None
    ) -> LabeledRecord:
        """This record with its label mapped and coerced to ``spec``.

        Raises:
            ConfigurationError: the label does not fit ``spec``; the message names the
                record, the label and the accepted values.
        """
        return self.model_copy(
            update={"label": coerce_label(self.label, spec, label_map, record_id=self.id)}
        )


def coerce_label(
    label: Any,
    spec: ValueSpec,
    label_map: Mapping[Any, Any] | None = None,
    *,
    record_id: str | None = None,
) -> Label:
    """Map ``label`` through ``label_map`` and coerce it to ``spec`` (see the module rules)."""
    mapped = _apply_label_map(label, label_map)
    try:
        return spec.coerce(mapped)
    except ValueCoercionError as exc:
        where = f"record {record_id!r}: " if record_id else ""
        raise ConfigurationError(
            f"{where}label {label!r} does not fit the judge's value type "
            f"({spec.describe()}): {exc}. Fix the data or map the label explicitly, e.g. "
            f"label_map={{{label!r}: ...}}."
        ) from None


def _apply_label_map(label: Any, label_map: Mapping[Any, Any] | None) -> Any:
    if not label_map:
        return label
    try:
        if label in label_map:
            return label_map[label]
    except TypeError:  # unhashable label
        return label
    if isinstance(label, str):
        wanted = label.strip().casefold()
        for key, value in label_map.items():
            if isinstance(key, str) and key.strip().casefold() == wanted:
                return value
    return label


@dataclass(frozen=True)
class RecordProblem:
    """A record a loader rejected.

    Attributes:
        location: where it was, e.g. ``"line 7"``, ``"row 12"`` or ``"item 3"``
            (lines are 1-based, items 0-based, rows are the DataFrame index label).
        record_id: its id, when it could be read.
        message: what is wrong and how to fix it.
    """

    location: str
    record_id: str | None
    message: str

    def __str__(self) -> str:
        rid = f" (id {self.record_id!r})" if self.record_id else ""
        return f"{self.location}{rid}: {self.message}"


@dataclass(frozen=True)
class DuplicateRecord:
    """An id that appeared more than once with differing labels or fields.

    Attributes:
        record_id: the id.
        locations: where each occurrence was, in input order.
        labels: each occurrence's label, in input order.
        kept_label: the label that won.
        rule: ``"majority"`` when one label had the most votes, ``"latest"`` when a tie
            was broken by recency, ``"unanimous"`` when labels agreed but fields differed.
        fields_differ: whether the occurrences disagree on the record's fields or rationale.
    """

    record_id: str
    locations: tuple[str, ...]
    labels: tuple[Label, ...]
    kept_label: Label
    rule: Literal["majority", "latest", "unanimous"]
    fields_differ: bool

    def __str__(self) -> str:
        return (
            f"id {self.record_id!r} appears {len(self.locations)} times "
            f"({', '.join(self.locations)}) with labels {list(self.labels)}; kept "
            f"{self.kept_label!r} ({self.rule})"
            + (
                "; the fields or rationales differ, the kept record's are used"
                if self.fields_differ
                else ""
            )
        )


def duplicates_message(duplicates: Sequence[DuplicateRecord]) -> str:
    """The warning for ids given more than once with differing labels or fields."""
    more = f" (and {len(duplicates) - 1} more)" if len(duplicates) > 1 else ""
    return (
        f"{len(duplicates)} id(s) were given more than once with differing labels or fields; "
        f"one record was kept for each: {duplicates[0]}{more}. Fix the data, or see the "
        "duplicates in the result."
    )


@dataclass(frozen=True)
class LoadResult(Sequence[LabeledRecord]):
    """Records that loaded, plus what was rejected or merged. Iterates over the records.

    Attributes:
        records: the valid records, one per id, in order of first appearance.
        problems: the rejected records.
        duplicates: ids seen more than once with differing labels or fields.
    """

    records: tuple[LabeledRecord, ...]
    problems: tuple[RecordProblem, ...] = ()
    duplicates: tuple[DuplicateRecord, ...] = ()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> LabeledRecord:  # type: ignore[override]
        return self.records[index]

    def __iter__(self) -> Iterator[LabeledRecord]:
        return iter(self.records)

    @property
    def ok(self) -> bool:
        """True when no record was rejected."""
        return not self.problems

    def format(self) -> str:
        """A short human report."""
        lines = [
            f"{len(self.records)} records loaded, {len(self.problems)} rejected, "
            f"{len(self.duplicates)} duplicate ids resolved."
        ]
        lines += [f"  rejected {p}" for p in self.problems[:_MAX_LISTED]]
        lines += [f"  duplicate {d}" for d in self.duplicates[:_MAX_LISTED]]
        return "\n".join(lines)
