"""Fault injection: a judge never loses a row, an aligner never drops a failed batch, and an
optimizer survives a failing ``predict_fn`` or scorer.

Everything runs through the real provider path (litellm's request shaping, judgealign's
HTTP route, retries, ``Retry-After``, timeouts, structured-output repair) against
:class:`FakeOpenAIServer` on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from judgealign import (
    ConfigurationError,
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    ModelCallError,
    make_judge,
)
from judgealign.testing import (
    ChatRequest,
    FakeOpenAIServer,
    FaultPlan,
    FunctionModel,
    ModelRequest,
    Reply,
    no_retry_waits,
)
from optimizers import (
    GEPA,
    EvaluationResultRecord,
    InMemoryPromptStore,
    load_prompt,
    make_eval_fn,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

INSTRUCTIONS = "Grade {{ outputs }} as an answer to {{ inputs }} from 1 (bad) to 5 (good)."
KEY = "sk-fake-faults-0000"
_RECORD = re.compile(r"<record>\n(.*?)\n</record>", re.DOTALL)
_BATCH_ID = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)

# The issue's mix, one entry per percent: 10% rate limits (with Retry-After), 5% server
# errors, 5% malformed or wrongly typed replies, 2% hangs past the per-call timeout.
ISSUE_MIX = (
    ("rate_limit",) * 10
    + ("server_error",) * 5
    + ("malformed",) * 2
    + ("wrong_type",) * 2
    + ("bad_content",) * 1
    + ("hang",) * 2
)

# Counts from the last run of each test, printed by the summary test at the end.
REPORT: dict[str, Any] = {}


def judge_on(server: FakeOpenAIServer, **options: Any) -> Any:
    return make_judge(
        name="grade",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=server.base_url,
        feedback_value_type=int,
        value_range=(1, 5),
        inference_params={"api_key": KEY},
        **options,
    )


def record_of(request: ChatRequest) -> dict[str, Any]:
    """The judged record, from the first user message (a repair request keeps it)."""
    match = _RECORD.search(request.text)
    assert match, "every verdict request quotes its record"
    return json.loads(match.group(1))


def grade_by_index(request: ChatRequest) -> dict[str, Any]:
    """Each record's verdict is a function of its index, so a shuffled row would show."""
    index = record_of(request)["inputs"]["i"]
    return {"rationale": f"record {index}", "result": index % 5 + 1}


# -- judging -------------------------------------------------------------------------------


def test_thousand_records_under_the_issue_fault_mix_lose_nothing() -> None:
    plan = FaultPlan(rate=0.22, kinds=ISSUE_MIX, seed=2024, retry_after_s=0.01, hang_s=3.0)
    records = [{"inputs": {"i": i}, "outputs": f"answer {i}"} for i in range(1000)]
    with FakeOpenAIServer(faults=plan, reply=grade_by_index) as server:
        with no_retry_waits(timeout_s=0.3):
            judge = judge_on(server)
            server.enqueue(*["warm"] * 5)
            judge.model.complete([{"role": "user", "content": "warm up"}])  # imports litellm
            server.reset()
            started = time.perf_counter()
            result = judge.evaluate(records, max_workers=32)
            elapsed = time.perf_counter() - started
        stats = server.stats
    assert len(result) == 1000
    ok = [i for i, fb in enumerate(result) if fb.value is not None]
    for i, fb in enumerate(result):
        assert (fb.value is None) != (fb.error is None), (i, fb)
        assert fb.name == "grade"
        if fb.value is not None:
            assert fb.value == i % 5 + 1 and fb.rationale == f"record {i}", (i, fb)
        else:
            assert fb.error and "fake" in fb.error, fb.error
    assert len(ok) >= 990, Counter(fb.error for fb in result if fb.error)
    fired = {k.removeprefix("fault_"): v for k, v in stats.items() if k.startswith("fault_")}
    assert all(fired[kind] > 0 for kind in set(ISSUE_MIX)), fired
    assert 0.15 < stats["faults"] / stats["chat"] < 0.30
    assert result.usage.calls >= len(ok)
    REPORT["judge"] = {
        "records": 1000,
        "with_value": len(ok),
        "with_error": 1000 - len(ok),
        "faults": fired,
        "requests": stats["chat"],
        "seconds": round(elapsed, 2),
    }


