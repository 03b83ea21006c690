"""Every request sent is counted: failed and repaired calls included (issue 14, item 9).

A reply that cannot be parsed was still paid for, and so was its repair; a request the
provider refused was still sent. These tests follow the usage from the model call to the
judge's feedback, ``judge.usage``, ``EvaluationResult.usage``, an alignment's result and an
optimizer's details.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from judgealign import (
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    ModelCallError,
    ModelOutputError,
    NetworkForbiddenError,
    make_judge,
)
from judgealign.models._structured import generate_structured
from judgealign.testing import (
    FakeOpenAIServer,
    FaultPlan,
    FunctionModel,
    ModelRequest,
    Reply,
    ScriptedModel,
    no_retry_waits,
)

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
PROSE = "I would rather not commit to a format."  # no JSON object: a parse failure
USAGE_KEYS = {"model", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms"}


def good(value: bool = True) -> dict[str, Any]:
    return {"rationale": "checked", "result": value}


def tokens(text: str) -> int:
    """The completion tokens a scripted model reports for ``text``."""
    return max(1, len(text) // 4)


# -- judges ------------------------------------------------------------------------------


def test_a_reply_that_fails_after_its_repair_counts_every_request() -> None:
    # Two replies without JSON in a row also read as a server ignoring the schema, so the
    # repair is sent again one rung down (json_object): three requests, all counted.
    model = ScriptedModel([PROSE, PROSE, PROSE])
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
    result = judge.evaluate([{"inputs": "2+2?", "outputs": "4"}])
    (fb,) = result
    assert fb.error is not None and "after one repair" in fb.error
    assert len(model.requests) == 3
    assert fb.metadata["model_calls"] == 3
    assert fb.metadata["prompt_tokens"] == 30  # 10 per scripted reply
    assert fb.metadata["completion_tokens"] == 3 * tokens(PROSE)
    assert judge.usage.calls == 3 and judge.usage.total_tokens == 30 + 3 * tokens(PROSE)
    assert result.usage.calls == 3 and result.usage.prompt_tokens == 30


def test_a_repair_whose_request_fails_still_counts_the_first_reply() -> None:
    model = ScriptedModel([PROSE, ModelCallError("server exploded", status=500)])
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
    fb = judge(inputs="2+2?", outputs="4")
    assert fb.error is not None and "server exploded" in fb.error
    assert fb.metadata["model_calls"] == 2
    assert fb.metadata["prompt_tokens"] == 10  # only the first reply arrived
    assert judge.usage.calls == 2


def test_a_request_refusing_the_schema_is_counted() -> None:
    model = ScriptedModel(
        [ModelCallError("response_format unsupported", status=400), good()],
        uri="test:/refuses-schema-usage",  # the schema refusal is remembered per model URI
    )
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
    fb = judge(inputs="2+2?", outputs="4")
    assert fb.value is True and len(model.requests) == 2
    assert fb.metadata["model_calls"] == 2 and judge.usage.calls == 2


def test_every_judge_feedback_has_the_usage_keys_failed_or_not() -> None:
    # The README promises token counts in every Feedback.metadata.
    model = ScriptedModel([good(), PROSE, PROSE])
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=model)
    records: list[Any] = [
        {"inputs": "q", "outputs": "a"},
        {"inputs": "q", "outputs": "b"},
        {"inputs": "q"},  # malformed: no call is made, and the metadata says so
    ]
    result = judge.evaluate(records, max_workers=1)
    assert [fb.ok for fb in result] == [True, False, False]
    for fb in result:
        assert set(fb.metadata) >= USAGE_KEYS, fb.metadata
    assert [fb.metadata["model_calls"] for fb in result] == [1, 2, 0]
    assert result.usage.calls == 3 == len(model.requests)


def test_unparseable_replies_from_a_real_endpoint_are_counted_with_their_tokens() -> None:
    with FakeOpenAIServer() as server, no_retry_waits():
        server.enqueue(Reply(content=PROSE, usage={"prompt_tokens": 700, "completion_tokens": 9}))
        server.enqueue(Reply(content=PROSE, usage={"prompt_tokens": 760, "completion_tokens": 9}))
        # A reply and its repair without JSON: the repair is asked again one rung down.
        server.enqueue(Reply(content=PROSE, usage={"prompt_tokens": 800, "completion_tokens": 9}))
        judge = make_judge(
            name="j",
            instructions=INSTRUCTIONS,
            model="openai:/fake",
            base_url=server.base_url,
            inference_params={"api_key": "sk-fake-usage-0000"},
        )
        result = judge.evaluate([{"inputs": "2+2?", "outputs": "4"}])
        assert server.stats["chat"] == 3
    (fb,) = result
    assert fb.error is not None
    assert (fb.metadata["prompt_tokens"], fb.metadata["completion_tokens"]) == (2260, 27)
    assert result.usage.calls == 3 and result.usage.prompt_tokens == 2260


def records_of_length(count: int, chars: int) -> list[dict[str, Any]]:
    return [
        {"inputs": {"i": i, "document": f"Paragraph {i}. " * (chars // 14)}, "outputs": f"s{i}"}
        for i in range(count)
    ]


def test_under_reply_faults_the_usage_counts_every_request_the_server_saw() -> None:
    # Unparseable and wrongly typed replies: each costs a request (and its repair).
    plan = FaultPlan(rate=0.3, kinds=("bad_content", "wrong_type"), seed=7)
    with FakeOpenAIServer(faults=plan, reply=lambda request: good()) as server:
        with no_retry_waits():
            judge = make_judge(
                name="j",
                instructions=INSTRUCTIONS,
                model="openai:/fake",
                base_url=server.base_url,
                inference_params={"api_key": "sk-fake-usage-0000"},
            )
            # One worker: the seeded faults go to requests in arrival order, so with several
            # workers which records fail varied from run to run (and sometimes none did).
            result = judge.evaluate(records_of_length(40, 3000), max_workers=1)
        sent = server.stats["chat"]
    failed = [fb for fb in result if fb.error is not None]
    repaired = [fb for fb in result if fb.ok and fb.metadata["repaired"]]
    assert failed and repaired and sent > 40  # the faults fired
    assert result.usage.calls == judge.usage.calls == sent
    assert sum(fb.metadata["model_calls"] for fb in result) == sent
    assert all(
        fb.metadata["model_calls"] == 2 and fb.metadata["prompt_tokens"] > 0 for fb in failed
    )
    assert result.usage.prompt_tokens == judge.usage.prompt_tokens


def test_a_failed_structured_call_carries_its_usage_on_the_exception() -> None:
    # The reply, its repair, and the repair again one rung down (see _structured).
    model = ScriptedModel([PROSE, PROSE, PROSE])
    with pytest.raises(ModelOutputError) as caught:
        generate_structured(
            model, [{"role": "user", "content": "x"}], schema_name="S", schema={}, parse=dict
        )
    usage = caught.value.usage
    assert usage is not None and usage.calls == 3 and usage.prompt_tokens == 30


def test_a_request_refused_before_it_was_sent_costs_nothing() -> None:
    from judgealign.models._metering import MeteredModel

    def refuse(request: ModelRequest) -> str:
        raise NetworkForbiddenError("not allowed")

    meter = MeteredModel(FunctionModel(refuse))
    with pytest.raises(NetworkForbiddenError):
        meter.complete([{"role": "user", "content": "x"}])
    assert meter.total.calls == 0


# -- alignment ---------------------------------------------------------------------------


def small_records(count: int) -> list[LabeledRecord]:
    return [
        LabeledRecord(
            id=f"r{i}",
            inputs=f"What is {i} + {i}?",
            outputs=str(2 * i + i % 2),
            label=i % 2 == 0,
            rationale="the sum is right" if i % 2 == 0 else "the sum is off by one",
        )
        for i in range(count)
    ]


def test_a_failed_distillation_batch_records_every_request_it_sent() -> None:
    def reflect(request: ModelRequest) -> str:
        return PROSE  # never a JSON object: each attempt sends a reply and its repair

    reflection = FunctionModel(reflect)
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=ScriptedModel())
    optimizer = MemAlignOptimizer(reflection_model=reflection, embedding_model=HashingEmbedder(64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = optimizer.align(judge, small_records(4))
    result = aligned.last_alignment
    assert result is not None and len(result.failed_batches) == 1
    sent = len(reflection.requests)
    assert sent == 6  # two attempts: a reply, its repair, the repair one rung down
    assert result.usage.calls == sent
    assert result.usage.prompt_tokens == 10 * sent


def test_a_batch_that_succeeds_on_its_second_attempt_counts_the_first() -> None:
    answers = iter([PROSE, PROSE])

    def reflect(request: ModelRequest) -> Any:
        reply = next(answers, None)
        if reply is not None:
            return reply
        return {"guidelines": [{"text": "Check the arithmetic.", "source_ids": ["r0"]}]}

    reflection = FunctionModel(reflect)
    judge = make_judge(name="j", instructions=INSTRUCTIONS, model=ScriptedModel())
    optimizer = MemAlignOptimizer(reflection_model=reflection, embedding_model=HashingEmbedder(64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = optimizer.align(judge, small_records(2))
    result = aligned.last_alignment
    assert result is not None and not result.failed_batches
    assert len(reflection.requests) == 3
    assert result.usage.calls == 3
