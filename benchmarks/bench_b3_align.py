"""B3: align a judge with 500 DeFacto expert records, then with 10 more.

Both libraries align the same bool judge ("is the summary consistent with the
document?") with the first 500 DeFacto records (label yes/no, the annotator's explanation as
rationale), against one fake server with 200 ms latency on every chat and embedding
request, then align again with the first 510 (10 new). Timed: the ``align`` calls only.
Counted on the server: chat requests, embedding requests, and texts embedded.

* ``judgealign``: ``judge.align(records, optimizer=MemAlignOptimizer(...))`` with a
  ``LiteLLMEmbedder("openai:/fake-embed")`` (the server's embeddings) and the reflection
  model ``openai:/fake``; batching set like MLflow's (at most 50 records and about 123k
  tokens per distillation request), 512 texts per embedding request.
* ``mlflow``: MLflow's documented route: traces with HUMAN feedback named like the judge,
  ``judge.align(traces, optimizer=MemAlignOptimizer(reflection_lm="openai:/fake",
  embedding_model="openai:/fake-embed", embedding_dim=384))`` (needs ``dspy``). The 510
  traces are made once (``--prepare DIR``) in a sqlite store that each run copies.

Both get the same replies (``_serve.py`` mode ``memalign``: two guidelines per batch citing
the batch's records). Each run is its own process, with a fresh DSPy cache.

Run: ``python benchmarks/bench_b3_align.py --impl judgealign``, or for MLflow
``--impl mlflow --prepare /tmp/b3`` once, then ``--impl mlflow --store /tmp/b3``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ServerProcess, apply_env, emit, load_defacto

INSTRUCTIONS = (
    "Is the summary in {{ outputs }} factually consistent with the document in {{ inputs }}?"
)
FIRST, MORE = 500, 10


def timed_align(server: ServerProcess, align: Any) -> dict[str, Any]:
    server.control("reset")
    cpu, start = time.process_time(), time.perf_counter()
    aligned = align()
    wall = time.perf_counter() - start
    stats = server.control("stats")
    return {
        "aligned": aligned,
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "chat_requests": stats["chat"],
        "embedding_requests": stats["embeddings"],
        "embedded_texts": stats["embedded_texts"],
        "embedding_batches": stats["embedding_batches"],
    }


def run_judgealign(server: ServerProcess) -> list[dict[str, Any]]:
    from judgealign import LiteLLMEmbedder, make_judge
    from judgealign.memalign._optimizer import MemAlignOptimizer

    records = load_defacto(FIRST + MORE)
    judge = make_judge(name="consistent", instructions=INSTRUCTIONS, model="openai:/fake")
    optimizer = MemAlignOptimizer(
        reflection_model="openai:/fake",
        embedding_model=LiteLLMEmbedder(
            "openai:/fake-embed", dimension=384, batch_size=512, api_base=server.base_url
        ),
        batch_token_budget=123_000,
        max_records_per_batch=50,
    )
    optimizer.embedder.embed(["warm-up"])  # imports litellm, as importing MLflow's optimizer does
    first = timed_align(server, lambda: judge.align(records[:FIRST], optimizer=optimizer))
    aligned = first.pop("aligned")
    first["guidelines"] = len(aligned.guidelines)
    more = timed_align(server, lambda: aligned.align(records, optimizer=optimizer))
    result = more.pop("aligned").last_alignment
    more["guidelines"] = len(aligned.guidelines)
    more["records_added"] = len(result.records_added) if result else None
    # The default view (fields-mean) embeds each judged field of a record on its own, so a
    # record is as many texts as the judge reads fields (inputs and outputs here).
    more["texts_per_record"] = len(judge.variables) if optimizer.view_name == "fields-mean" else 1
    return [first, more]


def _trace(mlflow: Any, record: dict[str, Any]) -> str:
    with mlflow.start_span(name="summarize") as span:
        span.set_inputs(record["inputs"])
        span.set_outputs(record["outputs"])
        return span.trace_id


def prepare_mlflow(folder: Path) -> None:
    """Create the 510 traces with expert feedback in ``folder/mlflow.db``."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
    import mlflow
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    records = load_defacto(FIRST + MORE)
    ids = [_trace(mlflow, r) for r in records]
    mlflow.flush_trace_async_logging()
    source = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="expert")
    for trace_id, record in zip(ids, records, strict=True):
        mlflow.log_feedback(
            trace_id=trace_id,
            name="consistent",
            value=record["label"] == "yes",
            rationale=record["rationale"],
            source=source,
        )
    (folder / "trace_ids.txt").write_text("\n".join(ids))


def run_mlflow(server: ServerProcess, store: Path) -> list[dict[str, Any]]:
    work = Path(tempfile.mkdtemp(prefix="b3-mlflow-"))
    shutil.copy(store / "mlflow.db", work / "mlflow.db")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlflow.db"
    import mlflow
    from mlflow.genai.judges import make_judge
    from mlflow.genai.judges.optimizers import MemAlignOptimizer

    ids = (store / "trace_ids.txt").read_text().split()
    found = mlflow.search_traces(max_results=len(ids) + 10, return_type="list")
    by_id = {t.info.trace_id: t for t in found}
    traces = [by_id[i] for i in ids]
    judge = make_judge(
        name="consistent", instructions=INSTRUCTIONS, model="openai:/fake", feedback_value_type=bool
    )
    optimizer = MemAlignOptimizer(
        reflection_lm="openai:/fake", embedding_model="openai:/fake-embed", embedding_dim=384
    )
    judge.align(traces[:2], optimizer=optimizer)  # warm-up: lazy imports (dspy, litellm)
    first = timed_align(server, lambda: judge.align(traces[:FIRST], optimizer=optimizer))
    aligned = first.pop("aligned")
    first["guidelines"] = len(aligned._semantic_memory)
    more = timed_align(server, lambda: aligned.align(traces, optimizer=optimizer))
    more["guidelines"] = len(more.pop("aligned")._semantic_memory)
    return [first, more]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=["judgealign", "mlflow"])
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--prepare", type=Path, help="make the MLflow traces in this folder")
    parser.add_argument("--store", type=Path, help="the folder given to --prepare")
    args = parser.parse_args()
    apply_env()
    if args.prepare:
        start = time.perf_counter()
        prepare_mlflow(args.prepare)
        emit({"prepared": str(args.prepare), "wall_s": time.perf_counter() - start})
        return
    with ServerProcess(args.latency, mode="memalign") as server:
        os.environ["OPENAI_API_BASE"] = server.base_url  # both reflection models use it
        if args.impl == "judgealign":
            first, more = run_judgealign(server)
        else:
            if args.store is None:
                raise SystemExit("--impl mlflow needs --store (made by --prepare)")
            first, more = run_mlflow(server, args.store)
    emit({"impl": args.impl, "latency_s": args.latency, "first": first, "more": more})


if __name__ == "__main__":
    main()
