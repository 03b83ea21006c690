"""B6: GEPA prompt optimization, 150 metric calls, 100 ms latency: judgealign vs MLflow.

The task (served by ``_serve.py`` mode ``gepa``): 20 addition questions ``Q<i>: What is
a plus b?``; question ``i`` is answered right only when the prompt holds at least
``i % 4`` numbered rules, and a reflection request returns the current prompt plus one
rule. The seed prompt has no rule (score 0.25); three accepted reflections reach 1.0. The
scorer is an exact match against ``expectations["expected_response"]``.

Both sides use the same ``predict_fn`` (the openai SDK against the fake server, the prompt
loaded from each library's registry), the same data, scorer and budget, and each
library's defaults otherwise:

* ``judgealign``: ``optimizers.optimize_prompts(..., optimizer=GepaPromptOptimizer(
  reflection_model="openai:/fake", max_metric_calls=150))``, with ``val_data`` set to the
  same 20 records: MLflow's GEPA selects on its training set, so both select on the same
  records (judgealign would otherwise hold out 30% of them and stop as soon as that
  smaller split is perfect);
* ``mlflow``: ``mlflow.genai.optimize_prompts(..., optimizer=GepaPromptOptimizer(
  reflection_model="openai:/fake", max_metric_calls=150))`` (needs ``gepa``), prompts in
  MLflow's registry on a sqlite store in a temporary folder.

Timed: the ``optimize_prompts`` call. The final score is measured the same way for both:
the returned prompt answers all 20 questions once, outside the timing.

Run: ``python benchmarks/bench_b6_gepa.py --impl judgealign``
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from _common import ServerProcess, apply_env, emit

SEED = "Answer the arithmetic question with just the number.\n{{question}}"
BUDGET = 150


def dataset() -> list[dict[str, Any]]:
    rows = []
    for i in range(20):
        a, b = 3 * i + 7, 5 * i + 2
        rows.append(
            {
                "inputs": {"question": f"Q{i}: What is {a} plus {b}?"},
                "expectations": {"expected_response": str(a + b)},
            }
        )
    return rows


def ask(client: Any, text: str) -> str:
    reply = client.chat.completions.create(
        model="fake", messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


def final_score(client: Any, template: str, data: list[dict[str, Any]]) -> float:
    right = 0
    for row in data:
        text = template.replace("{{question}}", row["inputs"]["question"])
        text = text.replace("{{ question }}", row["inputs"]["question"])
        right += ask(client, text).strip() == row["expectations"]["expected_response"]
    return right / len(data)


def run_judgealign(client: Any, data: list[dict[str, Any]]) -> dict[str, Any]:
    from optimizers import GepaPromptOptimizer, load_prompt, optimize_prompts, register_prompt

    prompt = register_prompt("qa", SEED)

    def predict(question: str) -> str:
        return ask(client, load_prompt(prompt.uri).format(question=question))

    def exact_match(outputs: Any, expectations: dict[str, Any]) -> bool:
        return str(outputs).strip() == expectations["expected_response"]

    optimizer = GepaPromptOptimizer(reflection_model="openai:/fake", max_metric_calls=BUDGET)
    start = time.perf_counter()
    result = optimize_prompts(
        predict_fn=predict,
        train_data=data,
        val_data=data,
        prompt_uris=[prompt.uri],
        optimizer=optimizer,
        scorers=[exact_match],
    )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "template": result.optimized_prompts[0].template,
        "reported_final": result.final_eval_score,
        "metric_calls": result.details.get("metric_calls"),
        "stop_reason": result.details.get("stop_reason"),
    }


def run_mlflow(client: Any, data: list[dict[str, Any]]) -> dict[str, Any]:
    import mlflow
    from mlflow.genai.optimize import GepaPromptOptimizer
    from mlflow.genai.scorers import scorer

    prompt = mlflow.genai.register_prompt(name="qa", template=SEED)

    def predict(question: str) -> str:
        return ask(client, mlflow.genai.load_prompt(prompt.uri).format(question=question))

    @scorer
    def exact_match(outputs: Any, expectations: dict[str, Any]) -> bool:
        return str(outputs).strip() == expectations["expected_response"]

    optimizer = GepaPromptOptimizer(reflection_model="openai:/fake", max_metric_calls=BUDGET)
    start = time.perf_counter()
    result = mlflow.genai.optimize_prompts(
        predict_fn=predict,
        train_data=data,
        prompt_uris=[prompt.uri],
        optimizer=optimizer,
        scorers=[exact_match],
    )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "template": result.optimized_prompts[0].template,
        "reported_final": result.final_eval_score,
        "metric_calls": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--impl", required=True, choices=["judgealign", "mlflow"])
    parser.add_argument("--latency", type=float, default=0.1)
    args = parser.parse_args()
    apply_env()
    import openai

    data = dataset()
    with ServerProcess(args.latency, mode="gepa") as server:
        os.environ["OPENAI_API_BASE"] = server.base_url
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-bench-fake-key")
        runner = run_judgealign if args.impl == "judgealign" else run_mlflow
        run = runner(client, data)
        stats = server.control("stats")
        run["chat_requests"] = stats["chat"]
        run["initial_score"] = final_score(client, SEED, data)
        run["final_score"] = final_score(client, run["template"], data)
    emit({"impl": args.impl, "latency_s": args.latency, "budget": BUDGET, **run})


if __name__ == "__main__":
    main()
