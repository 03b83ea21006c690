"""B8: the retrieval view. Does retrieval see what is judged, and do its neighbours agree?

For each candidate view (what is embedded for a record and for a query) on the real
expert-labelled sets, with the real local embedder (MiniLM, int8 ONNX, 254-token window):

* **(a) output sensitivity**: for a sample of query records, replace only ``outputs`` and
  check whether the top-5 neighbours change. Two swaps: another output for the *same*
  input (DeFacto: the XSum reference summary of the article; ExpertQA: the expert's revised
  answer), and the output of a random *other* record. A view that cannot see the output
  retrieves the same five records whatever the output says.
* **(b) label agreement**: records are split into 5 folds, grouped by input so that no
  record (or its twin on the same document) retrieves itself; each record queries the
  other four folds. Reported: how often the majority label of the top-5 neighbours equals
  the record's expert label (ties go to the label of the nearest tied neighbour), the mean
  share of the 5 neighbours with the record's label, next to the majority-class rate and
  the chance level of the mean (the sum of squared class shares).

Candidates: ``inputs+outputs`` (the canonical JSON that was the default: the baseline),
``fields`` (every field in one text, each with a fair share of the window, cut from the
middle), ``fields-mean`` (each field embedded alone, vectors averaged), and two built here
from the same sections: ``outputs-first`` (outputs section first, then the inputs; the
embedder truncates the tail) and ``fields-concat`` (each field embedded alone, the unit
vectors concatenated and scaled by 1/sqrt(fields), so a dot product is the mean of the
per-field cosines; not a library view, since its dimension depends on the judge). The
legacy ``outputs`` view (the output alone) is a reference for what the output alone says.

Vectors are cached by text within the run, so a text shared by two views is embedded once
(the embedding time per view counts only its new texts). Results are deterministic for a
given seed; one run.

Run: ``python benchmarks/bench_b8_view.py [--defacto 800] [--queries 200] [--seed 0]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import apply_env, emit, now

DATA = Path(os.environ.get("JUDGEALIGN_DATA", "/work/shared/data"))
VIEWS = ("inputs+outputs", "outputs-first", "fields", "fields-mean", "fields-concat", "outputs")
K = 5
FOLDS = 5


class CachingEmbedder:
    """The real embedder, remembering every vector it made in this run (same id and window)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}
        self.embedded = 0
        self.seconds = 0.0

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def max_tokens(self) -> int:
        return self.inner.max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            started = time.perf_counter()
            for text, vector in zip(missing, self.inner.embed(missing), strict=True):
                self.cache[text] = vector
            self.seconds += time.perf_counter() - started
            self.embedded += len(missing)
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, 384))


def view_vectors(view: str, fields: Sequence[Mapping[str, Any]], embedder: Any) -> np.ndarray:
    from judgealign.memalign._view import cut_middle, embed_view, field_sections

    if view == "outputs-first":
        texts = ["\n\n".join(_outputs_first(field_sections(f))) for f in fields]
        return embedder.embed(texts)
    if view == "fields-concat":
        groups = [
            [cut_middle(s, embedder.max_tokens, embedder.count_tokens) for s in field_sections(f)]
            for f in fields
        ]
        width = len(groups[0])
        flat = embedder.embed([t for g in groups for t in g])
        return flat.reshape(len(groups), width * flat.shape[1]) / math.sqrt(width)
    return embed_view(view, fields, embedder, embedder.embed)  # type: ignore[arg-type]


def _outputs_first(sections: list[str]) -> list[str]:
    return sorted(sections, key=lambda s: not s.startswith("outputs:"))


# -- data ---------------------------------------------------------------------------------


def load(name: str) -> list[dict[str, Any]]:
    path = DATA / name / f"{name}.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def same_input_output(dataset: str, record: Mapping[str, Any]) -> str | None:
    """Another output for the same input, written by people."""
    meta = record.get("metadata") or {}
    other = meta.get("reference_summary") if dataset == "defacto" else meta.get("revised_answer")
    return (
        other if isinstance(other, str) and other.strip() and other != record["outputs"] else None
    )


def folds_by_input(records: Sequence[Mapping[str, Any]], rng: random.Random) -> np.ndarray:
    keys = sorted({json.dumps(r["inputs"], sort_keys=True) for r in records})
    rng.shuffle(keys)
    fold_of = {k: i % FOLDS for i, k in enumerate(keys)}
    return np.array([fold_of[json.dumps(r["inputs"], sort_keys=True)] for r in records])


# -- measures -------------------------------------------------------------------------------


