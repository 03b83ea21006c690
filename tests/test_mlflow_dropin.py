"""MLflow's documented workflows, run on judgealign with only the imports changed.

Each test is written the way MLflow's documentation writes the workflow (MLflow's API
shapes, our own code and data): where the documentation says
``from mlflow.genai import register_prompt``, the test says
``from optimizers import register_prompt``, and nothing else changes. Models are
``judgealign.testing.FakeOpenAIServer`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow_support import Store, mlflow_store

from judgealign import ConfigurationError
from judgealign.testing import ChatRequest, FakeOpenAIServer
from optimizers import InMemoryPromptStore, set_prompt_store

__all__ = ["mlflow_store"]

# -- the offline world: one fake OpenAI endpoint plays every model ---------------------------
# The application model answers with the bare city only when its prompt asks for the city
# name alone; otherwise it answers in a sentence. A reflection model (GEPA's fenced reply,
# the metaprompt's JSON) proposes the prompt that asks for it.

CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Canada": "Ottawa",
}
HINT = "Reply with the city name only."
BETTER = "Answer the following question: {{question}}\n" + HINT


def _country(text: str) -> str | None:
    return next((c for c in CAPITALS if c in text), None)


def world(request: ChatRequest) -> Any:
    text = request.text
    schema = request.json_schema or {}
    if "You are refining one prompt" in text:  # GEPA's reflection
        return f"```\n{BETTER}\n```"
    if "result" in (schema.get("properties") or {}):  # a judge: is Paris the answer?
        labels = schema["properties"]["result"].get("enum")
        verdict = "Paris" in request.last_user
        return {"rationale": "checked", "result": labels[0] if labels else verdict}
    if "prompts" in (schema.get("properties") or {}):  # the metaprompt's reflection
        names = list(schema["properties"]["prompts"]["properties"])
        return {"diagnosis": "answers are sentences", "prompts": {n: BETTER for n in names}}
    country = _country(request.last_user)
    if country is None:
        return None
    city = CAPITALS[country]
    return city if HINT in request.last_user else f"The capital of {country} is {city}."


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    """``openai:/...`` models and ``openai.OpenAI()`` both reach the fake server."""
    with FakeOpenAIServer(reply=world) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-dropin")
        yield server


@pytest.fixture(autouse=True)
def fresh_prompt_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    yield
    set_prompt_store(previous)


def qa_dataset(countries: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "inputs": {"question": f"What is the capital of {c}?"},
            "expectations": {"expected_response": CAPITALS[c]},
        }
        for c in countries
    ]


# -- 1. the prompt registry: versions, tags, aliases, URIs -----------------------------------


def test_prompt_registry_workflow_with_tags_and_aliases() -> None:
    from optimizers import load_prompt, register_prompt, set_prompt_alias

    initial_template = """\