def test_retry_after_is_honoured_end_to_end() -> None:
    with FakeOpenAIServer() as server:
        server.enqueue(
            Reply(status=429, headers={"Retry-After": "0.4"}),
            {"rationale": "ok", "result": 4},
        )
        judge = judge_on(server)
        started = time.perf_counter()
        feedback = judge(inputs={"i": 1}, outputs="x")
        waited = time.perf_counter() - started
        first, second = server.requests
    assert feedback.value == 4
    assert [first.status, second.status] == [429, 200]
    assert waited >= 0.4 and second.time - first.time >= 0.35


def test_a_model_that_never_answers_is_an_error_per_record_not_an_exception() -> None:
    plan = FaultPlan(rate=1.0, kinds=("hang",), hang_s=2.0)
    with FakeOpenAIServer(faults=plan) as server, no_retry_waits(timeout_s=0.1):
        judge = judge_on(server)
        result = judge.evaluate([{"inputs": {"i": i}, "outputs": "x"} for i in range(4)])
        with pytest.raises(ModelCallError, match="gave up after 5 attempts"):
            judge.model.complete([{"role": "user", "content": "hi"}])
    assert result.values == [None] * 4
    assert all("gave up after 5 attempts" in (fb.error or "") for fb in result)


def test_one_malformed_record_among_good_ones_is_an_error_in_place() -> None:
    records: list[Any] = [{"inputs": {"i": i}, "outputs": "x"} for i in range(6)]
    records[2] = {"inputs": {"i": 2}}  # no outputs
    records[4] = 42  # not a record at all
    with FakeOpenAIServer(reply=grade_by_index) as server:
        result = judge_on(server).evaluate(records, max_workers=3)
    assert result.errors == [2, 4]
    assert "needs outputs=" in (result[2].error or "")
    assert "must be a dict" in (result[4].error or "")
    assert [result[i].value for i in (0, 1, 3, 5)] == [1, 2, 4, 1]


def test_an_unrelated_400_does_not_switch_structured_output_off_for_good() -> None:
    with FakeOpenAIServer(reply=grade_by_index) as server:
        judge = make_judge(
            name="grade",
            instructions=INSTRUCTIONS,
            model="openai:/fake-400-probe",  # its own URI: the switch is process-wide
            base_url=server.base_url,
            feedback_value_type=int,
            value_range=(1, 5),
            inference_params={"api_key": KEY},
        )
        server.enqueue(Reply(status=400, error_message="invalid value for temperature"))
        first = judge(inputs={"i": 1}, outputs="x")
        later = judge(inputs={"i": 2}, outputs="x")
        formats = [r.body.get("response_format") for r in server.requests]
    assert first.error is not None and "HTTP 400" in first.error
    assert later.value == 3
    # A 400 that does not name response_format is not a refusal of structured output:
    # no fallback is tried, and the schema stays on.
    assert [f["type"] for f in formats] == ["json_schema", "json_schema"]


# -- alignment -------------------------------------------------------------------------------


