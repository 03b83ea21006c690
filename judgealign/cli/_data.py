"""Data files for the ``judgealign`` command: JSON Lines, JSON and CSV records.

* ``.jsonl`` / ``.ndjson``: one JSON object per line.
* ``.json``: a list of objects, or an object with a ``records`` list.
* ``.csv`` / ``.tsv``: one record per row. A cell holding a JSON object or list (such as
  ``{"question": "..."}``) is decoded; an empty cell is absent.

``--map FIELD=COLUMN[,COLUMN...]`` says which columns hold a record field when it is not
the field's own name. ``inputs`` and ``expectations`` become a dict of the named columns
(``--map inputs=question,context`` gives ``{"question": ..., "context": ...}``); other
fields take the column's value (several columns make a dict).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from judgealign.judges._records import LoadResult

__all__ = ["apply_columns", "load_labelled", "parse_columns", "read_rows", "write_jsonl"]

_FIELDS = ("id", "inputs", "outputs", "expectations", "conversation", "trace", "label")
_MAPPABLE = (*_FIELDS, "rationale", "annotator", "created_at", "rater", "ratings")
_DICT_FIELDS = ("inputs", "expectations")  # named fields: always a dict of the columns


def read_rows(path: str | Path, *, limit: int | None = None) -> list[dict[str, Any]]:
    """The records in a ``.jsonl``, ``.json`` or ``.csv`` file, as dicts.

    Raises:
        ConfigurationError: the file is missing or unreadable, of an unknown kind, or
            holds something other than records (the message names the line).
    """
    from judgealign.core._errors import ConfigurationError

    target = Path(path).expanduser()
    kind = target.suffix.lower()
    if kind not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise ConfigurationError(
            f"Cannot read records from {str(target)!r}: use a .jsonl, .json or .csv file."
        )
    try:
        text = target.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(f"Cannot read records from {str(target)!r}: {reason}.") from None
    if kind in (".csv", ".tsv"):
        rows = _csv_rows(text, "\t" if kind == ".tsv" else ",")
    elif kind == ".json":
        rows = _json_rows(text, target)
    else:
        rows = _jsonl_rows(text, target)
    return rows[:limit] if limit is not None else rows


def _jsonl_rows(text: str, target: Path) -> list[dict[str, Any]]:
    from judgealign.core._errors import ConfigurationError

    rows: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{str(target)!r} line {number} is not valid JSON ({exc.msg}, column "
                f"{exc.colno}); each line must be one JSON object."
            ) from None
        if not isinstance(value, dict):
            raise ConfigurationError(
                f"{str(target)!r} line {number} is not a JSON object; each line must be one "
                'record such as {"inputs": ..., "outputs": ..., "label": ...}.'
            )
        rows.append(cast("dict[str, Any]", value))
    return rows


def _json_rows(text: str, target: Path) -> list[dict[str, Any]]:
    from judgealign.core._errors import ConfigurationError

    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(
            f"{str(target)!r} is not valid JSON ({exc.msg}, line {exc.lineno})."
        ) from None
    if isinstance(value, dict):
        value = cast("dict[str, Any]", value).get("records", value)
    items: list[Any] = cast("list[Any]", value) if isinstance(value, list) else []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in items):
        raise ConfigurationError(
            f"{str(target)!r} must hold a list of record objects (or {{'records': [...]}})."
        )
    return [dict(cast("dict[str, Any]", v)) for v in items]


def _csv_rows(text: str, delimiter: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    return [
        {key: _cell(value) for key, value in row.items() if key is not None and _cell(value) != ""}
        for row in reader
    ]


def _cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return value
    return value


def parse_columns(options: Sequence[str]) -> dict[str, list[str]]:
    """``("inputs=question,context", "label=verdict")`` -> ``{"inputs": [...], ...}``.

    Raises:
        ConfigurationError: an option without ``=``, or an unknown field.
    """
    from judgealign.core._errors import ConfigurationError

    mapping: dict[str, list[str]] = {}
    for option in options:
        key, sep, columns = option.partition("=")
        names = [c.strip() for c in columns.split(",") if c.strip()]
        if not sep or not names or key.strip() not in _MAPPABLE:
            raise ConfigurationError(
                f"--map {option!r} must be FIELD=COLUMN[,COLUMN...] with FIELD one of "
                f"{', '.join(_MAPPABLE)}; e.g. --map inputs=question --map label=verdict."
            )
        mapping[key.strip()] = names
    return mapping


def apply_columns(
    rows: Sequence[Mapping[str, Any]], mapping: Mapping[str, Sequence[str]]
) -> list[dict[str, Any]]:
    """Each row with the mapped fields filled from their columns (other keys kept)."""
    if not mapping:
        return [dict(row) for row in rows]
    mapped: list[dict[str, Any]] = []
    for row in rows:
        item = dict(row)
        for key, columns in mapping.items():
            if key in _DICT_FIELDS or len(columns) > 1:
                item[key] = {c: row.get(c) for c in columns}
            else:
                item[key] = row.get(columns[0])
        mapped.append(item)
    return mapped


def load_labelled(
    path: str | Path,
    *,
    judge: Any,
    columns: Mapping[str, Sequence[str]] | None = None,
    limit: int | None = None,
) -> LoadResult:
    """Expert-labelled records from a file, labels coerced to ``judge``'s value type.

    Rejected records are reported by the caller (``LoadResult.problems``); none at all
    is an error.

    Raises:
        ConfigurationError: an unreadable file, or no usable labelled record.
    """
    from judgealign.core._errors import ConfigurationError
    from judgealign.judges._loaders import read_records
    from judgealign.judges._records import FIELD_NAMES

    raw = read_rows(path, limit=limit)
    rows = apply_columns(raw, columns or {})
    keep = [{k: v for k, v in row.items() if k in _MAPPABLE} for row in rows]
    if raw and not any(k in FIELD_NAMES for row in keep for k in row):
        # Said here, in the command's words: the library's loader would say columns=.
        found = sorted({str(k) for row in raw for k in row})
        raise ConfigurationError(
            f"{str(path)!r} has none of the fields a judge reads "
            f"({', '.join(FIELD_NAMES)}); its "
            f"columns are {', '.join(found) or '(none)'}. Name them with --map, e.g. "
            "--map inputs=question --map outputs=answer --map label=verdict."
        )
    result = read_records(keep, judge=judge)
    if not len(result):
        first = f" The first problem: {result.problems[0]}." if result.problems else ""
        raise ConfigurationError(
            f"{str(path)!r} has no usable expert-labelled record (each needs 'inputs' or "
            f"'outputs' and a 'label').{first}"
        )
    return result


def write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically; returns ``path``."""
    from judgealign.core._files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(dict(row), ensure_ascii=False, default=str) for row in rows]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))
