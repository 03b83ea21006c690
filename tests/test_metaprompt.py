"""MetaPromptOptimizer: zero-shot, few-shot and iterative, on a small deterministic task."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from judgealign import ConfigurationError, Feedback, ModelCallError
from judgealign.testing import FunctionModel, ModelRequest, ScriptedModel
from optimizers import (
    EvaluationResultRecord,
    Evaluator,
    InMemoryPromptStore,
    IterationRecord,
    MetaPromptOptimizer,
    load_prompt,
    make_eval_fn,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

# predict_fn answers "OK" for a letter only when the prompt lists it as "[x]".
ORIGINAL = "Reply about {{ letter }}."


def records(letters: str = "abcdefgh") -> list[dict[str, Any]]:
    return [{"inputs": {"letter": c}, "expectations": {"answer": "OK"}} for c in letters]


def predict(letter: str) -> str:
    text = load_prompt("prompts:/task/1").format(letter=letter)
    return "OK" if f"[{letter}]" in text else "NO"


def correct(outputs: str, expectations: dict[str, Any]) -> Feedback:
    ok = outputs == expectations["answer"]
    return Feedback(name="correct", value=ok, rationale="matches" if ok else "said NO, wanted OK")


def knowing(letters: str) -> str:
    return "".join(f"[{c}]" for c in letters) + " " + ORIGINAL


def reply(template: str, diagnosis: str = "letters are missing") -> dict[str, Any]:
    return {"diagnosis": diagnosis, "prompts": {"task": template}}


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("task", ORIGINAL)
    yield
    set_prompt_store(previous)


@pytest.fixture
def eval_fn() -> Evaluator:
    return make_eval_fn(predict, [correct], max_workers=4)


def optimize(
    optimizer: MetaPromptOptimizer, eval_fn: Evaluator, data: list[dict[str, Any]], **kw: Any
) -> Any:
    return optimizer.optimize(eval_fn, data, {"task": ORIGINAL}, **kw)


# -- zero-shot ---------------------------------------------------------------------------------


def test_zero_shot_makes_exactly_one_call_and_no_evaluation(eval_fn: Evaluator) -> None:
    model = ScriptedModel([reply("Be exact. Reply about {{letter}}.")])
    optimizer = MetaPromptOptimizer(model, guidelines="Keep it under 20 words.", target_model="m1")
    output = optimize(optimizer, eval_fn, [])
    assert len(model.requests) == 1
    assert eval_fn.records_evaluated == 0
    assert output.optimized_prompts == {"task": "Be exact. Reply about {{ letter }}."}
    assert output.initial_eval_score is None
    request = model.requests[0]
    assert "Keep it under 20 words." in request.last_user and "m1" in request.last_user
    assert "{{ letter }}" in request.last_user and "placeholder" in request.system
    assert request.response_format is not None  # JSON schema asked for first


def test_zero_shot_through_optimize_prompts_registers_the_rewrite() -> None:
    model = ScriptedModel([reply("Be exact. Reply about {{ letter }}.")])
    result = optimize_prompts(
        predict_fn=predict,
        train_data=None,
        prompt_uris=["prompts:/task/1"],
        optimizer=MetaPromptOptimizer(model),
    )
    assert result.improved and result.optimized_prompts[0].version == 2
    assert len(model.requests) == 1


def test_zero_shot_reflection_failure_raises(eval_fn: Evaluator) -> None:
    model = ScriptedModel([ModelCallError("provider down", status=503)])
    with pytest.raises(ModelCallError, match="provider down"):
        optimize(MetaPromptOptimizer(model), eval_fn, [])


# -- few-shot ----------------------------------------------------------------------------------


def test_few_shot_shows_sampled_scored_examples_and_asks_for_a_diagnosis_first(
    eval_fn: Evaluator,
) -> None:
    model = ScriptedModel([reply(knowing("abcdefgh"))])
    optimizer = MetaPromptOptimizer(model, mode="few_shot", num_examples=3)
    output = optimize(optimizer, eval_fn, records())
    assert len(model.requests) == 1
    text = model.requests[0].last_user
    assert "Examples (3 of 8" in text
    assert text.count("### Example") == 3
    assert "said NO, wanted OK" in text  # the scorer's rationale is the evidence
    assert "Mean score 0.000" in text
    assert text.index("Diagnose") < text.index("Revise")
    assert output.initial_eval_score == 0.0 and output.final_eval_score == 1.0


def test_long_example_fields_are_truncated() -> None:
    def verbose(outputs: str) -> Feedback:
        return Feedback(name="verbose", value=False, rationale="x" * 5000)

    model = ScriptedModel([reply(knowing("a"))])
    optimizer = MetaPromptOptimizer(model, mode="few_shot", num_examples=1, max_field_chars=100)
    optimize(optimizer, make_eval_fn(predict, [verbose]), records("ab"))
    text = model.requests[0].last_user
    assert "x" * 100 in text and "x" * 101 not in text
    assert "[4900 more characters]" in text


def test_examples_are_stratified_by_outcome_label(eval_fn: Evaluator) -> None:
    register_prompt("task", knowing("a"))  # version 2 knows one letter: 1 pass, 7 fails
    model = ScriptedModel(default=reply(knowing("a")))  # no change: nothing to evaluate
    optimizer = MetaPromptOptimizer(model, mode="few_shot", num_examples=2)
    optimizer.optimize(eval_fn, records(), {"task": knowing("a")})
    text = model.requests[0].last_user
    assert "outcome: pass" in text and "outcome: fail" in text


def test_custom_label_fn_decides_the_strata(eval_fn: Evaluator) -> None:
    def by_letter(record: EvaluationResultRecord) -> str:
        return "vowel" if record.inputs["letter"] in "aeiou" else "consonant"

    model = ScriptedModel(default=reply(ORIGINAL))
    optimizer = MetaPromptOptimizer(model, mode="few_shot", num_examples=2, label_fn=by_letter)
    optimize(optimizer, eval_fn, records())
    text = model.requests[0].last_user
    assert "outcome: vowel" in text and "outcome: consonant" in text


# -- iterative ---------------------------------------------------------------------------------


def test_iterative_keeps_the_best_and_never_adopts_a_worse_candidate(eval_fn: Evaluator) -> None:
    model = ScriptedModel([reply(knowing("abcd")), reply(knowing("a")), reply(knowing("abcdef"))])
    optimizer = MetaPromptOptimizer(model, max_iterations=3)
    output = optimize(optimizer, eval_fn, records())
    assert [(r.score, r.accepted) for r in optimizer.history] == [
        (0.0, True),
        (0.5, True),
        (0.125, False),
        (0.75, True),
    ]
    assert output.optimized_prompts == {"task": knowing("abcdef")}
    assert output.final_eval_score == 0.75
    third = model.requests[2].last_user
    assert knowing("abcd") in third.split("## How the current")[0]  # rewrites the best so far
    assert "Attempt 2: score 0.125, not kept" in third  # and sees the history


def test_iterative_stops_on_the_stopping_condition(eval_fn: Evaluator) -> None:
    seen: list[int] = []

    def two_attempts(history: list[IterationRecord]) -> bool:
        seen.append(len(history))
        return len(history) >= 3

    model = ScriptedModel(default=reply(knowing("ab")))
    optimizer = MetaPromptOptimizer(model, max_iterations=10, stopping_condition=two_attempts)
    output = optimize(optimizer, eval_fn, records())
    assert len(model.requests) == 2 and seen == [1, 2, 3]
    assert output.details["stopped_because"] == "stopping_condition returned True"


def test_iterative_stops_at_the_score_threshold(eval_fn: Evaluator) -> None:
    model = ScriptedModel([reply(knowing("abcdef")), reply(knowing("abcdefg"))])
    optimizer = MetaPromptOptimizer(model, max_iterations=5, score_threshold=0.7)
    output = optimize(optimizer, eval_fn, records())
    assert len(model.requests) == 1 and output.final_eval_score == 0.75
    assert "score_threshold" in output.details["stopped_because"]


def test_nothing_to_learn_when_every_record_already_scores_one(eval_fn: Evaluator) -> None:
    model = ScriptedModel()
    optimizer = MetaPromptOptimizer(model, max_iterations=3)
    output = optimizer.optimize(eval_fn, records("ab"), {"task": knowing("ab")})
    assert model.requests == [] and output.final_eval_score == 1.0


def test_candidate_that_loses_a_variable_is_rejected_without_evaluation(
    eval_fn: Evaluator,
) -> None:
    model = ScriptedModel([reply("[a][b][c][d] Reply."), reply("[a] {{ letter }} {{ extra }}")])
    optimizer = MetaPromptOptimizer(model, max_iterations=2)
    output = optimize(optimizer, eval_fn, records())
    assert eval_fn.records_evaluated == 8  # the baseline only
    assert output.optimized_prompts == {"task": ORIGINAL}
    notes = [r.note for r in optimizer.history[1:]]
    assert notes == [
        "template variables changed: 'task' lost {{ letter }}",
        "template variables changed: 'task' added {{ extra }}",
    ]


def test_bad_json_gets_one_repair_request(eval_fn: Evaluator) -> None:
    model = ScriptedModel(
        ["Sure! Here is a better prompt.", f"```json\n{_dump(knowing('ab'))}\n```"]
    )
    optimizer = MetaPromptOptimizer(model, mode="few_shot")
    output = optimize(optimizer, eval_fn, records())
    assert len(model.requests) == 2
    assert "could not be used" in model.requests[1].last_user
    assert output.final_eval_score == 0.25


def test_a_reply_that_stays_unusable_keeps_the_original(eval_fn: Evaluator) -> None:
    model = ScriptedModel(["no json", '{"prompts": {"other": "x"}}'])
    optimizer = MetaPromptOptimizer(model, mode="few_shot")
    output = optimize(optimizer, eval_fn, records())
    assert output.optimized_prompts == {"task": ORIGINAL}
    assert "unusable reply" in optimizer.history[1].note


def test_top_level_prompt_names_are_accepted_too(eval_fn: Evaluator) -> None:
    model = ScriptedModel([{"task": knowing("abc")}])  # MLflow's reply shape
    output = optimize(MetaPromptOptimizer(model, mode="few_shot"), eval_fn, records())
    assert output.final_eval_score == 0.375


def test_val_data_ranks_candidates_and_examples_come_from_train(eval_fn: Evaluator) -> None:
    model = ScriptedModel([reply(knowing("ef"))])  # useless on train, good on val
    optimizer = MetaPromptOptimizer(model, mode="few_shot")
    output = optimize(optimizer, eval_fn, records("abcd"), val_data=records("efgh"))
    assert output.final_eval_score == 0.5 and output.optimized_prompts == {"task": knowing("ef")}
    assert output.details["ranked_on"] == "val_data"
    assert '"letter": "e"' not in model.requests[0].last_user


def test_several_candidates_per_round_are_evaluated_concurrently(eval_fn: Evaluator) -> None:
    lock = threading.Lock()
    proposals = iter([knowing("ab"), knowing("abcdef"), knowing("abc")])

    def propose(request: ModelRequest) -> dict[str, Any]:
        with lock:
            return reply(next(proposals))

    optimizer = MetaPromptOptimizer(
        FunctionModel(propose), mode="few_shot", candidates_per_iteration=3, max_workers=3
    )
    output = optimize(optimizer, eval_fn, records())
    assert output.optimized_prompts == {"task": knowing("abcdef")}
    assert sorted(r.score or 0 for r in optimizer.history[1:]) == [0.25, 0.375, 0.75]


def test_falls_back_to_instructed_json_when_the_schema_is_refused(eval_fn: Evaluator) -> None:
    def picky(request: ModelRequest) -> dict[str, Any]:
        if request.response_format is not None:
            raise ModelCallError("response_format unsupported", status=400)
        return reply(knowing("a"))

    model = FunctionModel(picky)
    output = optimize(MetaPromptOptimizer(model, mode="few_shot"), eval_fn, records())
    assert output.final_eval_score == 0.125
    kinds = [(r.response_format or {}).get("type") for r in model.requests]
    assert kinds == ["json_schema", "json_object", None]
    # The refused requests were sent too: all count; only the answered one has tokens.
    assert output.details["reflection_calls"] == 3
    assert output.details["reflection_tokens"] > 0


def test_reflection_failing_on_every_call_raises(eval_fn: Evaluator) -> None:
    model = ScriptedModel(default=ModelCallError("quota exhausted", status=429))
    with pytest.raises(ModelCallError, match="quota"):
        optimize(MetaPromptOptimizer(model, max_iterations=2), eval_fn, records())


def test_same_seed_gives_the_same_requests(eval_fn: Evaluator) -> None:
    def texts(seed: int) -> list[str]:
        model = ScriptedModel(default=reply(knowing("ab")))
        optimize(
            MetaPromptOptimizer(model, max_iterations=2, num_examples=3, seed=seed),
            eval_fn,
            records(),
        )
        return [r.last_user for r in model.requests]

    assert texts(7) == texts(7)


def test_summary_reports_each_attempt() -> None:
    optimizer = MetaPromptOptimizer(ScriptedModel([reply(knowing("abcd"))]), mode="few_shot")
    assert "not run yet" in optimizer.summary()
    optimizer.optimize(make_eval_fn(predict, [correct]), records(), {"task": ORIGINAL})
    summary = optimizer.summary()
    assert "few_shot" in summary and "new best" in summary
    assert "best: iteration 1, score 0.500 (+0.500 over the original)" in summary


def test_modes_that_need_data_say_so(eval_fn: Evaluator) -> None:
    with pytest.raises(ConfigurationError, match="needs train_data"):
        optimize(MetaPromptOptimizer(ScriptedModel(), mode="iterative"), eval_fn, [])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "greedy"}, "mode="),
        ({"max_iterations": 0}, "max_iterations"),
        ({"num_examples": 0}, "num_examples"),
        ({"candidates_per_iteration": 0}, "candidates_per_iteration"),
    ],
)
def test_bad_options_are_rejected_at_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MetaPromptOptimizer(ScriptedModel(), **options)


def _dump(template: str) -> str:
    return json.dumps(reply(template))