class Reflection:
    """The fake server's brain: verdicts by index, one guideline per distilled record, and
    a switch that breaks every distillation batch holding a given record."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.lock = threading.Lock()
        self.batches: list[list[str]] = []

    def __call__(self, request: ChatRequest) -> Any:
        if "calibrating an automated evaluator" not in request.text:  # not a distillation request
            return {"rationale": "base judge", "result": True}
        ids = _BATCH_ID.findall(request.last_user) or _BATCH_ID.findall(request.text)
        with self.lock:
            self.batches.append(ids)
            if self.broken & set(ids):
                return Reply(status=500, error_message="reflection backend down")
        return {"guidelines": [{"text": f"Rule for {rid}.", "source_ids": [rid]} for rid in ids]}


def labelled(count: int) -> list[LabeledRecord]:
    return [
        LabeledRecord(
            id=f"r-{i:03d}",
            inputs={"question": f"question {i}"},
            outputs=f"answer {i}",
            label=i % 3 != 0,
            rationale=f"expert reason {i}",
        )
        for i in range(count)
    ]


def bool_judge(server: FakeOpenAIServer) -> Any:
    return make_judge(
        name="ok",
        instructions="Is {{ outputs }} right for {{ inputs }}?",
        model="openai:/fake",
        base_url=server.base_url,
        inference_params={"api_key": KEY},
    )


def memalign(**options: Any) -> MemAlignOptimizer:
    return MemAlignOptimizer(
        embedding_model=HashingEmbedder(128),
        max_records_per_batch=5,
        dedupe_threshold=1.0,
        **options,
    )


def test_a_failed_distillation_batch_is_reported_kept_pending_and_retried() -> None:
    brain = Reflection()
    records = labelled(30)
    brain.broken = {"r-013"}
    with FakeOpenAIServer(reply=brain) as server:
        judge = bool_judge(server)
        with pytest.warns(
            UserWarning, match=r"1 distillation batch\(es\) covering 5 record\(s\) failed twice"
        ):
            aligned = judge.align(records, optimizer=memalign())
        first = aligned.last_alignment
        assert first is not None
        (failed,) = first.failed_batches
        assert "r-013" in failed.record_ids and "HTTP 500" in failed.error
        assert failed.attempts == 2
        assert set(first.distilled_ids).isdisjoint(failed.record_ids)
        assert set(first.distilled_ids) | set(failed.record_ids) == {r.id for r in records}
        assert set(aligned.record_ids) == {r.id for r in records}, "every record is an example"
        assert set(aligned.pending_record_ids) == set(failed.record_ids)
        assert any("failed twice" in w for w in first.warnings)
        cited = {s for g in aligned.guidelines for s in g.source_ids}
        assert cited.isdisjoint(failed.record_ids)
        # five retries per request at the HTTP layer, two attempts per batch
        assert sum("r-013" in batch for batch in brain.batches) == 2 * 5

        brain.broken = set()
        again = aligned.align(records).last_alignment
    assert again is not None and not again.failed_batches
    assert set(again.distilled_ids) == set(failed.record_ids)
    assert again.records_added == () and again.texts_embedded == 5  # guidelines only
    assert not aligned.pending_record_ids
    assert {s for g in aligned.guidelines for s in g.source_ids} == {r.id for r in records}
    REPORT["align_deterministic"] = {"records": 30, "failed_batches": 1, "recovered": 5}


@pytest.mark.parametrize("learn_from", ["all", "disagreements"])
def test_random_faults_during_alignment_never_drop_a_record(learn_from: str) -> None:
    brain = Reflection()
    records = labelled(40)
    # Harsh on purpose: most replies are unusable, so batches fail twice and must come back.
    kinds = ("bad_content", "wrong_type", "malformed", "rate_limit", "hang")
    plan = FaultPlan(rate=0.8, kinds=kinds, seed=5, retry_after_s=0.0, hang_s=2.0)
    rounds: list[tuple[int, int]] = []
    with FakeOpenAIServer(faults=plan, reply=brain) as server, no_retry_waits(timeout_s=0.3):
        judge = bool_judge(server)
        optimizer = memalign(learn_from=learn_from)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # faults may or may not fail a batch twice
            aligned = judge.align(records, optimizer=optimizer)
            for _ in range(12):
                result = aligned.last_alignment
                assert result is not None
                failed = {i for b in result.failed_batches for i in b.record_ids}
                assert set(aligned.pending_record_ids) >= failed
                assert bool(result.failed_batches) == any(
                    "failed twice" in w for w in result.warnings
                )
                if aligned.pending_record_ids:
                    assert result.warnings, "records left pending must be reported"
                rounds.append((len(result.failed_batches), len(aligned.pending_record_ids)))
                if not aligned.pending_record_ids:
                    break
                aligned.align(records)
        fired = server.stats["faults"]
    assert set(aligned.record_ids) == {r.id for r in records}
    assert not aligned.pending_record_ids, rounds
    statuses = Counter(
        "cited" if any(r.id in g.source_ids for g in aligned.guidelines) else "uncited"
        for r in records
    )
    if learn_from == "all":
        assert statuses["cited"] == 40, statuses
    assert fired > 0 and rounds[0][1] > 0, rounds  # the first round did leave work pending
    REPORT[f"align_random_{learn_from}"] = {"records": 40, "faults": fired, "rounds": rounds}


# -- optimization ----------------------------------------------------------------------------


@pytest.fixture
def prompts() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("qa", "Answer the question: {{ question }}")
    try:
        yield
    finally:
        set_prompt_store(previous)


def flaky_predict(question: str) -> str:
    if "boom" in question:
        raise RuntimeError(f"upstream model crashed on {question!r}")
    return load_prompt("prompts:/qa/1").format(question=question)


def flaky_scorer(inputs: dict[str, Any], outputs: str) -> float:
    if inputs["question"].endswith("7"):
        raise ValueError("scorer backend unavailable")
    return 1.0 if "concise" in outputs else 0.0


def questions(count: int) -> list[dict[str, Any]]:
    return [
        {"inputs": {"question": f"boom {i}" if i % 5 == 0 else f"q {i}"}, "expectations": None}
        for i in range(count)
    ]


def test_failing_predict_fn_and_scorer_score_zero_with_the_error_and_nothing_else(
    prompts: None,
) -> None:
    data = questions(20)
    eval_fn = make_eval_fn(flaky_predict, [flaky_scorer], max_workers=4)
    results = eval_fn({"qa": "Be concise: {{ question }}"}, data)
    assert len(results) == 20
    for row, result in zip(data, results, strict=True):
        question = row["inputs"]["question"]
        assert result.inputs == row["inputs"]
        if question.startswith("boom"):
            assert result.score == 0.0 and result.outputs is None
            assert "predict_fn raised RuntimeError: upstream model crashed" in (result.error or "")
        elif question.endswith("7"):
            assert result.score == 0.0 and "scorer backend unavailable" in (result.error or "")
            assert "scorer raised ValueError" in result.rationales["flaky_scorer"]
        else:
            assert result.score == 1.0 and result.error is None


def test_gepa_survives_failing_predict_fn_scorer_and_reflection_model(prompts: None) -> None:
    proposals = iter(["```\nBe concise: {{ question }}\n```"])

    def reflect(request: ModelRequest) -> str:
        assert "predict_fn raised" in request.last_user or "scorer raised" in request.last_user
        try:
            return next(proposals)
        except StopIteration:
            raise ModelCallError("reflection model down", status=503, retryable=True) from None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = optimize_prompts(
            predict_fn=flaky_predict,
            train_data=questions(12)[1:],  # train_data[0] must work: it is the setup check
            val_data=questions(6)[1:],
            prompt_uris=["prompts:/qa/1"],
            optimizer=GEPA(
                FunctionModel(reflect), max_metric_calls=60, minibatch_size=4, progress=False
            ),
            scorers=[flaky_scorer],
        )
    assert result.improved is True
    assert result.optimized_prompts[0].template == "Be concise: {{ question }}"
    assert result.details["reflection_failures"] >= 1
    assert all("reflection model down" in e["error"] for e in result.details["reflection_errors"])
    assert result.final_eval_score is not None and result.initial_eval_score is not None
    assert result.final_eval_score > result.initial_eval_score
    REPORT["optimize"] = {
        "reflection_failures": result.details["reflection_failures"],
        "metric_calls": result.details["metric_calls_used"],
    }


def test_gepa_reads_unscored_records_as_zero_and_refuses_scores_off_the_scale(
    prompts: None,
) -> None:
    def eval_fn_with(weird: list[Any]) -> Any:
        def eval_fn(candidate: dict[str, str], dataset: Any) -> list[EvaluationResultRecord]:
            return [
                EvaluationResultRecord(
                    inputs=r["inputs"], outputs="x", expectations=None, score=weird[i % len(weird)]
                )
                for i, r in enumerate(dataset)
            ]

        return eval_fn

    model = FunctionModel(lambda request: "```\nAnswer well: {{ question }}\n```")
    output = GEPA(model, max_metric_calls=12, progress=False).optimize(
        eval_fn_with([float("nan"), None, "high", 0.5]),
        questions(8),
        {"qa": "Answer: {{ question }}"},
    )
    for candidate in output.details["candidates"]:
        assert set(candidate["val_scores"].values()) <= {0.0, 0.5}, candidate
    for off_scale in (7.0, -3.0, float("inf")):
        with pytest.raises(ConfigurationError, match="outside"):
            GEPA(model, max_metric_calls=12, progress=False).optimize(
                eval_fn_with([0.5, off_scale]), questions(8), {"qa": "Answer: {{ question }}"}
            )
