"""optimize_prompts and the eval_fn every optimizer climbs: scoring, isolation, safety."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from judgealign import ConfigurationError, Feedback
from judgealign.testing import ScriptedModel
from optimizers import (
    BasePromptOptimizer,
    EvalFn,
    GepaPromptOptimizer,
    InMemoryPromptStore,
    MetaPromptOptimizer,
    PromptOptimizationResult,
    PromptOptimizationWarning,
    PromptOptimizerOutput,
    load_prompt,
    make_eval_fn,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)
from optimizers._api import accepts_val_data

# -- a small deterministic task ---------------------------------------------------------------
# predict_fn answers "OK" for a letter only when the prompt lists that letter as "[x]"; the
# scorer checks for "OK". A prompt listing more letters scores higher.

LETTERS = "abcdefgh"


def records(letters: str = LETTERS) -> list[dict[str, Any]]:
    return [{"inputs": {"letter": c}, "expectations": {"answer": "OK"}} for c in letters]


def predict(letter: str) -> str:
    text = load_prompt("prompts:/task/1").format(letter=letter)
    return "OK" if f"[{letter}]" in text else "NO"


def correct(outputs: str, expectations: dict[str, Any]) -> bool:
    return outputs == expectations["answer"]


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("task", "Reply about {{ letter }}.")
    yield
    set_prompt_store(previous)


class FixedOptimizer(BasePromptOptimizer):
    """Proposes fixed candidates; optionally reports scores."""

    def __init__(self, proposal: dict[str, str], *, report_scores: bool = False) -> None:
        self.proposal = proposal
        self.report_scores = report_scores
        self.calls: list[dict[str, Any]] = []

    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
    ) -> PromptOptimizerOutput:
        self.calls.append({"train": list(train_data), "tracking": enable_tracking})
        if not self.report_scores:
            return PromptOptimizerOutput(optimized_prompts=self.proposal)
        initial = eval_fn(target_prompts, train_data)
        final = eval_fn(self.proposal, train_data)
        return PromptOptimizerOutput(
            optimized_prompts=self.proposal,
            initial_eval_score=sum(r.score for r in initial) / len(initial),
            final_eval_score=sum(r.score for r in final) / len(final),
        )


def run(optimizer: BasePromptOptimizer, /, **overrides: Any) -> PromptOptimizationResult:
    arguments: dict[str, Any] = {
        "predict_fn": predict,
        "train_data": records(),
        "prompt_uris": ["prompts:/task/1"],
        "optimizer": optimizer,
        "scorers": [correct],
    }
    return optimize_prompts(**{**arguments, **overrides})


# -- scoring -----------------------------------------------------------------------------------


def test_scorer_gets_only_the_arguments_it_names() -> None:
    received: list[set[str]] = []

    def only_outputs(outputs: str) -> bool:
        received.append({"outputs"})
        return outputs == "OK"

    def everything(**fields: Any) -> float:
        received.append(set(fields))
        return 1.0

    eval_fn = make_eval_fn(predict, [only_outputs, everything])
    [result] = eval_fn({"task": "[a] {{ letter }}"}, records("a"))
    assert received == [{"outputs"}, {"inputs", "outputs", "expectations"}]
    assert result.individual_scores == {"only_outputs": 1.0, "everything": 1.0}


def test_scorer_that_cannot_take_record_fields_is_rejected_at_construction() -> None:
    def wrong(answer: str) -> bool:
        return bool(answer)

    with pytest.raises(ConfigurationError, match="'wrong' must take some of inputs"):
        make_eval_fn(predict, [wrong])


def test_raising_scorer_on_one_record_scores_it_zero_and_the_run_goes_on() -> None:
    def flaky(inputs: dict[str, Any], outputs: str) -> bool:
        if inputs["letter"] == "c":
            raise RuntimeError("judge exploded")
        return outputs == "OK"

    results = make_eval_fn(predict, [flaky])({"task": "[a][b][c][d] {{ letter }}"}, records("abcd"))
    assert [r.score for r in results] == [1.0, 1.0, 0.0, 1.0]
    assert "RuntimeError: judge exploded" in results[2].rationales["flaky"]
    assert results[2].error is not None and "judge exploded" in results[2].error
    assert results[2].outputs == "OK"  # the prediction itself is kept


def test_raising_predict_fn_on_one_record_scores_it_zero_and_the_run_goes_on() -> None:
    def fragile(letter: str) -> str:
        if letter == "b":
            raise ValueError("upstream timeout")
        return predict(letter)

    results = make_eval_fn(fragile, [correct])({"task": "[a][b][c] {{ letter }}"}, records("abc"))
    assert [r.score for r in results] == [1.0, 0.0, 1.0]
    assert "ValueError: upstream timeout" in results[1].rationales["correct"]
    assert results[1].outputs is None


def test_records_are_evaluated_concurrently() -> None:
    intervals: list[tuple[float, float]] = []
    lock = threading.Lock()

    def slow(letter: str) -> str:
        start = time.perf_counter()
        answer = predict(letter)
        time.sleep(0.1)
        with lock:
            intervals.append((start, time.perf_counter()))
        return answer

    eval_fn = make_eval_fn(slow, [correct], max_workers=4)
    began = time.perf_counter()
    results = eval_fn({"task": "[a][b][c][d][e][f][g][h] {{ letter }}"}, records())
    wall = time.perf_counter() - began
    assert [r.score for r in results] == [1.0] * 8  # every worker saw the candidate
    assert wall < 0.5, f"8 records x 0.1 s with 4 workers took {wall:.2f} s"
    most_at_once = max(sum(s <= t < e for s, e in intervals) for t, _ in intervals)
    assert most_at_once >= 2, intervals


def test_concurrent_eval_fn_calls_each_see_their_own_candidate() -> None:
    eval_fn = make_eval_fn(predict, [correct], max_workers=4)
    candidates = {"A": {"task": "[a][b][c][d] {{ letter }}"}, "B": {"task": "[e][f] {{ letter }}"}}
    scores: dict[str, list[float]] = {}

    def evaluate(label: str) -> None:
        for _ in range(5):
            scores.setdefault(label, []).extend(
                r.score for r in eval_fn(candidates[label], records())
            )

    threads = [threading.Thread(target=evaluate, args=(label,)) for label in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert scores["A"] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0] * 5
    assert scores["B"] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0] * 5


class RangeJudge:
    """A fake 1..5 judge with its own normalize(), as judgealign judges have."""

    name = "quality"

    def __call__(self, *, outputs: Any) -> Feedback:
        return Feedback(name=self.name, value=4, rationale="mostly right")

    def normalize(self, value: Any) -> float | None:
        return (float(value) - 1) / 4


def test_default_aggregation_normalises_every_kind_of_result() -> None:
    def passed(outputs: str) -> bool:
        return True

    def graded(outputs: str) -> str:
        return "fair"

    def broken_judge(outputs: str) -> Feedback:
        return Feedback(name="broken_judge", error="model timed out")

    eval_fn = make_eval_fn(
        predict, [passed, RangeJudge(), graded, broken_judge], label_scores={"fair": 0.5}
    )
    [result] = eval_fn({"task": "{{ letter }}"}, records("a"))
    assert result.individual_scores == {
        "passed": 1.0,
        "quality": 0.75,
        "graded": 0.5,
        "broken_judge": 0.0,
    }
    assert result.score == pytest.approx((1.0 + 0.75 + 0.5 + 0.0) / 4)
    assert result.rationales["quality"] == "mostly right"
    assert result.rationales["broken_judge"] == "model timed out"


def test_yes_no_labels_map_without_a_table_and_nan_is_a_record_error() -> None:
    def verdict(outputs: str) -> str:
        return "Yes"

    def nan_score(outputs: str) -> float:
        return float("nan")

    [result] = make_eval_fn(predict, [verdict, nan_score])({"task": "{{ letter }}"}, records("a"))
    assert result.individual_scores == {"verdict": 1.0, "nan_score": 0.0}
    assert "not a finite number" in result.rationales["nan_score"]


def test_custom_aggregation_gets_normalised_scores_and_raw_feedback() -> None:
    seen: list[tuple[dict[str, float], dict[str, Any]]] = []

    def weighted(scores: dict[str, float], feedback: dict[str, Any]) -> float:
        seen.append((scores, feedback))
        return 0.9 * scores["quality"] + 0.1 * scores["correct"]

    eval_fn = make_eval_fn(predict, [RangeJudge(), correct], aggregation=weighted)
    [result] = eval_fn({"task": "[a] {{ letter }}"}, records("a"))
    scores, feedback = seen[0]
    assert scores == {"quality": 0.75, "correct": 1.0}
    assert isinstance(feedback["quality"], Feedback) and feedback["quality"].value == 4
    assert feedback["correct"] is True
    assert result.score == pytest.approx(0.775)


def test_same_named_scorers_are_kept_apart() -> None:
    eval_fn = make_eval_fn(predict, [lambda outputs: 1.0, lambda outputs: 0.0])
    assert eval_fn.scorer_names == ("<lambda>", "<lambda>_2")


def test_async_predict_fn_is_awaited() -> None:
    async def apredict(letter: str) -> str:
        await asyncio.sleep(0)
        return predict(letter)

    results = make_eval_fn(apredict, [correct])({"task": "[a] {{ letter }}"}, records("ab"))
    assert [r.score for r in results] == [1.0, 0.0]


# -- optimize_prompts ------------------------------------------------------------------------


def test_optimize_prompts_with_metaprompt_improves_and_registers_a_new_version() -> None:
    better = "Known letters: [a][b][c][d][e][f][g][h]. Reply about {{letter}}."
    reflection = ScriptedModel([{"diagnosis": "letters missing", "prompts": {"task": better}}])
    result = run(MetaPromptOptimizer(reflection, max_iterations=3))
    assert result.improved
    assert result.initial_eval_score == 0.0 and result.final_eval_score == 1.0
    assert result.final_eval_score_per_scorer == {"correct": 1.0}
    [prompt] = result.optimized_prompts
    assert prompt.version == 2 and prompt.uri == "prompts:/task/2"
    assert prompt.stored_template.endswith("Reply about {{ letter }}.")  # original spelling
    assert load_prompt("prompts:/task@latest") == prompt
    assert result.optimizer_name == "MetaPromptOptimizer"
    assert [h["iteration"] for h in result.history] == [0, 1]


def test_no_improvement_returns_the_original_unchanged_with_a_warning() -> None:
    worse = FixedOptimizer({"task": "Be terse about {{ letter }}."}, report_scores=True)
    with pytest.warns(PromptOptimizationWarning, match="found no better prompt"):
        result = run(worse)
    assert not result.improved
    [prompt] = result.optimized_prompts
    assert prompt.version == 1 and prompt.stored_template == "Reply about {{ letter }}."
    assert result.final_eval_score == result.initial_eval_score == 0.0
    assert load_prompt("task").version == 1  # nothing registered


@pytest.mark.filterwarnings("ignore:.*found no better prompt")
@pytest.mark.parametrize(
    "bad",
    [
        "[a][b][c][d][e][f][g][h] Reply.",  # loses {{ letter }}
        "[a][b][c][d][e][f][g][h] {{ letter }} in {{ language }}",  # adds a variable
        "[a][b][c][d][e][f][g][h] {{ letters }}",  # renames it
    ],
)
def test_candidate_that_changes_variables_is_rejected(bad: str) -> None:
    with pytest.warns(PromptOptimizationWarning, match="rejected"):
        result = run(FixedOptimizer({"task": bad}, report_scores=True))
    assert not result.improved
    assert result.optimized_prompts[0].stored_template == "Reply about {{ letter }}."
    assert "task" in result.details["unsafe_final_prompts"]


@pytest.mark.parametrize("spelling", ["{{letter}}", "{{ letter }}", "{{   letter}}"])
def test_spacing_variants_survive_and_are_normalised(spelling: str) -> None:
    result = run(FixedOptimizer({"task": f"[a][b] {spelling} ok"}))
    assert result.improved  # the scores were measured by optimize_prompts itself
    assert result.initial_eval_score == 0.0 and result.final_eval_score == 0.25
    assert result.optimized_prompts[0].stored_template == "[a][b] {{ letter }} ok"


def test_optimizer_receives_records_and_tracking_flag() -> None:
    optimizer = FixedOptimizer({"task": "Reply about {{ letter }}."})
    with pytest.warns(PromptOptimizationWarning):
        run(optimizer, enable_tracking=False)
    [call] = optimizer.calls
    assert call["tracking"] is False
    assert call["train"][0] == {"inputs": {"letter": "a"}, "expectations": {"answer": "OK"}}


@pytest.mark.filterwarnings("ignore:.*found no better prompt")
def test_val_data_goes_to_optimizers_that_take_it_and_warns_otherwise() -> None:
    class ValAware(FixedOptimizer):
        def optimize(  # type: ignore[override]
            self,
            eval_fn: EvalFn,
            train_data: Sequence[dict[str, Any]],
            target_prompts: dict[str, str],
            enable_tracking: bool = True,
            *,
            val_data: Sequence[dict[str, Any]] | None = None,
        ) -> PromptOptimizerOutput:
            self.calls.append({"val": val_data})
            return PromptOptimizerOutput(optimized_prompts=self.proposal)

    aware = ValAware({"task": "[g] {{ letter }}"})
    assert accepts_val_data(aware) and accepts_val_data(MetaPromptOptimizer(ScriptedModel()))
    result = run(aware, train_data=records("abc"), val_data=records("gh"))
    assert aware.calls[0]["val"] == records("gh")
    assert result.improved and result.final_eval_score == 0.5  # measured on val_data
    with pytest.warns(PromptOptimizationWarning, match="does not take val_data"):
        run(FixedOptimizer({"task": "{{ letter }}"}), val_data=records("gh"))


def test_dataframe_train_data_is_accepted() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(records("ab"))
    optimizer = FixedOptimizer({"task": "[a] {{ letter }}"})
    assert run(optimizer, train_data=frame).improved
    assert optimizer.calls[0]["train"] == records("ab")


@pytest.mark.parametrize(
    ("train_data", "message"),
    [
        ("not rows", "train_data must be a list of dicts or a pandas DataFrame"),
        ([{"inputs": {"letter": "a"}}, 7], r"train_data\[1\] must be a dict"),
        ([{"inputs": {"letter": "a"}}, {"expectations": {}}], r"train_data\[1\]\['inputs'\]"),
        ([{"inputs": {}}], r"train_data\[0\]\['inputs'\] must be a non-empty dict"),
        ([{"inputs": "a"}], r"train_data\[0\]\['inputs'\] must be a non-empty dict"),
        ([{"inputs": {"letter": "a"}, "expectations": "OK"}], r"\['expectations'\] must be"),
        ([{"inputs": {"letter": "a"}}, {"inputs": {"char": "b"}}], r"train_data\[1\].*unexpected"),
    ],
)
def test_bad_train_data_rows_are_named(train_data: Any, message: str) -> None:
    optimizer = FixedOptimizer({})
    with pytest.raises(ConfigurationError, match=message):
        run(optimizer, train_data=train_data)
    assert optimizer.calls == []  # nothing ran


def test_predict_fn_that_never_loads_a_target_prompt_is_rejected_early() -> None:
    def ignores_prompt(letter: str) -> str:
        return "OK"

    with pytest.raises(ConfigurationError, match="never loaded the prompt"):
        run(FixedOptimizer({}), predict_fn=ignores_prompt)


def test_predict_fn_failing_on_the_first_record_is_reported_early() -> None:
    def broken(letter: str) -> str:
        raise KeyError("api_key")

    with pytest.raises(ConfigurationError, match=r"train_data\[0\].*predict_fn failed"):
        run(FixedOptimizer({}), predict_fn=broken)


def test_label_without_a_score_is_reported_early() -> None:
    def graded(outputs: str) -> str:
        return "excellent"

    with pytest.raises(ConfigurationError, match="label_scores"):
        run(FixedOptimizer({}), scorers=[graded])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scorers": None}, "without scorers"),
        ({"scorers": correct}, "must be a list"),
        ({"train_data": None}, "need train_data"),  # scorers given, no data
        ({"prompt_uris": "prompts:/task/1"}, "must be a non-empty list"),
        ({"optimizer": object()}, "no optimize"),
        ({"max_workers": 0}, "max_workers"),
    ],
)
def test_misuse_is_reported_before_any_work(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        run(FixedOptimizer({}), **overrides)


def test_zero_shot_without_data_registers_the_rewrite_unverified() -> None:
    result = run(
        FixedOptimizer({"task": "Be precise about {{ letter }}."}), train_data=None, scorers=None
    )
    assert result.improved and result.details["verified"] is False
    assert result.initial_eval_score is None
    assert result.optimized_prompts[0].version == 2


def test_unused_second_prompt_warns_but_runs() -> None:
    register_prompt("unused", "Never read {{ x }}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(
            FixedOptimizer({"task": "[a] {{ letter }}"}),
            prompt_uris=["prompts:/task/1", "prompts:/unused/1"],
        )
    assert any("did not use the prompt(s) ['unused']" in str(w.message) for w in caught)


# -- the budget covers the setup check on train_data[0] -----------------------------------------


def test_first_record_check_is_inside_gepa_budget_not_on_top_of_it() -> None:
    calls: list[str] = []

    def counted(letter: str) -> str:
        calls.append(letter)
        return predict(letter)

    reflection = ScriptedModel([], default="```\nReply about {{ letter }}. [a]\n```")
    for budget in (1, 2, 3, 5):
        calls.clear()
        result = optimize_prompts(
            predict_fn=counted,
            train_data=records("a"),  # one record: GEPA validates on it too
            prompt_uris=["prompts:/task/1"],
            optimizer=GepaPromptOptimizer(reflection, max_metric_calls=budget, progress=False),
            scorers=[correct],
        )
        assert len(calls) == result.details["metric_calls"] <= budget
        assert result.details["metric_calls_used"] == len(calls)
        phases = result.details["metric_calls_by_phase"]
        assert phases == {"preflight": 0, "optimizer": len(calls), "verification": 0}


class ClaimingOptimizer(BasePromptOptimizer):
    """Evaluates nothing and reports scores of its own."""

    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
    ) -> PromptOptimizerOutput:
        return PromptOptimizerOutput(
            optimized_prompts={"task": "Reply about {{ letter }}. [a] [b]"},
            initial_eval_score=0.1,
            final_eval_score=0.9,
        )


def test_every_metric_call_is_in_exactly_one_phase() -> None:
    calls: list[str] = []

    def counted(letter: str) -> str:
        calls.append(letter)
        return predict(letter)

    def go(optimizer: BasePromptOptimizer) -> dict[str, int]:
        calls.clear()
        result = run(optimizer, predict_fn=counted, train_data=records("abc"))
        phases: dict[str, int] = result.details["metric_calls_by_phase"]
        assert sum(phases.values()) == result.details["metric_calls"] == len(calls)
        return phases

    # Nobody reuses the check on train_data[0]: it is reported on its own.
    assert go(ClaimingOptimizer()) == {"preflight": 1, "optimizer": 0, "verification": 0}
    # The optimizer scores the originals on every record: the check serves record 0.
    measured = go(FixedOptimizer({"task": "[a] {{ letter }}"}, report_scores=True))
    assert measured == {"preflight": 0, "optimizer": 6, "verification": 0}
    # No scores reported: optimize_prompts re-measures, and the check serves that.
    assert go(FixedOptimizer({"task": "[a] {{ letter }}"})) == {
        "preflight": 0,
        "optimizer": 0,
        "verification": 6,
    }
