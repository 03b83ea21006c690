"""Verdicts a real server can keep (issue 22), against FakeOpenAIServer on 127.0.0.1.

Real OpenAI-compatible servers differ from an ideal one: a grammar-based server ignores
``minimum``/``maximum``, a reply with no ``max_tokens`` runs on, some users give the full
chat-completions URL as ``base_url``, and a dead server should produce an error that
says how long we tried. :class:`judgealign.testing.Decoding` imitates the first two.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from judgealign import make_judge
from judgealign.testing import Decoding, FakeOpenAIServer

INSTRUCTIONS = "Rate {{ outputs }} as an answer to {{ inputs }} from 1 (wrong) to 5 (right)."
RECORDS = [{"inputs": f"What is {n} + {n}?", "outputs": str(2 * n)} for n in range(10)]


def judge_for(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"feedback_value_type": int, "value_range": (1, 5), **kwargs}
    params = {"api_key": "sk-fake-key-000", **options.pop("inference_params", {})}
    return make_judge(
        name="score",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=options.pop("base_url", server.base_url),
        inference_params=params,
        **options,
    )


@pytest.fixture
def grammar_server() -> Iterator[FakeOpenAIServer]:
    """A server that enforces a schema's types and enums but not its numeric bounds."""
    with FakeOpenAIServer(decoding=Decoding(schema_bounds="ignored")) as server:
        yield server


# -- 1. integer ranges the grammar can enforce ------------------------------------------


def test_an_int_range_judge_gets_verdicts_in_range_from_a_server_that_ignores_bounds(
    grammar_server: FakeOpenAIServer,
) -> None:
    result = judge_for(grammar_server).evaluate(RECORDS, max_workers=4)

    assert result.errors == []
    assert all(1 <= value <= 5 for value in result.values)
    sent = grammar_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["result"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "enum": [1, 2, 3, 4, 5],
        "description": "The verdict.",
    }


def test_a_range_too_wide_for_an_enum_keeps_its_bounds_and_is_still_checked(
    grammar_server: FakeOpenAIServer,
) -> None:
    judge = judge_for(grammar_server, value_range=(0, 256))  # 257 integers: past the enum bound

    feedback = judge(inputs="q", outputs="a")

    sent = grammar_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert "enum" not in sent["properties"]["result"]
    assert sent["properties"]["result"]["maximum"] == 256
    # The grammar-like server answered out of range twice: an error, never a clamped value.
    assert feedback.value is None
    assert "outside the declared range" in (feedback.error or "")


# -- 3. base_url as MLflow means it -----------------------------------------------------


@pytest.mark.parametrize("direct", ["1", "0"])
@pytest.mark.parametrize("form", ["root", "root/", "chat_url", "chat_url/"])
def test_base_url_is_the_api_root_or_the_chat_completions_url_on_both_routes(
    monkeypatch: pytest.MonkeyPatch, direct: str, form: str
) -> None:
    monkeypatch.setenv("JUDGEALIGN_DIRECT_HTTP", direct)
    with FakeOpenAIServer() as server:
        given = server.base_url if form.startswith("root") else server.chat_url
        judge = judge_for(server, base_url=given + ("/" if form.endswith("/") else ""))

        feedback = judge(inputs="What is 2 + 2?", outputs="4")

        assert feedback.error is None
        assert [r.path for r in server.requests] == ["/v1/chat/completions"]
        # litellm's route is told apart by its client (the openai SDK), the direct one by ours
        agent = server.requests[0].headers.get("User-Agent", "")
        assert ("judgealign" in agent) == (direct == "1")


@pytest.mark.parametrize("direct", ["1", "0"])
@pytest.mark.parametrize("suffix", ["", "/embeddings"])
def test_embeddings_base_url_is_the_api_root_or_the_embeddings_url_on_both_routes(
    monkeypatch: pytest.MonkeyPatch, direct: str, suffix: str
) -> None:
    from judgealign import LiteLLMEmbedder

    monkeypatch.setenv("JUDGEALIGN_DIRECT_HTTP", direct)
    with FakeOpenAIServer() as server:
        embedder = LiteLLMEmbedder(
            "openai:/fake-embed",
            dimension=384,
            api_base=server.base_url + suffix,
            api_key="sk-fake-key-000",
        )

        vectors = embedder.embed(["the cat sat", "a dog barked"])

        assert len(vectors) == 2
        assert [r.path for r in server.requests] == ["/v1/embeddings"]


