"""optimize_program: our GEPA on a DSPy program, offline (dspy.LM -> FakeOpenAIServer)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

dspy = pytest.importorskip("dspy")

from dspy_support import (  # noqa: E402
    TwoStep,
    capitals_judge,
    examples,
    program_reply,
    reflection_model,
)
from memalign_support import DEFACTO, needs_defacto  # noqa: E402

from judgealign import ConfigurationError  # noqa: E402
from judgealign.testing import (  # noqa: E402
    FakeOpenAIServer,
    FunctionModel,
    ModelRequest,
)
from optimizers import (  # noqa: E402
    GepaPromptOptimizer,
    MetaPromptOptimizer,
    ProgramOptimizer,
    optimize_program,
)
from optimizers.programs import auto_budget  # noqa: E402


@pytest.fixture()
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=program_reply) as fake:
        lm = dspy.LM("openai/fake", api_base=fake.base_url, api_key="sk-fake", cache=False)
        with dspy.context(lm=lm):
            yield fake


def gepa(seen: list[str] | None = None, **options: Any) -> GepaPromptOptimizer:
    options.setdefault("max_metric_calls", 60)
    return GepaPromptOptimizer(reflection_model(seen), **options)


def test_gepa_improves_the_predictor_the_feedback_points_at(server: FakeOpenAIServer) -> None:
    program = TwoStep()
    original = {n: p.signature.instructions for n, p in program.named_predictors()}
    seen: list[str] = []
    data = examples()
    result = optimize_program(
        program,
        data[:4],
        data[4:],
        metric=capitals_judge().as_dspy_metric(),
        optimizer=gepa(seen),
    )
    assert result.initial_score == 0.0 and result.final_score == 1.0
    assert result.improvement == 1.0
    assert "UPPERCASE" in result.instructions_after["answer"]
    assert result.changed_predictors == ["answer"]
    assert result.instructions_before == original
    # The original program is untouched; the optimized one is a copy that scores.
    assert {n: p.signature.instructions for n, p in program.named_predictors()} == original
    assert result.optimized_program is not program
    prediction = result.optimized_program(question="What is the capital of Peru?")
    assert prediction.answer == "LIMA"
    # Hard budget; every example scored is counted.
    assert result.metric_calls == result.details["metric_calls_used"] <= 60
    # The reflection saw each predictor's own inputs and outputs, and the judge's rationale.
    answer_prompts = [t for t in seen if 'named "answer"' in t]
    assert answer_prompts
    assert '<- the prompt to improve: {"draft": "probably' in answer_prompts[0]
    assert (
        "it produced" in answer_prompts[0] and "must be written in UPPERCASE" in answer_prompts[0]
    )


def test_budget_is_never_exceeded(server: FakeOpenAIServer) -> None:
    data = examples()
    for budget in (8, 13, 21):
        result = optimize_program(
            TwoStep(),
            data[:4],
            data[4:],
            metric=capitals_judge().as_dspy_metric(),
            optimizer=gepa(max_metric_calls=budget),
        )
        assert result.metric_calls <= budget
        assert result.max_metric_calls == budget


def test_auto_budget_and_default_split(server: FakeOpenAIServer) -> None:
    assert auto_budget("light", predictors=2, val_size=3) == 3 + 6 * 2 * (6 + 3)
    data = examples()
    result = optimize_program(
        TwoStep(),
        data,
        metric=capitals_judge().as_dspy_metric(),
        auto="light",
        reflection_model=reflection_model(),
    )
    split = result.details["split"]
    assert len(split["val_ids"]) == 2 and len(split["train_ids"]) == 6  # 0.3 of 8 held out
    assert result.max_metric_calls == auto_budget("light", predictors=2, val_size=2)
    assert result.final_score == 1.0


def test_scorers_and_sme_label_scores(server: FakeOpenAIServer) -> None:
    def rating(*, outputs: Any) -> str:
        return "excellent" if str(outputs).isupper() else "fair"

    data = examples()
    result = ProgramOptimizer(gepa()).optimize(
        program=TwoStep(),
        trainset=data[:4],
        valset=data[4:],
        scorers=[rating],
        label_scores={"excellent": 1.0, "fair": 0.5, "poor": 0.0},
    )
    assert result.initial_score == 0.5 and result.final_score == 1.0


def test_a_program_error_on_one_record_scores_zero_and_the_run_goes_on(
    server: FakeOpenAIServer,
) -> None:
    class Fragile(TwoStep):
        def forward(self, question: str) -> Any:
            if "Kenya" in question:  # a validation example, not the first one
                raise RuntimeError("tool unavailable")
            return super().forward(question)

    data = examples()
    result = optimize_program(
        Fragile(), data[:4], data[4:], metric=capitals_judge().as_dspy_metric(), optimizer=gepa()
    )
    # Kenya's record scores 0 under every candidate; the others still improve.
    assert result.initial_score == 0.0 and result.final_score == pytest.approx(0.75)


def test_bad_input_is_refused_before_any_model_call(server: FakeOpenAIServer) -> None:
    metric = capitals_judge().as_dspy_metric()
    data = examples()

    class Empty(dspy.Module):
        def forward(self, question: str) -> Any:
            return dspy.Prediction(answer=question)

    cases: list[tuple[dict[str, Any], str]] = [
        ({"program": Empty(), "trainset": data}, r"has no predictors.*dspy\.Predict"),
        ({"program": object(), "trainset": data}, r"not a DSPy program"),
        (
            {"program": TwoStep(), "trainset": [dict(e) for e in data]},
            r"trainset\[0\] is a dict.*dspy\.Example\(question=\.\.\., answer=\.\.\.\)",
        ),
        (
            {"program": TwoStep(), "trainset": [dspy.Example(question="q", answer="a")]},
            r"trainset\[0\] has no input fields.*with_inputs",
        ),
        (
            {
                "program": TwoStep(),
                "trainset": data,
                "metric": capitals_judge().as_dspy_metric(inputs=["question", "country"]),
            },
            r"has no field 'country' for inputs",
        ),
        ({"program": TwoStep(), "trainset": []}, r"trainset must be a non-empty list"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ConfigurationError, match=pattern):
            optimize_program(**{"metric": metric, "optimizer": gepa(), **kwargs})
    with pytest.raises(ConfigurationError, match=r"exactly one of metric= .* and scorers="):
        optimize_program(TwoStep(), data, optimizer=gepa())
    with pytest.raises(ConfigurationError, match=r"either optimizer= or auto="):
        optimize_program(TwoStep(), data, metric=metric, optimizer=gepa(), auto="light")
    assert server.stats.get("chat", 0) == 0


def test_a_metric_that_raises_is_reported_on_the_first_example(server: FakeOpenAIServer) -> None:
    def broken(example: Any, prediction: Any, trace: Any = None) -> float:
        raise KeyError("expected_answer")

    data = examples()
    with pytest.raises(ConfigurationError, match=r"broken raised KeyError.*first example"):
        optimize_program(TwoStep(), data[:4], data[4:], metric=broken, optimizer=gepa())
    assert server.stats["chat"] == 2  # one run of the two-predictor program, then it stopped


def test_plain_float_metric_without_feedback(server: FakeOpenAIServer) -> None:
    def exact(example: Any, prediction: Any, trace: Any = None) -> bool:
        return prediction.answer == example.answer.upper()

    data = examples()
    result = optimize_program(TwoStep(), data[:4], data[4:], metric=exact, optimizer=gepa())
    assert result.initial_score == 0.0 and result.final_score == 1.0


def test_resume_from_run_dir_pays_for_nothing_twice(
    server: FakeOpenAIServer, tmp_path: Any
) -> None:
    data = examples()
    metric = capitals_judge().as_dspy_metric()
    first = optimize_program(
        TwoStep(), data[:4], data[4:], metric=metric, optimizer=gepa(run_dir=tmp_path)
    )
    chats = server.stats["chat"]
    again = optimize_program(
        TwoStep(), data[:4], data[4:], metric=metric, optimizer=gepa(run_dir=tmp_path)
    )
    assert again.details["resumed"] is True
    assert again.instructions_after == first.instructions_after
    # Only the setup check ran the program again (one example, two predictor calls).
    assert server.stats["chat"] - chats == 2 and again.metric_calls == 1


@needs_defacto
def test_long_defacto_documents_keep_the_reflection_prompt_bounded() -> None:
    with DEFACTO.open(encoding="utf-8") as handle:
        texts = [str(json.loads(line)["inputs"]["document"]) for line in list(handle)[:200]]
    documents = sorted(texts, key=len)[-6:]  # the longest: thousands of tokens each
    assert min(len(d) for d in documents) > 3_000  # longer than a reflection field

    def reply(request: Any) -> str | None:
        system = str(request.messages[0].get("content", ""))
        if "Your output fields are" not in system:
            return None
        outputs = system.split("Your output fields are", 1)[1].split("All interactions", 1)[0]
        if "`outline`" in outputs:
            return "[[ ## outline ## ]]\nwho, what, where\n\n[[ ## completed ## ]]"
        brief = "BRIEF" if "UPPERCASE" in system.rsplit("your objective is:", 1)[-1] else "brief"
        return f"[[ ## summary ## ]]\n{brief}\n\n[[ ## completed ## ]]"

    class Summarise(dspy.Module):
        def __init__(self) -> None:
            super().__init__()
            self.outline = dspy.Predict("document -> outline")
            self.write = dspy.Predict("document, outline -> summary")

        def forward(self, document: str) -> Any:
            outline = self.outline(document=document).outline
            return self.write(document=document, outline=outline)

    def upper(example: Any, prediction: Any, trace: Any = None) -> Any:
        ok = prediction.summary.isupper()
        return dspy.Prediction(score=float(ok), feedback="" if ok else "write it in UPPERCASE")

    data = [dspy.Example(document=d).with_inputs("document") for d in documents]
    seen: list[str] = []
    with FakeOpenAIServer(reply=reply) as fake:
        lm = dspy.LM("openai/fake", api_base=fake.base_url, api_key="sk-fake", cache=False)
        with dspy.context(lm=lm):
            result = optimize_program(
                Summarise(), data[:4], data[4:], metric=upper, optimizer=gepa(seen)
            )
    assert result.final_score == 1.0 and result.changed_predictors == ["write"]
    # Every document field is cut to a bounded length before the reflection model sees it.
    assert seen and max(len(text) for text in seen) < 40_000
    assert any("more characters]" in text for text in seen)


def test_the_metaprompt_optimizer_rewrites_a_program_too(server: FakeOpenAIServer) -> None:
    def engineer(request: ModelRequest) -> Any:
        return {
            "diagnosis": "the answers are not in capitals",
            "prompts": {"answer": "Answer with the city in UPPERCASE.", "draft": "Draft it."},
        }

    data = examples()
    result = optimize_program(
        TwoStep(),
        data[:4],
        data[4:],
        metric=capitals_judge().as_dspy_metric(),
        optimizer=MetaPromptOptimizer(FunctionModel(engineer), max_iterations=1),
    )
    assert result.initial_score == 0.0 and result.final_score == 1.0
    assert result.instructions_after["answer"] == "Answer with the city in UPPERCASE."


def test_program_optimizer_takes_aggregation_and_label_scores_like_optimize_program(
    server: FakeOpenAIServer,
) -> None:
    def rating(*, outputs: Any) -> str:
        return "excellent" if str(outputs).isupper() else "fair"

    def brief(*, outputs: Any) -> bool:
        return len(str(outputs)) < 6  # PARIS, ROME, LIMA pass; SANTIAGO, NAIROBI do not

    def worst(scores: dict[str, float], raw: dict[str, Any]) -> float:
        return min(scores.values())

    labels = {"excellent": 1.0, "fair": 0.5, "poor": 0.0}
    data = examples()
    built = ProgramOptimizer(gepa(), aggregation=worst, label_scores=labels)
    result = built.optimize(
        program=TwoStep(), trainset=data[:4], valset=data[4:], scorers=[rating, brief]
    )
    # Validation: Peru, Egypt, Kenya, Chile; brief fails Nairobi and Santiago, so the
    # minimum caps half of them at 0 (the mean would give 0.5 before and 0.75 after).
    assert result.initial_score == pytest.approx(0.25) and result.final_score == 0.5
    # The same through optimize(), and a setting given twice with two values is refused.
    again = ProgramOptimizer(gepa()).optimize(
        program=TwoStep(),
        trainset=data[:4],
        valset=data[4:],
        scorers=[rating, brief],
        aggregation=worst,
        label_scores=labels,
    )
    assert (again.initial_score, again.final_score) == (result.initial_score, result.final_score)
    with pytest.raises(ConfigurationError, match=r"label_scores was given to the constructor"):
        built.optimize(
            program=TwoStep(), trainset=data, scorers=[rating], label_scores={"excellent": 1}
        )
