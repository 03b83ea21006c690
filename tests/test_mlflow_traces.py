"""Traces as expert feedback, verdicts written back to traces, and judges as MLflow scorers."""

from __future__ import annotations

import re
import time
from typing import Any

import mlflow
import pytest
from mlflow.entities import AssessmentSource, AssessmentSourceType
from mlflow_support import Store, mlflow_store

from judgealign import ConfigurationError, MemAlignOptimizer, make_judge
from judgealign.mlflow_integration import (
    MlflowTracker,
    as_scorer,
    evaluate,
    log_verdicts,
    records_from_traces,
    score_traces,
)
from judgealign.testing import FunctionModel, ModelRequest

__all__ = ["mlflow_store"]

HUMAN = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="ana")
BOB = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="bob")
ROBOT = AssessmentSource(source_type=AssessmentSourceType.LLM_JUDGE, source_id="openai:/x")


def verdict(request: ModelRequest) -> dict[str, Any]:
    if "calibrating" in request.system:
        ids = re.findall(r'"id": "([^"]+)"', request.last_user)
        return {"guidelines": [{"text": "Words count as answers.", "source_ids": ids}]}
    return {"rationale": "checked", "result": "4" in request.last_user}


def judge(**options: Any) -> Any:
    return make_judge(
        name="correct",
        instructions=options.pop("instructions", "Is {{ outputs }} the answer to {{ inputs }}?"),
        model=FunctionModel(verdict),
        **options,
    )


@mlflow.trace
def answer(question: str) -> str:
    return {"2+2?": "4", "3+1?": "four", "5-1?": "five", "1+1?": "2"}[question]


def make_traces() -> list[str]:
    ids = []
    for question in ("2+2?", "3+1?", "5-1?", "1+1?"):
        answer(question)
        ids.append(mlflow.get_last_active_trace_id())
    mlflow.flush_trace_async_logging()
    return ids


def feedback(
    trace_id: str, value: Any, source: Any = HUMAN, name: str = "correct", **kw: Any
) -> Any:
    return mlflow.log_feedback(trace_id=trace_id, name=name, value=value, source=source, **kw)


# The second trace's two experts split: it becomes one panel record, and reading it warns
# of the tie and which label was kept.
CONFLICT = r"1 panel record\(s\) tied .* the tied label rated first"


@pytest.fixture
def labelled(mlflow_store: Store) -> list[str]:
    """Four traces: a plain label, a conflict, an overridden label, and no label."""
    first, second, third, fourth = make_traces()
    feedback(first, "yes", name=" Correct ", rationale="4 is right")
    feedback(first, False, source=ROBOT)  # a judge's verdict is not an expert label
    feedback(first, "no", name="helpful")  # another judge's label
    mlflow.log_expectation(trace_id=first, name="expected_response", value="4")
    feedback(second, "no", source=BOB, rationale="needs digits")
    time.sleep(0.01)
    feedback(second, "yes", rationale="a word is fine")  # two experts split: a tie
    wrong = feedback(third, True, rationale="oops")
    mlflow.override_feedback(
        trace_id=third,
        assessment_id=wrong.assessment_id,
        value=False,
        rationale="five is wrong",
        source=HUMAN,
    )
    return [first, second, third, fourth]


# -- reading labels -------------------------------------------------------------------------------


def test_human_feedback_named_like_the_judge_becomes_labelled_records(labelled: list[str]) -> None:
    first, second, third, _ = labelled
    with pytest.warns(UserWarning, match=CONFLICT):
        result = records_from_traces(labelled, judge=judge())
    records = {r.id: r for r in result}
    assert set(records) == {first, second, third}  # the unlabelled trace is skipped
    one = records[first]
    assert (one.inputs, one.outputs, one.label) == ({"question": "2+2?"}, "4", True)
    assert (one.rationale, one.annotator) == ("4 is right", "ana")
    assert one.expectations == {"expected_response": "4"}
    assert one.created_at is not None
    panel = records[second]  # bob then ana: one rating each, bob's rated first
    assert [(r.rater, r.label) for r in panel.ratings] == [("bob", False), ("ana", True)]
    assert (panel.label, panel.resolution) == (False, "tie")
    assert "needs digits" in panel.rationale and "a word is fine" in panel.rationale
    assert result.tied_ids == (second,) and not result.duplicates
    assert records[third].label is False and records[third].rationale == "five is wrong"


def test_traces_can_be_objects_ids_or_a_dataframe(labelled: list[str]) -> None:
    first, second, third, _ = labelled
    objects = [mlflow.get_trace(i) for i in labelled]
    frame = mlflow.search_traces()  # a DataFrame of the current experiment's traces
    with pytest.warns(UserWarning, match=CONFLICT):
        by_objects = records_from_traces(objects, judge_name="correct")
    with pytest.warns(UserWarning, match=CONFLICT):
        by_frame = records_from_traces(frame, judge_name="correct")
    # No judge: labels as logged; the split panel keeps the label rated first (bob's).
    expected = {first: "yes", second: "no", third: False}
    assert {r.id: r.label for r in by_objects} == {r.id: r.label for r in by_frame} == expected


