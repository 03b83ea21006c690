"""No silent no-ops: an alignment that learned nothing and an optimization that found
nothing say so twice, in a warning at the caller's line and in the result they return."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from judgealign import (
    AlignedJudge,
    AlignmentResult,
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    ModelCallError,
    make_judge,
)
from judgealign.testing import FunctionModel, ModelRequest
from optimizers import (
    GEPA,
    InMemoryPromptStore,
    MetaPromptOptimizer,
    PromptOptimizationWarning,
    get_prompt_store,
    load_prompt,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

_IDS = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)
RECORDS = [
    LabeledRecord(id=f"r{i}", inputs=f"question {i}", outputs=f"answer {i}", label=i % 2 == 0)
    for i in range(6)
]


def judge_with(distill: Callable[[ModelRequest], Any], verdict: Any = True) -> Any:
    def brain(request: ModelRequest) -> Any:
        if "calibrating an automated evaluator" in request.system:  # a distillation request
            return distill(request)
        value = verdict(request) if callable(verdict) else verdict
        return {"rationale": "r", "result": value}

    model = FunctionModel(brain)
    judge = make_judge(
        name="j", instructions="Is {{ outputs }} right for {{ inputs }}?", model=model
    )
    return judge, model


def optimizer(**options: Any) -> MemAlignOptimizer:
    return MemAlignOptimizer(embedding_model=HashingEmbedder(64), **options)


def said(
    result: AlignmentResult | None, caught: list[warnings.WarningMessage], pattern: str
) -> None:
    """``pattern`` is in a warning pointing at this test file, and in the result."""
    assert result is not None
    messages = [str(w.message) for w in caught if w.filename == __file__]
    assert any(re.search(pattern, m) for m in messages), messages
    assert any(re.search(pattern, w) for w in result.warnings), result.warnings


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def fail(request: ModelRequest) -> Any:
    raise ModelCallError("reflection model down", status=503, retryable=True)


# -- alignment ---------------------------------------------------------------------------------


def test_no_usable_guideline(caught: list[warnings.WarningMessage]) -> None:
    judge, _ = judge_with(lambda request: {"guidelines": []})
    aligned = judge.align(RECORDS, optimizer=optimizer())
    said(aligned.last_alignment, caught, r"no usable guideline from 6 record\(s\)")
    assert aligned.guidelines == () and aligned.last_alignment.guidelines_added == ()


def test_guidelines_citing_only_unknown_records(caught: list[warnings.WarningMessage]) -> None:
    judge, _ = judge_with(lambda r: {"guidelines": [{"text": "Be strict.", "source_ids": ["r99"]}]})
    aligned = judge.align(RECORDS, optimizer=optimizer())
    result = aligned.last_alignment
    said(result, caught, r"cited 1 unknown record id\(s\) \['r99'\]")
    said(result, caught, r"1 guideline\(s\) cited no record id of their batch; they were kept")
    assert result is not None and result.dropped_source_ids == ("r99",)
    (kept,) = aligned.guidelines  # attributed to its batch rather than thrown away
    assert kept.text == "Be strict." and kept.source_ids == tuple(r.id for r in RECORDS)


def test_every_distillation_batch_failing(caught: list[warnings.WarningMessage]) -> None:
    judge, _ = judge_with(fail)
    aligned = judge.align(RECORDS, optimizer=optimizer(max_records_per_batch=2))
    result = aligned.last_alignment
    said(result, caught, r"3 distillation batch\(es\) covering 6 record\(s\) failed twice")
    assert result is not None and len(result.failed_batches) == 3 and result.distilled_ids == ()
    assert set(aligned.pending_record_ids) == {r.id for r in RECORDS}


def test_realigning_unchanged_records(caught: list[warnings.WarningMessage]) -> None:
    judge, model = judge_with(
        lambda r: {"guidelines": [{"text": "Rule.", "source_ids": _IDS.findall(r.last_user)}]}
    )
    aligned = judge.align(RECORDS, optimizer=optimizer())
    calls = len(model.requests)
    aligned.align(RECORDS)
    result = aligned.last_alignment
    said(result, caught, r"Nothing to align: all 6 record\(s\) are already in memory unchanged")
    assert result is not None and not result.changed and result.texts_embedded == 0
    assert len(model.requests) == calls, "no model call"


def test_disagreement_mode_where_the_judge_already_agrees(
    caught: list[warnings.WarningMessage],
) -> None:
    labels = {r.inputs: r.label for r in RECORDS}

    def expert_verdict(request: ModelRequest) -> bool:
        return next(v for q, v in labels.items() if f'"{q}"' in request.last_user)

    judge, _ = judge_with(lambda r: pytest.fail("nothing to distill"), verdict=expert_verdict)
    aligned = judge.align(RECORDS, optimizer=optimizer(learn_from="disagreements"))
    result = aligned.last_alignment
    said(result, caught, r"already agrees with the experts on all 6 record\(s\)")
    assert result is not None and result.disagreement_ids == () and not aligned.guidelines


def test_disagreement_mode_whose_base_judge_fails(caught: list[warnings.WarningMessage]) -> None:
    judge, _ = judge_with(lambda r: {"guidelines": []}, verdict=lambda r: fail(r))
    aligned = judge.align(RECORDS, optimizer=optimizer(learn_from="disagreements"))
    said(aligned.last_alignment, caught, r"failed on 6 record\(s\).*stay pending")
    assert len(aligned.pending_record_ids) == 6


def test_unaligning_unknown_ids(caught: list[warnings.WarningMessage]) -> None:
    judge, _ = judge_with(lambda r: {"guidelines": []})
    aligned: AlignedJudge = judge.align(RECORDS, optimizer=optimizer())
    aligned.unalign(["nope", "nada"])
    said(aligned.last_alignment, caught, r"Nothing to unalign; memory is unchanged")
    assert aligned.last_alignment is not None and aligned.last_alignment.records_removed == ()
    assert len(aligned.record_ids) == 6


# -- optimization ------------------------------------------------------------------------------


@pytest.fixture
def qa() -> Iterator[Callable[..., Any]]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("qa", "Answer: {{ question }}")

    def run(optimizer: Any, scorer: Callable[..., float] = lambda outputs: 0.5) -> Any:
        return optimize_prompts(
            predict_fn=lambda question: load_prompt("prompts:/qa/1").format(question=question),
            train_data=[{"inputs": {"question": f"q{i}"}} for i in range(6)],
            prompt_uris=["prompts:/qa/1"],
            optimizer=optimizer,
            scorers=[scorer],
        )

    try:
        yield run
    finally:
        set_prompt_store(previous)


def nothing_better(result: Any, caught: list[warnings.WarningMessage], why: str) -> None:
    messages = [str(w.message) for w in caught if issubclass(w.category, PromptOptimizationWarning)]
    assert any(re.search(rf"found no better prompt \({why}\)", m) for m in messages), messages
    assert result.improved is False
    assert result.final_eval_score == result.initial_eval_score
    assert result.optimized_prompts[0].version == 1
    assert get_prompt_store().load("qa").version == 1, "no new version registered"


def test_gepa_that_finds_nothing_better(
    qa: Callable[..., Any], caught: list[warnings.WarningMessage]
) -> None:
    rewrite = FunctionModel(lambda r: "```\nPlease answer: {{ question }}\n```")
    result = qa(GEPA(rewrite, max_metric_calls=30, progress=False))
    nothing_better(result, caught, "it proposed no usable change")
    assert result.details["note"] == "no candidate beat the target prompts on validation"
    assert result.details["rejection_counts"].get("not_better", 0) >= 1


def test_gepa_whose_reflection_model_always_fails(
    qa: Callable[..., Any], caught: list[warnings.WarningMessage]
) -> None:
    result = qa(GEPA(FunctionModel(fail), max_metric_calls=30, progress=False))
    nothing_better(result, caught, "it proposed no usable change")
    assert any(
        re.search(
            r"every reflection call failed \(\d+ of \d+\).*reflection model down", str(w.message)
        )
        for w in caught
    )
    assert result.details["note"].startswith("every reflection call failed")


def test_gepa_with_a_budget_too_small_to_propose(
    qa: Callable[..., Any], caught: list[warnings.WarningMessage], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="optimizers.gepa")
    result = qa(GEPA(FunctionModel(fail), max_metric_calls=3, progress=False))
    nothing_better(result, caught, "it proposed no usable change")
    assert "no proposal can be admitted" in caplog.text
    assert result.details["stop_reason"] == "budget" and result.details["iterations"] == 0


def test_metaprompt_that_finds_nothing_better(
    qa: Callable[..., Any], caught: list[warnings.WarningMessage]
) -> None:
    reply = {"diagnosis": "fine", "prompts": {"qa": "Kindly answer: {{ question }}"}}
    result = qa(MetaPromptOptimizer(FunctionModel(lambda r: reply), max_iterations=2))
    nothing_better(result, caught, "it proposed no usable change")
    tried = [r for r in result.history if r["iteration"] > 0]
    assert tried and all(r["score"] == 0.5 and not r["accepted"] for r in tried), tried


def test_metaprompt_whose_reflection_model_always_fails_raises(qa: Callable[..., Any]) -> None:
    with pytest.raises(ModelCallError, match="reflection model down"):
        qa(MetaPromptOptimizer(FunctionModel(fail)))
    assert get_prompt_store().load("qa").version == 1
