"""The episodic memory's vector index: exact search while it is small, IVF when it is large.

Vectors are L2-normalised, so inner product is cosine similarity. Up to :data:`EXACT_MAX`
vectors the index is faiss ``IndexIDMap2(IndexFlatIP)``, an exact scan. Above it, it is a
faiss ``IndexIVFFlat`` (inner product): k-means cuts the space into ``nlist`` cells and a
query scans only the :data:`NPROBE` cells nearest to it. The IVF holds the int64 keys itself
(``add_with_ids``); it is not wrapped in ``IndexIDMap2``, whose ``remove_ids`` renumbers its
key table as if the wrapped index compacted its own ids, which an IVF does not, so after a
removal such a wrapper returns the wrong ids.

Training is deterministic: the sample comes from a fixed-seed generator over the vectors in
key (insertion) order, and faiss's k-means has a fixed seed too. The IVF is retrained when
the index has grown :data:`RETRAIN_GROWTH` times since it was trained, and turned back into an
exact index when removals bring it to half of :data:`EXACT_MAX` (the gap keeps an index
that hovers around the threshold from being rebuilt on every change).

Nothing about the index is saved: the aligned-judge file stores each record's vector, and
loading adds them all in one call, which builds (and, above :data:`EXACT_MAX`, trains) the
index afresh. A loaded index therefore equals a fresh build from the same records; it equals
the index that was saved when that one was last trained on the same vectors (always the
case below :data:`EXACT_MAX`, and for a store aligned in one go), and otherwise differs only
in which near neighbours the approximate search finds.

This is the only module that imports faiss, and only on first use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Vector = NDArray[np.float32]
    Keys = NDArray[np.int64]
else:
    Vector = Any
    Keys = Any

__all__ = ["EXACT_MAX", "NPROBE", "RETRAIN_GROWTH", "VectorIndex"]

# The settings below were chosen by measurement (recall@5 against exact search, query
# latency, training time, on synthetic and real embeddings); the figures are in
# benchmarks/DESIGN_MEASUREMENTS.md.
#
# EXACT_MAX: exact search up to this many vectors (recall 1, no training, within B4's
# latency budget); an IVF index beyond.
EXACT_MAX = 16_000
# nlist = LISTS_PER_ROOT * sqrt(n) at training time, NPROBE cells scanned per query: the
# cheapest measured setting with recall >= 0.96 on real embeddings.
LISTS_PER_ROOT = 4.0
NPROBE = 96
# k-means is trained on TRAIN_PER_LIST sampled vectors per cell (faiss warns below 39).
TRAIN_PER_LIST = 40
# RETRAIN_GROWTH: nlist is fixed when the IVF is trained, so as it grows g times its cells
# fill and a query scans sqrt(g) times the vectors a fresh index would. Building grows a
# little faster than linearly with n, so retraining at each doubling adds up to less than
# one more final build.
RETRAIN_GROWTH = 2
SEED = 1234


def _faiss() -> Any:
    try:
        import faiss  # pyright: ignore[reportMissingTypeStubs]
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise MissingExtraError("Example retrieval", "faiss", "faiss-cpu") from exc
    return faiss


class VectorIndex:
    """An immutable cosine-similarity index from record ids to vectors.

    Exact up to :data:`EXACT_MAX` vectors, approximate above (IVF; recall@5 0.96 to 0.98
    on real sentence embeddings, see the comments on the settings and the module
    docstring). :meth:`with_added` and :meth:`without` return new indexes; the receiver is
    unchanged. Searching is safe from any number of threads.

    Args:
        dimension: the vector length.
    """

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self._index: Any = None
        self._trained_size = 0  # vectors the IVF was trained at; 0 while exact
        self._key_to_id: dict[int, str] = {}
        self._id_to_key: dict[str, int] = {}
        self._next_key = 0

    def __len__(self) -> int:
        return len(self._id_to_key)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._id_to_key

    @property
    def approximate(self) -> bool:
        """Whether searches go through the IVF (``True``) or scan every vector."""
        return self._trained_size > 0

    def describe(self) -> dict[str, Any]:
        """The kind of index and its settings, for reports and benchmarks."""
        if not self.approximate:
            return {"kind": "exact", "size": len(self)}
        return {
            "kind": "ivf",
            "size": len(self),
            "nlist": int(self._index.nlist),
            "nprobe": int(self._index.nprobe),
            "trained_size": self._trained_size,
        }

    def with_added(self, ids: Sequence[str], vectors: Vector) -> VectorIndex:
        """A new index that also holds ``vectors`` under ``ids`` (replacing equal ids)."""
        import numpy as np

        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if len(ids) and vectors.shape[1] != self.dimension:
            raise ConfigurationError(
                f"vectors have dimension {vectors.shape[1]}, the index {self.dimension}"
            )
        replaced = {i for i in ids if i in self._id_to_key}
        keys = np.arange(self._next_key, self._next_key + len(ids), dtype=np.int64)
        rows = np.ascontiguousarray(vectors, np.float32)
        if self._rebuild_due(len(self) - len(replaced) + len(ids)):
            old_keys, old_rows = self._stored(replaced)
            new = self._clone(with_index=False)
            new._forget(replaced)
            if len(old_keys):  # (a first build skips copying every vector once more)
                new._build(np.concatenate([old_keys, keys]), np.concatenate([old_rows, rows]))
            else:
                new._build(keys, rows)
        else:
            new = self._clone()
            new._remove(replaced)
            if len(ids):
                new._ensure_index().add_with_ids(rows, keys)
        for key, record_id in zip(keys.tolist(), ids, strict=True):
            new._key_to_id[key] = record_id
            new._id_to_key[record_id] = key
        new._next_key += len(ids)
        return new

    def without(self, ids: Iterable[str]) -> VectorIndex:
        """A new index without ``ids`` (unknown ids are ignored)."""
        gone = {i for i in ids if i in self._id_to_key}
        if not gone:
            return self
        if self._rebuild_due(len(self) - len(gone)):
            keys, rows = self._stored(gone)
            new = self._clone(with_index=False)
            new._forget(gone)
            new._build(keys, rows)
            return new
        new = self._clone()
        new._remove(gone)
        return new

    def search(self, vector: Vector, k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest record ids to ``vector`` with their similarity, best first."""
        import numpy as np

        if self._index is None or not self._id_to_key or k < 1:
            return []
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32)[None, :])
        # One query is searched on this thread alone: faiss's OpenMP team costs more to wake
        # than it saves (16x slower at 10k vectors on 2 cores, benchmarks/RESULTS.md B4).
        # The setting is per calling thread in OpenMP, and restored.
        faiss = _faiss()
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, keys = self._index.search(query, min(k, len(self._id_to_key)))
        finally:
            faiss.omp_set_num_threads(threads)
        hits: list[tuple[str, float]] = []
        for key, score in zip(keys[0].tolist(), scores[0].tolist(), strict=True):
            if key >= 0:
                hits.append((self._key_to_id[key], float(score)))
        return hits

    def _rebuild_due(self, size: int) -> bool:
        """Whether an index of ``size`` vectors should be built afresh rather than edited."""
        if self.approximate:
            return size <= EXACT_MAX // 2 or size >= RETRAIN_GROWTH * self._trained_size
        return size > EXACT_MAX

    def _stored(self, skip: set[str]) -> tuple[Keys, Vector]:
        """The keys and vectors in the index, in key order, less those of ``skip``."""
        import numpy as np

        faiss = _faiss()
        empty = np.empty((0, self.dimension), np.float32)
        if self._index is None:
            return np.empty(0, np.int64), empty
        if self.approximate:
            lists = self._index.invlists
            key_parts: list[Keys] = []
            row_parts: list[Vector] = []
            for cell in range(self._index.nlist):
                size = int(lists.list_size(cell))
                if size:
                    ids = faiss.rev_swig_ptr(lists.get_ids(cell), size)
                    codes = faiss.rev_swig_ptr(lists.get_codes(cell), size * lists.code_size)
                    key_parts.append(np.array(ids, dtype=np.int64))
                    flat = np.frombuffer(np.array(codes, dtype=np.uint8), dtype=np.float32)
                    row_parts.append(np.reshape(flat, (size, self.dimension)))
            keys = np.concatenate(key_parts) if key_parts else np.empty(0, np.int64)
            rows = np.concatenate(row_parts) if row_parts else empty
        else:
            keys = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            rows = self._index.index.reconstruct_n(0, self._index.ntotal)
        drop = np.array([self._id_to_key[i] for i in skip], dtype=np.int64)
        keep = ~np.isin(keys, drop)
        order = np.argsort(keys[keep], kind="stable")
        return keys[keep][order], rows[keep][order]

    def _build(self, keys: Keys, rows: Vector) -> None:
        """Replace the faiss index by one built from scratch for ``rows`` under ``keys``."""
        import numpy as np

        faiss = _faiss()
        size = len(keys)
        self._index, self._trained_size = None, 0
        if size <= EXACT_MAX:
            if size:
                self._ensure_index().add_with_ids(rows, keys)
            return
        nlist = max(1, min(round(LISTS_PER_ROOT * math.sqrt(size)), size // TRAIN_PER_LIST))
        index = faiss.index_factory(self.dimension, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = SEED
        sample = np.random.default_rng(SEED).choice(
            size, min(size, TRAIN_PER_LIST * nlist), replace=False
        )
        index.train(np.ascontiguousarray(rows[np.sort(sample)]))
        index.add_with_ids(rows, keys)
        index.nprobe = min(NPROBE, nlist)
        self._index, self._trained_size = index, size

    def _remove(self, ids: Iterable[str]) -> None:
        import numpy as np

        drop = [self._id_to_key[i] for i in set(ids) if i in self._id_to_key]
        if drop:
            self._ensure_index().remove_ids(np.asarray(drop, dtype=np.int64))
        self._forget(ids)

    def _forget(self, ids: Iterable[str]) -> None:
        for record_id in set(ids):
            key = self._id_to_key.pop(record_id, None)
            if key is not None:
                del self._key_to_id[key]

    def _clone(self, *, with_index: bool = True) -> VectorIndex:
        new = VectorIndex(self.dimension)
        if with_index and self._index is not None:
            new._index = _faiss().clone_index(self._index)
            new._trained_size = self._trained_size
        new._key_to_id = dict(self._key_to_id)
        new._id_to_key = dict(self._id_to_key)
        new._next_key = self._next_key
        return new

    def _ensure_index(self) -> Any:
        if self._index is None:
            faiss = _faiss()
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dimension))
        return self._index
