"""Leakage: held-out records that an aligned judge already holds in its memory.

A stored expert record retrieves itself when it is judged again: the judge's most similar
example is the record itself with the expert's verdict, so agreement measured on it says
nothing about records the judge has not seen. A record counts as held in memory when its
explicit id is a stored record's id, or when the fields the judge reads (as
``Judge.collect_fields`` returns them, the text that retrieval and the prompt see) are
those of a stored record, whatever its id.

The aligned judge marks the feedback of such a record (metadata key
:data:`MEMORISED_KEY`, the stored record's id) and answers which records of a batch it
holds (``AlignedJudge.memorised``). :func:`judgealign.agreement`,
:func:`judgealign.compare_judges` and ``judgealign report`` leave them out with a warning
that says how many, and refuse with a :class:`ConfigurationError` when none is left.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from judgealign.judges._feedback import Feedback
from judgealign.judges._labels import MISSING, record_field
from judgealign.judges._records import canonical_json

__all__ = [
    "MEMORISED_KEY",
    "MemoryLookup",
    "content_key",
    "explicit_id",
    "is_memorised",
]

MEMORISED_KEY = "memorised_record_id"
"""Feedback metadata key: the id of the stored record the judged record repeats."""


def content_key(fields: Mapping[str, Any]) -> str:
    """A digest of the fields a judge reads (SHA-256 of their canonical JSON)."""
    return hashlib.sha256(canonical_json(dict(fields)).encode("utf-8")).hexdigest()


def explicit_id(record: object) -> str | None:
    """The record's own ``id`` (key or attribute), ``None`` when it has none."""
    value = record_field(record, "id")
    return None if value is MISSING or value is None else str(value)


@dataclass(frozen=True)
class MemoryLookup:
    """The ids and content keys of the records in one memory snapshot.

    Attributes:
        ids: the stored record ids.
        by_content: stored record id by :func:`content_key` of its judged fields.
    """

    ids: frozenset[str]
    by_content: Mapping[str, str]

    @classmethod
    def build(cls, stored: Iterable[tuple[str, Mapping[str, Any] | None]]) -> MemoryLookup:
        """From ``(record id, judged fields)`` pairs; ``None`` fields match by id only."""
        ids: set[str] = set()
        by_content: dict[str, str] = {}
        for record_id, fields in stored:
            ids.add(record_id)
            if fields is not None:
                by_content.setdefault(content_key(fields), record_id)
        return cls(frozenset(ids), by_content)

    def match(self, record_id: str | None, fields: Mapping[str, Any] | None) -> str | None:
        """The id of the stored record that ``record_id`` or ``fields`` repeats, if any."""
        if record_id is not None and record_id in self.ids:
            return record_id
        if fields is None or not self.by_content:
            return None
        return self.by_content.get(content_key(fields))


def is_memorised(prediction: object) -> bool:
    """Whether ``prediction`` is an aligned judge's feedback on a record it holds."""
    return isinstance(prediction, Feedback) and prediction.metadata.get(MEMORISED_KEY) is not None