# -- 4. errors that tell the whole story ------------------------------------------------


def test_a_server_that_never_answers_is_reported_with_attempts_and_time_spent() -> None:
    from judgealign import LiteLLMModel, ModelCallError
    from judgealign.testing import no_retry_waits

    with FakeOpenAIServer(latency_s=5.0) as silent, no_retry_waits(timeout_s=0.2):
        model = LiteLLMModel("openai:/fake", api_base=silent.base_url, api_key="sk-x1234567")
        with pytest.raises(ModelCallError) as info:
            model.complete([{"role": "user", "content": "hi"}])

    message = str(info.value)
    assert "no reply within 0.2 s" in message  # the last attempt's own limit...
    # ...and the whole story: five attempts of 0.2 s each took at least a second.
    match = re.search(r"gave up after 5 attempts over (\d+\.\d) s: every attempt failed", message)
    assert match is not None, message
    assert float(match[1]) >= 1.0
    assert "RetryPolicy(max_attempts=5" in message


# -- 2. bounded replies -----------------------------------------------------------------


def test_verdict_calls_send_a_default_max_tokens_that_inference_params_override() -> None:
    with FakeOpenAIServer() as server:
        judge_for(server)(inputs="q", outputs="a")
        judge_for(server, inference_params={"max_tokens": 64})(inputs="q", outputs="a")
        judge_for(server, inference_params={"max_completion_tokens": 80})(inputs="q", outputs="a")
        judge_for(server, inference_params={"max_tokens": None})(inputs="q", outputs="a")

    bodies = [r.body for r in server.requests]
    assert [b.get("max_tokens") for b in bodies] == [512, 64, None, None]
    assert bodies[2]["max_completion_tokens"] == 80
    assert "max_completion_tokens" not in bodies[3]  # None: no limit at all


def test_a_reply_that_runs_on_is_cut_by_the_default_and_reported_as_truncated() -> None:
    # A server with no grammar and a model that does not stop (3,000 tokens if let run).
    with FakeOpenAIServer(decoding=Decoding(run_on_tokens=3000)) as server:
        judge = judge_for(server)
        feedback = judge(inputs="What is 2 + 2?", outputs="4")

    assert feedback.value is None
    error = feedback.error or ""
    assert "cut off at 512 tokens (finish_reason 'length'" in error
    assert "Raise the limit: make_judge(..., inference_params={'max_tokens': 1024})" in error
    # Both requests were bounded; the repair asked for a shorter reply.
    assert [r.body["max_tokens"] for r in server.requests] == [512, 512]
    assert "cut off at 512 tokens" in server.requests[1].body["messages"][-1]["content"]
    # Both cut replies were paid for, and are counted.
    assert judge.usage.calls == 2 and judge.usage.completion_tokens == 1024


def test_a_cut_reply_is_repaired_and_both_requests_are_counted() -> None:
    long_reply = {"rationale": "It adds up. " * 400, "result": 4}  # about 1,200 tokens
    with FakeOpenAIServer(decoding=Decoding(run_on_tokens=40)) as server:
        server.enqueue(long_reply)  # cut at 512 tokens, then the automatic short reply
        judge = judge_for(server)
        feedback = judge(inputs="What is 2 + 2?", outputs="4")

    assert feedback.error is None and feedback.value == 1
    assert feedback.metadata["repaired"] is True
    assert feedback.metadata["model_calls"] == 2
    assert feedback.metadata["completion_tokens"] == 512 + 40
    assert judge.usage.calls == 2


