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

Panels (several experts per record): ``ratings`` holds one :class:`Rating` per rater
(``{"rater": "alice", "label": ..., "rationale": ...}``). When a record has ratings and
no ``label``, ``label`` is resolved from them by :func:`resolve_ratings`: the majority
label (``resolution="unanimous"`` or ``"majority"``), and on a tie the tied label rated
first, flagged with ``resolution="tie"`` so that a team can adjudicate; ``"median"``
(ordered labels) is the declared alternative. A ``label`` given alongside ratings is an
adjudicated verdict and wins (``resolution="given"``). A panel record without a
``rationale`` gets the raters' rationales joined, so alignment learns from all of them.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from judgealign.core._errors import ConfigurationError
from judgealign.judges._values import ValueCoercionError, ValueSpec

__all__ = [
    "FIELD_NAMES",
    "DuplicateRecord",
    "Label",
    "LabeledRecord",
    "LoadResult",
    "Rating",
    "RecordProblem",
    "Resolution",
    "canonical_json",
    "coerce_label",
    "duplicates_message",
    "resolve_ratings",
    "ties_message",
]

Label = bool | int | float | str
FIELD_NAMES = ("inputs", "outputs", "expectations", "conversation", "trace")
_COLUMN_KEYS = frozenset({"id", *FIELD_NAMES, "label", "rationale", "annotator", "created_at"})
_MAX_LISTED = 10
Resolution = Literal["given", "unanimous", "majority", "median", "tie"]
"""How a panel record's ``label`` was obtained from its ratings (see the module rules)."""


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, no spaces, non-JSON values as ``str``."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


class Rating(BaseModel):
    """One rater's verdict on a record of a panel.

    Attributes:
        rater: who gave it (an expert's id); one rating per rater and record.
        label: the rater's verdict.
        rationale: the rater's explanation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    rater: str
    label: Label
    rationale: str = ""

    @field_validator("rater", mode="before")
    @classmethod
    def _check_rater(cls, value: Any) -> Any:
        if value is None or not str(value).strip():
            raise ValueError(
                "the rater id is missing; give each rating the id of the expert who gave it"
            )
        return str(value).strip()

    @field_validator("label", mode="before")
    @classmethod
    def _check_label(cls, value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise ValueError("label is missing; a rating needs the rater's verdict")
        return value


def resolve_ratings(
    ratings: Sequence[Rating], rule: Literal["majority", "median"] = "majority"
) -> tuple[Label, Resolution]:
    """The panel's label and how it was resolved (see the module rules).

    Raises:
        ValueError: no ratings, or ``"median"`` on labels that are not numbers.
    """
    if not ratings:
        raise ValueError("the record has no ratings and no label; give at least one rating")
    labels = [r.label for r in ratings]
    if rule == "median":
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
            raise ValueError("resolution 'median' needs numeric labels; use 'majority'")
        ordered = sorted(labels, key=float)
        return ordered[(len(ordered) - 1) // 2], "median"  # the lower median: a rated value
    counts: dict[str, int] = {}
    for label in labels:
        counts[label_key(label)] = counts.get(label_key(label), 0) + 1
    top = max(counts.values())
    winner = next(v for v in labels if counts[label_key(v)] == top)  # first rated of the tied
    if len(counts) == 1:
        return winner, "unanimous"
    tied = sum(1 for c in counts.values() if c == top) > 1
    return winner, "tie" if tied else "majority"


def label_key(label: Label) -> str:
    """A label's identity for votes: text trimmed and case-folded; ``True`` is not ``1``."""
    if isinstance(label, str):
        return "s:" + label.strip().casefold()
    return f"{type(label).__name__}:{label!r}"


