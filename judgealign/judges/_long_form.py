"""Panel data in long form: one row per (record, rater), grouped into one record each.

A row that has a ``rater`` (or the column mapped to it) is one rater's rating of the record
named by its ``id``: ``id, rater, label, rationale`` plus the record's fields. The rows of
one id become one record whose ``ratings`` hold each row's rater, label and rationale; the
record's fields come from its rows, which must agree (a row may leave a field out, as an
empty CSV cell does). Rows without a rater are ordinary records and pass through.

A group that cannot be read as one record is replaced by one bad row that names its rows
and the fix; the loader reports it as a problem, so nothing is dropped silently:

* a rater row without an id;
* rows of one id where some have a rater and some do not;
* rows of one id that disagree on a field (two records mixed under one id);
* one rater rating one record twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

__all__ = ["LongFormProblem", "group_long_form"]

_RATING_KEYS = ("rater", "label", "rationale")
_PER_ROW_KEYS = ("annotator", "created_at")  # may differ between a record's rows


@dataclass(frozen=True)
class LongFormProblem:
    """A long-form group that is not one record: the loader reports ``message``."""

    message: str
    record_id: str | None = None


def group_long_form(
    rows: Iterable[tuple[str, Any]], mapping: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """``rows`` with each id's rater rows merged into one record with ``ratings``.

    Args:
        rows: ``(location, raw row)`` pairs, as the loaders produce them.
        mapping: the loader's ``columns``; ``id``, ``rater``, ``label``, ``rationale``
            and ``ratings`` may be renamed there.

    Returns:
        ``(location, row)`` pairs in order of first appearance; a merged group's location
        names all its rows (``"rows 3, 7"``); a group that cannot be merged is a
        :class:`LongFormProblem`.
    """
    items = list(rows)
    key = {name: _source(mapping, name) for name in ("id", *_RATING_KEYS, "ratings")}
    groups: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    out: list[tuple[str, Any] | str] = []  # a str stands for the group of that id
    for location, raw in items:
        if not isinstance(raw, Mapping):
            out.append((location, raw))
            continue
        row = cast("Mapping[str, Any]", raw)
        rid = row.get(key["id"])
        if row.get(key["rater"]) is None:
            if rid is not None and str(rid) in groups:
                groups[str(rid)].append((location, row))
            else:
                out.append((location, row))
            continue
        if rid is None:
            out.append((location, LongFormProblem(_no_id_message(key["id"]))))
            continue
        if str(rid) not in groups:
            groups[str(rid)] = []
            out.append(str(rid))
        groups[str(rid)].append((location, row))
    return [_merge(groups[item], key) if isinstance(item, str) else item for item in out]


def _source(mapping: Mapping[str, Any], name: str) -> str:
    source = mapping.get(name, name)
    return source if isinstance(source, str) else name


def _no_id_message(id_column: str) -> str:
    return (
        f"the row has a rater but no {id_column!r}; in long form every row needs the id of "
        "the record it rates, so that the record's ratings can be grouped"
    )


def _merge(
    group: Sequence[tuple[str, Mapping[str, Any]]], key: Mapping[str, str]
) -> tuple[str, Any]:
    location = _locations([loc for loc, _ in group])
    rid = str(group[0][1].get(key["id"]))
    problem = _group_problem(group, key, rid)
    if problem is not None:
        return location, LongFormProblem(problem, rid)
    rating_columns = {key[name] for name in _RATING_KEYS}
    merged: dict[str, Any] = {}
    for _, row in group:
        for column, value in row.items():
            if column not in rating_columns and value is not None:
                merged.setdefault(column, value)
    merged[key["ratings"]] = [
        {
            "rater": row[key["rater"]],
            "label": row.get(key["label"]),
            **({"rationale": row[key["rationale"]]} if row.get(key["rationale"]) else {}),
        }
        for _, row in group
    ]
    return location, merged


def _group_problem(
    group: Sequence[tuple[str, Mapping[str, Any]]], key: Mapping[str, str], rid: str
) -> str | None:
    unrated = [loc for loc, row in group if row.get(key["rater"]) is None]
    if unrated:
        return (
            f"{_locations([loc for loc, _ in group])} share id {rid!r} but {', '.join(unrated)} "
            f"has no {key['rater']!r}; in long form every row is one rater's rating. Add the "
            "rater, or give the unrated record its own id"
        )
    seen: dict[str, str] = {}
    for location, row in group:
        rater = str(row[key["rater"]]).strip()
        if rater in seen:
            return (
                f"rater {rater!r} rated id {rid!r} twice ({seen[rater]} and {location}); keep "
                "one rating per rater and record"
            )
        seen[rater] = location
    skip = {key[name] for name in _RATING_KEYS} | set(_PER_ROW_KEYS)
    first: dict[str, tuple[str, Any]] = {}
    for location, row in group:
        for column, value in row.items():
            if column in skip or value is None:
                continue
            if column in first and first[column][1] != value:
                return (
                    f"{first[column][0]} and {location} share id {rid!r} but differ in "
                    f"{column!r}: two records are mixed under one id. A long-form file "
                    "repeats the same record on each of its rows; fix the field, or give "
                    "the records different ids"
                )
            first.setdefault(column, (location, value))
    return None


def _locations(locations: Sequence[str]) -> str:
    """``["line 3", "line 7"]`` -> ``"lines 3, 7"``."""
    kind, _, _ = locations[0].partition(" ")
    if len(locations) == 1 or any(not loc.startswith(kind + " ") for loc in locations):
        return ", ".join(locations)
    return f"{kind}s " + ", ".join(loc.partition(" ")[2] for loc in locations)
