"""The seed workflow, end to end, on a temporary MLflow sqlite store, offline.

Register a prompt; evaluate an application with a judge inside ``mlflow.genai.evaluate``;
log expert (HUMAN) feedback on the traces; align the judge from those traces; optimize
the prompt with the aligned judge; register and promote only if improved; compare on
held-out records. One fake OpenAI server plays every model:

* the application answers a capital question plainly, except that, under the original
  prompt, it hedges between two cities for some countries;
* the judge is lenient (any answer naming the capital passes) unless its prompt carries
  expert guidelines, which make it reject hedged answers, as the experts do;
* the reflection models return one guideline (alignment) and one better prompt (metaprompt).
"""

from __future__ import annotations

import json
import re
from typing import Any

import mlflow
import pytest
from mlflow.entities import AssessmentSource, AssessmentSourceType
from mlflow_support import Store, artifact_names, mlflow_store, runs_by_operation

import optimizers
from judgealign import MemAlignOptimizer, compare_judges, make_judge, resolve_model, use_tracker
from judgealign.mlflow_integration import (
    MlflowPromptStore,
    MlflowTracker,
    as_scorer,
    promote_if_improved,
    records_from_traces,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer

__all__ = ["mlflow_store"]

SECRET = "sk-test-SECRET-123"
ORIGINAL = "Question: {{ question }}"
IMPROVED = "Name exactly one city, the capital, with no alternatives. Question: {{ question }}"
GUIDELINE = "Hedging between two cities is not an answer, even when one of them is right."
CAPITALS = {
    "France": ("Paris", "Lyon"),
    "Australia": ("Canberra", "Sydney"),
    "Canada": ("Ottawa", "Toronto"),
    "Turkey": ("Ankara", "Istanbul"),
    "Japan": ("Tokyo", None),
    "Peru": ("Lima", None),
    "Brazil": ("Brasilia", "Rio de Janeiro"),
    "Egypt": ("Cairo", None),
    "Kenya": ("Nairobi", None),
    "Vietnam": ("Hanoi", "Ho Chi Minh City"),
}
TRAIN = ["France", "Japan", "Australia", "Peru", "Canada", "Egypt"]
HELD_OUT = ["Turkey", "Kenya", "Brazil", "Vietnam"]
_RECORD = re.compile(r"<record>\n(.*)\n</record>", re.DOTALL)
_IDS = re.compile(r'"id": "([^"]+)"')


def question(country: str) -> str:
    return f"What is the capital of {country}?"


def fake_models(request: ChatRequest) -> Any:
    system = request.messages[0]["content"] if request.messages else ""
    schema = request.json_schema or {}
    if "impartial evaluator" in system:
        record = json.loads(_RECORD.search(request.last_user).group(1))  # type: ignore[union-attr]
        answer = str(record.get("outputs", ""))
        country = re.search(r"capital of (\w+)", json.dumps(record["inputs"])).group(1)  # type: ignore[union-attr]
        right = CAPITALS[country][0] in answer
        hedged = " or " in answer
        strict = "Guidelines from experts" in system
        verdict = right and not (strict and hedged)
        return {"rationale": "hedged" if hedged else "plain", "result": verdict}
    if "calibrating" in system:  # guideline distillation
        return {"guidelines": [{"text": GUIDELINE, "source_ids": _IDS.findall(request.last_user)}]}
    if "prompts" in schema.get("properties", {}):
        return {"diagnosis": "The answers hedge.", "prompts": {"qa": IMPROVED}}
    text = request.last_user
    country = re.search(r"capital of (\w+)", text).group(1)  # type: ignore[union-attr]
    capital, rival = CAPITALS[country]
    if rival is None or "exactly one city" in text:
        return f"{capital}."
    return f"{capital} or {rival}."


def expert_label(answer: str) -> tuple[bool, str]:
    if " or " in answer:
        return False, GUIDELINE
    return True, "One city, the right one."


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # read by litellm; passed nowhere explicitly
    with FakeOpenAIServer(reply=fake_models) as fake:
        yield fake


def test_seed_workflow_end_to_end(mlflow_store: Store, server: FakeOpenAIServer) -> None:
    model = resolve_model("openai:/fake", base_url=server.base_url)
    prompts = MlflowPromptStore()
    previous_store = optimizers.set_prompt_store(prompts)
    tracker = MlflowTracker()
    try:
        with use_tracker(tracker):
            _workflow(mlflow_store, server, model, prompts, tracker)
    finally:
        optimizers.set_prompt_store(previous_store)
        tracker.close()
    # Nothing written anywhere in the store holds the API key.
    mlflow.flush_trace_async_logging()
    dump = mlflow_store.text_dump()
    assert "What is the capital of France?" in dump  # the dump does see what was written
    assert SECRET not in dump


def _workflow(
    store: Store,
    server: FakeOpenAIServer,
    model: Any,
    prompts: MlflowPromptStore,
    tracker: MlflowTracker,
) -> None:
    # 1. Register the prompt and serve version 1 under the "production" alias.
    v1 = prompts.register("qa", ORIGINAL, commit_message="first")
    prompts.set_alias("qa", "production", v1.version or 0)
    assert mlflow.genai.load_prompt("prompts:/qa@production").template == ORIGINAL

    def predict_fn(question: str) -> str:
        prompt = mlflow.genai.load_prompt("prompts:/qa@production")
        return model.complete([{"role": "user", "content": prompt.format(question=question)}]).text

    judge = make_judge(
        name="correct",
        instructions="Does {{ outputs }} correctly answer the question in {{ inputs }}?",
        model="openai:/fake",
        base_url=server.base_url,
    )

    # 2. Evaluate inside MLflow with the judge as a scorer.
    data = [{"inputs": {"question": question(c)}} for c in TRAIN]
    evaluation = mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[as_scorer(judge)])
    frame = evaluation.result_df
    assert list(frame["correct/value"]) == [True] * len(TRAIN)  # the base judge is lenient
    assert evaluation.metrics["correct/mean"] == 1.0
    traces = mlflow.search_traces(run_id=evaluation.run_id, return_type="list")
    verdicts = [a for t in traces for a in t.info.assessments if a.name == "correct"]
    assert len(verdicts) == len(TRAIN)
    assert {a.source.source_type for a in verdicts} == {"LLM_JUDGE"}
    assert {a.source.source_id for a in verdicts} == {"openai:/fake"}
    assert all(a.metadata and a.metadata["model"] == "openai:/fake" for a in verdicts)

    # 3. Experts label the traces (HUMAN feedback named like the judge).
    mlflow.flush_trace_async_logging()
    labels = {}
    for trace in traces:
        answer = trace.data.spans[0].outputs
        value, why = expert_label(answer)
        labels[trace.info.trace_id] = value
        mlflow.log_feedback(
            trace_id=trace.info.trace_id,
            name="correct",
            value=value,
            rationale=why,
            source=AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="expert"),
        )
    assert sorted(labels.values()) == [False, False, False, True, True, True]

    # 4. Align the judge from the traces.
    records = records_from_traces(frame, judge=judge)
    assert records.ok and {r.id: r.label for r in records} == labels
    assert all(r.annotator == "expert" and r.inputs["question"] for r in records)
    optimizer = MemAlignOptimizer(reflection_model=model, embedding_model="hashing", retrieval_k=2)
    aligned = judge.align(list(records), optimizer=optimizer)
    assert [g.text for g in aligned.guidelines] == [GUIDELINE]
    hedged = {"inputs": {"question": question("Turkey")}, "outputs": "Ankara or Istanbul."}
    assert judge(**hedged).value is True
    assert aligned(**hedged).value is False

    # 5. Held-out comparison of the judges: alignment fixed the hedged answers.
    held_out = []
    for country in HELD_OUT:
        answer = predict_fn(question(country))
        value, why = expert_label(answer)
        held_out.append(
            {
                "id": country,
                "inputs": {"question": question(country)},
                "outputs": answer,
                "label": value,
                "rationale": why,
            }
        )
    comparison = compare_judges(judge, aligned, held_out, n_bootstrap=0)
    assert comparison.base.accuracy == 0.25 and comparison.aligned.accuracy == 1.0
    assert comparison.fixed_ids == ("Turkey", "Brazil", "Vietnam")

    # 6. Optimize the prompt with the aligned judge; MLflow-style predict_fn sees candidates.
    result = optimizers.optimize_prompts(
        predict_fn=predict_fn,
        train_data=[{"inputs": {"question": question(c)}} for c in TRAIN],
        val_data=[{"inputs": {"question": question(c)}} for c in HELD_OUT],
        prompt_uris=["prompts:/qa@production"],
        optimizer=optimizers.MetaPromptOptimizer(model, max_iterations=1),
        scorers=[aligned],
        max_workers=2,
    )
    assert result.improved
    assert result.initial_eval_score == 0.25 and result.final_eval_score == 1.0  # on val_data
    v2 = result.optimized_prompts[0]
    assert (v2.name, v2.version, v2.stored_template) == ("qa", 2, IMPROVED)
    registered = mlflow.genai.load_prompt("prompts:/qa/2")
    assert registered.tags["judgealign.optimizer"] == "MetaPromptOptimizer"
    assert registered.tags["judgealign.scorers"] == "correct"
    assert float(registered.tags["judgealign.final_score"]) == 1.0
    assert mlflow.genai.load_prompt("prompts:/qa@production").version == 1  # not yet moved

    # 7. Promote only if better on held-out data: v2 is, and a worse one is then refused.
    held = [{"inputs": {"question": question(c)}} for c in HELD_OUT]
    promotion = promote_if_improved(
        result, alias="production", data=held, predict_fn=predict_fn, scorers=[aligned]
    )
    assert promotion.promoted and promotion.evidence == "held_out"
    assert (promotion.baseline_score, promotion.candidate_score) == (0.25, 1.0)
    assert mlflow.genai.load_prompt("prompts:/qa@production").version == 2
    refused = promote_if_improved(
        "prompts:/qa/1", alias="production", data=held, predict_fn=predict_fn, scorers=[aligned]
    )
    assert not refused.promoted and refused.baselines == {"qa": 2}
    assert mlflow.genai.load_prompt("prompts:/qa@production").version == 2
    assert [predict_fn(question(c)) for c in HELD_OUT] == [
        "Ankara.",
        "Nairobi.",
        "Brasilia.",
        "Hanoi.",
    ]

    # 8. Tracking: the optimization run has its parameters, curve and prompts.
    assert tracker.flush(timeout=60)
    assert tracker.failures == 0
    runs = runs_by_operation(store)
    (optimize_run,) = runs["optimize_prompts"]
    assert optimize_run.data.params["optimizer"] == "MetaPromptOptimizer"
    assert optimize_run.data.metrics["final_eval_score"] == 1.0
    history = mlflow.MlflowClient().get_metric_history(optimize_run.info.run_id, "best_score")
    assert [m.value for m in sorted(history, key=lambda m: m.step)][-1] == 1.0
    names = artifact_names(optimize_run.info.run_id)
    assert {"optimization_curve.png", "prompts/qa.txt", "history.json"} <= names
    evaluations = runs["evaluate"]
    assert evaluations, "compare_judges evaluated both judges through the tracker"
    labelled = [r for r in evaluations if "agreement.accuracy" in r.data.metrics]
    # The base judge (0.25) and the aligned judge (1.0) each report their evaluation.
    assert sorted(r.data.metrics["agreement.accuracy"] for r in labelled) == [0.25, 1.0]
