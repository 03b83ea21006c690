"""The episodic-memory vector index: exact while small, IVF above a size threshold.

The threshold is lowered here (monkeypatched) so that the approximate index is built from a
few thousand vectors and the tests stay fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import judgealign.memalign._index as vector_index
from judgealign import HashingEmbedder, LabeledRecord, MemAlignOptimizer, make_judge
from judgealign.memalign._file import dump_aligned, restore_aligned
from judgealign.memalign._index import VectorIndex
from judgealign.memalign._memory import MemoryState, StoredRecord
from judgealign.testing import FunctionModel

DIM = 64
SMALL_EXACT_MAX = 1_000
SMALL_NPROBE = 16


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray) -> np.ndarray:
    """Unit vectors around random topic centres (cosine to the centre about 0.7)."""
    picks = rng.integers(0, len(centres), n)
    noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
    rows = centres[picks] + noise
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def data() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = clustered(rng, 4_000, centres)
    queries = clustered(rng, 200, centres)
    # Without clusters an IVF misses many neighbours, so which ones it finds shows whether
    # two indexes were trained alike.
    uniform = rng.standard_normal((4_300, DIM)).astype(np.float32)
    uniform /= np.linalg.norm(uniform, axis=1, keepdims=True)
    return {
        "vectors": vectors,
        "queries": queries,
        "ids": [f"r{i}" for i in range(4_000)],
        "uniform": uniform[:4_100],
        "uniform_queries": uniform[4_100:],
    }


@pytest.fixture()
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> int:
    # Scaled down with the sizes: 16 of ~100 cells is about what 96 of ~1,000 is at 60k.
    monkeypatch.setattr(vector_index, "EXACT_MAX", SMALL_EXACT_MAX)
    monkeypatch.setattr(vector_index, "NPROBE", SMALL_NPROBE)
    return SMALL_EXACT_MAX


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # faiss's OpenMP team spins while it waits: on a busy 2-core machine, training these
    # small indexes on two threads takes 20 times longer than on one.
    import faiss  # pyright: ignore[reportMissingTypeStubs]

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def brute_force(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    return [ids[i] for i in np.argsort(-(vectors @ query), kind="stable")[:k]]


def recall_at_5(index: VectorIndex, vectors: np.ndarray, ids: list[str], queries: Any) -> float:
    truth = np.argpartition(-(queries @ vectors.T), 5, axis=1)[:, :5]
    hits = 0
    for query, rows in zip(queries, truth, strict=True):
        hits += len({ids[i] for i in rows} & {i for i, _ in index.search(query, 5)})
    return hits / (5 * len(queries))


def test_below_the_threshold_search_is_exact(data: dict[str, Any], small_threshold: int):
    vectors, ids = data["vectors"][:small_threshold], data["ids"][:small_threshold]
    index = VectorIndex(DIM).with_added(ids, vectors)
    assert not index.approximate and index.describe() == {"kind": "exact", "size": 1_000}
    for query in data["queries"][:50]:
        hits = index.search(query, 5)
        assert [i for i, _ in hits] == brute_force(vectors, ids, query, 5)
        expected = sorted((vectors @ query).tolist(), reverse=True)[:5]
        assert [s for _, s in hits] == pytest.approx(expected, abs=1e-5)


def test_above_the_threshold_an_ivf_index_keeps_recall(data: dict[str, Any], small_threshold):
    index = VectorIndex(DIM).with_added(data["ids"], data["vectors"])
    settings = index.describe()
    assert index.approximate and settings["kind"] == "ivf"
    # nlist = 4 sqrt(n) = 253, capped at n / 40 = 100 so k-means has 40 points per cell
    assert settings["nlist"] == 100 and settings["nprobe"] == SMALL_NPROBE
    assert settings["nprobe"] < settings["nlist"]  # a query really skips cells
    recall = recall_at_5(index, data["vectors"], data["ids"], data["queries"])
    assert recall >= 0.95


def test_the_default_threshold_and_probes_are_the_measured_ones():
    assert vector_index.EXACT_MAX == 16_000 and vector_index.LISTS_PER_ROOT == 4
    assert vector_index.NPROBE == 96 and vector_index.RETRAIN_GROWTH == 2


@pytest.mark.parametrize("size", [800, 4_000], ids=["exact", "ivf"])
def test_removal_and_re_adding(data: dict[str, Any], small_threshold: int, size: int):
    vectors, ids = data["vectors"][:size], data["ids"][:size]
    full = VectorIndex(DIM).with_added(ids, vectors)
    assert full.approximate == (size > small_threshold)
    gone = ids[:: size // 100][:100]
    smaller = full.without([*gone, "unknown-id"])
    assert len(full) == size and len(smaller) == size - 100  # the receiver is unchanged
    assert smaller.approximate == full.approximate
    assert all(g not in smaller for g in gone) and all(g in full for g in gone)
    for row in range(0, size, 7):
        # every vector finds itself, under its own id, removed ones under no id at all
        top = smaller.search(vectors[row], 1)
        if ids[row] in gone:
            assert top[0][0] != ids[row]
        else:
            assert top[0][0] == ids[row] and top[0][1] == pytest.approx(1.0, abs=1e-5)
    for query in data["queries"][:50]:
        assert not {i for i, _ in smaller.search(query, 10)} & set(gone)

    # re-adding under the same ids with other vectors replaces them
    moved = data["queries"][100:]  # vectors the index does not hold
    again = smaller.with_added(gone, moved)
    assert len(again) == size
    for record_id, vector in zip(gone, moved, strict=True):
        assert again.search(vector, 1)[0][0] == record_id
    flipped = again.with_added(gone[:1], -moved[:1])
    assert len(flipped) == size
    assert gone[0] not in [i for i, _ in flipped.search(moved[0], 3)]
    assert flipped.search(-moved[0], 1)[0][0] == gone[0]


def test_retrained_when_twice_as_large(data: dict[str, Any], small_threshold: int):
    vectors, ids = data["vectors"], data["ids"]
    start = VectorIndex(DIM).with_added(ids[:600], vectors[:600])
    assert not start.approximate
    # (nlist = 4 sqrt(n), capped at n / 40)
    trained = start.with_added(ids[600:1_001], vectors[600:1_001])
    assert trained.describe()["trained_size"] == 1_001 and trained.describe()["nlist"] == 25
    grown = trained.with_added(ids[1_001:2_001], vectors[1_001:2_001])
    assert grown.describe()["trained_size"] == 1_001  # 2,001 < 2 x 1,001
    retrained = grown.with_added(ids[2_001:2_002], vectors[2_001:2_002])
    assert retrained.describe()["trained_size"] == 2_002 and retrained.describe()["nlist"] == 50
    assert grown.describe()["trained_size"] == 1_001  # the receiver is unchanged
    grown = retrained.with_added(ids[2_002:], vectors[2_002:])
    assert grown.describe()["trained_size"] == 2_002  # 4,000 < 2 x 2,002
    extras = ["extra-1", "extra-2", "extra-3", "extra-4"]
    retrained = grown.with_added(extras, -vectors[:4])
    settings = retrained.describe()
    assert settings["trained_size"] == 4_004 and settings["nlist"] == 100
    everything = [*ids, *extras]
    assert all(i in retrained for i in everything) and len(retrained) == 4_004
    assert recall_at_5(retrained, vectors[:4_000], ids, data["queries"]) >= 0.95

    # shrinking to half the threshold goes back to an exact index
    kept = everything[-501:]
    back = retrained.without(everything[:-501])
    assert back.approximate and len(back) == 501  # 501 > 1000 // 2: still the IVF
    exact = back.without(kept[:1])
    assert not exact.approximate and len(exact) == 500
    rows = np.concatenate([vectors[3_504:], -vectors[:4]])
    for query in data["queries"][:20]:
        assert [i for i, _ in exact.search(query, 5)] == brute_force(rows, kept[1:], query, 5)


def test_zipping_ids_and_vectors_of_different_lengths_is_refused():
    with pytest.raises(ValueError, match="differ in length"):
        VectorIndex(DIM).with_added(["a", "b"], np.zeros((1, DIM), np.float32))


@pytest.fixture()
def sampled_training(monkeypatch: pytest.MonkeyPatch) -> None:
    # nlist = 2 sqrt(n) and 20 training vectors per cell: at 4,000 vectors k-means trains on
    # 2,520 of them, so the sample is really drawn (faiss warns on stderr that it wants 39)
    monkeypatch.setattr(vector_index, "LISTS_PER_ROOT", 2.0)
    monkeypatch.setattr(vector_index, "TRAIN_PER_LIST", 20)


def test_training_is_deterministic(
    data: dict[str, Any], small_threshold: int, sampled_training: None
):
    import faiss  # pyright: ignore[reportMissingTypeStubs]

    vectors = data["uniform"][:4_000]
    one = VectorIndex(DIM).with_added(data["ids"], vectors)  # on one thread
    faiss.omp_set_num_threads(2)
    two = VectorIndex(DIM).with_added(data["ids"], vectors)
    assert one.describe() == two.describe()
    for query in data["uniform_queries"]:
        assert one.search(query, 5) == two.search(query, 5)
    assert recall_at_5(one, vectors, data["ids"], data["uniform_queries"]) < 0.9


def stored_records(vectors: np.ndarray, ids: list[str]) -> list[StoredRecord]:
    return [
        StoredRecord(LabeledRecord(id=i, inputs=f"q {i}", outputs="a", label=True), v)
        for i, v in zip(ids, vectors, strict=True)
    ]


def save_and_load(state: MemoryState, embedder: HashingEmbedder) -> MemoryState:
    judge = make_judge(
        name="j", instructions="Is {{ outputs }} right for {{ inputs }}?", model=FunctionModel(dict)
    )
    optimizer = MemAlignOptimizer(embedding_model=embedder)
    data = json.loads(json.dumps(dump_aligned(judge, optimizer, state)))
    _, _, loaded, _ = restore_aligned(
        data,
        model=None,
        reflection_model=None,
        embedder=embedder,
        view=None,
        reembed=False,
        source="test",
    )
    return loaded


@pytest.mark.parametrize("size", [900, 4_000], ids=["exact", "ivf"])
def test_save_and_load_give_identical_search_results(
    data: dict[str, Any], small_threshold: int, sampled_training: None, size: int
):
    embedder = HashingEmbedder(DIM)
    vectors, ids = data["uniform"][:size], data["ids"][:size]
    state = MemoryState().with_records(stored_records(vectors, ids), embedder.id)
    loaded = save_and_load(state, embedder)
    assert state.index is not None and loaded.index is not None
    assert loaded.index.describe() == state.index.describe()
    for query in data["uniform_queries"]:
        assert loaded.index.search(query, 5) == state.index.search(query, 5)


def test_a_grown_index_reloads_with_its_recall(data: dict[str, Any], small_threshold: int):
    # Grown in steps, the saved IVF was trained on fewer vectors than the reloaded one;
    # the two may differ in which near neighbours they find, never in quality.
    embedder = HashingEmbedder(DIM)
    vectors, ids = data["vectors"], data["ids"]
    state = MemoryState()
    for start in range(0, 4_000, 1_500):
        batch = stored_records(vectors[start : start + 1_500], ids[start : start + 1_500])
        state = state.with_records(batch, embedder.id)
    state, _ = state.without_records(ids[:100])
    assert state.index is not None and state.index.describe()["trained_size"] == 3_000
    loaded = save_and_load(state, embedder)
    assert loaded.index is not None and loaded.index.describe()["trained_size"] == 3_900
    assert list(loaded.records) == list(state.records)
    for index in (state.index, loaded.index):
        assert recall_at_5(index, vectors[100:], ids[100:], data["queries"]) >= 0.95


def test_an_index_retrained_by_growth_reloads_identically(
    data: dict[str, Any], small_threshold: int, sampled_training: None
):
    # Retraining reads the vectors back from the IVF's cells and samples them in insertion
    # order, as loading does: both train on the same vectors and build the same index.
    embedder = HashingEmbedder(DIM)
    vectors = data["uniform"]
    ids = [f"u{i}" for i in range(len(vectors))]
    state = MemoryState().with_records(stored_records(vectors[:1_001], ids[:1_001]), embedder.id)
    assert state.index is not None and state.index.describe()["trained_size"] == 1_001
    state = state.with_records(stored_records(vectors[1_001:], ids[1_001:]), embedder.id)
    assert state.index is not None and state.index.describe()["trained_size"] == 4_100
    loaded = save_and_load(state, embedder)
    assert loaded.index is not None and loaded.index.describe() == state.index.describe()
    for query in data["uniform_queries"]:
        assert loaded.index.search(query, 5) == state.index.search(query, 5)