def test_no_feedback_for_the_judge_is_an_error_that_says_how_to_log_it(mlflow_store: Store) -> None:
    ids = make_traces()
    with pytest.raises(ConfigurationError, match=r"mlflow.log_feedback\(trace_id=.*'correct'"):
        records_from_traces(ids, judge=judge())
    with pytest.raises(ConfigurationError, match="judge= or judge_name="):
        records_from_traces(ids)
    with pytest.raises(ConfigurationError, match="No trace with id"):
        records_from_traces(["tr-does-not-exist"], judge=judge())


def test_a_trace_judge_gets_the_trace_field(labelled: list[str]) -> None:
    trace_judge = judge(instructions="Is the response in {{ trace }} right?")
    with pytest.warns(UserWarning, match=CONFLICT):
        records = records_from_traces(labelled, judge=trace_judge)
    assert all(r.trace == {"request": r.inputs, "response": r.outputs} for r in records)


def test_align_accepts_traces_directly(labelled: list[str]) -> None:
    traces = [mlflow.get_trace(i) for i in labelled]
    optimizer = MemAlignOptimizer(embedding_model="hashing", retrieval_k=1)
    with pytest.warns(UserWarning, match=CONFLICT):
        aligned = judge().align(traces, optimizer=optimizer)
    assert set(aligned.record_ids) == set(labelled[:3])
    assert [g.text for g in aligned.guidelines] == ["Words count as answers."]


# -- writing verdicts ----------------------------------------------------------------------------


def _judge_verdicts(trace_id: str) -> list[Any]:
    trace = mlflow.get_trace(trace_id)
    return [
        a
        for a in trace.info.assessments
        if a.name == "correct" and a.source.source_type == "LLM_JUDGE"
    ]


def test_score_traces_writes_llm_judge_feedback_back_through_one_writer(
    mlflow_store: Store,
) -> None:
    ids = make_traces()
    tracker = MlflowTracker()
    result = score_traces(judge(), ids, tracker=tracker)
    assert result.values == [True, False, False, False]
    assert tracker.failures == 0
    for trace_id, value in zip(ids, result.values, strict=True):
        (written,) = _judge_verdicts(trace_id)
        assert written.value is value and written.rationale == "checked"
        assert written.source.source_id == "test:/function"
        assert written.metadata["model"] == "test:/function"


def test_log_verdicts_writes_errors_as_assessment_errors(mlflow_store: Store) -> None:
    ids = make_traces()[:2]
    broken = make_judge(
        name="correct",
        instructions="Is {{ outputs }} right?",
        model=FunctionModel(lambda r: "not json at all"),
    )
    results = broken.evaluate([{"outputs": "4"}, {"outputs": "5"}])
    assert all(f.error for f in results)
    assert log_verdicts(ids, list(results)) == 2
    (written,) = _judge_verdicts(ids[0])
    assert written.value is None and written.error.error_code == "JUDGE_ERROR"
    with pytest.raises(ConfigurationError, match="2 traces but 1 feedback"):
        log_verdicts(ids, list(results)[:1])


# -- judges as scorers -------------------------------------------------------------------------


def test_a_scorer_returns_mlflow_feedback_with_value_rationale_source_and_metadata() -> None:
    scorer = as_scorer(judge())
    feedback = scorer.run(inputs={"q": "2+2?"}, outputs="4")
    assert type(feedback).__name__ == "Feedback" and feedback.name == "correct"
    assert (feedback.value, feedback.rationale) == (True, "checked")
    assert (feedback.source.source_type, feedback.source.source_id) == (
        "LLM_JUDGE",
        "test:/function",
    )
    assert feedback.metadata["model"] == "test:/function" and "prompt_tokens" in feedback.metadata
    assert scorer.aggregations == ["mean"]


def test_a_scorer_turns_misuse_and_model_failures_into_feedback_errors() -> None:
    needs = judge(instructions="Does {{ outputs }} meet {{ expectations }}?")
    missing = as_scorer(needs).run(inputs={"q": "2+2?"}, outputs="4")
    assert missing.value is None and "expectations" in missing.error.error_message
    failing = make_judge(
        name="j", instructions="{{ outputs }}?", model=FunctionModel(lambda r: "?")
    )
    failed = as_scorer(failing).run(outputs="4")
    assert failed.value is None and failed.error.error_code == "JUDGE_ERROR"


def test_an_aligned_judge_scorer_reports_the_examples_it_retrieved() -> None:
    records = [{"id": "r1", "inputs": "3+1?", "outputs": "four", "label": True}]
    aligned = judge().align(records, optimizer=MemAlignOptimizer(embedding_model="hashing"))
    feedback = as_scorer(aligned).run(inputs="3+1?", outputs="four")
    assert feedback.metadata["retrieved_example_ids"] == '["r1"]'


def test_evaluate_accepts_a_judge_directly(mlflow_store: Store) -> None:
    data = [{"inputs": {"question": q}} for q in ("2+2?", "5-1?")]
    result = evaluate(data=data, predict_fn=answer, scorers=[judge()])
    assert list(result.result_df["correct/value"]) == [True, False]
    assert result.metrics["correct/mean"] == 0.5
