"""B4: episodic retrieval latency (p50, p99) and recall@5 at 10k, 100k and 1M records.

The vectors are synthetic, 384-dimensional and unit-norm, drawn like sentence embeddings
are distributed: around 1,024 random topic centres, each point a centre plus Gaussian
noise (a point's cosine to its centre is about 0.7, to a neighbour from its topic about
0.5). Queries are fresh draws from the same distribution. Ground truth is exact search.
(Uniformly random vectors would be the wrong model: real embeddings are clustered, and on
uniform data every approximate index degrades to a full scan.)

What is timed, one query per call as an aligned judge retrieves:

* ``shipped``: judgealign's episodic-memory index, ``judgealign.memalign._memory.VectorIndex``, as
  it ships, through its ``search`` method (one query on the calling thread): exact up to
  ``EXACT_MAX`` (16,000) vectors, an ``IndexIVFFlat`` with ``nlist = 4 * sqrt(n)`` and
  ``nprobe = 96`` above (``judgealign/memalign/_index.py`` says how these were chosen, on
  real sentence embeddings too); its build includes the k-means training, as when a
  judge is loaded or crosses the threshold; recall is measured on all 1,000 queries;
* ``exact``: the same class with its threshold lifted, so an exact
  ``IndexIDMap2(IndexFlatIP)`` scan at every size (what shipped before the IVF);
* ``exact_omp``: the same flat index searched with faiss's default OpenMP team (2 threads
  here), which is how ``VectorIndex`` searched before (kept to show why it changed);
* ``ivf``: faiss ``IndexIVFFlat`` (inner product) with ``nlist = 2 * sqrt(n)`` lists
  trained on 40 * nlist points; ``nprobe`` is chosen by measurement, the smallest of
  1, 2, 4, ..., 256 whose recall@5 is at least 0.95 on the queries;
* ``hnsw``: faiss ``IndexHNSWFlat`` (M=32, efConstruction=64) up to ``--hnsw-max``
  records (default 10k: its build takes minutes at 100k on two cores), ``efSearch``
  chosen like ``nprobe``.

Build (and training) times are reported too. The approximate indexes are searched on one
thread, like ``VectorIndex``.

Run: ``python benchmarks/bench_b4_retrieval.py [--sizes 10000,100000,1000000]``
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
from _common import apply_env, emit, now, percentile

DIM = 384
CENTRES = 1024
NOISE = 0.05


def draw(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        picks = rng.integers(0, len(centres), stop - start)
        chunk = centres[picks] + NOISE * rng.standard_normal((stop - start, DIM), np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        out[start:stop] = chunk
    return out


def recall_at_5(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def latencies(search: Any, queries: np.ndarray) -> list[float]:
    out = []
    for query in queries:
        start = time.perf_counter()
        search(query)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(times: list[float], recall: float, build_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "recall_at_5": recall,
        "build_s": build_s,
        "queries": len(times),
        **extra,
    }


def tune(index: Any, queries: np.ndarray, truth: np.ndarray, knob: str) -> tuple[int, float]:
    """The smallest knob value (powers of two) with recall@5 >= 0.95, and its recall."""
    value, recall = 1, 0.0
    while value <= 256:
        setattr(index, knob, value) if knob == "nprobe" else index.hnsw.__setattr__(knob, value)
        _, found = index.search(queries, 5)
        recall = recall_at_5(found, truth)
        if recall >= 0.95:
            break
        value *= 2
    return value, recall


def vector_index(data: np.ndarray, *, exact: bool) -> tuple[Any, float]:
    """A ``VectorIndex`` of ``data`` (forced exact, or as shipped) and its build time."""
    import judgealign.memalign._index as module

    shipped_max = module.EXACT_MAX
    if exact:
        module.EXACT_MAX = len(data)
    try:
        start = time.perf_counter()
        index = module.VectorIndex(DIM).with_added([f"r{i}" for i in range(len(data))], data)
        return index, time.perf_counter() - start
    finally:
        module.EXACT_MAX = shipped_max


def found_keys(index: Any, queries: np.ndarray) -> np.ndarray:
    return np.array([[int(h[0][1:]) for h in index.search(q, 5)] for q in queries])


def bench_size(
    n: int, rng: np.random.Generator, centres: np.ndarray, hnsw_max: int
) -> dict[str, Any]:
    import faiss

    threads = faiss.omp_get_max_threads()
    data = draw(rng, centres, n)
    queries = draw(rng, centres, 1000)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(data)
    _, truth = flat.search(queries, 5)
    timed = queries[: 50 if n >= 1_000_000 else 300]
    times = latencies(lambda q: flat.search(q[None, :], 5), timed)
    result_omp = summary(times, 1.0, 0.0, threads=faiss.omp_get_max_threads())
    flat.reset()
    result: dict[str, Any] = {"n": n, "exact_omp": result_omp}

    exact, build = vector_index(data, exact=True)
    found = found_keys(exact, queries[:200])
    result["exact"] = summary(
        latencies(lambda q: exact.search(q, 5), timed), recall_at_5(found, truth[:200]), build
    )
    exact = None  # free its memory before the next index

    shipped, build = vector_index(data, exact=False)
    recall = recall_at_5(found_keys(shipped, queries), truth)
    times = latencies(lambda q: shipped.search(q, 5), queries[:300])
    result["shipped"] = summary(times, recall, build, **shipped.describe())
    shipped = None

    nlist = int(2 * math.sqrt(n))
    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = data[rng.choice(n, min(n, 40 * nlist), replace=False)]
    ivf.train(sample)
    ivf.add(data)
    build = time.perf_counter() - start
    nprobe, recall = tune(ivf, queries, truth, "nprobe")
    faiss.omp_set_num_threads(1)
    times = latencies(lambda q: ivf.search(q[None, :], 5), timed)
    faiss.omp_set_num_threads(threads)
    result["ivf"] = summary(times, recall, build, nlist=nlist, nprobe=nprobe)
    # A fixed nprobe=16, the proposed default for data whose structure is unknown.
    ivf.nprobe = 16
    _, found = ivf.search(queries, 5)
    faiss.omp_set_num_threads(1)
    times = latencies(lambda q: ivf.search(q[None, :], 5), timed)
    faiss.omp_set_num_threads(threads)
    result["ivf16"] = summary(times, recall_at_5(found, truth), build, nlist=nlist, nprobe=16)
    ivf.reset()

    if n <= hnsw_max:
        start = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(DIM, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 64
        hnsw.add(data)
        build = time.perf_counter() - start
        ef, recall = tune(hnsw, queries, truth, "efSearch")
        ef = max(ef, 5)
        hnsw.hnsw.efSearch = ef
        faiss.omp_set_num_threads(1)
        times = latencies(lambda q: hnsw.search(q[None, :], 5), timed)
        faiss.omp_set_num_threads(threads)
        result["hnsw"] = summary(times, recall, build, M=32, efSearch=ef)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--hnsw-max", type=int, default=10_000)
    args = parser.parse_args()
    apply_env()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CENTRES, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    load_start = now()["load_average"]
    results = [bench_size(n, rng, centres, args.hnsw_max) for n in sizes]
    emit(
        {
            "dim": DIM,
            "centres": CENTRES,
            "noise": NOISE,
            "sizes": results,
            "load_average": load_start,
            "load_average_end": now()["load_average"],
        }
    )


if __name__ == "__main__":
    main()
