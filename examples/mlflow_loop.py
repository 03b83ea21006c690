"""The whole loop on MLflow: prompt, evaluation, expert feedback on traces, alignment,
optimization, promotion, held-out comparison.

1. **Prompt.** ``capital_qa`` is registered in MLflow's prompt registry (once) and served
   under the ``production`` alias; the application (``predict_fn``) loads it the MLflow way,
   ``mlflow.genai.load_prompt("prompts:/capital_qa@production").format(...)``.
2. **Evaluation.** ``mlflow.genai.evaluate`` runs the application on training questions
   with the judge as a scorer; every answer becomes a trace with the judge's verdict.
3. **Expert feedback.** An expert labels each trace (here a built-in answer key plays the
   expert: an answer is right only if it names the capital and no other city) with
   ``mlflow.log_feedback(..., source=HUMAN)``, under the judge's name.
4. **Alignment.** The judge is aligned from those traces (guidelines plus retrieved
   examples) and saved to MLflow with ``log_judge``.
5. **Optimization.** ``optimize_prompts`` improves the prompt with the aligned judge as the
   objective; an improved prompt becomes a new version, tagged with its scores.
6. **Promotion and comparison.** ``promote_if_improved`` scores the served and the new
   version on held-out questions and moves ``production`` only if the new one is better.

Everything is tracked (runs, parameters, agreement, scores per iteration, figures) in the
store MLflow is configured with: ``MLFLOW_TRACKING_URI``, else ``./mlflow.db``.

    python examples/mlflow_loop.py
    python examples/mlflow_loop.py --model openai:/gpt-4o-mini
    MLFLOW_TRACKING_URI=sqlite:///runs.db python examples/mlflow_loop.py

Exit status: 0 on success, 2 on a configuration or model error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import mlflow
from mlflow.entities import AssessmentSource, AssessmentSourceType

import optimizers
from judgealign import (
    ChatModel,
    JudgeAlignError,
    MemAlignOptimizer,
    compare_judges,
    make_judge,
    resolve_model,
)
from judgealign.mlflow_integration import (
    MlflowPromptStore,
    as_scorer,
    log_judge,
    promote_if_improved,
    records_from_traces,
    use_mlflow_tracking,
)

PROMPT = "capital_qa"
SEED_TEMPLATE = "Question: {{ question }}"
CAPITALS = {
    "France": "Paris",
    "Australia": "Canberra",
    "Canada": "Ottawa",
    "Japan": "Tokyo",
    "Turkey": "Ankara",
    "Brazil": "Brasilia",
    "Kenya": "Nairobi",
    "Vietnam": "Hanoi",
    "Peru": "Lima",
    "Egypt": "Cairo",
}
TRAIN = ["France", "Japan", "Australia", "Peru", "Canada", "Egypt"]
HELD_OUT = ["Turkey", "Kenya", "Brazil", "Vietnam"]
OTHER_CITIES = ("Sydney", "Toronto", "Istanbul", "Rio", "Lyon", "Ho Chi Minh", "Kyoto")


def question(country: str) -> str:
    """The question asked about ``country``."""
    return f"What is the capital of {country}?"


def expert_verdict(country: str, answer: str) -> tuple[bool, str]:
    """The answer key standing in for a human expert."""
    if CAPITALS[country] not in answer:
        return False, f"The capital of {country} is {CAPITALS[country]}."
    if any(city in answer for city in OTHER_CITIES) or " or " in answer:
        return False, "Hedging between cities is not an answer, even if one is right."
    return True, "Names the capital, and only the capital."


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI for every role (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    parser.add_argument("--experiment", default="judgealign-mlflow-loop")
    parser.add_argument("--alias", default="production")
    parser.add_argument("--embedding-model", default="hashing", help="the aligner's embedder")
    parser.add_argument("--iterations", type=int, default=2, help="metaprompt iterations")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Run the loop; print what each step changed."""
    args = parse_args(argv)
    try:
        chat = model or resolve_model(args.model)
        mlflow.set_experiment(args.experiment)
        with use_mlflow_tracking(args.experiment) as tracker:
            run_loop(chat, args)
        print(f"tracked in {tracker.tracking_uri} (failed writes: {tracker.failures})")
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def run_loop(chat: ChatModel, args: argparse.Namespace) -> None:
    """Steps 1 to 6 of the module docstring."""
    store = MlflowPromptStore()
    previous = optimizers.set_prompt_store(store)
    try:
        served = ensure_prompt(store, args.alias)
        print(f"1. serving prompts:/{PROMPT}/{served} as @{args.alias}")

        def predict_fn(question: str) -> str:
            prompt: Any = mlflow.genai.load_prompt(f"prompts:/{PROMPT}@{args.alias}")
            reply = chat.complete([{"role": "user", "content": prompt.format(question=question)}])
            return reply.text.strip()

        judge = make_judge(
            name="capital_correct",
            instructions="Does {{ outputs }} correctly answer the question in {{ inputs }}?",
            model=chat,
        )
        aligned = evaluate_and_align(judge, predict_fn, args)
        optimize_and_promote(judge, aligned, predict_fn, chat, args)
    finally:
        optimizers.set_prompt_store(previous)


