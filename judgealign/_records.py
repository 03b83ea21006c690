"""Expert-labelled records and the loaders that read them.

A :class:`LabeledRecord` is one subject-matter expert (SME) verdict on one record: the
fields a judge sees (``inputs``, ``outputs``, ``expectations``, ``conversation``,
``trace``), the expert's ``label`` and ``rationale``, who gave it and when.

Loaders (:func:`load_records`, :func:`load_jsonl`, :func:`load_dataframe`) never abort on
one bad record: they return a :class:`LoadResult` whose ``problems`` name each rejected
record by line, row or item number and id, and warn once when there are any. Pass
``strict=True`` to raise :class:`ConfigurationError` instead.

Rules, applied by every loader and by ``align``:

* **Ids.** A record without an ``id`` gets ``rec-`` plus the first 16 hex digits of the
  SHA-256 of its canonical-JSON fields, so the same content always gets the same id.
* **Labels.** With ``judge=`` given, each label is first looked up in ``label_map`` (when
  given, by exact value, then by trimmed case-insensitive text) and then coerced by the
  judge's value type, whose vocabulary is documented in :mod:`judgealign._values`: for a
  ``bool`` judge ``yes/no``, ``true/false``, ``pass/fail``, ``correct/incorrect``,
  ``y/n``, ``1/0``; for a ``Literal`` judge the declared labels in any case; numbers and
  numeric strings for ``int`` and ``float`` judges, within the declared range. Anything
  else is rejected with a problem that names the label and the accepted values.
* **Several labels for one id** are resolved by majority vote over the (coerced) labels;
  a tie goes to the latest record: the one with the latest ``created_at``, records without
  ``created_at`` counting as older than any with one, and later input position winning
  among equals. The winning record's fields and rationale are kept; every id seen more
  than once with differing labels or fields is reported in ``LoadResult.duplicates``.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from judgealign._errors import ConfigurationError
from judgealign._values import ValueCoercionError, ValueSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DuplicateRecord",
    "LabeledRecord",
    "LoadResult",
    "RecordProblem",
    "canonical_json",
    "load_dataframe",
    "load_jsonl",
    "load_records",
]

Label = bool | int | float | str
FIELD_NAMES = ("inputs", "outputs", "expectations", "conversation", "trace")
_COLUMN_KEYS = frozenset({"id", *FIELD_NAMES, "label", "rationale", "annotator", "created_at"})
_MAX_LISTED = 10


class _HasValueSpec(Protocol):
    @property
    def value_spec(self) -> ValueSpec: ...


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


# -- loaders ----------------------------------------------------------------------------


def load_records(
    items: Iterable[LabeledRecord | Mapping[str, Any]],
    *,
    judge: _HasValueSpec | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    label_map: Mapping[Any, Any] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Read labelled records from dicts (or :class:`LabeledRecord` objects).

    Args:
        items: the records. Each dict has ``label`` and at least one judge field; other
            keys (``source``, ``metadata``...) are ignored.
        judge: when given, labels are mapped and coerced to its value type.
        columns: which key holds each record attribute when it is not the attribute's own
            name, e.g. ``{"label": "human_verdict", "rationale": "why"}``. For ``inputs``,
            ``outputs`` and ``expectations`` a list of keys builds a dict of those keys,
            e.g. ``{"inputs": ["question", "context"]}``.
        label_map: explicit label translations applied before coercion, e.g.
            ``{"Useful": "good"}``.
        strict: raise on the first load that has any rejected record.

    Returns:
        The records, the problems and the resolved duplicate ids.

    Raises:
        ConfigurationError: a malformed option, or ``strict`` and a rejected record.
    """
    mapping = _check_columns(columns)
    rows = ((f"item {i}", item) for i, item in enumerate(items))
    return _load(rows, mapping, judge, label_map, strict)


