"""B2: judge 1,000 records at 100 ms latency with 32 concurrent calls.

``judgealign``: ``judge.evaluate(records, max_workers=32)``. ``mlflow``:
``mlflow.genai.evaluate(data=records, scorers=[judge])`` with
``MLFLOW_GENAI_EVAL_MAX_WORKERS=32`` on a sqlite tracking store in a temporary folder.
MLflow's SQLAlchemy pool is raised (``MLFLOW_SQLALCHEMYSTORE_POOL_SIZE`` and
``MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW`` = 64): with its defaults (5 + 10) 32 writer threads
time out on the pool and rows go missing from the results (see
``/work/shared/reference/environment.md`` section 8), so the peer is measured in its
better configuration.

The records are the first 1,000 DeFacto records (document and summary). The ideal wall
time is ceil(1000 / 32) x latency = 3.2 s of waiting (3.1 s in the issue's rounding).

Run: ``python benchmarks/bench_b2_evaluate.py --impl judgealign``
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from _common import ServerProcess, apply_env, emit, load_defacto, median

INSTRUCTIONS = (
    "Is the summary in {{ outputs }} factually consistent with the document in {{ inputs }}?"
)


def run_judgealign(server: ServerProcess, records: list[dict[str, Any]], workers: int) -> dict:
    from judgealign import make_judge

    judge = make_judge(
        name="consistent", instructions=INSTRUCTIONS, model="openai:/fake", base_url=server.base_url
    )
    judge(**records[0])  # warm-up: imports, connection pool
    cpu, start = time.process_time(), time.perf_counter()
    result = judge.evaluate(records, max_workers=workers, progress=False)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "rows": len(result),
        "errors": len(result.errors),
    }


def run_mlflow(server: ServerProcess, records: list[dict[str, Any]], workers: int) -> dict:
    os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(workers)
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "64")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "64")
    import mlflow
    from mlflow.genai.judges import make_judge

    judge = make_judge(
        name="consistent",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        feedback_value_type=bool,
        base_url=server.chat_url,
    )
    judge(**records[0])  # warm-up
    cpu, start = time.process_time(), time.perf_counter()
    result = mlflow.genai.evaluate(data=records, scorers=[judge])
    wall = time.perf_counter() - start
    frame = result.result_df
    rows = 0 if frame is None else len(frame)
    values = 0
    if frame is not None and "consistent/value" in frame.columns:
        values = int(frame["consistent/value"].notna().sum())
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "rows": rows,
        "errors": len(records) - values,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=["judgealign", "mlflow"])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    apply_env()
    data = [{"inputs": r["inputs"], "outputs": r["outputs"]} for r in load_defacto(args.records)]
    runner = run_judgealign if args.impl == "judgealign" else run_mlflow
    runs = []
    with ServerProcess(args.latency) as server:
        for _ in range(args.runs):
            server.control("reset")
            run = runner(server, data, args.workers)
            run["chat_requests"] = server.control("stats")["chat"]
            runs.append(run)
    ideal = math.ceil(args.records / args.workers) * args.latency
    emit(
        {
            "impl": args.impl,
            "records": args.records,
            "workers": args.workers,
            "latency_s": args.latency,
            "ideal_s": ideal,
            "runs": runs,
            "wall_s": median([r["wall_s"] for r in runs]),
            "cpu_s": median([r["cpu_s"] for r in runs]),
        }
    )


if __name__ == "__main__":
    main()
