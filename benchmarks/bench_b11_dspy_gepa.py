"""B11: a DSPy program optimized with GEPA, 150 metric calls, 100 ms: ours vs dspy.GEPA.

The program (``TwoStep``): ``draft = dspy.Predict("question -> draft")`` then
``answer = dspy.Predict("question, draft -> answer")``, two LM calls per example. The task
(served by ``_serve.py`` mode ``dspy``): 20 addition questions ``Q<i>: What is a plus b?``;
question ``i`` is answered right only when the ``answer`` predictor's instructions hold at
least ``i % 4`` numbered rules (``draft``'s do not count); a reflection request (either
library's) gets the current instructions back with one more rule. Seed score 0.25; three
accepted reflections on ``answer`` reach 1.0.

Both sides get the same program, data (questions 0-11 train, 12-19 validate), metric and
budget, and each library's defaults otherwise (both evaluate 8 examples at once by
default: ``dspy.settings.num_threads`` and ``optimize_program``'s ``num_threads``; ours
picks the predictors to rewrite with its default ``component_selector="adaptive"``, which
rewrites tied predictors together, and stops at a perfect validation score; dspy.GEPA
rewrites one predictor per iteration in turn and runs until its budget is spent):

* metric: exact match, in GEPA's feedback form
  ``metric(gold, pred, trace=None, pred_name=None, pred_trace=None)`` returning
  ``dspy.Prediction(score, feedback)`` ("expected X, got Y");
* ``judgealign``: ``optimizers.optimize_program(program, train, val, metric=metric,
  optimizer=GepaPromptOptimizer(reflection_model=resolve_model("openai:/fake",
  base_url=...), max_metric_calls=150))``;
* ``dspy``: ``dspy.GEPA(metric=metric, max_metric_calls=150,
  reflection_lm=dspy.LM("openai/fake", ...), track_stats=True).compile(program,
  trainset=train, valset=val)`` (dspy 3.4.1, gepa 0.1.4).

Timed: the optimization call. Reported: wall time; metric calls as each library counts
them (ours: examples scored; dspy: GEPA's ``total_metric_calls``), metric-function
invocations (both call the metric again with ``pred_name`` to collect a predictor's
feedback: dspy.GEPA for each reflected example and predictor, ours for the reflection
minibatch and each predictor being rewritten, reported as ``feedback_calls``), the
chat requests the server received; the final validation score, measured the same way for
both outside the timing (the returned program answers the 8 validation questions once).

Run: ``python benchmarks/bench_b11_dspy_gepa.py --impl judgealign`` (or ``--impl dspy``)
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from _common import ServerProcess, apply_env, emit

BUDGET = 150
TRAIN = 12


def build(dspy: Any) -> tuple[Any, list[Any]]:
    class TwoStep(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.draft = dspy.Predict("question -> draft")
            self.answer = dspy.Predict("question, draft -> answer")

        def forward(self, question: str) -> Any:
            draft = self.draft(question=question).draft
            return self.answer(question=question, draft=draft)

    data = []
    for i in range(20):
        a, b = 3 * i + 7, 5 * i + 2
        example = dspy.Example(question=f"Q{i}: What is {a} plus {b}?", answer=str(a + b))
        data.append(example.with_inputs("question"))
    return TwoStep(), data


class Metric:
    """Exact match with feedback; counts its invocations."""

    def __init__(self, dspy: Any) -> None:
        self._dspy = dspy
        self._lock = threading.Lock()
        self.calls = 0

    def __call__(
        self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> Any:
        with self._lock:
            self.calls += 1
        got = str(getattr(pred, "answer", "")).strip()
        score = 1.0 if got == gold.answer else 0.0
        feedback = "correct" if score else f"expected {gold.answer}, got {got}"
        return self._dspy.Prediction(score=score, feedback=feedback)


def score(program: Any, data: list[Any]) -> float:
    return sum(str(program(question=e.question).answer).strip() == e.answer for e in data) / len(
        data
    )


def run_judgealign(
    dspy: Any, program: Any, data: list[Any], metric: Metric, base_url: str
) -> dict[str, Any]:
    from judgealign import resolve_model
    from optimizers import GepaPromptOptimizer, optimize_program

    reflection = resolve_model("openai:/fake", base_url=base_url)
    optimizer = GepaPromptOptimizer(reflection_model=reflection, max_metric_calls=BUDGET)
    start = time.perf_counter()
    result = optimize_program(
        program, data[:TRAIN], data[TRAIN:], metric=metric, optimizer=optimizer
    )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "program": result.optimized_program,
        "metric_calls": result.metric_calls,
        "feedback_calls": result.feedback_calls,
        "reported_final": result.final_score,
        "stop_reason": result.details.get("stop_reason"),
        "instructions": result.instructions_after,
    }


def run_dspy(
    dspy: Any, program: Any, data: list[Any], metric: Metric, base_url: str
) -> dict[str, Any]:
    reflection = dspy.LM("openai/fake", api_base=base_url, api_key="sk-fake", cache=False)
    optimizer = dspy.GEPA(
        metric=metric,
        max_metric_calls=BUDGET,
        reflection_lm=reflection,
        track_stats=True,
    )
    start = time.perf_counter()
    optimized = optimizer.compile(program, trainset=data[:TRAIN], valset=data[TRAIN:])
    wall = time.perf_counter() - start
    stats = getattr(optimized, "detailed_results", None)
    return {
        "wall_s": wall,
        "program": optimized,
        "metric_calls": getattr(stats, "total_metric_calls", None),
        "reported_final": max(getattr(stats, "val_aggregate_scores", None) or [float("nan")]),
        "stop_reason": None,
        "instructions": {n: p.signature.instructions for n, p in optimized.named_predictors()},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=["judgealign", "dspy"])
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    apply_env()
    import dspy

    with ServerProcess(args.latency, mode="dspy") as server:
        # No OPENAI_API_BASE in the environment: with it, dspy.LM switches to its litellm
        # engine; both sides name the server explicitly instead.
        lm = dspy.LM("openai/fake", api_base=server.base_url, api_key="sk-fake", cache=False)
        dspy.configure(lm=lm)
        program, data = build(dspy)
        metric = Metric(dspy)
        if args.impl == "judgealign":
            run = run_judgealign(dspy, program, data, metric, server.base_url)
        else:
            run = run_dspy(dspy, program, data, metric, server.base_url)
        run["chat_requests"] = server.control("stats")["chat"]
        run["metric_invocations"] = metric.calls
        optimized = run.pop("program")
        run["initial_score"] = score(program, data[TRAIN:])
        run["final_score"] = score(optimized, data[TRAIN:])
    emit({"impl": args.impl, "latency_s": args.latency, "budget": BUDGET, **run})


if __name__ == "__main__":
    main()
