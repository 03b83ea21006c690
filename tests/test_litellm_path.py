"""The real litellm path, end to end, against FakeOpenAIServer on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from judgealign import (
    ConfigurationError,
    LiteLLMModel,
    ModelCallError,
    NetworkForbiddenError,
    ResponseCache,
    make_judge,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer, FaultPlan, Reply, no_retry_waits

INSTRUCTIONS = "Grade {{ outputs }} as an answer to {{ inputs }}."


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as srv:
        yield srv


def judge_for(server: FakeOpenAIServer, value_type: Any = bool, **kwargs: Any) -> Any:
    return make_judge(
        name="grade",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=server.base_url,
        feedback_value_type=value_type,
        inference_params={"api_key": "sk-fake-key-000"},
        **kwargs,
    )


@pytest.mark.parametrize(
    ("value_type", "kwargs", "reply", "expected"),
    [
        (bool, {}, {"result": "True", "rationale": "r"}, True),
        (int, {"value_range": (1, 5)}, {"result": "4", "rationale": "r"}, 4),
        (float, {}, {"result": 0.75, "rationale": "r"}, 0.75),
        (str, {}, {"result": "  concise  ", "rationale": "r"}, "concise"),
        (Literal["good", "fair", "poor"], {}, {"result": "FAIR", "rationale": "r"}, "fair"),
    ],
)
def test_typed_feedback_for_every_value_type(
    server: FakeOpenAIServer, value_type: Any, kwargs: dict[str, Any], reply: Any, expected: Any
) -> None:
    server.enqueue(reply)
    fb = judge_for(server, value_type, **kwargs)(inputs={"q": "2+2"}, outputs="4")
    assert fb.error is None
    assert fb.value == expected and type(fb.value) is type(expected)
    assert fb.metadata["prompt_tokens"] > 0 and fb.metadata["latency_ms"] > 0
    sent = server.requests[-1].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["model"] == "fake"


def test_automatic_schema_reply_parses(server: FakeOpenAIServer) -> None:
    fb = judge_for(server, int, value_range=(1, 5))(inputs="q", outputs="a")
    assert fb.value == 1  # the fake answers an integer schema with its minimum


def test_429_with_retry_after_is_retried(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(status=429, headers={"Retry-After": "0"}), Reply(status=500))
    server.enqueue({"result": True, "rationale": "ok"})
    fb = judge_for(server)(inputs="q", outputs="a")
    assert fb.value is True
    assert [r.status for r in server.requests] == [429, 500, 200]


def test_non_retryable_401_fails_fast_with_hint(server: FakeOpenAIServer) -> None:
    server.enqueue(Reply(status=401, error_message="Incorrect API key provided: sk-fake-key-000"))
    fb = judge_for(server)(inputs="q", outputs="a")
    assert fb.value is None and fb.error is not None
    assert "401" in fb.error and "API key" in fb.error
    assert "sk-fake-key-000" not in fb.error
    assert len(server.requests) == 1


def test_timeout_is_retried_then_reported() -> None:
    with FakeOpenAIServer(latency_s=2.0) as slow, no_retry_waits(timeout_s=0.2):
        model = LiteLLMModel("openai:/fake", api_base=slow.base_url, api_key="sk-x1234567")
        with pytest.raises(ModelCallError, match="gave up after 5 attempts") as info:
            model.complete([{"role": "user", "content": "hi"}])
        assert info.value.retryable


def test_network_switch_blocks_real_endpoints_but_not_loopback(server: FakeOpenAIServer) -> None:
    remote = LiteLLMModel("openai:/gpt-4o-mini", api_base="https://api.example.com/v1")
    with pytest.raises(NetworkForbiddenError, match="forbidden"):
        remote.complete([{"role": "user", "content": "hi"}])
    default_endpoint = LiteLLMModel("anthropic:/claude")
    with pytest.raises(NetworkForbiddenError):
        default_endpoint.complete([{"role": "user", "content": "hi"}])
    local = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-fake")
    assert local.complete([{"role": "user", "content": "hi"}]).text


def test_response_cache_is_explicit_and_keyed(server: FakeOpenAIServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    model = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-f", cache=cache)
    first = model.complete([{"role": "user", "content": "hi"}])
    second = model.complete([{"role": "user", "content": "hi"}])
    third = model.complete([{"role": "user", "content": "other"}])
    assert first.text == second.text and second.usage.cached and not third.usage.cached
    assert len(server.requests) == 2 and len(cache) == 2
    uncached = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key="sk-f")
    uncached.complete([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 3


def test_reply_callable_sees_data_in_user_message(server: FakeOpenAIServer) -> None:
    def reply(request: ChatRequest) -> dict[str, Any]:
        record = json.loads(request.last_user.split("<record>\n")[1].split("\n</record>")[0])
        return {"result": record["outputs"] == "4", "rationale": "checked"}

    with FakeOpenAIServer(reply=reply) as srv:
        judge = judge_for(srv)
        assert judge(inputs="2+2", outputs="4").value is True
        assert judge(inputs="2+2", outputs="5").value is False


def test_two_hundred_records_with_faults_of_every_kind() -> None:
    plan = FaultPlan(
        rate=0.2,
        kinds=("rate_limit", "server_error", "hang", "malformed", "bad_content", "wrong_type"),
        seed=7,
        retry_after_s=0.0,
        hang_s=5.0,
    )
    with FakeOpenAIServer(faults=plan) as srv, no_retry_waits(timeout_s=0.5):
        judge = judge_for(srv, int, value_range=(1, 5))
        records = [{"inputs": {"i": i}, "outputs": f"answer {i}"} for i in range(200)]
        result = judge.evaluate(records, max_workers=16)
        kinds = srv.stats
    assert len(result) == 200
    for fb in result:
        assert (fb.value is not None) != (fb.error is not None)
        assert fb.value is None or fb.value in range(1, 6)
    assert sum(fb.value is not None for fb in result) >= 190
    fired = {k: v for k, v in kinds.items() if k.startswith("fault_")}
    assert len(fired) == 6 and all(v > 0 for v in fired.values()), fired


def test_api_key_never_leaks(
    server: FakeOpenAIServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sk-test-SECRET-123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    judge = make_judge(
        name="g",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=server.base_url,
        inference_params={"api_key": secret, "temperature": 0},
    )
    seen: list[str] = [repr(judge), repr(judge.model), json.dumps(judge.to_dict())]
    seen.append(judge.save(tmp_path / "j.json").read_text())
    server.enqueue({"result": True, "rationale": "fine"})
    server.enqueue(Reply(status=401, error_message=f"Incorrect API key provided: {secret}"))
    server.enqueue(Reply(status=400, error_message=f"bad request for key {secret}"))
    server.enqueue(Reply(status=400, error_message=f"bad request for key {secret}"))
    for outputs in ("a", "b", "c"):
        fb = judge(inputs="q", outputs=outputs)
        seen += [fb.model_dump_json(), repr(fb), str(fb.error)]
    try:
        LiteLLMModel("openai:/fake", api_key=secret, api_base="https://example.com").complete(
            [{"role": "user", "content": "x"}]
        )
    except Exception as exc:
        seen.append(str(exc))
    seen += [r.getMessage() for r in caplog.records]
    assert any("401" in s for s in seen)
    assert all(secret not in s for s in seen), [s for s in seen if secret in s]
    assert server.requests[0].headers.get("Authorization", "").endswith(secret)


def test_malformed_uri_and_missing_key_errors() -> None:
    with pytest.raises(ConfigurationError, match="Malformed model URI"):
        LiteLLMModel("no-provider")


@pytest.mark.parametrize("direct", ["1", "0"])
def test_embeddings_through_both_routes_match_the_servers_vectors(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, direct: str
) -> None:
    # The direct route asks for base64 float32 (the openai SDK's default) and must decode
    # it to the same vectors the server computed; litellm's route gets JSON numbers.
    import numpy as np

    from judgealign import LiteLLMEmbedder
    from judgealign.testing._server import fake_embedding  # pyright: ignore[reportPrivateUsage]

    monkeypatch.setenv("JUDGEALIGN_DIRECT_HTTP", direct)
    texts = ["the cat sat", "a dog barked twice", "ünïcödé text"]
    embedder = LiteLLMEmbedder(
        "openai:/fake-embed", dimension=384, api_base=server.base_url, api_key="sk-fake-key-000"
    )
    vectors = embedder.embed(texts)
    expected = np.array([fake_embedding(t) for t in texts], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    (request,) = [r for r in server.requests if r.path.endswith("/embeddings")]
    assert isinstance(request.body, dict)
    assert request.body.get("encoding_format") == ("base64" if direct == "1" else None)


def test_embedding_replies_as_numbers_or_base64_and_bad_ones_named() -> None:
    import base64

    import numpy as np

    from judgealign import ModelOutputError
    from judgealign.models._litellm import _vector  # pyright: ignore[reportPrivateUsage]

    packed = base64.b64encode(np.array([0.5, -1.25], dtype="<f4").tobytes()).decode()
    assert _vector(packed, "openai:/e") == [0.5, -1.25]
    assert _vector([1, 2.5], "openai:/e") == [1.0, 2.5]  # a server that ignores base64
    for bad in ("not base64!", base64.b64encode(b"12345").decode()):
        with pytest.raises(ModelOutputError, match="openai:/e returned an embedding"):
            _vector(bad, "openai:/e")