def load_jsonl(
    path: str | Path,
    *,
    judge: _HasValueSpec | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    label_map: Mapping[Any, Any] | None = None,
    strict: bool = False,
    limit: int | None = None,
) -> LoadResult:
    """Read labelled records from a JSON Lines file (one object per line).

    Blank lines are skipped; a line that is not a JSON object is reported with its
    1-based line number. ``limit`` stops after that many non-blank lines. Other options
    are those of :func:`load_records`.

    Raises:
        ConfigurationError: the file cannot be read, a malformed option, or ``strict``
            and a rejected record.
    """
    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read records from {str(target)!r}: {exc}") from None
    mapping = _check_columns(columns)
    return _load(_jsonl_rows(text, limit), mapping, judge, label_map, strict)


def load_dataframe(
    frame: pd.DataFrame,
    *,
    judge: _HasValueSpec | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    label_map: Mapping[Any, Any] | None = None,
    strict: bool = False,
) -> LoadResult:
    """Read labelled records from a pandas DataFrame, one row per record.

    Missing values (NaN, None) count as absent. Problems name the row by its index
    label. Options are those of :func:`load_records`, ``columns`` naming DataFrame
    columns, e.g. ``columns={"label": "human_verdict", "inputs": ["question"]}``.

    Raises:
        ConfigurationError: a malformed option, or ``strict`` and a rejected record.
    """
    mapping = _check_columns(columns)
    table: Any = frame  # pandas is typed loosely; this is the boundary
    labels: list[Any] = list(table.index)
    dicts: list[dict[Any, Any]] = table.to_dict(orient="records")
    rows = (
        (f"row {index}", {str(k): _absent_to_none(v) for k, v in row.items()})
        for index, row in zip(labels, dicts, strict=True)
    )
    return _load(rows, mapping, judge, label_map, strict)


def _jsonl_rows(text: str, limit: int | None) -> Iterator[tuple[str, Any]]:
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if limit is not None and count >= limit:
            return
        count += 1
        try:
            yield f"line {number}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", _BadLine(f"not valid JSON ({exc.msg} at column {exc.colno})")


@dataclass(frozen=True)
class _BadLine:
    message: str


def _absent_to_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover - a DataFrame implies pandas
        pass
    return value


def _check_columns(columns: Mapping[str, str | Sequence[str]] | None) -> dict[str, Any]:
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - _COLUMN_KEYS)
    if unknown:
        raise ConfigurationError(
            f"columns has unknown key(s) {unknown}; keys are record attributes: "
            f"{', '.join(sorted(_COLUMN_KEYS))}. Example: columns={{'label': 'human_verdict'}}."
        )
    for key, source in mapping.items():
        is_list = not isinstance(source, str)
        if is_list and key not in ("inputs", "outputs", "expectations"):
            raise ConfigurationError(
                f"columns[{key!r}] must be one column name; only inputs, outputs and "
                "expectations may combine several columns into a dict."
            )
    return mapping


# -- the shared pipeline ----------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    record: LabeledRecord
    location: str
    position: int


def _load(
    rows: Iterable[tuple[str, Any]],
    mapping: Mapping[str, Any],
    judge: _HasValueSpec | None,
    label_map: Mapping[Any, Any] | None,
    strict: bool,
) -> LoadResult:
    spec = judge.value_spec if judge is not None else None
    candidates: list[_Candidate] = []
    problems: list[RecordProblem] = []
    for position, (location, raw) in enumerate(rows):
        try:
            record = _to_record(raw, mapping)
            if spec is not None:
                record = record.with_label_for(spec, label_map)
            candidates.append(_Candidate(record, location, position))
        except ConfigurationError as exc:
            problems.append(RecordProblem(location, _raw_id(raw, mapping), str(exc)))
    if strict and problems:
        listed = "\n".join(f"  {p}" for p in problems[:_MAX_LISTED])
        raise ConfigurationError(
            f"{len(problems)} record(s) were rejected (strict=True):\n{listed}"
        )
    records, duplicates = resolve_duplicates(candidates)
    result = LoadResult(tuple(records), tuple(problems), tuple(duplicates))
    if problems:
        warnings.warn(
            f"{len(problems)} record(s) were rejected and skipped; the first: {problems[0]}. "
            "See LoadResult.problems, or pass strict=True to raise.",
            UserWarning,
            stacklevel=3,
        )
    return result


