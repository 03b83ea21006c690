"""Judges as DSPy metrics: both signatures, field mapping, errors as data, combination."""

from __future__ import annotations

import json
import warnings
from typing import Any, Literal

import pytest

dspy = pytest.importorskip("dspy")

from judgealign import (  # noqa: E402
    ConfigurationError,
    HashingEmbedder,
    MemAlignOptimizer,
    ModelCallError,
    make_judge,
)
from judgealign.dspy import as_dspy_metric, combine_metrics  # noqa: E402
from judgealign.testing import FunctionModel, ModelRequest  # noqa: E402

Rating = Literal["excellent", "fair", "poor"]
LABEL_SCORES = {"excellent": 1.0, "fair": 0.5, "poor": 0.0}


def record_of(request: ModelRequest) -> dict[str, Any]:
    body = request.last_user.split("<record>", 1)[1].rsplit("</record>", 1)[0]
    return json.loads(body)


def verdict_model(result: Any = True, rationale: str = "it names the capital") -> FunctionModel:
    return FunctionModel(lambda r: {"rationale": rationale, "result": result})


def capital_judge(model: Any, **options: Any) -> Any:
    return make_judge(
        name="correct",
        instructions="Is {{ outputs }} the right answer to {{ inputs }}, given {{ expectations }}?",
        model=model,
        **options,
    )


def example(**fields: Any) -> Any:
    return dspy.Example(**fields).with_inputs("question")


GOLD = {"question": "Capital of France?", "answer": "Paris"}


def test_float_signature_sends_mapped_fields_and_returns_the_verdict() -> None:
    model = verdict_model(True)
    metric = capital_judge(model).as_dspy_metric()
    pred = dspy.Prediction(reasoning="France's capital is Paris.", answer="Paris")

    score = metric(example(**GOLD), pred)

    assert score == 1.0 and isinstance(score, float)
    sent = record_of(model.requests[0])
    # Defaults: input fields as a dict, the one non-reasoning output alone, labels as a dict.
    assert sent == {
        "inputs": {"question": "Capital of France?"},
        "outputs": "Paris",
        "expectations": {"answer": "Paris"},
    }


def test_gepa_signature_returns_score_and_the_rationale_as_feedback() -> None:
    metric = capital_judge(verdict_model(False, "Lyon is not the capital")).as_dspy_metric()

    result = metric(example(**GOLD), dspy.Prediction(answer="Lyon"), None, "predict", None)

    assert isinstance(result, dspy.Prediction)
    assert result.score == 0.0
    assert "Lyon is not the capital" in result.feedback
    # dspy.GEPA accepts it (it checks the five-argument signature when constructed).
    dspy.GEPA(metric=metric, auto="light", reflection_lm=dspy.utils.DummyLM([{"x": "y"}]))


def test_a_judge_error_is_score_zero_with_the_error_as_feedback() -> None:
    def failing(request: ModelRequest) -> Any:
        raise ModelCallError("upstream timed out", status=504)

    metric = capital_judge(FunctionModel(failing)).as_dspy_metric()
    result = metric(example(**GOLD), dspy.Prediction(answer="Paris"), None, None, None)
    assert result.score == 0.0
    assert "upstream timed out" in result.feedback
    assert metric(example(**GOLD), dspy.Prediction(answer="Paris")) == 0.0


def test_a_judge_callable_that_raises_is_score_zero_not_an_exception() -> None:
    def flaky(*, inputs: Any, outputs: Any) -> bool:
        raise RuntimeError("socket closed")

    metric = as_dspy_metric(flaky, name="flaky")
    result = metric(example(**GOLD), dspy.Prediction(answer="Paris"), None, None, None)
    assert result.score == 0.0 and "socket closed" in result.feedback


def test_explicit_field_mapping() -> None:
    model = verdict_model(True)
    metric = capital_judge(model).as_dspy_metric(
        inputs="question",
        outputs=["answer", "reasoning"],
        expectations=lambda ex: {"gold": ex.answer.upper()},
    )
    metric(example(**GOLD), dspy.Prediction(reasoning="r", answer="Paris"))
    assert record_of(model.requests[0]) == {
        "inputs": "Capital of France?",
        "outputs": {"answer": "Paris", "reasoning": "r"},
        "expectations": {"gold": "PARIS"},
    }


def test_bad_examples_raise_clear_errors_naming_the_fix() -> None:
    model = verdict_model(True)
    metric = capital_judge(model).as_dspy_metric()
    pred = dspy.Prediction(answer="Paris")
    with pytest.raises(ConfigurationError, match=r"dspy\.Example"):
        metric(dict(GOLD), pred)  # a plain dict, not a dspy.Example
    with pytest.raises(ConfigurationError, match=r"with_inputs"):
        metric(dspy.Example(**GOLD), pred)  # no input fields marked
    with pytest.raises(ConfigurationError, match=r"reads \{\{ expectations \}\}"):
        metric.check_example(example(question="Capital of France?"))  # no labels at all
    mapped = capital_judge(model).as_dspy_metric(outputs="final_answer")
    with pytest.raises(ConfigurationError, match=r"no field 'final_answer'.*outputs="):
        mapped(example(**GOLD), pred)
    with pytest.raises(ConfigurationError, match=r"inputs=42 is invalid"):
        capital_judge(model).as_dspy_metric(inputs=42)
    assert model.requests == []  # every error came before a model call