def ensure_prompt(store: MlflowPromptStore, alias: str) -> int:
    """Register the seed prompt and the alias the first time; return the served version."""
    served = store.alias_version(PROMPT, alias)
    if served is None:
        served = store.register(PROMPT, SEED_TEMPLATE, commit_message="seed").version or 1
        store.set_alias(PROMPT, alias, served)
    return served


def evaluate_and_align(judge: Any, predict_fn: Any, args: argparse.Namespace) -> Any:
    """Steps 2 to 4: evaluate in MLflow, label the traces, align from them, save."""
    data = [{"inputs": {"question": question(c)}} for c in TRAIN]
    evaluation: Any = mlflow.genai.evaluate(
        data=data, predict_fn=predict_fn, scorers=[as_scorer(judge)]
    )
    mean = evaluation.metrics.get(f"{judge.name}/mean")
    print(f"2. evaluated {len(data)} questions; the judge's mean verdict: {mean}")
    traces: list[Any] = mlflow.search_traces(run_id=evaluation.run_id, return_type="list")
    mlflow.flush_trace_async_logging()
    expert = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="answer-key")
    for trace in traces:
        asked = trace.data.spans[0].inputs["question"]
        country = next(c for c in CAPITALS if question(c) == asked)
        value, why = expert_verdict(country, str(trace.data.spans[0].outputs))
        mlflow.log_feedback(
            trace_id=trace.info.trace_id, name=judge.name, value=value, rationale=why, source=expert
        )
    records = records_from_traces([t.info.trace_id for t in traces], judge=judge)
    print(f"3. {len(records)} expert labels read back from the traces")
    optimizer = MemAlignOptimizer(embedding_model=args.embedding_model, retrieval_k=3)
    aligned = judge.align(list(records), optimizer=optimizer)
    saved = log_judge(aligned)
    count = len(aligned.guidelines)
    print(f"4. aligned: {count} guideline(s); saved as {saved.name} v{saved.version}")
    for guideline in aligned.guidelines:
        print(f"     - {guideline.text}")
    return aligned


def optimize_and_promote(
    judge: Any, aligned: Any, predict_fn: Any, chat: ChatModel, args: argparse.Namespace
) -> None:
    """Steps 5 and 6: optimize with the aligned judge, promote only if held-out improves."""
    held_out = [{"inputs": {"question": question(c)}} for c in HELD_OUT]
    result = optimizers.optimize_prompts(
        predict_fn=predict_fn,
        train_data=[{"inputs": {"question": question(c)}} for c in TRAIN],
        val_data=held_out,
        prompt_uris=[f"prompts:/{PROMPT}@{args.alias}"],
        optimizer=optimizers.MetaPromptOptimizer(chat, max_iterations=args.iterations),
        scorers=[aligned],
        max_workers=2,
    )
    new = result.optimized_prompts[0]
    print(
        f"5. optimization: {result.initial_eval_score} -> {result.final_eval_score}; "
        f"{'registered ' + new.uri if result.improved else 'nothing better found'}"
    )
    if result.improved:
        decision = promote_if_improved(
            result, alias=args.alias, data=held_out, predict_fn=predict_fn, scorers=[aligned]
        )
        verb = "promoted" if decision.promoted else "kept the served version"
        print(f"6. {verb}: {decision.reason}")
    labelled: list[dict[str, Any]] = []
    for country in HELD_OUT:
        answer = predict_fn(question(country))
        value, why = expert_verdict(country, answer)
        labelled.append(
            {
                "id": country,
                "inputs": {"question": question(country)},
                "outputs": answer,
                "label": value,
                "rationale": why,
            }
        )
    comparison = compare_judges(judge, aligned, labelled, n_bootstrap=200)
    print("   held-out answers now:", ", ".join(r["outputs"] for r in labelled))
    print(comparison.format())


if __name__ == "__main__":
    raise SystemExit(main())