def _joined_rationales(ratings: Sequence[Rating]) -> str:
    return "\n".join(f"{r.rater} ({r.label!r}): {r.rationale}" for r in ratings if r.rationale)


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
        ratings: a panel's verdicts, one per rater (empty for a single expert's record).
        resolution: how ``label`` came from ``ratings`` (``None`` without ratings);
            ``"tie"`` flags a panel split evenly, whose label is the tied one rated first.
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
    ratings: tuple[Rating, ...] = ()
    resolution: Resolution | None = None

    @model_validator(mode="before")
    @classmethod
    def _resolve_panel(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        values = dict(cast("Mapping[str, Any]", data))
        if values.get("ratings") is None:
            return values
        ratings = _parse_ratings(values["ratings"])
        given = values.get("label")
        if given is not None and not (isinstance(given, float) and math.isnan(given)):
            values.setdefault("resolution", "given")
        else:
            rule = "median" if values.get("resolution") == "median" else "majority"
            values["label"], values["resolution"] = resolve_ratings(ratings, rule)
        if not values.get("rationale"):
            values["rationale"] = _joined_rationales(ratings)
        values["ratings"] = tuple(ratings)
        return values

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

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A single expert's record dumps as it did before panels existed, so that files
        # saved earlier and saved again stay the same document.
        data = cast("dict[str, Any]", handler(self))
        if not self.ratings:
            data.pop("ratings", None)
            data.pop("resolution", None)
        return data

    @property
    def contested(self) -> bool:
        """Whether the panel's raters gave more than one label."""
        return len({label_key(r.label) for r in self.ratings}) > 1

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
        if self.ratings:  # left out otherwise, so a single expert's hash is unchanged
            payload["ratings"] = [r.model_dump() for r in self.ratings]
        return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()

    def _coerced_rating(
        self, rating: Rating, spec: ValueSpec, label_map: Mapping[Any, Any] | None
    ) -> Rating:
        try:
            label = coerce_label(rating.label, spec, label_map)
        except ConfigurationError as exc:
            raise ConfigurationError(f"record {self.id!r}, rater {rating.rater!r}: {exc}") from None
        return rating.model_copy(update={"label": label})

    def with_label_for(
        self, spec: ValueSpec, label_map: Mapping[Any, Any] | None = None
    ) -> LabeledRecord:
        """This record with its label mapped and coerced to ``spec``.

        A panel record's ratings are coerced too, and a label resolved from them is
        resolved again from the coerced ratings (``"Yes"`` and ``"y"`` are one vote).

        Raises:
            ConfigurationError: the label (or a rating's) does not fit ``spec``; the
                message names the record, the rater, the label and the accepted values.
        """
        if not self.ratings:
            return self.model_copy(
                update={"label": coerce_label(self.label, spec, label_map, record_id=self.id)}
            )
        ratings = tuple(self._coerced_rating(r, spec, label_map) for r in self.ratings)
        if self.resolution == "given":
            label = coerce_label(self.label, spec, label_map, record_id=self.id)
            return self.model_copy(update={"label": label, "ratings": ratings})
        rule = "median" if self.resolution == "median" else "majority"
        label, resolution = resolve_ratings(ratings, rule)
        update = {"label": label, "ratings": ratings, "resolution": resolution}
        return self.model_copy(update=update)


def _parse_ratings(raw: Any) -> list[Rating]:
    """``raw`` as ratings, one per rater; a ``ValueError`` names the bad rating."""
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        kind = type(cast(object, raw)).__name__
        raise ValueError(
            f'ratings must be a list such as [{{"rater": "alice", "label": ...}}], got {kind}'
        )
    ratings: list[Rating] = []
    for index, item in enumerate(cast("Sequence[Any]", raw)):
        if isinstance(item, Rating):
            ratings.append(item)
            continue
        if not isinstance(item, Mapping):
            raise ValueError(f"ratings[{index}] must be an object with rater and label")
        entry = cast("Mapping[str, Any]", item)
        if entry.get("rater") is None or not str(entry["rater"]).strip():
            raise ValueError(
                f"ratings[{index}] has no rater id; give each rating the id of the expert "
                'who gave it, e.g. {"rater": "alice", "label": ...}'
            )
        try:
            ratings.append(Rating.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            message = f"ratings[{index}] ({entry['rater']!r}) {where}: {first['msg']}"
            raise ValueError(message) from None
    _check_one_rating_per_rater(ratings)
    return ratings


def _check_one_rating_per_rater(ratings: Sequence[Rating]) -> None:
    seen: dict[str, int] = {}
    for index, rating in enumerate(ratings):
        if rating.rater in seen:
            raise ValueError(
                f"rater {rating.rater!r} rated this record twice (ratings {seen[rating.rater]} "
                f"and {index}); keep one rating per rater and record"
            )
        seen[rating.rater] = index


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


def ties_message(ids: Sequence[str]) -> str:
    """The warning for panel records whose raters split evenly."""
    more = " ..." if len(ids) > 5 else ""
    return (
        f"{len(ids)} panel record(s) tied (raters split evenly): {', '.join(ids[:5])}{more}. "
        "Each keeps the tied label rated first (resolution='tie'); adjudicate by giving a "
        "label next to the ratings."
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

    @property
    def tied_ids(self) -> tuple[str, ...]:
        """Panel records whose raters split evenly (``resolution == "tie"``)."""
        return tuple(r.id for r in self.records if r.resolution == "tie")

    def format(self) -> str:
        """A short human report."""
        lines = [
            f"{len(self.records)} records loaded, {len(self.problems)} rejected, "
            f"{len(self.duplicates)} duplicate ids resolved."
        ]
        if self.tied_ids:
            lines.append(
                f"  tied panels ({len(self.tied_ids)}): {', '.join(self.tied_ids[:_MAX_LISTED])}"
            )
        lines += [f"  rejected {p}" for p in self.problems[:_MAX_LISTED]]
        lines += [f"  duplicate {d}" for d in self.duplicates[:_MAX_LISTED]]
        return "\n".join(lines)
