"""The fallbacks for servers that are not OpenAI, exercised fast against FakeOpenAIServer's
quirks (each mimics what llama-cpp-python's server was seen to do): structured-output
negotiation, context overflow whatever the status code, and embedding reply shapes. Every
test runs on judgealign's direct HTTP route and on litellm's (``JUDGEALIGN_DIRECT_HTTP=0``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from judgealign import (
    ContextLengthError,
    LiteLLMEmbedder,
    ModelCallError,
    ModelOutputError,
    make_judge,
)
from judgealign.models._litellm import _vector  # pyright: ignore[reportPrivateUsage]
from judgealign.models._refusals import context_overflow, refuses_response_format
from judgealign.models._structured import structured_rung
from judgealign.testing import FakeOpenAIServer, ServerQuirks

INSTRUCTIONS = "Is {{ outputs }} consistent with {{ inputs }}?"
KEY = "sk-fake-interop-0000"
LLAMA_CPP = ServerQuirks(json_schema="refuse_500")


@pytest.fixture(params=["direct", "litellm"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "litellm":
        monkeypatch.setenv("JUDGEALIGN_DIRECT_HTTP", "0")
    yield str(request.param)


def judge_on(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    return make_judge(
        name="consistent",
        instructions=INSTRUCTIONS,
        model="openai:/llama",
        base_url=server.base_url,
        inference_params={"api_key": KEY},
        **kwargs,
    )


def formats(server: FakeOpenAIServer) -> list[str | None]:
    """The response_format type of every chat request, in order."""
    return [
        (r.body.get("response_format") or {}).get("type")
        for r in server.requests
        if r.path.endswith("/chat/completions")
    ]


# -- structured-output negotiation -------------------------------------------------------


def test_json_schema_refused_with_500_falls_back_to_json_object_once(
    route: str, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeOpenAIServer(quirks=LLAMA_CPP) as server, caplog.at_level(logging.WARNING):
        judge = judge_on(server)
        result = judge.evaluate(
            [{"inputs": f"doc {i}", "outputs": f"summary {i}"} for i in range(4)], max_workers=1
        )
        statuses = [r.status for r in server.requests]
        sent_schema = server.requests[1].body["response_format"].get("schema")
    assert result.errors == [] and result.values == [True] * 4
    # The refusal is not retried: one json_schema request, then json_object for good.
    assert formats(server) == ["json_schema"] + ["json_object"] * 4
    assert statuses[0] == 500 and set(statuses[1:]) == {200}
    assert sent_schema is not None and "result" in sent_schema["properties"]
    warned = [r.getMessage() for r in caplog.records if "structured-output" in r.getMessage()]
    assert len(warned) == 1 and "'json_object'" in warned[0]
    assert structured_rung(judge.model) == "json_object"


def test_both_response_formats_refused_falls_back_to_the_prompt(route: str) -> None:
    quirks = ServerQuirks(json_schema="refuse_400", json_object=False)
    with FakeOpenAIServer(quirks=quirks, reply=lambda r: {"result": False, "rationale": "no"}) as s:
        judge = judge_on(s)
        values = [judge(inputs="d", outputs=str(i)).value for i in range(2)]
    assert values == [False, False]
    assert formats(s) == ["json_schema", "json_object", None, None]


def test_a_server_that_ignores_the_schema_is_moved_down_after_two_replies(route: str) -> None:
    # The field is dropped: the automatic reply is prose ("fake reply") until json_object.
    with FakeOpenAIServer(quirks=ServerQuirks(json_schema="ignore")) as server:
        judge = judge_on(server)
        first = judge(inputs="d", outputs="s")
        second = judge(inputs="d", outputs="t")
    assert first.value is True and second.value is True
    # prose, then the repair request is prose too: the second ignored reply moves it down.
    assert formats(server) == ["json_schema", "json_schema", "json_object", "json_object"]
    assert first.metadata["model_calls"] == 3  # every reply paid for is counted


def test_one_prose_reply_from_a_server_that_honours_the_schema_moves_nothing(route: str) -> None:
    with FakeOpenAIServer() as server:
        server.enqueue("I would say yes.")
        judge = judge_on(server)
        fb = judge(inputs="d", outputs="s")
    assert fb.value is True and fb.metadata["repaired"] is True
    assert formats(server) == ["json_schema", "json_schema"]
    assert structured_rung(judge.model) == "json_schema"


# -- context overflow --------------------------------------------------------------------

LONG = "The minister said the prison was calm. " * 400  # about 16,000 characters


def test_overflow_400_refits_the_record_to_the_reported_window(route: str) -> None:
    quirks = ServerQuirks(json_schema="refuse_500", context_window=2048)
    with FakeOpenAIServer(quirks=quirks) as server:
        judge = judge_on(server)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = [
                {"inputs": LONG, "outputs": "calm"},
                {"inputs": "short", "outputs": "x"},
                {"inputs": LONG + "again", "outputs": "calm"},
            ]
            result = judge.evaluate(records, max_workers=1)
        statuses = [r.status for r in server.requests]
    assert result.errors == [] and result.values == [True, True, True]
    assert result[0].metadata["truncated_fields"] == ["inputs"]
    assert any("2,048-token context window" in str(w.message) for w in caught)
    # json_schema refused (500), the long record refused once for its size (400); the
    # refit goes down the rungs again (json_object is remembered only once it answered),
    # then every request fits: the third record was cut before it was sent.
    assert statuses == [500, 400, 500, 200, 200, 200]
    assert formats(server) == ["json_schema", "json_object"] * 2 + ["json_object"] * 2


def test_overflow_500_without_a_window_is_a_clear_error_for_that_record(route: str) -> None:
    quirks = ServerQuirks(context_window=2048, overflow_status=500)
    with FakeOpenAIServer(quirks=quirks) as server:
        judge = judge_on(server)
        records = [
            {"inputs": "short", "outputs": "x"},
            {"id": "doc-7", "inputs": LONG, "outputs": "calm"},
            {"inputs": "short", "outputs": "y"},
        ]
        result = judge.evaluate(records, max_workers=1)
    assert result.values == [True, None, True]
    error = result[1].error or ""
    assert "Record 1 (id 'doc-7')" in error and "max_field_chars" in error
    assert f"inputs {len(LONG):,}" in error and "llama_decode returned -1" in error
    assert result[1].metadata["error_kind"] == "context_length"
    # Not retried, and structured output stays on for the records after it.
    assert formats(server) == ["json_schema"] * 3


def test_overflow_with_max_field_chars_none_names_the_setting(route: str) -> None:
    with FakeOpenAIServer(quirks=ServerQuirks(context_window=2048)) as server:
        judge = judge_on(server, max_field_chars=None)
        fb = judge(inputs=LONG, outputs="calm")
    assert fb.value is None and "2,048-token context window" in (fb.error or "")
    assert "max_field_chars=None" in (fb.error or "")
    assert len(server.requests) == 1


def test_context_length_error_is_typed_and_not_retried(route: str) -> None:
    from judgealign import LiteLLMModel

    with FakeOpenAIServer(quirks=ServerQuirks(context_window=100)) as server:
        model = LiteLLMModel("openai:/llama", api_base=server.base_url, api_key=KEY)
        with pytest.raises(ContextLengthError) as info:
            model.complete([{"role": "user", "content": LONG}])
        count = len(server.requests)
    assert count == 1 and info.value.window == 100 and info.value.prompt_tokens
    assert info.value.reason == "context_length"


# -- embeddings ----------------------------------------------------------------------------


def test_per_token_embeddings_are_mean_pooled(route: str) -> None:
    with FakeOpenAIServer(quirks=ServerQuirks(embeddings="per_token"), embedding_dim=16) as s:
        # The pooling warning is given once per model: one model per route.
        embedder = LiteLLMEmbedder(f"openai:/llama-{route}", api_base=s.base_url, api_key=KEY)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vectors = embedder.embed(["the cat sat", "a dog ran far"])
            again = embedder.embed(["the cat sat", "a dog ran far"])
        batches = [len(r.body["input"]) for r in s.requests]
    messages = " ".join(str(w.message) for w in caught)
    assert "one vector per token" in messages and "one text per request" in messages
    assert vectors.shape == (2, 16) and np.allclose(vectors, again)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    # The batch is refused once (not retried; litellm's openai SDK retries it twice),
    # then every text goes alone, for good.
    assert batches == [2] * (1 if route == "direct" else 3) + [1, 1, 1, 1]


def test_a_server_without_embeddings_is_refused_once_with_the_fix(route: str) -> None:
    with FakeOpenAIServer(quirks=ServerQuirks(embeddings="refuse")) as s:
        embedder = LiteLLMEmbedder("openai:/llama", api_base=s.base_url, api_key=KEY)
        with pytest.raises(ModelCallError, match="--embedding true") as info:
            embedder.embed(["the cat sat"])
        count = s.stats["embeddings"]
    assert info.value.reason == "embeddings_off" and info.value.attempts == 1
    # judgealign does not retry it; on litellm's route the openai SDK under litellm still
    # retries twice (litellm 1.106 reads max_retries=0 on its embedding path as "default").
    assert count == (1 if route == "direct" else 3)


def test_dimensions_are_sent_and_checked() -> None:
    with FakeOpenAIServer(embedding_dim=32) as s:
        embedder = LiteLLMEmbedder("openai:/llama", api_base=s.base_url, api_key=KEY, dimensions=8)
        vectors = embedder.embed(["the cat sat"])
        sent = s.requests[-1].body
    assert vectors.shape == (1, 8) and sent["dimensions"] == 8


@pytest.mark.parametrize(
    ("value", "shape"),
    [
        ({"values": [1.0]}, "a dict"),
        (None, "null"),
        ([[0.1, 0.2], [0.3]], "a list of 2 lists of 2 numbers"),
        ([["a"]], "a list of 1 lists of 1 str"),
        ("not base64!", "not base64 of float32"),
    ],
)
def test_unreadable_embedding_shapes_are_model_output_errors(value: Any, shape: str) -> None:
    with pytest.raises(ModelOutputError) as info:
        _vector(value, "openai:/llama")
    message = str(info.value)
    assert "openai:/llama" in message and shape in message and "embedding_model" in message


# -- reading refusals ----------------------------------------------------------------------


def test_refusal_texts_of_real_servers() -> None:
    llama = (
        "This model's maximum context length is 2048 tokens. However, you requested 3531 "
        "tokens (3531 in the messages, None in the completion)."
    )
    assert context_overflow(400, "BadRequestError", llama) == context_overflow(
        None, "ContextWindowExceededError", llama
    )
    found = context_overflow(400, "BadRequestError", llama)
    assert found is not None and (found.window, found.prompt_tokens) == (2048, 3531)
    decode = context_overflow(500, "InternalServerError", "llama_decode returned -1")
    assert decode is not None and decode.window is None
    assert context_overflow(500, "InternalServerError", "out of memory") is None
    assert context_overflow(None, "Timeout", "maximum context length") is None
    refused = "Input should be 'text' or 'json_object' ('body', 'response_format', 'type')"
    assert refuses_response_format(500, "InternalServerError", refused)
    assert not refuses_response_format(429, "RateLimitError", refused)
    assert not refuses_response_format(400, "BadRequestError", "invalid temperature")


def test_water_level_keeps_short_fields_whole_and_shares_the_rest() -> None:
    from judgealign.judges._context_fit import water_level

    assert water_level({"a": 100, "b": 5000, "c": 8000}, 4000) == 1950
    assert water_level({"a": 100, "b": 300}, 10_000) == 300  # everything fits
    assert water_level({"a": 5000}, 50) == 200  # never under the smallest max_field_chars