def test_ranged_and_unranged_numeric_judges() -> None:
    ranged = capital_judge(
        verdict_model(4), feedback_value_type=int, value_range=(1, 5)
    ).as_dspy_metric()
    assert ranged(example(**GOLD), dspy.Prediction(answer="Paris")) == pytest.approx(0.75)
    with pytest.raises(ConfigurationError, match=r"unranged int.*value_range"):
        capital_judge(verdict_model(4), feedback_value_type=int).as_dspy_metric()


def test_sme_rating_judge_scores_through_label_scores() -> None:
    judge = capital_judge(
        verdict_model("fair"), feedback_value_type=Rating, label_scores=LABEL_SCORES
    )
    assert judge.as_dspy_metric()(example(**GOLD), dspy.Prediction(answer="Paris")) == 0.5


def test_label_scores_given_to_the_metric_score_a_plain_rating_scorer() -> None:
    def rater(*, outputs: Any) -> str:
        return "excellent" if outputs == "Paris" else "poor"

    metric = as_dspy_metric(rater, label_scores=LABEL_SCORES)
    assert metric(example(**GOLD), dspy.Prediction(answer="Paris")) == 1.0
    with pytest.raises(ConfigurationError, match=r"label 'poor'.*label_scores"):
        as_dspy_metric(rater)(example(**GOLD), dspy.Prediction(answer="Lyon"))


def test_aligned_judge_as_metric_uses_its_memory() -> None:
    def brain(request: ModelRequest) -> Any:
        fmt = request.response_format or {}
        name = fmt.get("json_schema", {}).get("name", "")
        if name == "DistilledGuidelines":
            ids = request.last_user.split('"id": "')[1:]
            rid = ids[0].split('"')[0]
            return {"guidelines": [{"text": "Name the city only.", "source_ids": [rid]}]}
        if name == "ConsolidatedGuidelines":
            return {"guidelines": []}
        return {"rationale": "fine", "result": "excellent"}

    model = FunctionModel(brain)
    judge = capital_judge(model, feedback_value_type=Rating, label_scores=LABEL_SCORES)
    records = [
        {
            "inputs": {"question": f"Capital of {c}?"},
            "outputs": a,
            "expectations": {"answer": a},
            "label": "excellent",
            "rationale": "the city alone",
        }
        for c, a in (("France", "Paris"), ("Italy", "Rome"))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = judge.align(
            records, optimizer=MemAlignOptimizer(embedding_model=HashingEmbedder())
        )
    metric = aligned.as_dspy_metric()
    result = metric(example(**GOLD), dspy.Prediction(answer="Paris"), None, None, None)
    assert result.score == 1.0 and "correct rated this 'excellent'" in result.feedback
    sent = " ".join(str(m["content"]) for m in model.requests[-1].messages)
    assert "Name the city only." in sent  # judged with its guidelines


def test_combine_metrics_weights_scores_and_keeps_every_rationale() -> None:
    judge = capital_judge(verdict_model(True, "right city"))

    def brevity(gold: Any, pred: Any, trace: Any = None) -> float:
        return 0.0

    combined = combine_metrics([judge, brevity], weights=[3, 1])
    result = combined(example(**GOLD), dspy.Prediction(answer="Paris"), None, "p", None)
    assert result.score == pytest.approx(0.75)
    assert "right city" in result.feedback and "[brevity, score 0.000]" in result.feedback
    by_mapping = combine_metrics({judge.as_dspy_metric(): 1.0, brevity: 1.0})
    assert by_mapping(example(**GOLD), dspy.Prediction(answer="Paris")) == pytest.approx(0.5)


def test_combine_metrics_isolates_a_raising_part_and_refuses_bad_weights() -> None:
    def broken(gold: Any, pred: Any, trace: Any = None) -> float:
        raise ValueError("no gold answer")

    combined = combine_metrics([capital_judge(verdict_model(True)), broken])
    result = combined(example(**GOLD), dspy.Prediction(answer="Paris"), None, None, None)
    assert result.score == pytest.approx(0.5) and "no gold answer" in result.feedback
    for bad, pattern in (
        (([],), "at least one metric"),
        (([broken], [-1.0]), "finite number >= 0"),
        (([broken], [1.0, 2.0]), "2 weights for 1 metrics"),
        (([broken], [0.0]), "at least one weight"),
    ):
        with pytest.raises(ConfigurationError, match=pattern):
            combine_metrics(*bad)


def test_metric_in_dspy_evaluate_with_a_program() -> None:
    lm = dspy.utils.DummyLM([{"answer": "Paris"}, {"answer": "Lyon"}])
    model = FunctionModel(
        lambda r: {"rationale": "x", "result": record_of(r)["outputs"] == "Paris"}
    )
    judge = capital_judge(model)
    program = dspy.Predict("question -> answer")
    devset = [example(**GOLD), example(question="Capital of France, again?", answer="Paris")]
    with dspy.context(lm=lm):
        result = dspy.Evaluate(devset=devset, metric=judge.as_dspy_metric(), num_threads=1)(program)
    assert result.score == pytest.approx(50.0)
