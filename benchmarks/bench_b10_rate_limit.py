"""B10: 2,000 records against a server that enforces 600 requests a minute.

The fake server (its own process) answers a chat request beyond 600 per minute (budget
refilled continuously, about one second of it usable at once) with 429 and
``Retry-After``, after 100 ms of latency for admitted requests.

``judgealign``: ``judge.evaluate(records, max_workers=64,
rate_limit=RateLimit(requests_per_minute=600))``. ``mlflow``: ``mlflow.genai.evaluate``
with 64 workers and its own limiter set to the same limit
(``MLFLOW_GENAI_EVAL_SCORER_RATE_LIMIT=10``, requests per second; its 429 retries are its
own), on a sqlite tracking store.

Reported from the server's log: the admitted rate over the run (admitted requests per
minute between the first and the last answer), records without a verdict, and the share
of requests answered 429 after the first 10 s.

Run: ``python benchmarks/bench_b10_rate_limit.py --impl judgealign``
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _common import ServerProcess, apply_env, emit

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
LIMIT_RPM = 600.0


def records(count: int) -> list[dict[str, Any]]:
    return [
        {"inputs": {"question": f"What is {i} + {i}?"}, "outputs": f"The sum is {2 * i}."}
        for i in range(count)
    ]


def run_judgealign(
    server: ServerProcess, rows: list[dict[str, Any]], workers: int, client_rpm: float | None
) -> dict:
    from judgealign import RateLimit, make_judge

    judge = make_judge(
        name="correct", instructions=INSTRUCTIONS, model="openai:/fake", base_url=server.base_url
    )
    limit = RateLimit(requests_per_minute=client_rpm)
    start = time.perf_counter()
    result = judge.evaluate(rows, max_workers=workers, progress=False, rate_limit=limit)
    return {
        "wall_s": time.perf_counter() - start,
        "rows": len(result),
        "errors": len(result.errors),
        "client_requests_per_minute": client_rpm,
        "client_throttled": limit.stats.throttled,
    }


def run_mlflow(
    server: ServerProcess, rows: list[dict[str, Any]], workers: int, client_rpm: float | None
) -> dict:
    del client_rpm  # MLflow's limiter is set to the server's limit
    os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(workers)
    os.environ["MLFLOW_GENAI_EVAL_SCORER_RATE_LIMIT"] = f"{LIMIT_RPM / 60:g}"
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_POOL_SIZE", "64")
    os.environ.setdefault("MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW", "64")
    import mlflow
    from mlflow.genai.judges import make_judge

    judge = make_judge(
        name="correct",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=server.chat_url,
        feedback_value_type=bool,
    )
    start = time.perf_counter()
    result = mlflow.genai.evaluate(data=rows, scorers=[judge])
    wall = time.perf_counter() - start
    frame = result.result_df
    values = 0
    if frame is not None and "correct/value" in frame.columns:
        values = int(frame["correct/value"].notna().sum())
    rows_out = 0 if frame is None else len(frame)
    return {"wall_s": wall, "rows": rows_out, "errors": len(rows) - values}


def rates(log: list[list[float]]) -> dict[str, Any]:
    """Admitted rate and 429 share from the server's (time, status) log."""
    times = sorted(t for t, _ in log)
    if not times:
        return {}
    first = times[0]
    admitted = [t for t, status in log if status == 200]
    span = max(admitted) - min(admitted) if len(admitted) > 1 else 0.0
    late = [(t, s) for t, s in log if t - first > 10.0]
    late_429 = sum(1 for _, s in late if s == 429)
    return {
        "requests": len(log),
        "admitted": len(admitted),
        "refused": sum(1 for _, s in log if s == 429),
        "admitted_per_minute": 60.0 * (len(admitted) - 1) / span if span else None,
        "after_10s_requests": len(late),
        "after_10s_429": late_429,
        "after_10s_429_share": late_429 / len(late) if late else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", choices=["judgealign", "mlflow"], required=True)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument(
        "--client-rpm",
        default=str(LIMIT_RPM),
        help="judgealign's RateLimit(requests_per_minute=...); 'none' for AIMD alone",
    )
    args = parser.parse_args()
    apply_env()
    rows = records(args.records)
    with ServerProcess(args.latency, requests_per_minute=LIMIT_RPM) as server:
        run = run_judgealign if args.impl == "judgealign" else run_mlflow
        client_rpm = None if args.client_rpm == "none" else float(args.client_rpm)
        out = run(server, rows, args.workers, client_rpm)
        out.update(rates(server.control("log")))
    out.update(
        impl=args.impl,
        records=args.records,
        workers=args.workers,
        latency_s=args.latency,
        limit_per_minute=LIMIT_RPM,
    )
    emit(out)


if __name__ == "__main__":
    main()
