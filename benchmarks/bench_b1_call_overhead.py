"""B1: CPU time per judge call above the server's latency.

One implementation per process: ``judgealign`` (the default route), ``judgealign-litellm``
(the same judge with ``JUDGEALIGN_DIRECT_HTTP=0``: every call through
``litellm.completion``, as before the direct route), ``mlflow`` (``make_judge`` from
``mlflow.genai.judges``, ``base_url`` set to the full chat endpoint as MLflow's docs say for
native providers) and ``litellm`` (a bare ``litellm.completion`` with the same messages and
JSON schema). After 10 warm-up calls, each run makes ``--calls`` sequential judge calls
against a server with ``--latency`` seconds of latency and records the process CPU time
per call (the server runs in another process) and the wall time per call above the
latency.

Run: ``python benchmarks/bench_b1_call_overhead.py --impl judgealign``
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

from _common import ServerProcess, apply_env, emit, median

INPUTS = {"question": "What is the capital of France?"}
OUTPUTS = "Paris is the capital of France."
INSTRUCTIONS = "Is {{ outputs }} a correct and complete answer to {{ inputs }}?"


def make_call(impl: str, server: ServerProcess) -> Callable[[], Any]:
    if impl in ("judgealign", "judgealign-litellm"):
        from judgealign import make_judge

        judge = make_judge(
            name="correct",
            instructions=INSTRUCTIONS,
            model="openai:/fake",
            base_url=server.base_url,
        )

        def call() -> Any:
            feedback = judge(inputs=INPUTS, outputs=OUTPUTS)
            assert feedback.error is None, feedback.error
            return feedback

        return call
    if impl == "mlflow":
        from mlflow.genai.judges import make_judge as mlflow_make_judge

        peer = mlflow_make_judge(
            name="correct",
            instructions=INSTRUCTIONS,
            model="openai:/fake",
            feedback_value_type=bool,
            base_url=server.chat_url,
        )

        def mlflow_call() -> Any:
            feedback = peer(inputs=INPUTS, outputs=OUTPUTS)
            assert feedback.error is None, feedback.error
            return feedback

        return mlflow_call
    if impl == "litellm":
        import litellm

        from judgealign import make_judge
        from judgealign.judges._rendering import verdict_schema

        judge = make_judge(name="correct", instructions=INSTRUCTIONS, model="openai:/fake")
        messages = judge.build_messages(judge.collect_fields(inputs=INPUTS, outputs=OUTPUTS))
        response_format = {
            "type": "json_schema",
            "json_schema": {
                "name": "Verdict",
                "strict": True,
                "schema": verdict_schema(judge.value_spec),
            },
        }

        def litellm_call() -> Any:
            return litellm.completion(
                model="openai/fake",
                api_base=server.base_url,
                messages=messages,
                response_format=response_format,
            )

        return litellm_call
    raise SystemExit(f"unknown --impl {impl}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.02)
    args = parser.parse_args()
    apply_env()
    if args.impl == "judgealign-litellm":
        os.environ["JUDGEALIGN_DIRECT_HTTP"] = "0"
    with ServerProcess(args.latency) as server:
        call = make_call(args.impl, server)
        for _ in range(10):
            call()
        runs: list[dict[str, float]] = []
        for _ in range(args.runs):
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.calls):
                call()
            cpu_ms = (time.process_time() - cpu) / args.calls * 1000
            wall_ms = (time.perf_counter() - wall) / args.calls * 1000
            runs.append({"cpu_ms": cpu_ms, "wall_over_latency_ms": wall_ms - args.latency * 1000})
    emit(
        {
            "impl": args.impl,
            "calls_per_run": args.calls,
            "latency_s": args.latency,
            "runs": runs,
            "cpu_ms": median([r["cpu_ms"] for r in runs]),
            "wall_over_latency_ms": median([r["wall_over_latency_ms"] for r in runs]),
        }
    )


if __name__ == "__main__":
    main()