Summarize content you are provided with in {{ num_sentences }} sentences.
Sentences: {{ sentences }}
"""
    prompt = register_prompt(
        name="summarization-prompt",
        template=initial_template,
        commit_message="Initial commit",
        tags={"author": "author@example.com", "task": "summarization", "language": "en"},
    )
    assert (prompt.name, prompt.version) == ("summarization-prompt", 1)
    assert prompt.uri == "prompts:/summarization-prompt/1"
    assert prompt.tags["task"] == "summarization"
    assert prompt.commit_message == "Initial commit"

    new_template = initial_template + "Use a neutral tone.\n"
    updated = register_prompt(
        name="summarization-prompt",
        template=new_template,
        commit_message="Neutral tone",
        tags={"author": "author@example.com"},
    )
    assert updated.version == 2

    set_prompt_alias("summarization-prompt", alias="production", version=1)
    production = load_prompt("prompts:/summarization-prompt@production")
    assert production.version == 1
    assert production.aliases == ("production",)
    assert production.tags == {
        "author": "author@example.com",
        "task": "summarization",
        "language": "en",
    }
    assert load_prompt("prompts:/summarization-prompt@latest").version == 2
    assert load_prompt("prompts:/summarization-prompt/2").template == new_template
    assert load_prompt("summarization-prompt", version=1).template == initial_template
    assert load_prompt("summarization-prompt", version="2").version == 2

    text = production.format(num_sentences=2, sentences="The sky is blue. Water is wet.")
    assert text.startswith("Summarize content you are provided with in 2 sentences.")
    assert production.to_single_brace_format() == (
        "Summarize content you are provided with in {num_sentences} sentences.\n"
        "Sentences: {sentences}\n"
    )
    assert production.variables == {"num_sentences", "sentences"}

    set_prompt_alias("summarization-prompt", alias="production", version=2)
    assert load_prompt("prompts:/summarization-prompt@production").version == 2


def test_load_prompt_allow_missing_returns_none() -> None:
    from optimizers import load_prompt

    assert load_prompt("prompts:/never-registered/1", allow_missing=True) is None
    assert load_prompt("never-registered", allow_missing=True) is None
    with pytest.raises(ConfigurationError, match="never-registered"):
        load_prompt("prompts:/never-registered/1")


def test_load_prompt_accepts_mlflow_keywords_that_have_no_effect_here() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt("qa", "Answer: {{ question }}")
    prompt = load_prompt("prompts:/qa/1", link_to_model=False, cache_ttl_seconds=0)
    assert prompt.template == "Answer: {{ question }}"


def test_version_given_twice_is_refused_with_the_fix() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt("qa", "Answer: {{ question }}")
    with pytest.raises(ConfigurationError, match="either in the URI or as version="):
        load_prompt("prompts:/qa/1", version=1)


def test_response_format_and_model_config_are_kept_on_the_version() -> None:
    from optimizers import load_prompt, register_prompt

    register_prompt(
        name="extract",
        template="Extract the city from {{ text }}",
        response_format={"type": "object", "properties": {"city": {"type": "string"}}},
        model_config={"model_name": "gpt-4o-mini", "temperature": 0.1},
    )
    prompt = load_prompt("prompts:/extract/1")
    assert prompt.response_format == {
        "type": "object",
        "properties": {"city": {"type": "string"}},
    }
    assert prompt.model_config == {"model_name": "gpt-4o-mini", "temperature": 0.1}


def test_chat_prompt_is_refused_with_what_to_do_instead() -> None:
    from optimizers import register_prompt

    with pytest.raises(ConfigurationError, match=r"text templates.*as one text template"):
        register_prompt(
            name="chat",
            template=[
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": "{{ question }}"},
            ],
        )


def test_tags_must_be_strings() -> None:
    from optimizers import register_prompt

    with pytest.raises(ConfigurationError, match="tags must map strings to strings"):
        register_prompt("qa", "Answer: {{ question }}", tags={"score": 1})  # type: ignore[dict-item]


# -- 2. optimize_prompts with GEPA and metaprompt, custom scorers, one-argument aggregation ---


def test_gepa_workflow_from_mlflow_docs(openai_server: FakeOpenAIServer) -> None:
    import openai

    from optimizers import GepaPromptOptimizer, load_prompt, optimize_prompts, register_prompt

    prompt = register_prompt(
        name="qa",
        template="Answer the following question: {{question}}",
        model_config={"model_name": "gpt-4o-mini", "temperature": 0.0},
    )

    def predict_fn(question: str) -> str:
        prompt = load_prompt("prompts:/qa/1")
        completion = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt.format(question=question)}],
        )
        return completion.choices[0].message.content or ""

    def exact_match(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    result = optimize_prompts(
        predict_fn=predict_fn,
        train_data=qa_dataset(list(CAPITALS)),
        prompt_uris=[prompt.uri],
        optimizer=GepaPromptOptimizer(
            reflection_model="openai:/gpt-4o",
            max_metric_calls=30,
            display_progress_bar=False,
            gepa_kwargs={"reflection_minibatch_size": 2, "seed": 1},
        ),
        scorers=[exact_match],
    )

    assert result.optimized_prompts[0].template == BETTER
    assert result.initial_eval_score == 0.0
    assert result.final_eval_score == 1.0
    optimized = load_prompt(result.optimized_prompts[0].uri)
    assert optimized.template == BETTER
    assert optimized.model_config == {"model_name": "gpt-4o-mini", "temperature": 0.0}


def test_gepa_kwargs_are_mapped_and_unknown_keys_refused_by_name() -> None:
    from optimizers import GepaPromptOptimizer

    optimizer = GepaPromptOptimizer(
        "openai:/gpt-4o",
        40,
        True,
        {"reflection_minibatch_size": 5, "use_merge": True, "max_merge_invocations": 2},
    )
    assert optimizer.settings.minibatch_size == 5
    assert optimizer.settings.use_merge is True
    assert optimizer.settings.max_merge_attempts == 2
    assert optimizer.settings.max_metric_calls == 40
    assert optimizer.progress is True
    with pytest.raises(ConfigurationError, match=r"'candidate_selection_strategy'.*Supported"):
        GepaPromptOptimizer("openai:/gpt-4o", gepa_kwargs={"candidate_selection_strategy": "x"})
    with pytest.raises(ConfigurationError, match="pass val_data= to optimize_prompts"):
        GepaPromptOptimizer("openai:/gpt-4o", gepa_kwargs={"valset": []})


def test_metaprompt_workflow_with_weighted_one_argument_aggregation(
    openai_server: FakeOpenAIServer,
) -> None:
    import openai

    from judgealign import Feedback
    from optimizers import MetaPromptOptimizer, load_prompt, optimize_prompts, register_prompt

    prompt = register_prompt(
        name="qa",
        template="Answer the following question: {{question}}",
    )

    def predict_fn(question: str) -> str:
        prompt = load_prompt("prompts:/qa@latest")
        completion = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt.format(question=question)}],
        )
        return completion.choices[0].message.content or ""

    def correct(outputs: str, expectations: dict[str, Any]) -> Feedback:
        ok = expectations["expected_response"] in outputs
        return Feedback(name="correct", value="yes" if ok else "no", rationale="checked")

    def brevity(outputs: str) -> float:
        return min(1.0, 2 / max(1, len(outputs.split())))

    seen: list[dict[str, Any]] = []

    def weighted_objective(scores: dict[str, Any]) -> float:
        seen.append(scores)
        correctness = 1.0 if scores["correct"].feedback.value == "yes" else 0.0
        return 0.7 * correctness + 0.3 * scores["brevity"]

    result = optimize_prompts(
        predict_fn=predict_fn,
        train_data=qa_dataset(["France", "Germany", "Italy", "Spain"]),
        prompt_uris=[prompt.uri],
        optimizer=MetaPromptOptimizer(
            reflection_model="openai:/gpt-4o", lm_kwargs={"temperature": 0.2}
        ),
        scorers=[correct, brevity],
        aggregation=weighted_objective,
    )

    # One argument, MLflow's contract: scorer name -> the scorer's own result.
    assert isinstance(seen[0]["correct"], Feedback)
    assert isinstance(seen[0]["brevity"], float)
    # Sentences are correct but long: 0.7 + 0.3 * 2/6; the bare city scores 1.
    assert result.initial_eval_score == pytest.approx(0.7 + 0.3 * 2 / 6)
    assert result.final_eval_score == pytest.approx(1.0)
    assert result.optimized_prompts[0].template == BETTER
    bodies = [r.body for r in openai_server.requests if isinstance(r.body, dict)]
    reflection = [b for b in bodies if "prompt_revision" in json.dumps(b.get("response_format"))]
    assert reflection and all(b.get("temperature") == 0.2 for b in reflection)


def test_functions_decorated_with_mlflows_scorer_work_as_scorers() -> None:
    from mlflow.genai.scorers import scorer

    from optimizers import make_eval_fn

    @scorer
    def exact_match(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    evaluate = make_eval_fn(lambda question: "Paris", [exact_match])
    records = qa_dataset(["France", "Germany"])
    assert [r.score for r in evaluate({}, records)] == [1.0, 0.0]


def test_two_argument_aggregation_still_gets_numbers_then_results() -> None:
    from optimizers import make_eval_fn

    calls: list[tuple[dict[str, float], dict[str, Any]]] = []

    def aggregation(scores: dict[str, float], feedback: dict[str, Any]) -> float:
        calls.append((scores, feedback))
        return scores["flag"]

    def flag(outputs: str) -> str:
        return "yes" if outputs else "no"

    evaluate = make_eval_fn(lambda q: q, [flag], aggregation=aggregation)
    [record] = evaluate({}, [{"inputs": {"q": "x"}}])
    assert record.score == 1.0
    assert calls == [({"flag": 1.0}, {"flag": "yes"})]


def test_memalign_optimizer_takes_mlflows_arguments(openai_server: FakeOpenAIServer) -> None:
    from judgealign import MemAlignOptimizer

    optimizer = MemAlignOptimizer(
        reflection_lm="openai:/gpt-4o-mini",
        retrieval_k=3,
        embedding_model="openai:/text-embedding-3-small",
        embedding_dim=256,
    )
    assert optimizer.reflection_model == "openai:/gpt-4o-mini"
    assert optimizer.retrieval_k == 3
    assert optimizer.embedder.embed(["What is the capital of France?"]).shape == (1, 256)
    [request] = [r for r in openai_server.requests if "embeddings" in r.path]
    assert request.body["dimensions"] == 256  # asked of the model, not cut afterwards

    positional = MemAlignOptimizer("openai:/gpt-4o-mini", 2, "hashing", 64)
    assert positional.embedder.dimension == 64


def test_embedding_dim_that_the_embedder_cannot_produce_is_refused() -> None:
    import numpy as np

    from judgealign import MemAlignOptimizer

    class FixedEmbedder:
        id = "fixed:/384"
        dimension = 384

        def embed(self, texts: list[str]) -> Any:
            return np.ones((len(texts), 384), dtype=np.float32) / np.sqrt(384)

    optimizer = MemAlignOptimizer(embedding_model=FixedEmbedder(), embedding_dim=512)
    with pytest.raises(ConfigurationError, match=r"embedding_dim=512.*384-dimensional"):
        _ = optimizer.embedder
    with pytest.raises(ConfigurationError, match=r"reflection_lm= .* or reflection_model="):
        MemAlignOptimizer(reflection_lm="openai:/a", reflection_model="openai:/b")


# -- 3. prompts registered with MLflow are found; the optimized version is registered there --


def test_prompt_registered_in_mlflow_is_optimized_and_versioned_there(
    mlflow_store: Store, openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import openai

    monkeypatch.setattr(
        "optimizers.prompts._registry._store", None
    )  # a fresh process's default store
    # Registered earlier, the MLflow way.
    mlflow.genai.register_prompt(
        name="qa", template="Answer the following question: {{question}}", tags={"team": "a"}
    )

    from optimizers import MetaPromptOptimizer, load_prompt, optimize_prompts

    def predict_fn(question: str) -> str:
        prompt = load_prompt("prompts:/qa/1")
        completion = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt.format(question=question)}],
        )
        return completion.choices[0].message.content or ""

    def exact_match(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    result = optimize_prompts(
        predict_fn=predict_fn,
        train_data=qa_dataset(["France", "Germany", "Italy"]),
        prompt_uris=["prompts:/qa/1"],
        optimizer=MetaPromptOptimizer(reflection_model="openai:/gpt-4o"),
        scorers=[exact_match],
    )

    assert (result.initial_eval_score, result.final_eval_score) == (0.0, 1.0)
    assert result.optimized_prompts[0].uri == "prompts:/qa/2"
    stored = mlflow.genai.load_prompt("prompts:/qa/2")
    assert stored.template == BETTER
    assert load_prompt("prompts:/qa@latest").version == 2
    assert load_prompt("prompts:/qa/1").to_single_brace_format() == (
        "Answer the following question: {question}"
    )


def test_without_mlflow_configured_prompts_stay_in_the_process(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judgealign.mlflow_integration import configured_tracking_uri
    from optimizers import load_prompt, register_prompt

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    monkeypatch.setattr("optimizers.prompts._registry._store", None)
    assert configured_tracking_uri() is None
    register_prompt("qa", "Answer: {{ question }}")
    assert load_prompt("prompts:/qa/1").template == "Answer: {{ question }}"
    assert not (tmp_path / "mlflow.db").exists()
    with pytest.raises(ConfigurationError, match="No prompt named 'other'"):
        load_prompt("prompts:/other/1")

    (tmp_path / "mlflow.db").touch()  # MLflow's default store in the working directory
    assert configured_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


# -- 4. the judge alignment cookbook: evaluate -> expert feedback -> align -> GEPA -> alias ---
# The application hedges between two cities for some countries under the original prompt.
# The judge is lenient until the experts' guideline is in its prompt; the experts reject
# hedged answers.

HEDGES = {
    "France": "Lyon",
    "Australia": "Sydney",
    "Canada": "Toronto",
    "Turkey": "Istanbul",
    "Brazil": "Rio de Janeiro",
}
COOKBOOK_CAPITALS = {
    **{c: CAPITALS[c] for c in ("France", "Canada", "Japan")},
    "Australia": "Canberra",
    "Peru": "Lima",
    "Egypt": "Cairo",
    "Turkey": "Ankara",
    "Kenya": "Nairobi",
    "Brazil": "Brasilia",
}
ORIGINAL = "Question: {{ question }}"
IMPROVED = "Name exactly one city, the capital, with no alternatives. Question: {{ question }}"
GUIDELINE = "Hedging between two cities is not an answer, even when one of them is right."
_RECORD = re.compile(r"<record>\n(.*)\n</record>", re.DOTALL)
_IDS = re.compile(r'"id": "(tr-[^"]+)"')


def cookbook_models(request: ChatRequest) -> Any:
    system = str(request.messages[0]["content"]) if request.messages else ""
    if "impartial evaluator" in system:  # the judge
        record = json.loads(_RECORD.search(request.last_user).group(1))  # type: ignore[union-attr]
        answer = str(record.get("outputs", ""))
        country = re.search(r"capital of (\w+)", json.dumps(record["inputs"])).group(1)  # type: ignore[union-attr]
        hedged = " or " in answer
        strict = GUIDELINE in system
        verdict = COOKBOOK_CAPITALS[country] in answer and not (strict and hedged)
        return {"rationale": "hedged" if hedged else "plain", "result": verdict}
    if "calibrating" in system:  # MemAlign's guideline distillation
        return {"guidelines": [{"text": GUIDELINE, "source_ids": _IDS.findall(request.last_user)}]}
    if "You are refining one prompt" in request.text:  # GEPA's reflection
        return f"```\n{IMPROVED}\n```"
    country = re.search(r"capital of (\w+)", request.last_user).group(1)  # type: ignore[union-attr]
    capital, rival = COOKBOOK_CAPITALS[country], HEDGES.get(country)
    if rival is None or "exactly one city" in request.last_user:
        return f"{capital}."
    return f"{capital} or {rival}."


def expert_label(answer: str) -> tuple[bool, str]:
    if " or " in answer:
        return False, GUIDELINE
    return True, "One city, the right one."


def test_judge_alignment_cookbook_end_to_end(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "optimizers.prompts._registry._store", None
    )  # a fresh process's default store
    with FakeOpenAIServer(reply=cookbook_models) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-cookbook")
        _cookbook()


def _cookbook() -> None:
    import mlflow
    import openai
    from mlflow.entities import AssessmentSource, AssessmentSourceType

    # The only lines that differ from MLflow's documentation: where the names come from.
    from judgealign import MemAlignOptimizer, make_judge
    from judgealign.mlflow_integration import get_scorer
    from optimizers import (
        GepaPromptOptimizer,
        load_prompt,
        optimize_prompts,
        register_prompt,
        set_prompt_alias,
    )

    train = ["France", "Japan", "Australia", "Peru", "Canada", "Egypt"]
    held_out = ["Turkey", "Kenya", "Brazil"]

    prompt = register_prompt(name="qa", template=ORIGINAL, commit_message="first")
    set_prompt_alias("qa", alias="production", version=prompt.version)

    def predict_fn(question: str) -> str:
        prompt = load_prompt("prompts:/qa@production")
        completion = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt.format(question=question)}],
        )
        return completion.choices[0].message.content or ""

    judge = make_judge(
        name="correct",
        instructions="Does {{ outputs }} correctly answer the question in {{ inputs }}?",
        feedback_value_type=bool,
        model="openai:/gpt-4o-mini",
    )

    # 1. Evaluate with the judge inside MLflow.
    eval_data = [{"inputs": {"question": f"What is the capital of {c}?"}} for c in train]
    results = mlflow.genai.evaluate(data=eval_data, predict_fn=predict_fn, scorers=[judge])
    assert results.metrics["correct/mean"] == 1.0  # the generic judge passes hedged answers

    # 2. Experts label the traces.
    traces = mlflow.search_traces(run_id=results.run_id, return_type="list")
    for trace in traces:
        value, rationale = expert_label(trace.data.spans[0].outputs)
        mlflow.log_feedback(
            trace_id=trace.info.trace_id,
            name="correct",
            value=value,
            rationale=rationale,
            source=AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="expert"),
        )

    # 3. Align the judge with the labelled traces.
    traces = mlflow.search_traces(run_id=results.run_id, return_type="list")
    optimizer = MemAlignOptimizer(
        reflection_lm="openai:/gpt-4o-mini",
        retrieval_k=2,
        embedding_model="openai:/text-embedding-3-small",
        embedding_dim=64,
    )
    aligned_judge = judge.align(traces=traces, optimizer=optimizer)
    assert GUIDELINE in aligned_judge.instructions
    assert [g.guideline_text for g in aligned_judge.guidelines] == [GUIDELINE]

    # 4. Register the aligned judge and load it back, memory included.
    aligned_judge.register(name="correct_aligned")
    loaded = get_scorer(name="correct_aligned")
    assert loaded.instructions == aligned_judge.instructions
    hedged = {
        "inputs": {"question": "What is the capital of Turkey?"},
        "outputs": "Ankara or Istanbul.",
    }
    assert judge(**hedged).value is True
    assert loaded(**hedged).value is False

    # Forgetting and re-learning one expert's feedback, by trace.
    forgotten = aligned_judge.unalign(traces=traces[:1])
    assert traces[0].info.trace_id not in forgotten.record_ids
    aligned_judge = forgotten.align(traces=traces[:1])
    assert traces[0].info.trace_id in aligned_judge.record_ids

    # 5. The held-out baseline, with the aligned judge.
    held_data = [{"inputs": {"question": f"What is the capital of {c}?"}} for c in held_out]
    before = mlflow.genai.evaluate(data=held_data, predict_fn=predict_fn, scorers=[aligned_judge])
    assert before.metrics["correct/mean"] == pytest.approx(1 / 3)

    # 6. Optimize the prompt with GEPA and the aligned judge as the objective.
    result = optimize_prompts(
        predict_fn=predict_fn,
        train_data=[{"inputs": {"question": f"What is the capital of {c}?"}} for c in train],
        prompt_uris=["prompts:/qa@production"],
        optimizer=GepaPromptOptimizer(reflection_model="openai:/gpt-4o", max_metric_calls=40),
        scorers=[aligned_judge],
    )
    optimized = result.optimized_prompts[0]
    assert (optimized.name, optimized.version, optimized.template) == ("qa", 2, IMPROVED)
    assert mlflow.genai.load_prompt("prompts:/qa/2").template == IMPROVED  # in MLflow

    # 7. Promote it, then compare on the held-out questions.
    set_prompt_alias("qa", alias="production", version=optimized.version)
    after = mlflow.genai.evaluate(data=held_data, predict_fn=predict_fn, scorers=[aligned_judge])
    assert after.metrics["correct/mean"] == 1.0
    assert mlflow.genai.load_prompt("prompts:/qa@production").version == 2


def test_judges_reach_mlflow_evaluate_without_importing_mlflow_early() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from judgealign import make_judge\n"
        "judge = make_judge(name='ok', instructions='Is {{ outputs }} fine?', model='openai:/x')\n"
        "print('mlflow' in sys.modules)\n"
        "from mlflow.genai.scorers.validation import validate_scorers\n"
        "[scorer] = validate_scorers([judge])\n"
        "print(type(scorer).__name__, scorer.name, scorer.aggregations)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "False"
    assert out[1] == "JudgeScorer ok ['mean']"


# -- 5. data in MLflow's shapes ------------------------------------------------------------


def test_train_data_as_an_mlflow_evaluation_dataset_and_a_dataframe(
    mlflow_store: Store, openai_server: FakeOpenAIServer
) -> None:
    import openai
    import pandas as pd
    from mlflow.genai.datasets import create_dataset

    from optimizers import MetaPromptOptimizer, load_prompt, optimize_prompts, register_prompt

    dataset = create_dataset(name="capitals")
    dataset.merge_records(qa_dataset(["France", "Germany", "Italy"]))
    frame = pd.DataFrame(qa_dataset(["Spain", "Japan"]))

    prompt = register_prompt(name="qa", template="Answer the following question: {{question}}")

    def predict_fn(question: str) -> str:
        prompt = load_prompt("prompts:/qa/1")
        completion = openai.OpenAI().chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt.format(question=question)}],
        )
        return completion.choices[0].message.content or ""

    def exact_match(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    for train_data in (dataset, frame):
        result = optimize_prompts(
            predict_fn=predict_fn,
            train_data=train_data,
            prompt_uris=[prompt.uri],
            optimizer=MetaPromptOptimizer(reflection_model="openai:/gpt-4o"),
            scorers=[exact_match],
        )
        assert (result.initial_eval_score, result.final_eval_score) == (0.0, 1.0)


def test_judge_evaluate_takes_a_dataframe_and_an_mlflow_evaluation_dataset(
    mlflow_store: Store, openai_server: FakeOpenAIServer
) -> None:
    import pandas as pd
    from mlflow.genai.datasets import create_dataset

    from judgealign import make_judge

    judge = make_judge(
        name="paris",
        instructions="Is {{ outputs }} the right answer to {{ inputs }}?",
        feedback_value_type=bool,
        model="openai:/gpt-4o-mini",
    )
    rows = [
        {"inputs": {"question": "Capital of France?"}, "outputs": "Paris"},
        {"inputs": {"question": "Capital of Japan?"}, "outputs": "Kyoto"},
    ]
    assert judge.evaluate(pd.DataFrame(rows)).values == [True, False]
    dataset = create_dataset(name="answers")
    dataset.merge_records(rows)
    assert sorted(judge.evaluate(dataset).values) == [False, True]


# -- 6. where we differ on purpose, the message says so ---------------------------------------


def test_deliberate_differences_say_so(openai_server: FakeOpenAIServer) -> None:
    from optimizers import (
        MetaPromptOptimizer,
        PromptOptimizationWarning,
        optimize_prompts,
        register_prompt,
    )

    prompt = register_prompt(name="qa", template="Answer the following question: {{question}}")

    def ignores_the_prompt(question: str) -> str:
        return "Paris"

    def exact_match(outputs: str, expectations: dict[str, Any]) -> bool:
        return outputs == expectations["expected_response"]

    with pytest.raises(ConfigurationError, match="MLflow would run anyway; judgealign refuses"):
        optimize_prompts(
            predict_fn=ignores_the_prompt,
            train_data=qa_dataset(["France"]),
            prompt_uris=[prompt.uri],
            optimizer=MetaPromptOptimizer(reflection_model="openai:/gpt-4o"),
            scorers=[exact_match],
        )

    from optimizers import load_prompt

    def perfect_already(question: str) -> str:
        load_prompt("prompts:/qa/1").format(question=question)
        return CAPITALS[_country(question) or ""]

    with pytest.warns(PromptOptimizationWarning, match="unlike MLflow, judgealign registers"):
        result = optimize_prompts(
            predict_fn=perfect_already,
            train_data=qa_dataset(["France", "Japan"]),
            prompt_uris=[prompt.uri],
            optimizer=MetaPromptOptimizer(reflection_model="openai:/gpt-4o"),
            scorers=[exact_match],
        )
    assert not result.improved and result.optimized_prompts[0].version == 1


# -- 7. long real records (DeFacto): registered aligned judge comes back whole -----------------


def defacto_models(request: ChatRequest) -> Any:
    system = str(request.messages[0]["content"]) if request.messages else ""
    if "calibrating" in system:
        ids = re.findall(r'"id": "([^"]+)"', request.last_user)
        return {"guidelines": [{"text": "Any unsupported claim fails.", "source_ids": ids[:2]}]}
    return {"rationale": "checked", "result": "not" not in request.last_user[-200:]}


def test_defacto_aligned_judge_registers_and_loads_whole(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memalign_support import DEFACTO, INSTRUCTIONS, defacto_records

    if not DEFACTO.is_file():
        pytest.skip(f"{DEFACTO} not found")
    from judgealign import MemAlignOptimizer, make_judge
    from judgealign.mlflow_integration import get_scorer

    with FakeOpenAIServer(reply=defacto_models) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-defacto")
        judge = make_judge(
            name="consistent",
            instructions=INSTRUCTIONS,
            feedback_value_type=bool,
            model="openai:/gpt-4o-mini",
        )
        longest = sorted(defacto_records(judge, 200), key=lambda r: -len(str(r.inputs)))
        records = longest[:8]
        assert min(len(str(r.inputs)) for r in records) > 3500  # long documents
        optimizer = MemAlignOptimizer(
            reflection_lm="openai:/gpt-4o-mini", embedding_model="hashing", embedding_dim=128
        )
        aligned = judge.align(traces=records, optimizer=optimizer)
        aligned.register(name="consistent_aligned", experiment_id=mlflow_store.experiment_id)
        loaded = get_scorer(name="consistent_aligned", experiment_id=mlflow_store.experiment_id)

        assert loaded.record_ids == aligned.record_ids and len(loaded.record_ids) == 8
        assert loaded.instructions == aligned.instructions
        assert "Any unsupported claim fails." in loaded.instructions
        assert loaded.embedder_id == aligned.embedder_id == "hashing:/char3-5+word@128"
        probe = records[0]
        kwargs = {"inputs": probe.inputs, "outputs": probe.outputs}
        assert loaded(**kwargs).value == aligned(**kwargs).value


# -- 8. make_judge with MLflow's arguments ------------------------------------------------


def test_make_judge_takes_mlflows_arguments(openai_server: FakeOpenAIServer) -> None:
    from typing import Literal

    from judgealign import make_judge

    judge = make_judge(
        "tone",
        "Is the tone of {{ outputs }} appropriate for {{ inputs }}?",
        "openai:/gpt-4o-mini",
        description="Tone check",
        feedback_value_type=Literal["good", "bad"],
        inference_params={"temperature": 0.0},
        extra_headers={"X-Team": "support"},
        generate_rationale_first=True,
    )
    assert judge.description == "Tone check"
    feedback = judge(inputs={"question": "Where is Paris?"}, outputs="In France.")
    assert feedback.value in ("good", "bad")
    chats = [r for r in openai_server.requests if "chat" in r.path]
    assert chats and all(r.headers.get("X-Team") == "support" for r in chats)
    assert all(r.body["temperature"] == 0.0 for r in chats)

    text_judge = make_judge("x", "{{ outputs }}?", "openai:/x", feedback_value_type=None)
    assert text_judge.value_spec.kind == "str"  # None means str, as in MLflow
    with pytest.raises(ConfigurationError, match="include_timing_in_conversation=True"):
        make_judge("x", "{{ conversation }}?", "openai:/x", include_timing_in_conversation=True)
    with pytest.raises(ConfigurationError, match="model_api='decisions' is not supported"):
        make_judge("x", "{{ outputs }}?", "openai:/x", model_api="decisions")
