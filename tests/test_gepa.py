"""GEPA engine invariants on small deterministic tasks with scripted reflection models.

The toy task: each record names a keyword (its expectation); a record scores 1 when the
prompt under test mentions that keyword. The eval_fn's rationale says which keyword was
missing, and the scripted reflection model reads that feedback back out of the reflection
prompt, so improvement only happens if feedback flows as GEPA intends.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from judgealign import ConfigurationError, ModelCallError
from judgealign.testing import FunctionModel, ModelRequest, ScriptedModel
from optimizers import GEPA, EvaluationResultRecord, GepaPromptOptimizer, PromptOptimizationWarning
from optimizers.gepa._optimizer import split_data
from optimizers.gepa._reflect import parse_proposal

SEED_PROMPT = "Answer the question {{question}}."
_CURRENT = re.compile(r"Its current text:\n\n```\n(.*?)\n```", re.DOTALL)
_NAMED = re.compile(r'The prompt to improve is named "([^"]+)"')


class CountingEval:
    """A keyword eval_fn that counts every record it scores (thread-safe)."""

    def __init__(self, *, component: str = "main", fail_after: int | None = None) -> None:
        self.component = component
        self.fail_after = fail_after
        self.records = 0
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(
        self, prompts: dict[str, str], dataset: Sequence[dict[str, Any]]
    ) -> list[EvaluationResultRecord]:
        with self._lock:
            if self.fail_after is not None and self.records + len(dataset) > self.fail_after:
                raise RuntimeError("eval_fn crashed")
            self.records += len(dataset)
            self.calls += 1
        return [self._score(prompts[self.component], record) for record in dataset]

    def _score(self, prompt: str, record: dict[str, Any]) -> EvaluationResultRecord:
        keyword = record["expectations"]["keyword"]
        hit = keyword in prompt
        rationale = "mentions the keyword" if hit else f"MISSING keyword <{keyword}>"
        return EvaluationResultRecord(
            inputs=record["inputs"],
            outputs=f"answer to {record['inputs']['question']}",
            expectations=record["expectations"],
            score=1.0 if hit else 0.0,
            rationales={"judge": rationale},
            individual_scores={"judge": 1.0 if hit else 0.0},
        )


def make_data(keywords: Sequence[str], *, tag: str = "q") -> list[dict[str, Any]]:
    return [
        {"inputs": {"question": f"{tag}-{i}"}, "expectations": {"keyword": kw}}
        for i, kw in enumerate(keywords)
    ]


def current_prompt(request: ModelRequest) -> str:
    match = _CURRENT.search(request.last_user)
    assert match, "the reflection prompt shows the current prompt in a fenced block"
    return match.group(1)


def keyword_reflector(*, replace: bool = False) -> FunctionModel:
    """Adds (or, with ``replace``, swaps in) the most-requested missing keyword."""

    def reply(request: ModelRequest) -> str:
        prompt = current_prompt(request)
        missing = Counter(re.findall(r"MISSING keyword <(\w+)>", request.last_user))
        if not missing:
            return f"```\n{prompt} Be concise.\n```"
        keyword = sorted(missing.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        base = prompt.split(" Mention")[0] if replace else prompt
        return f"Here you go.\n```text\n{base} Mention {keyword}.\n```"

    return FunctionModel(reply)


def run(
    model: Any,
    eval_fn: Callable[..., list[EvaluationResultRecord]],
    train: list[dict[str, Any]],
    *,
    prompts: dict[str, str] | None = None,
    val: list[dict[str, Any]] | None = None,
    **options: Any,
) -> Any:
    options.setdefault("progress", False)
    optimizer = GepaPromptOptimizer(model, **options)
    return optimizer.optimize(eval_fn, train, prompts or {"main": SEED_PROMPT}, val_data=val)


KEYWORDS = ["alpha", "beta", "gamma", "alpha", "beta", "delta", "alpha", "gamma", "beta", "eps"]


def test_budget_never_exceeded() -> None:
    train, val = make_data(KEYWORDS), make_data(KEYWORDS[:6], tag="v")
    for budget in (6, 7, 11, 12, 13, 17, 18, 19, 23, 37, 61, 100):
        for merge in (False, True):
            eval_fn = CountingEval()
            result = run(
                keyword_reflector(replace=merge),
                eval_fn,
                train,
                val=val,
                max_metric_calls=budget,
                use_merge=merge,
                max_workers=3,
            )
            used = result.details["metric_calls_used"]
            assert eval_fn.records == used <= budget, (budget, merge)
            assert result.details["stop_reason"] in {"budget", "stalled", "perfect_score"}
    eval_fn = CountingEval()
    with pytest.raises(ConfigurationError, match="max_metric_calls=5"):
        run(keyword_reflector(), eval_fn, train, val=val, max_metric_calls=5)
    assert eval_fn.records == 0


def test_parents_come_from_pareto_front() -> None:
    train = make_data(KEYWORDS * 2)
    val = make_data(KEYWORDS, tag="v")
    result = run(
        keyword_reflector(replace=True), CountingEval(), train, val=val, max_metric_calls=200
    )
    candidates = result.details["candidates"]
    events = [e for e in result.details["history"] if e["kind"] == "reflection"]
    assert len(events) >= 5
    for event in events:
        pool = [c for c in candidates if c["iteration"] < event["iteration"]]
        winners: set[str] = set()
        for rid in pool[0]["val_scores"]:
            best = max(c["val_scores"][rid] for c in pool)
            winners |= {c["id"] for c in pool if c["val_scores"][rid] == best}
        parent = next(c for c in pool if c["id"] == event["parent"])
        assert parent["id"] in winners
        assert event["parent"] in event["pareto_front"]
        dominators = [
            c
            for c in pool
            if all(c["val_scores"][r] >= parent["val_scores"][r] for r in parent["val_scores"])
            and any(c["val_scores"][r] > parent["val_scores"][r] for r in parent["val_scores"])
        ]
        assert not dominators, (event, dominators)
    assert len({e["parent"] for e in events}) >= 2, "selection explores more than the best"
    assert len(result.details["pareto_front"]) >= 2


def test_child_not_beating_parent_on_minibatch_is_rejected() -> None:
    def same_score(request: ModelRequest) -> str:
        return f"```\n{current_prompt(request)} Please.\n```"  # never adds a keyword

    eval_fn = CountingEval()
    train = make_data(KEYWORDS)
    result = run(FunctionModel(same_score), eval_fn, train, max_metric_calls=40)
    assert [c["id"] for c in result.details["candidates"]] == ["c0"]
    rejected = result.details["rejected_candidates"]
    assert rejected and {r["reason"] for r in rejected} <= {"not_better", "duplicate"}
    for event in result.details["history"]:
        if "child_scores" in event:
            assert sum(event["child_scores"]) <= sum(event["parent_scores"])
    assert result.details["improved"] is False
    assert result.optimized_prompts == {"main": SEED_PROMPT}
    assert result.final_eval_score == result.initial_eval_score
    assert "note" in result.details


def test_template_variables_survive(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedModel(
        [
            "```\nAnswer briefly, mention alpha.\n```",  # drops {{question}}
            "```\nUse {{context}} to answer {{question}} with alpha.\n```",  # adds a variable
            "```\nAnswer {{ question }} and mention alpha.\n```",  # spacing variant: fine
        ],
        default="```\nAnswer {{ question }} and mention alpha, beta, gamma, delta, eps.\n```",
    )
    result = run(model, CountingEval(), make_data(["alpha"] * 6), max_metric_calls=60, seed=1)
    reasons = [
        r for r in result.details["rejected_candidates"] if r["reason"] == "template_variables"
    ]
    assert len(reasons) == 2
    assert "lost ['question']" in reasons[0]["detail"]
    assert "added ['context']" in reasons[1]["detail"]
    assert result.details["rejection_counts"]["template_variables"] == 2
    assert sum("template variables changed" in m for m in caplog.messages) == 2
    assert result.details["improved"] is True
    for candidate in result.details["candidates"]:
        prompt = candidate["prompts"]["main"]
        assert "{{question}}" in prompt and "{{ question }}" not in prompt
        assert "{{context}}" not in prompt
    assert result.optimized_prompts["main"] == "Answer {{question}} and mention alpha."


@pytest.mark.parametrize("split_from_train", [False, True])
def test_validation_records_never_reach_reflection(split_from_train: bool) -> None:
    train = make_data(KEYWORDS, tag="TRAIN")
    val = None if split_from_train else make_data(KEYWORDS[:5], tag="VALSECRET")
    model = keyword_reflector(replace=True)
    result = run(model, CountingEval(), train, val=val, max_metric_calls=120)
    split = result.details["split"]
    records = {f"train:{i}": r for i, r in enumerate(train)}
    hidden = [records[i]["inputs"]["question"] for i in split["val_ids"] if i in records]
    hidden += [r["inputs"]["question"] for r in val or []]
    assert model.requests, "reflection ran"
    for request in model.requests:
        for question in hidden:
            assert f'"{question}"' not in request.last_user
    assert not set(split["val_ids"]) & set(split["train_ids"])

    shown = keyword_reflector(replace=True)
    run(shown, CountingEval(), train, val=val, max_metric_calls=120, show_val_in_reflection=True)
    assert any(f'"{q}"' in r.last_user for r in shown.requests for q in hidden)


def test_same_seed_same_result() -> None:
    train = make_data(KEYWORDS * 2)

    def once(seed: int) -> Any:
        return run(
            keyword_reflector(replace=True), CountingEval(), train, max_metric_calls=90, seed=seed
        )

    first, second, other = once(3), once(3), once(4)
    assert first.optimized_prompts == second.optimized_prompts
    assert first.details["candidates"] == second.details["candidates"]
    assert first.details["history"] == second.details["history"]
    assert first.details["split"] != other.details["split"]
    assert first.details["history"] != other.details["history"]


def test_improves_on_toy_task() -> None:
    eval_fn = CountingEval()
    result = run(keyword_reflector(), eval_fn, make_data(KEYWORDS), max_metric_calls=100)
    assert result.final_eval_score > result.initial_eval_score
    assert result.details["improved"] is True
    assert result.optimized_prompts["main"] != SEED_PROMPT
    assert "{{question}}" in result.optimized_prompts["main"]
    lineage = result.details["lineage"]
    assert lineage[0] == "c0" and lineage[-1] == result.details["best_candidate"]
    assert result.final_eval_score_per_scorer["judge"] == result.final_eval_score


@pytest.mark.parametrize("selector", ["round_robin", "adaptive"])
def test_multi_component_rotation(selector: str) -> None:
    def two_part(prompts: dict[str, str], dataset: Sequence[dict[str, Any]]) -> list[Any]:
        system, user = prompts["system"], prompts["user"]
        score = 0.25 * sum(["A1" in system, "A2" in system, "B1" in user, "B2" in user])
        return [
            EvaluationResultRecord(r["inputs"], "out", None, score, rationales={"j": "needs"})
            for r in dataset
        ]

    def reply(request: ModelRequest) -> str:
        name = _NAMED.search(request.last_user)
        assert name
        prompt, letter = current_prompt(request), {"system": "A", "user": "B"}[name.group(1)]
        word = f"{letter}2" if f"{letter}1" in prompt else f"{letter}1"
        return f"```\n{prompt} {word}\n```"

    prompts = {"system": "You answer questions.", "user": "Question: {{question}}"}
    model = FunctionModel(reply)
    result = run(
        model,
        two_part,
        make_data(KEYWORDS),
        prompts=prompts,
        max_metric_calls=80,
        component_selector=selector,
    )
    components = [e["component"] for e in result.details["history"] if e["kind"] == "reflection"]
    if selector == "round_robin":
        assert components[:4] == ["system", "user", "system", "user"]
    else:  # with no evidence yet both are tied: rewritten together, from the same parent
        first = [e for e in result.details["history"] if e["iteration"] == 1]
        assert [(e["component"], e["parent"], e["outcome"]) for e in first] == [
            ("system", "c0", "accepted"),
            ("user", "c0", "accepted"),
        ]
    assert result.final_eval_score == 1.0
    best = result.optimized_prompts
    assert best["system"] == "You answer questions. A1 A2"
    assert best["user"] == "Question: {{question}} B1 B2"
    assert set(best) == {"system", "user"}


def test_resume_from_run_dir_without_repeating_metric_calls(tmp_path: Path) -> None:
    train, val = make_data(KEYWORDS), make_data(KEYWORDS[:5], tag="v")

    def go(eval_fn: CountingEval, budget: int, run_dir: Path | None) -> Any:
        return run(
            keyword_reflector(replace=True),
            eval_fn,
            train,
            val=val,
            max_metric_calls=budget,
            run_dir=run_dir,
            max_workers=2,
        )

    reference = go(CountingEval(), 90, None)

    # Interrupted by a small budget, then resumed with a larger one.
    first, second = CountingEval(), CountingEval()
    part = go(first, 30, tmp_path / "a")
    full = go(second, 90, tmp_path / "a")
    assert part.details["stop_reason"] == "budget" and full.details["resumed"] is True
    assert first.records == part.details["metric_calls_used"]
    assert first.records + second.records == full.details["metric_calls_used"] <= 90
    assert full.details["candidates"] == reference.details["candidates"]

    # Interrupted by eval_fn crashing mid-iteration, then resumed.
    crashing, healthy = CountingEval(fail_after=23), CountingEval()
    with pytest.raises(RuntimeError, match="crashed"):
        go(crashing, 90, tmp_path / "b")
    resumed = go(healthy, 90, tmp_path / "b")
    assert crashing.records + healthy.records == resumed.details["metric_calls_used"]
    assert resumed.details["candidates"] == reference.details["candidates"]
    assert resumed.optimized_prompts == reference.optimized_prompts

    with pytest.raises(ConfigurationError, match="target prompts"):
        run(
            keyword_reflector(),
            CountingEval(),
            train,
            val=val,
            run_dir=tmp_path / "a",
            prompts={"main": "Other {{question}}"},
        )
    with pytest.raises(ConfigurationError, match="data"):
        run(keyword_reflector(), CountingEval(), train[:-1], val=val, run_dir=tmp_path / "a")


def test_stop_on_patience_threshold_timeout() -> None:
    train = make_data(KEYWORDS)

    def useless(request: ModelRequest) -> str:
        return f"```\n{current_prompt(request)} Take care #{len(request.last_user)}.\n```"

    patient = run(FunctionModel(useless), CountingEval(), train, patience=3, max_metric_calls=500)
    assert patient.details["stop_reason"] == "patience"
    assert patient.details["iterations"] == 3

    reached = run(
        keyword_reflector(), CountingEval(), train, score_threshold=0.3, max_metric_calls=500
    )
    assert reached.details["stop_reason"] == "score_threshold"
    assert reached.final_eval_score >= 0.3
    assert reached.details["metric_calls_used"] < 500

    already = run(keyword_reflector(), CountingEval(), train, score_threshold=0.0)
    assert already.details["stop_reason"] == "score_threshold"
    assert already.details["iterations"] == 0

    timed = run(keyword_reflector(), CountingEval(), train, timeout_s=0.0)
    assert timed.details["stop_reason"] == "timeout" and timed.details["iterations"] == 0
    assert timed.initial_eval_score is not None

    perfect = run(
        keyword_reflector(), CountingEval(), make_data(["alpha"] * 4), max_metric_calls=500
    )
    assert perfect.details["stop_reason"] == "perfect_score" and perfect.final_eval_score == 1.0
    assert perfect.details["iterations"] == 1

    def same(request: ModelRequest) -> str:
        return f"```\n{current_prompt(request)}\n```"

    stuck = run(FunctionModel(same), CountingEval(), train, max_metric_calls=500)
    assert stuck.details["stop_reason"] == "stalled"
    assert {r["reason"] for r in stuck.details["rejected_candidates"]} == {"unchanged"}


def test_merge() -> None:
    # Two prompts; "alpha" in A solves a-records but loses z, "beta" in B solves b-records.
    # The reflection model only proposes beta while alpha is absent, so the best candidate
    # (A with alpha, B with beta) can only come from merging two siblings of the seed.
    def score(prompts: dict[str, str], record: dict[str, Any]) -> float:
        kind, a, b = record["inputs"]["kind"], prompts["A"], prompts["B"]
        return float({"a": "alpha" in a, "b": "beta" in b, "z": "alpha" not in a}[kind])

    def eval_fn(prompts: dict[str, str], dataset: Sequence[dict[str, Any]]) -> list[Any]:
        output = f"A={prompts['A']} | B={prompts['B']}"
        return [
            EvaluationResultRecord(r["inputs"], output, None, score(prompts, r), rationales={})
            for r in dataset
        ]

    def reply(request: ModelRequest) -> str:
        name, prompt = _NAMED.search(request.last_user), current_prompt(request)
        assert name
        if name.group(1) == "A" and "alpha" not in prompt:
            return f"```\n{prompt} alpha\n```"
        if name.group(1) == "B" and "beta" not in prompt and "alpha" not in request.last_user:
            return f"```\n{prompt} beta\n```"
        return f"```\n{prompt} again\n```"

    train = [{"inputs": {"kind": k, "n": i}} for i, k in enumerate("abab")]
    val = [{"inputs": {"kind": k}} for k in "abz"]
    prompts = {"A": "Part A.", "B": "Part B."}
    result = run(
        FunctionModel(reply),
        eval_fn,
        train,
        val=val,
        prompts=prompts,
        use_merge=True,
        max_metric_calls=80,
        minibatch_size=2,
    )
    merged = [c for c in result.details["candidates"] if c["origin"] == "merge"]
    assert merged, result.details["history"]
    assert len(merged[0]["parents"]) == 2
    assert "alpha" in merged[0]["prompts"]["A"] and "beta" in merged[0]["prompts"]["B"]
    assert result.details["merges"]["accepted"] >= 1
    assert result.final_eval_score == pytest.approx(2 / 3)

    plain = run(
        FunctionModel(reply),
        eval_fn,
        train,
        val=val,
        prompts=prompts,
        max_metric_calls=80,
        minibatch_size=2,
    )
    assert not [c for c in plain.details["candidates"] if c["origin"] == "merge"]


def test_reflection_failure_recorded() -> None:
    good = "```\nAnswer the question {{question}}. Mention alpha, beta, gamma.\n```"
    model = ScriptedModel([ModelCallError("provider down"), good], default=good)
    result = run(model, CountingEval(), make_data(KEYWORDS), max_metric_calls=60)
    assert result.details["reflection_failures"] == 1
    assert "provider down" in result.details["reflection_errors"][0]["error"]
    assert result.details["improved"] is True
    outcomes = [e["outcome"] for e in result.details["history"]]
    assert outcomes[0] == "reflection_failed" and "accepted" in outcomes

    broken = ScriptedModel(default=ModelCallError("always down"))
    with pytest.warns(PromptOptimizationWarning, match="every reflection call failed"):
        dead = run(broken, CountingEval(), make_data(KEYWORDS), max_metric_calls=500)
    assert dead.details["stop_reason"] == "stalled"
    assert dead.details["reflection_failures"] == dead.details["iterations"] >= 20
    assert dead.optimized_prompts == {"main": SEED_PROMPT}


def test_parse_proposal_is_tolerant() -> None:
    assert parse_proposal("x\n```\nfirst\n```\ny\n```md\nlast one\n```\nz") == "last one"
    assert parse_proposal("intro\n```\nunclosed text") == "unclosed text"
    assert parse_proposal("  just text  ") == "just text"
    assert parse_proposal("``````") == ""


def test_small_data_split_and_configuration() -> None:
    one = split_data(make_data(["a"]), None, val_fraction=0.3, seed=0)
    assert one.source == "shared" and one.train_ids == one.val_ids == ("train:0",)
    two = split_data(make_data(["a", "b"]), None, val_fraction=0.9, seed=0)
    assert len(two.train_ids) == len(two.val_ids) == 1
    assert GEPA is GepaPromptOptimizer
    with pytest.raises(ConfigurationError, match="minibatch_size"):
        GepaPromptOptimizer(ScriptedModel(), minibatch_size=0)
    with pytest.raises(ConfigurationError, match="examples"):
        GepaPromptOptimizer(ScriptedModel(), reflection_prompt="{current_prompt} only")
    with pytest.raises(ConfigurationError, match="train_data"):
        run(ScriptedModel(), CountingEval(), [])
    with pytest.raises(ConfigurationError, match="target_prompts"):
        GepaPromptOptimizer(ScriptedModel()).optimize(CountingEval(), make_data(["a"]), {})
    with pytest.raises(ConfigurationError, match="JUDGEALIGN_MODEL"):
        GepaPromptOptimizer()


def test_progress_bar_counts_metric_calls(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(
        keyword_reflector(), CountingEval(), make_data(KEYWORDS), progress=True, max_metric_calls=30
    )
    assert f"{result.details['metric_calls_used']}/30" in capsys.readouterr().err


def test_single_record_serves_as_train_and_validation() -> None:
    eval_fn = CountingEval()
    result = run(keyword_reflector(), eval_fn, make_data(["alpha"]), max_metric_calls=2)
    assert result.details["split"]["source"] == "shared"
    assert result.details["improved"] is True and result.final_eval_score == 1.0
    assert eval_fn.records == result.details["metric_calls_used"] == 2


@pytest.mark.parametrize(
    ("option", "bad"),
    [
        ("max_metric_calls", 0),
        ("max_metric_calls", 2.5),
        ("minibatch_size", 0),
        ("max_merge_attempts", -1),
        ("max_workers", 0),
        ("seed", True),
        ("val_fraction", 1.0),
        ("patience", 0),
        ("score_threshold", 1.5),
        ("timeout_s", -1),
        ("component_selector", "all"),
    ],
)
def test_each_bad_option_is_named_in_the_error(option: str, bad: object) -> None:
    with pytest.raises(ConfigurationError, match=rf"^{option}={bad!r} is invalid; it must be"):
        GepaPromptOptimizer(reflection_model=FunctionModel(lambda r: "x"), **{option: bad})
