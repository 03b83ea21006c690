"""Scores on another scale than [0, 1] are refused, never clamped into looking perfect.

The failure this guards against: a 1-to-5 judge without ``value_range`` says 2 on every
record; clamped to [0, 1] that reads as a perfect 1, so GEPA stops at once with
``stop_reason="perfect_score"`` and the metaprompt optimizer with "every record already
scores 1". Each optimizer, and ``optimize_prompts``, must refuse before any paid call.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from judgealign import ConfigurationError, make_judge
from judgealign.testing import FunctionModel, ModelRequest
from optimizers import (
    EvaluationResultRecord,
    GepaPromptOptimizer,
    InMemoryPromptStore,
    MetaPromptOptimizer,
    load_prompt,
    make_eval_fn,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

RECORDS = [{"inputs": {"question": f"q{i}"}} for i in range(6)]
PROMPTS = {"qa": "Answer {{ question }}."}


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("qa", PROMPTS["qa"])
    yield
    set_prompt_store(previous)


class Spy:
    """predict_fn that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, question: str) -> str:
        self.calls += 1
        return load_prompt("prompts:/qa/1").format(question=question)


def two_out_of_five(request: ModelRequest) -> dict[str, Any]:
    return {"rationale": "weak answer", "result": 2}


def reflector() -> FunctionModel:
    return FunctionModel(lambda request: "```\nAnswer {{ question }} carefully.\n```")


def make_optimizer(which: str, model: FunctionModel) -> Any:
    if which == "gepa":
        return GepaPromptOptimizer(model, max_metric_calls=40, progress=False)
    return MetaPromptOptimizer(model, max_iterations=2)


@pytest.mark.parametrize("which", ["gepa", "metaprompt"])
@pytest.mark.parametrize("kind", [int, float])
def test_unranged_numeric_judge_is_refused_before_any_paid_call(which: str, kind: type) -> None:
    judge_model = FunctionModel(two_out_of_five)
    judge = make_judge(
        name="quality",
        instructions="Rate {{ outputs }} from 1 to 5.",
        model=judge_model,
        feedback_value_type=kind,
    )
    reflection = reflector()
    optimizer = make_optimizer(which, reflection)
    predict = Spy()
    with pytest.raises(ConfigurationError, match="value_range") as caught:
        optimize_prompts(
            predict_fn=predict,
            train_data=RECORDS,
            prompt_uris=["prompts:/qa/1"],
            optimizer=optimizer,
            scorers=[judge],
        )
    assert "quality" in str(caught.value) and "aggregation" in str(caught.value)
    assert predict.calls == 0 and judge_model.requests == [] and reflection.requests == []


def test_mlflow_numeric_judge_needs_a_mapping_too() -> None:
    mlflow_judges = pytest.importorskip("mlflow.genai.judges")
    judge = mlflow_judges.make_judge(
        name="quality",
        instructions="Rate {{ outputs }} from 1 to 5.",
        feedback_value_type=int,
        model="openai:/gpt-4o-mini",
    )
    with pytest.raises(ConfigurationError, match="value_range"):
        make_eval_fn(Spy(), [judge])
    make_eval_fn(Spy(), [judge], aggregation=lambda scores, feedback: 0.5)  # mapped: fine


def test_ranged_judge_scores_two_of_five_as_a_quarter_and_gepa_keeps_going() -> None:
    judge = make_judge(
        name="quality",
        instructions="Rate {{ outputs }} from 1 to 5.",
        model=FunctionModel(two_out_of_five),
        feedback_value_type=int,
        value_range=(1, 5),
    )
    result = optimize_prompts(
        predict_fn=Spy(),
        train_data=RECORDS,
        prompt_uris=["prompts:/qa/1"],
        optimizer=GepaPromptOptimizer(reflector(), max_metric_calls=20, progress=False),
        scorers=[judge],
    )
    assert result.initial_eval_score == pytest.approx(0.25)
    assert result.details["stop_reason"] != "perfect_score"
    assert result.improved is False


def test_an_aggregation_can_map_an_unranged_judge() -> None:
    judge = make_judge(
        name="quality",
        instructions="Rate {{ outputs }} from 1 to 5.",
        model=FunctionModel(two_out_of_five),
        feedback_value_type=int,
    )
    eval_fn = make_eval_fn(
        Spy(), [judge], aggregation=lambda scores, feedback: (scores["quality"] - 1) / 4
    )
    [record] = eval_fn(PROMPTS, RECORDS[:1])
    assert record.score == pytest.approx(0.25) and record.error is None
    assert record.individual_scores == {"quality": 2.0}  # the raw verdict, as the judge said

    overflowing = make_eval_fn(Spy(), [judge], aggregation=lambda scores, feedback: 2.0)
    [bad] = overflowing(PROMPTS, RECORDS[:1])
    assert bad.score == 0.0 and bad.error is not None and "outside [0, 1]" in bad.error


def test_plain_scorer_off_the_scale_is_caught_on_the_first_record() -> None:
    def stars(outputs: str) -> int:
        return 3

    reflection = reflector()
    optimizer = GepaPromptOptimizer(reflection, max_metric_calls=40, progress=False)
    with pytest.raises(ConfigurationError, match="value_range"):
        optimize_prompts(
            predict_fn=Spy(),
            train_data=RECORDS,
            prompt_uris=["prompts:/qa/1"],
            optimizer=optimizer,
            scorers=[stars],
        )
    assert reflection.requests == []
    # Past the first record, one such score is that record's error (scored 0), not a 1.
    [record] = make_eval_fn(Spy(), [stars])(PROMPTS, RECORDS[:1])
    assert record.score == 0.0 and record.error and "outside [0, 1]" in record.error


def off_scale_eval(
    prompts: dict[str, str], dataset: Sequence[dict[str, Any]]
) -> list[EvaluationResultRecord]:
    return [
        EvaluationResultRecord(r["inputs"], "out", None, 2.0, rationales={"j": "2 of 5"})
        for r in dataset
    ]


def test_gepa_refuses_an_eval_fn_off_the_scale_instead_of_stopping_as_perfect() -> None:
    reflection = reflector()
    optimizer = GepaPromptOptimizer(reflection, max_metric_calls=40, progress=False)
    with pytest.raises(ConfigurationError, match=r"2\.0.*outside \[0, 1\].*value_range"):
        optimizer.optimize(off_scale_eval, RECORDS, dict(PROMPTS))
    assert reflection.requests == []


def test_metaprompt_refuses_an_eval_fn_off_the_scale_before_reflecting() -> None:
    reflection = reflector()
    optimizer = MetaPromptOptimizer(reflection, max_iterations=2)
    with pytest.raises(ConfigurationError, match=r"outside \[0, 1\].*value_range"):
        optimizer.optimize(off_scale_eval, RECORDS, dict(PROMPTS))
    assert reflection.requests == []