def top_k(query: np.ndarray, memory: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    scores = memory @ query
    scores = np.where(allowed, scores, -np.inf)
    return np.argsort(-scores, kind="stable")[:K]


def vote(labels: Sequence[str]) -> str:
    counts = Counter(labels)
    best = max(counts.values())
    return next(label for label in labels if counts[label] == best)  # nearest among tied


def label_agreement(
    vectors: np.ndarray, labels: Sequence[str], folds: np.ndarray
) -> dict[str, float]:
    majority_hits, shares = 0, []
    for i in range(len(labels)):
        hits = top_k(vectors[i], vectors, folds != folds[i])
        neighbour_labels = [labels[j] for j in hits]
        majority_hits += vote(neighbour_labels) == labels[i]
        shares.append(sum(label == labels[i] for label in neighbour_labels) / K)
    return {"majority_vote": majority_hits / len(labels), "mean": float(np.mean(shares))}


def sensitivity(
    base: np.ndarray,
    swapped: np.ndarray,
    memory: np.ndarray,
    queries: Sequence[int],
    folds: np.ndarray,
) -> dict[str, float]:
    changed, overlap = 0, []
    for row, i in enumerate(queries):
        allowed = folds != folds[i]
        before = set(top_k(base[i], memory, allowed).tolist())
        after = set(top_k(swapped[row], memory, allowed).tolist())
        changed += before != after
        overlap.append(len(before & after) / K)
    return {
        "changed": changed / len(queries),
        "mean_overlap": float(np.mean(overlap)),
        "n": len(queries),
    }


def outputs_past_window(records: Sequence[Mapping[str, Any]], embedder: Any) -> dict[str, int]:
    """Records whose output starts past the window in the legacy JSON view (all records)."""
    from judgealign.judges._records import canonical_json

    prefixes = []
    for r in records:
        text = canonical_json({"inputs": r["inputs"], "outputs": r["outputs"]})
        prefixes.append(text[: text.rindex('"outputs":')])
    counts = embedder.count_tokens(prefixes)
    return {
        "records": len(records),
        "outputs_wholly_past_window": sum(c >= embedder.max_tokens for c in counts),
    }


# -- one dataset -----------------------------------------------------------------------------


def run_dataset(
    dataset: str, limit: int | None, n_queries: int, seed: int, embedder: CachingEmbedder
) -> dict[str, Any]:
    everything = load(dataset)
    rng = random.Random(seed)
    records = rng.sample(everything, limit) if limit and limit < len(everything) else everything
    labels = [str(r["label"]) for r in records]
    folds = folds_by_input(records, rng)
    fields = [{"inputs": r["inputs"], "outputs": r["outputs"]} for r in records]
    queries = sorted(rng.sample(range(len(records)), min(n_queries, len(records))))
    same = [(i, same_input_output(dataset, records[i])) for i in queries]
    same_q = [i for i, text in same if text is not None]
    swaps = {
        "same_input": (same_q, [{**fields[i], "outputs": text} for i, text in same if text]),
        "other_record": (
            queries,
            [
                {**fields[i], "outputs": records[_other(rng, i, len(records))]["outputs"]}
                for i in queries
            ],
        ),
    }
    counts = Counter(labels)
    result: dict[str, Any] = {
        "records": len(records),
        "of": len(everything),
        "queries": len(queries),
        "labels": dict(counts),
        "majority_class_rate": max(counts.values()) / len(labels),
        "chance_mean": sum((c / len(labels)) ** 2 for c in counts.values()),
        "window": outputs_past_window(everything, embedder),
        "views": {},
    }
    for view in VIEWS:
        embedded, seconds = embedder.embedded, embedder.seconds
        vectors = view_vectors(view, fields, embedder)
        entry: dict[str, Any] = {"agreement": label_agreement(vectors, labels, folds)}
        for swap, (rows, swapped_fields) in swaps.items():
            swapped = view_vectors(view, swapped_fields, embedder)
            entry[swap] = sensitivity(vectors, swapped, vectors, rows, folds)
        entry["texts_embedded"] = embedder.embedded - embedded
        entry["embed_s"] = embedder.seconds - seconds
        result["views"][view] = entry
        print(dataset, view, json.dumps(entry), flush=True)
    return result


def _other(rng: random.Random, i: int, n: int) -> int:
    j = rng.randrange(n - 1)
    return j + (j >= i)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--defacto", type=int, default=800, help="DeFacto records sampled")
    parser.add_argument("--expertqa", type=int, default=0, help="ExpertQA records (0: all)")
    parser.add_argument("--queries", type=int, default=200, help="records whose output is swapped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    apply_env()
    from judgealign.embeddings._minilm import MiniLMEmbedder
    from judgealign.memalign._view import DEFAULT_VIEW

    embedder = CachingEmbedder(MiniLMEmbedder())
    started = {**now()}
    wall = time.perf_counter()
    sets: dict[str, Any] = {}
    for dataset, limit in (("defacto", args.defacto), ("expertqa", args.expertqa)):
        if not (DATA / dataset / f"{dataset}.jsonl").is_file():
            sets[dataset] = {"skipped": f"{DATA / dataset} not found"}
            continue
        sets[dataset] = run_dataset(dataset, limit or None, args.queries, args.seed, embedder)
    emit(
        {
            "embedder": embedder.id,
            "max_tokens": embedder.max_tokens,
            "k": K,
            "folds": FOLDS,
            "seed": args.seed,
            "sets": sets,
            "started": started,
            "wall_s": time.perf_counter() - wall,
            "views": list(VIEWS),
            "default_view": DEFAULT_VIEW,
        }
    )


if __name__ == "__main__":
    main()