def _raw_id(raw: Any, mapping: Mapping[str, Any]) -> str | None:
    if isinstance(raw, LabeledRecord):
        return raw.id
    if isinstance(raw, Mapping):
        row: Mapping[Any, Any] = raw  # pyright: ignore[reportUnknownVariableType]
        value = row.get(mapping.get("id", "id"))
        return str(value) if value is not None else None
    return None


def _to_record(raw: Any, mapping: Mapping[str, Any]) -> LabeledRecord:
    if isinstance(raw, LabeledRecord):
        return raw
    if isinstance(raw, _BadLine):
        raise ConfigurationError(raw.message)
    if not isinstance(raw, Mapping):
        raise ConfigurationError(
            f"expected a JSON object / dict with a label, got {type(raw).__name__}"
        )
    data = _select(raw, mapping)  # pyright: ignore[reportUnknownArgumentType]
    if all(data.get(name) is None for name in FIELD_NAMES):
        raise ConfigurationError(
            "the record has none of the judge fields "
            + ", ".join(FIELD_NAMES)
            + "; map them with columns=..."
        )
    if data.get("id") is None:
        data["id"] = (
            "rec-"
            + hashlib.sha256(
                canonical_json({k: data.get(k) for k in FIELD_NAMES}).encode("utf-8")
            ).hexdigest()[:16]
        )
    try:
        return LabeledRecord.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_validation_message(exc)) from None


def _select(raw: Mapping[str, Any], mapping: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in _COLUMN_KEYS:
        source = mapping.get(key, key)
        if isinstance(source, str):
            value = raw.get(source)
        else:
            value = {column: raw.get(column) for column in source}
        if value is not None:
            data[key] = value
    if data.get("id") is not None and not isinstance(data["id"], str):
        data["id"] = str(data["id"])
    if data.get("rationale") is None:
        data.pop("rationale", None)
    return data


def _validation_message(exc: ValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "record"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def resolve_duplicates(
    candidates: Sequence[_Candidate],
) -> tuple[list[LabeledRecord], list[DuplicateRecord]]:
    """One record per id: majority label, ties to the latest (see the module rules)."""
    groups: dict[str, list[_Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.record.id, []).append(candidate)
    records: list[LabeledRecord] = []
    duplicates: list[DuplicateRecord] = []
    for rid, group in groups.items():
        if len(group) == 1:
            records.append(group[0].record)
            continue
        kept, rule = _vote(group)
        records.append(kept.record)
        labels = tuple(c.record.label for c in group)
        fields_differ = len({_payload_key(c.record) for c in group}) > 1
        if rule != "unanimous" or fields_differ:
            duplicates.append(
                DuplicateRecord(
                    record_id=rid,
                    locations=tuple(c.location for c in group),
                    labels=labels,
                    kept_label=kept.record.label,
                    rule=rule,
                    fields_differ=fields_differ,
                )
            )
    return records, duplicates


def _vote(
    group: Sequence[_Candidate],
) -> tuple[_Candidate, Literal["majority", "latest", "unanimous"]]:
    votes = Counter(_label_key(c.record.label) for c in group)
    ranked = votes.most_common()
    top = ranked[0][1]
    winners = {key for key, count in ranked if count == top}
    pool = [c for c in group if _label_key(c.record.label) in winners]
    latest = max(pool, key=_recency)
    if len(votes) == 1:
        return latest, "unanimous"
    return latest, "majority" if len(winners) == 1 else "latest"


def _recency(candidate: _Candidate) -> tuple[int, datetime, int]:
    created = candidate.record.created_at
    floor = datetime.min.replace(tzinfo=timezone.utc)
    return (created is not None, created or floor, candidate.position)


def _label_key(label: Label) -> str:
    # bools before ints: True and 1 are different labels in a str judge.
    if isinstance(label, str):
        return "s:" + label.strip().casefold()
    return f"{type(label).__name__}:{label!r}"


def _payload_key(record: LabeledRecord) -> str:
    return canonical_json({**record.judge_fields(), "rationale": record.rationale})
