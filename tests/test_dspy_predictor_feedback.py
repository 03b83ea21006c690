"""Per-predictor feedback: GEPA reflects on one predictor with the metric's feedback for it.

A five-argument metric is asked again with ``pred_name`` and that predictor's own
``pred_trace`` for the reflection minibatch; judgealign's judge metrics say their feedback
is the same for every predictor and are never asked twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

dspy = pytest.importorskip("dspy")

from dspy_support import TwoStep, capitals_judge, examples, program_reply, reflection_model  # noqa: E402

from judgealign.dspy import combine_metrics  # noqa: E402
from judgealign.testing import FakeOpenAIServer, FunctionModel  # noqa: E402
from optimizers import GepaPromptOptimizer, optimize_program  # noqa: E402


@pytest.fixture()
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=program_reply) as fake:
        lm = dspy.LM("openai/fake", api_base=fake.base_url, api_key="sk-fake", cache=False)
        with dspy.context(lm=lm):
            yield fake


class PerPredictor:
    """Says what the named predictor was given and produced; counts its calls."""

    def __init__(self) -> None:
        self.named: list[str] = []
        self.traces: list[Any] = []

    def __call__(
        self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
    ) -> Any:
        ok = pred.answer == gold.answer.upper()
        if pred_name is None:
            return dspy.Prediction(score=float(ok), feedback="PROGRAM-LEVEL verdict")
        self.named.append(pred_name)
        self.traces.append(pred_trace)
        [(_, inputs, outputs)] = pred_trace
        given, made = sorted(inputs), sorted(outputs.keys())
        return dspy.Prediction(
            score=float(ok), feedback=f"FOR {pred_name}: given {given}, produced {made}"
        )


def _optimize(metric: Any, seen: list[str] | None = None) -> Any:
    """TwoStep optimized on 4 + 4 capitals with a 60-call budget; ``seen`` collects the
    reflection prompts."""
    data = examples()
    return optimize_program(
        TwoStep(),
        data[:4],
        data[4:],
        metric=metric,
        optimizer=GepaPromptOptimizer(reflection_model(seen), max_metric_calls=60),
    )


def _prompts_for(seen: list[str], name: str) -> list[str]:
    return [text for text in seen if f'named "{name}"' in text]


def test_the_reflection_on_a_predictor_reads_the_metric_feedback_for_that_predictor(
    server: FakeOpenAIServer,
) -> None:
    metric = PerPredictor()
    seen: list[str] = []
    result = _optimize(metric, seen)
    assert result.final_score == 1.0
    draft, answer = _prompts_for(seen, "draft"), _prompts_for(seen, "answer")
    assert draft and answer
    for text in draft:
        assert text.count("FOR draft: given ['question'], produced ['draft']") == 3
        assert "FOR answer" not in text and "PROGRAM-LEVEL" not in text
    for text in answer:
        assert text.count("FOR answer: given ['draft', 'question'], produced ['answer']") == 3
        assert "FOR draft" not in text and "PROGRAM-LEVEL" not in text
    # pred_trace holds DSPy's own (predictor, inputs, outputs) entries of that predictor.
    assert all(isinstance(t[0][0], dspy.Predict) for t in metric.traces)
    # Asked only for the minibatch shown to each reflection, and every call is counted,
    # outside the budget of examples scored.
    assert result.feedback_calls == len(metric.named) == 3 * result.details["reflection_calls"]
    assert result.metric_calls <= 60


def test_a_judge_metric_is_not_asked_again_per_predictor(server: FakeOpenAIServer) -> None:
    judge = capitals_judge()
    result = _optimize(judge.as_dspy_metric())
    model: FunctionModel = judge.model
    assert result.feedback_calls == 0
    assert len(model.requests) == result.metric_calls  # one verdict per example scored


def test_a_judge_metric_reuses_its_verdict_when_dspy_gepa_names_a_predictor() -> None:
    judge = capitals_judge()
    metric = judge.as_dspy_metric()
    gold = examples(["Peru"])[0]
    pred = dspy.Prediction(answer="Lima")
    assert metric(gold, pred, []) == 0.0
    for name in ("draft", "answer"):  # what dspy.GEPA does while building its dataset
        fed = metric(gold, pred, [], name, [])
        assert fed.score == 0.0 and "UPPERCASE" in fed.feedback
    assert len(judge.model.requests) == 1
    # Another prediction object is another verdict, even with equal fields.
    metric(gold, dspy.Prediction(answer="Lima"), [], "answer", [])
    assert len(judge.model.requests) == 2


def test_combined_metrics_pass_pred_name_to_their_parts(server: FakeOpenAIServer) -> None:
    part = PerPredictor()
    judge = capitals_judge()
    combined = combine_metrics([judge, part])
    assert combined.feedback_per_predictor is True
    assert combine_metrics([judge]).feedback_per_predictor is False
    gold, pred = examples(["Peru"])[0], dspy.Prediction(answer="LIMA")
    step = (TwoStep().answer, {"question": "q", "draft": "d"}, dspy.Prediction(answer="LIMA"))
    fed = combined(gold, pred, [step], "answer", [step])
    assert fed.score == 1.0
    assert "FOR answer: given ['draft', 'question'], produced ['answer']" in fed.feedback
    assert part.named == ["answer"]


def test_a_failing_feedback_call_keeps_the_program_level_feedback(
    server: FakeOpenAIServer,
) -> None:
    class Flaky(PerPredictor):
        def __call__(
            self,
            gold: Any,
            pred: Any,
            trace: Any = None,
            pred_name: Any = None,
            pred_trace: Any = None,
        ) -> Any:
            if pred_name is not None:
                self.named.append(pred_name)
                raise TimeoutError("feedback service down")
            return super().__call__(gold, pred, trace, pred_name, pred_trace)

    metric = Flaky()
    seen: list[str] = []
    result = _optimize(metric, seen)
    assert result.final_score == 1.0  # the run went on, on program-level feedback
    assert result.feedback_calls == len(metric.named) > 0
    note = "(no feedback for 'answer': Flaky raised TimeoutError: feedback service down"
    assert all(f"PROGRAM-LEVEL verdict {note}" in text for text in _prompts_for(seen, "answer"))