def test_a_limit_large_enough_lets_a_long_reply_through() -> None:
    with FakeOpenAIServer(decoding=Decoding(run_on_tokens=3000)) as server:
        judge = judge_for(server, inference_params={"max_tokens": 4000})
        feedback = judge(inputs="What is 2 + 2?", outputs="4")

    assert feedback.error is None and feedback.value == 1
    assert server.requests[0].response["usage"]["completion_tokens"] == 3000


def test_distillation_has_its_own_default_limit_whatever_the_judges_model() -> None:
    from judgealign import Guideline, LiteLLMModel
    from judgealign.memalign._distill import consolidate_guidelines

    guidelines = [Guideline(id=f"g{i}", text=f"Rule {i}.", source_ids=(f"r{i}",)) for i in range(4)]
    reply = {"guidelines": [{"text": "Rules.", "merged_ids": ["g0", "g1", "g2", "g3"]}]}
    with FakeOpenAIServer() as server:
        server.enqueue(reply, reply, reply)
        judge = judge_for(server)
        plain = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-fake-000")
        own = LiteLLMModel(
            "openai:/fake",
            api_base=server.base_url,
            api_key="sk-fake-000",
            params={"max_tokens": 300},
        )
        for model in (judge.model, plain, own):
            outcome = consolidate_guidelines(model, guidelines, instructions="x", target=1)
            assert outcome.error is None

    assert [r.body.get("max_tokens") for r in server.requests] == [2048, 2048, 300]


def test_gepa_rejects_a_reflection_cut_by_the_limit_instead_of_taking_the_fragment() -> None:
    from judgealign import LiteLLMModel
    from optimizers import GepaPromptOptimizer
    from tests.test_gepa import KEYWORDS, CountingEval, make_data

    rambling = "```\nAnswer the question {{question}}. Mention alpha, " + "and so on " * 2500
    with FakeOpenAIServer(reply=lambda _: rambling, decoding=Decoding(run_on_tokens=1)) as server:
        model = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-fake-000")
        optimizer = GepaPromptOptimizer(model, max_metric_calls=30, progress=False)
        result = optimizer.optimize(
            CountingEval(), make_data(KEYWORDS), {"main": "Answer the question {{question}}."}
        )

    assert server.requests and all(r.body["max_tokens"] == 4096 for r in server.requests)
    assert result.optimized_prompts == {"main": "Answer the question {{question}}."}
    outcomes = {e["outcome"] for e in result.details["history"]}
    assert outcomes == {"truncated"}, outcomes


def test_metaprompt_reports_a_reflection_cut_by_the_limit() -> None:
    from judgealign import LiteLLMModel
    from optimizers import MetaPromptOptimizer
    from tests.test_metaprompt import ORIGINAL

    prompt = "Be exact. Reply about {{ letter }}. " + "Really exact. " * 2000
    long_reply = {"diagnosis": "too vague", "prompts": {"task": prompt}}
    with FakeOpenAIServer(reply=lambda _: long_reply, decoding=Decoding(run_on_tokens=1)) as server:
        model = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-fake-000")
        output = MetaPromptOptimizer(model).optimize(lambda *_: [], [], {"task": ORIGINAL})

    assert [r.body["max_tokens"] for r in server.requests] == [4096, 4096]
    assert output.optimized_prompts == {"task": ORIGINAL}
    note = str(output.details)
    assert "cut off at 4096 tokens" in note
    assert "MetaPromptOptimizer(reflection_model=LiteLLMModel('openai:/fake'" in note


def test_the_clis_metered_model_gets_the_default_limits_too() -> None:
    from judgealign import LiteLLMModel
    from judgealign.cli._models import CallCounter
    from judgealign.models._metering import MeteredModel

    counter = CallCounter()
    with FakeOpenAIServer() as server:
        inner = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-fake-000")
        judge = make_judge(
            name="score",
            instructions=INSTRUCTIONS,
            model=MeteredModel(inner, counter),
            feedback_value_type=int,
            value_range=(1, 5),
        )
        assert judge(inputs="q", outputs="a").error is None

    assert server.requests[0].body["max_tokens"] == 512
    assert counter.calls == 1
    assert counter.total.prompt_tokens > 0  # the session sums tokens, not only calls
