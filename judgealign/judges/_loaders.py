"""Loaders of expert-labelled records: lists of dicts, JSON Lines files, DataFrames.

Loaders never abort on one bad record: they return a :class:`LoadResult` whose
``problems`` name each rejected record by line, row or item number and id, and warn once
when there are any. Pass ``strict=True`` to raise :class:`ConfigurationError` instead.

Rules, applied by every loader and by ``align``:

* **Ids.** A record without an ``id`` gets ``rec-`` plus the first 16 hex digits of the
  SHA-256 of its canonical-JSON fields, so the same content always gets the same id.
* **Labels.** With ``judge=`` given, labels are mapped and coerced by the rule of
  :func:`judgealign.judges._records.coerce_label`; a label that does not fit is a problem.
* **Panels.** A record may carry ``ratings`` (one per rater; see
  :mod:`judgealign.judges._records`), or come in long form, one row per rater with an
  ``id`` and a ``rater`` column (see :mod:`judgealign.judges._long_form`): the rows of one
  id become one record whose ratings are those rows.
* **Several labels for one id** (rows without a ``rater``) are resolved by majority vote
  over the (coerced) labels; a tie goes to the latest record: the one with the latest
  ``created_at``, records without ``created_at`` counting as older than any with one, and
  later input position winning among equals. The winning record's fields and rationale
  are kept; every id seen more than once with differing labels or fields is reported in
  ``LoadResult.duplicates``.
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

from pydantic import ValidationError

from judgealign.core._errors import ConfigurationError
from judgealign.judges._long_form import LongFormProblem, group_long_form
from judgealign.judges._records import (
    FIELD_NAMES,
    DuplicateRecord,
    Label,
    LabeledRecord,
    LoadResult,
    RecordProblem,
    canonical_json,
    duplicates_message,
    ties_message,
)
from judgealign.judges._values import ValueSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "load_csv",
    "load_dataframe",
    "load_jsonl",
    "load_records",
    "read_records",
    "resolve_duplicates",
]

_COLUMN_KEYS = frozenset(
    {"id", *FIELD_NAMES, "label", "rationale", "annotator", "created_at", "ratings", "rater"}
)
_MAX_LISTED = 10


class _HasValueSpec(Protocol):
    @property
    def value_spec(self) -> ValueSpec: ...


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
    kind = type(items).__name__
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            "items must be an iterable of records (dicts or LabeledRecord), got "
            f"{kind}; wrap a single record in a list."
        )
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


def load_csv(
    path: str | Path,
    *,
    judge: _HasValueSpec | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    label_map: Mapping[Any, Any] | None = None,
    strict: bool = False,
    delimiter: str = ",",
) -> LoadResult:
    """Read labelled records from a CSV file with a header row, one record per row, or
    in long form: ``id, rater, label, rationale`` plus the record's fields, one row per
    rater (see the module rules).

    An empty cell is absent; a cell holding a JSON object or list is decoded. Problems
    name the row by its line number in the file (the header is line 1). Other options
    are those of :func:`load_records`.

    Raises:
        ConfigurationError: the file cannot be read, a malformed option, or ``strict``
            and a rejected record.
    """
    import csv

    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot read records from {str(target)!r}: {exc}") from None
    mapping = _check_columns(columns)
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    rows = (
        (f"line {reader.line_num}", {k: _csv_cell(v) for k, v in row.items() if k is not None})
        for row in reader
    )
    return _load(rows, mapping, judge, label_map, strict)


def _csv_cell(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


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


def read_records(
    items: Iterable[LabeledRecord | Mapping[str, Any]], *, judge: _HasValueSpec
) -> LoadResult:
    """:func:`load_records` without the warning, for callers that report problems
    themselves (``align`` puts them in its result)."""
    rows = ((f"item {i}", item) for i, item in enumerate(items))
    return _load(rows, {}, judge, None, False, warn=False)


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
    *,
    warn: bool = True,
) -> LoadResult:
    spec = judge.value_spec if judge is not None else None
    candidates: list[_Candidate] = []
    problems: list[RecordProblem] = []
    for position, (location, raw) in enumerate(group_long_form(rows, mapping)):
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
    if problems and warn:
        warnings.warn(
            f"{len(problems)} record(s) were rejected and skipped; the first: {problems[0]}. "
            "See LoadResult.problems, or pass strict=True to raise.",
            UserWarning,
            stacklevel=3,
        )
    if duplicates and warn:
        warnings.warn(duplicates_message(duplicates), UserWarning, stacklevel=3)
    if result.tied_ids and warn:
        warnings.warn(ties_message(result.tied_ids), UserWarning, stacklevel=3)
    return result


def _raw_id(raw: Any, mapping: Mapping[str, Any]) -> str | None:
    if isinstance(raw, LabeledRecord):
        return raw.id
    if isinstance(raw, LongFormProblem):
        return raw.record_id
    if isinstance(raw, Mapping):
        row: Mapping[Any, Any] = raw  # pyright: ignore[reportUnknownVariableType]
        value = row.get(mapping.get("id", "id"))
        return str(value) if value is not None else None
    return None


def _to_record(raw: Any, mapping: Mapping[str, Any]) -> LabeledRecord:
    if isinstance(raw, LabeledRecord):
        return _storable(raw)
    if isinstance(raw, (_BadLine, LongFormProblem)):
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
        record = LabeledRecord.model_validate(data)
    except ValidationError as exc:
        raise ConfigurationError(_validation_message(exc)) from None
    return _storable(record)


def _storable(record: LabeledRecord) -> LabeledRecord:
    """``record`` if every field can be saved as JSON (an aligned judge's file holds it)."""
    from pydantic_core import to_jsonable_python

    for name in FIELD_NAMES:
        try:
            to_jsonable_python(getattr(record, name))
        except (ValueError, TypeError) as exc:  # PydanticSerializationError, UnicodeDecodeError
            raise ConfigurationError(
                f"{name!r} cannot be stored as JSON ({exc}); convert it to plain dicts, "
                "lists, strings and numbers."
            ) from None
    return record


def _select(raw: Mapping[str, Any], mapping: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in _COLUMN_KEYS - {"rater"}:  # rater rows were grouped into ratings
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
        message = error["msg"].removeprefix("Value error, ")  # a validator's own words
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {message}" if where else message)
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
