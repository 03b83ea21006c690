"""An aligned judge's memory: expert records (episodic) and guidelines (semantic).

Everything here is an immutable value. An update builds a new :class:`MemoryState` and the
aligned judge swaps it in with one assignment, so a judgment running on another thread
keeps a consistent snapshot: the records, the vector index and the guidelines it started
with.

The vector index (:class:`~judgealign.memalign._index.VectorIndex`, in its own module) searches
L2-normalised vectors by inner product (cosine similarity): exactly while it holds at most
``EXACT_MAX`` records, through a faiss IVF index above. Records are added and removed
without re-embedding the others; an update clones the index (a copy of the stored vectors,
no model call) and changes the clone, so published indexes are never mutated.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from judgealign.core._errors import ConfigurationError
from judgealign.judges._records import LabeledRecord
from judgealign.memalign._index import VectorIndex

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from judgealign.embeddings._protocol import Embedder

    Vector = NDArray[np.float32]
else:
    Vector = Any

__all__ = [
    "Guideline",
    "GuidelineOrigin",
    "MemoryState",
    "RecordStatus",
    "StoredRecord",
    "VectorIndex",
    "merge_near_duplicates",
    "new_guideline_id",
    "normalise_text",
]

GuidelineOrigin = Literal["distilled", "consolidated", "user"]
RecordStatus = Literal["distilled", "skipped", "pending"]


@dataclass(frozen=True)
class Guideline:
    """One rule of the semantic memory.

    Attributes:
        id: a stable identifier (``g-`` and hex digits).
        text: the rule, as shown to the judge.
        source_ids: the ids of the expert records it was learned from; empty for a
            guideline a person added.
        pinned: pinned guidelines are never rewritten by consolidation nor removed by
            ``unalign``.
        origin: how it was made: distilled from records, consolidated from other
            guidelines, or added by a person.
    """

    id: str
    text: str
    source_ids: tuple[str, ...] = ()
    pinned: bool = False
    origin: GuidelineOrigin = "distilled"

    @property
    def guideline_text(self) -> str:
        """The rule (MLflow's name for :attr:`text`)."""
        return self.text

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, inverse of :meth:`from_dict`."""
        return {
            "id": self.id,
            "text": self.text,
            "source_ids": list(self.source_ids),
            "pinned": self.pinned,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Guideline:
        """Rebuild a guideline saved by :meth:`to_dict`."""
        origin = data.get("origin", "distilled")
        if origin not in ("distilled", "consolidated", "user"):
            raise ConfigurationError(f"guideline origin {origin!r} is unknown")
        return cls(
            id=str(data["id"]),
            text=str(data["text"]),
            source_ids=tuple(str(s) for s in data.get("source_ids", ())),
            pinned=bool(data.get("pinned", False)),
            origin=origin,
        )


@dataclass(frozen=True, eq=False)
class StoredRecord:
    """An expert record in episodic memory.

    Attributes:
        record: the record, its label already coerced to the judge's value type.
        vector: the embedding of its view (float32, unit norm).
        status: ``distilled`` when guidelines were distilled from it, ``skipped`` when it
            was deliberately not distilled (the judge as aligned so far agreed, in
            disagreement mode), ``pending`` when its distillation failed and will be
            retried by the next align.
    """

    record: LabeledRecord
    vector: Vector
    status: RecordStatus = "distilled"

    @property
    def content_hash(self) -> str:
        """The record's content hash (see :attr:`LabeledRecord.content_hash`)."""
        return self.record.content_hash


def normalise_text(text: str) -> str:
    """Lower-cased text with runs of whitespace collapsed: the key for exact dedupe."""
    return re.sub(r"\s+", " ", text).strip().casefold()


def new_guideline_id(text: str, taken: Iterable[str]) -> str:
    """A content-derived id (``g-`` + 10 hex digits) not in ``taken``."""
    used = set(taken)
    base = "g-" + hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()[:10]
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


@dataclass(frozen=True, eq=False)
class MemoryState:
    """One consistent snapshot of an aligned judge's memory.

    Attributes:
        guidelines: the semantic memory, in display order.
        records: the episodic memory by record id, in insertion order.
        index: the vectors of ``records``.
        embedder_id: the embedder that made the vectors (``None`` before any record).
        guideline_vectors: cached embeddings of guideline texts, by guideline id, used for
            semantic dedupe.
    """

    guidelines: tuple[Guideline, ...] = ()
    records: Mapping[str, StoredRecord] = field(default_factory=lambda: {})
    index: VectorIndex | None = None
    embedder_id: str | None = None
    guideline_vectors: Mapping[str, Vector] = field(default_factory=lambda: {})

    def guideline(self, guideline_id: str) -> Guideline:
        """The guideline with this id, or a ``ConfigurationError`` listing the known ids."""
        for item in self.guidelines:
            if item.id == guideline_id:
                return item
        known = ", ".join(g.id for g in self.guidelines) or "none"
        raise ConfigurationError(f"No guideline has id {guideline_id!r}; known ids: {known}.")

    def with_records(self, stored: Sequence[StoredRecord], embedder_id: str) -> MemoryState:
        """Add or replace ``stored`` records (their vectors go into the index)."""
        import numpy as np

        if not stored:
            return self
        self._check_embedder(embedder_id)
        vectors = np.stack([s.vector for s in stored]).astype(np.float32)
        index = self.index or VectorIndex(int(vectors.shape[1]))
        records = dict(self.records)
        records.update({s.record.id: s for s in stored})
        index = index.with_added([s.record.id for s in stored], vectors)
        return replace(self, records=records, index=index, embedder_id=embedder_id)

    def with_status(self, updates: Mapping[str, RecordStatus]) -> MemoryState:
        """Change the distillation status of some records."""
        records = dict(self.records)
        for record_id, status in updates.items():
            if record_id in records:
                records[record_id] = replace(records[record_id], status=status)
        return replace(self, records=records)

    def without_records(self, ids: Iterable[str]) -> tuple[MemoryState, tuple[str, ...]]:
        """Forget records; returns the new state and the ids of guidelines removed.

        Each guideline loses the forgotten ids from its sources. A guideline left with no
        source is removed unless it is pinned or never had a source (added by a person).
        """
        gone = {i for i in ids if i in self.records}
        if not gone:
            return self, ()
        kept: list[Guideline] = []
        removed: list[str] = []
        for item in self.guidelines:
            sources = tuple(s for s in item.source_ids if s not in gone)
            if item.source_ids and not sources and not item.pinned:
                removed.append(item.id)
                continue
            kept.append(replace(item, source_ids=sources))
        records = {k: v for k, v in self.records.items() if k not in gone}
        index = self.index.without(gone) if self.index is not None else None
        vectors = {k: v for k, v in self.guideline_vectors.items() if k not in removed}
        state = replace(
            self, guidelines=tuple(kept), records=records, index=index, guideline_vectors=vectors
        )
        return state, tuple(removed)

    def without_examples(self, ids: Iterable[str]) -> MemoryState:
        """The same memory with these records no longer retrievable; unlike
        :meth:`without_records`, every guideline is kept as it is."""
        gone = {i for i in ids if i in self.records}
        if not gone:
            return self
        records = {k: v for k, v in self.records.items() if k not in gone}
        index = self.index.without(gone) if self.index is not None else None
        return replace(self, records=records, index=index)

    def with_guidelines(
        self, guidelines: Sequence[Guideline], vectors: Mapping[str, Vector] | None = None
    ) -> MemoryState:
        """Replace the guideline list; cached vectors of vanished ids are dropped."""
        ids = {g.id for g in guidelines}
        cache = {k: v for k, v in {**self.guideline_vectors, **(vectors or {})}.items() if k in ids}
        return replace(self, guidelines=tuple(guidelines), guideline_vectors=cache)

    def for_embedder(self, embedder: Embedder) -> MemoryState:
        """This memory, ready to take vectors from ``embedder``; no model is called.

        Vectors from two embedders (or of two sizes) cannot be compared. While records are
        stored their vectors are the memory, so another embedder is refused; once no record
        is left, the remaining vectors are only the guidelines' de-duplication cache, which
        is dropped here and re-embedded with ``embedder`` when next needed.

        Raises:
            ConfigurationError: records are stored and ``embedder`` differs from the one
                that made them (by id or by vector size).
        """
        stored = self._dimension()
        if stored is None and self.embedder_id is None:
            return self  # no vector at all: nothing can be stale
        if self.embedder_id not in (None, embedder.id):
            problem = f"was embedded with {self.embedder_id!r}, but the embedder is {embedder.id!r}"
        elif stored is not None and stored != embedder.dimension:
            problem = (
                f"holds vectors of dimension {stored}, but embedder {embedder.id!r} makes "
                f"{embedder.dimension}"
            )
        else:
            return self
        if self.records:
            raise ConfigurationError(
                f"The aligned judge's memory {problem}; their vectors cannot be compared. "
                f"Align with the embedder that made them (embedding_model="
                f"{self.embedder_id!r}), or re-embed the memory with "
                "AlignedJudge.load(path, embedder=..., reembed=True)."
            )
        return replace(self, index=None, embedder_id=None, guideline_vectors={})

    def _dimension(self) -> int | None:
        if self.index is not None:
            return self.index.dimension
        for vector in self.guideline_vectors.values():
            return int(vector.shape[0])
        return None

    def _check_embedder(self, embedder_id: str) -> None:
        if self.embedder_id is not None and self.embedder_id != embedder_id and self.records:
            raise ConfigurationError(
                f"This memory was embedded with {self.embedder_id!r}; vectors from "
                f"{embedder_id!r} cannot be mixed with them. Align with "
                f"embedding_model={self.embedder_id!r}, or re-embed the memory when loading "
                "(AlignedJudge.load(..., embedder=..., reembed=True))."
            )


@dataclass(frozen=True)
class MergeOutcome:
    """What :func:`merge_near_duplicates` did.

    Attributes:
        guidelines: the updated list (existing guidelines first, new ones appended).
        added: ids of guidelines that were appended.
        merged: ids of guidelines (existing or just added) that absorbed at least one
            near-duplicate's sources.
    """

    guidelines: tuple[Guideline, ...]
    added: tuple[str, ...]
    merged: tuple[str, ...]


def merge_near_duplicates(
    existing: Sequence[Guideline],
    existing_vectors: Mapping[str, Vector],
    candidates: Sequence[tuple[str, tuple[str, ...]]],
    candidate_vectors: Vector,
    *,
    threshold: float,
) -> tuple[MergeOutcome, dict[str, Vector]]:
    """Append candidate guidelines, merging each into an earlier one it nearly repeats.

    A candidate whose normalised text equals an earlier guideline's, or whose cosine
    similarity to it is at least ``threshold``, is not added: its source ids are added to
    that guideline's instead. Candidates are compared with existing guidelines and with
    the candidates accepted before them.

    Args:
        existing: the current guidelines; every one must have a vector in
            ``existing_vectors``.
        existing_vectors: unit vectors of the existing guidelines by id.
        candidates: ``(text, source_ids)`` pairs, in order.
        candidate_vectors: unit vectors of the candidate texts, one row each.
        threshold: the similarity from which two guidelines count as the same.

    Returns:
        The outcome and the vectors of the appended guidelines, by id.
    """
    import numpy as np

    items = list(existing)
    vectors = [existing_vectors[g.id] for g in items]
    by_text = {normalise_text(g.text): i for i, g in enumerate(items)}
    added: list[str] = []
    merged: list[str] = []
    new_vectors: dict[str, Vector] = {}
    for (text, sources), vector in zip(candidates, candidate_vectors, strict=True):
        match = by_text.get(normalise_text(text))
        if match is None and vectors:
            similarities = np.stack(vectors) @ vector
            best = int(np.argmax(similarities))
            match = best if float(similarities[best]) >= threshold else None
        if match is not None:
            target = items[match]
            union = tuple(dict.fromkeys([*target.source_ids, *sources]))
            items[match] = replace(target, source_ids=union)
            if target.id not in merged:
                merged.append(target.id)
            continue
        guideline = Guideline(
            id=new_guideline_id(text, (g.id for g in items)), text=text, source_ids=sources
        )
        by_text[normalise_text(text)] = len(items)
        items.append(guideline)
        vectors.append(vector)
        added.append(guideline.id)
        new_vectors[guideline.id] = vector
    return MergeOutcome(tuple(items), tuple(added), tuple(merged)), new_vectors
