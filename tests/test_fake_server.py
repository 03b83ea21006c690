"""Tests of the OpenAI-compatible fake server used by the rest of the test suite."""

from __future__ import annotations

import base64
import http.client
import json
import math
import os
import socket
import struct
import threading
import time
from typing import Any

import pytest

from judgealign.testing import ChatRequest, FakeOpenAIServer, FaultPlan, Reply
from judgealign.testing._server import fake_embedding


def _call(
    server: FakeOpenAIServer,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    method: str = "POST",
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json", "authorization": "Bearer sk-fake"}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def _chat(
    server: FakeOpenAIServer, *, timeout: float = 5.0, **body: Any
) -> tuple[int, dict[str, str], bytes]:
    body.setdefault("model", "fake")
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    return _call(server, "/v1/chat/completions", body, timeout=timeout)


def _content(raw: bytes) -> str | None:
    return json.loads(raw)["choices"][0]["message"]["content"]


VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "boolean"},
        "rationale": {"type": "string"},
        "score": {"type": "integer", "minimum": 3, "maximum": 5},
        "confidence": {"type": "number"},
        "label": {"type": "string", "enum": ["good", "bad"]},
        "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "detail": {"$ref": "#/$defs/Detail"},
    },
    "required": ["result", "rationale", "score", "confidence", "label", "note", "tags"],
    "additionalProperties": False,
    "$defs": {
        "Detail": {
            "type": "object",
            "properties": {"count": {"type": "integer"}, "ok": {"type": "boolean"}},
        }
    },
}


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": "Verdict", "strict": True, "schema": schema},
    }


# --- chat completions ----------------------------------------------------------------


def test_automatic_json_schema_reply() -> None:
    with FakeOpenAIServer() as server:
        status, _, raw = _chat(server, response_format=_schema_format(VERDICT_SCHEMA))
        assert status == 200
        completion = json.loads(raw)
        assert completion["object"] == "chat.completion"
        assert completion["model"] == "fake"
        assert completion["id"]
        assert isinstance(completion["created"], int)
        assert completion["choices"][0]["finish_reason"] == "stop"
        assert completion["choices"][0]["message"]["role"] == "assistant"
        assert json.loads(completion["choices"][0]["message"]["content"]) == {
            "result": True,
            "rationale": "fake rationale",
            "score": 3,
            "confidence": 0.5,
            "label": "good",
            "note": "fake note",
            "tags": ["fake tags"],
            "detail": {"count": 1, "ok": True},
        }
        usage = completion["usage"]
        assert usage["prompt_tokens"] >= 1
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert server.requests[0].answered_by == "auto"


def test_automatic_reply_follows_every_schema_keyword_it_knows() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "fixed": {"const": "yes", "type": "integer"},  # const wins over the type
            "either": {"oneOf": [{"type": "null"}, {"type": "integer", "exclusiveMinimum": 4.5}]},
            "nothing": {"anyOf": [{"type": "null"}]},
            "merged": {"allOf": [{"$ref": "#/$defs/Base"}, {"required": ["k"]}]},
            "maybe": {"type": ["null", "number"], "maximum": 0.25},
            "only_null": {"type": ["null"]},
            "ratio": {"type": "number", "exclusiveMinimum": 2},
            "inferred_list": {"items": {"type": "boolean"}, "minItems": 3},
            "inferred_object": {"properties": {"n": {}}},
            "padded": {"type": "string", "minLength": 12},
            "cut": {"type": "string", "maxLength": 4},
            "dangling": {"$ref": "#/$defs/Missing", "type": "boolean"},
            "untyped_object": {"type": "object"},
        },
        "$defs": {"Base": {"type": "object", "properties": {"k": {"type": "string"}}}},
    }
    with FakeOpenAIServer() as server:
        raw = _chat(server, response_format=_schema_format(schema))[2]
    assert json.loads(_content(raw) or "") == {
        "fixed": "yes",
        "either": 5,
        "nothing": None,
        "merged": {"k": "fake k"},
        "maybe": 0.25,
        "only_null": None,
        "ratio": 2.5,
        "inferred_list": [True, True, True],
        "inferred_object": {"n": "fake n"},
        "padded": "fake paddedx",
        "cut": "fake",
        "dangling": True,
        "untyped_object": {},
    }


def test_plain_and_json_object_and_forced_tool_auto_replies() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "record_verdict",
            "parameters": {
                "type": "object",
                "properties": {"passed": {"type": "boolean"}, "why": {"type": "string"}},
            },
        },
    }
    with FakeOpenAIServer() as server:
        assert _content(_chat(server)[2]) == "fake reply"
        raw = _chat(server, response_format={"type": "json_object"})[2]
        assert json.loads(_content(raw) or "")["result"] is True
        forced = {"type": "function", "function": {"name": "record_verdict"}}
        completion = json.loads(_chat(server, tools=[tool], tool_choice=forced)[2])
        choice = completion["choices"][0]
        assert choice["finish_reason"] == "tool_calls"
        (call,) = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "record_verdict"
        assert json.loads(call["function"]["arguments"]) == {"passed": True, "why": "fake why"}
        # tools without a forced choice: plain text
        assert _content(_chat(server, tools=[tool])[2]) == "fake reply"


def test_enqueue_is_fifo_and_comes_before_the_callable() -> None:
    seen: list[str] = []

    def reply(request: ChatRequest) -> str:
        seen.append(request.last_user)
        return "from callable"

    with FakeOpenAIServer(reply=reply) as server:
        server.enqueue("first", {"result": False}, Reply(content="third"))
        server.enqueue(
            Reply(
                tool_calls=[{"name": "lookup", "arguments": {"q": "x"}}], usage={"total_tokens": 7}
            )
        )
        assert server.queued == 4
        assert _content(_chat(server)[2]) == "first"
        assert json.loads(_content(_chat(server)[2]) or "") == {"result": False}
        assert _content(_chat(server)[2]) == "third"
        completion = json.loads(_chat(server)[2])
        (call,) = completion["choices"][0]["message"]["tool_calls"]
        assert call["type"] == "function" and call["id"]
        assert json.loads(call["function"]["arguments"]) == {"q": "x"}
        assert completion["usage"]["total_tokens"] == 7
        assert _content(_chat(server)[2]) == "from callable"
        assert server.queued == 0
        assert [r.answered_by for r in server.requests] == ["queue"] * 4 + ["callable"]
        assert seen == ["hello"]
        stats = server.stats
        assert (stats["chat"], stats["queue"], stats["callable"]) == (5, 4, 1)


def test_reply_callable_sees_the_request_and_can_fall_through() -> None:
    def reply(request: ChatRequest) -> Reply | dict[str, Any] | None:
        if "2+2" in request.last_user:
            return {"result": "4" in request.text, "rationale": f"model={request.model}"}
        if request.last_user == "boom":
            raise RuntimeError("scripted failure")
        if request.last_user == "slow":
            return Reply(content="late", delay_s=0.05)
        return None

    messages = [
        {"role": "system", "content": "You are a judge. The answer is 4."},
        {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}]},
    ]
    with FakeOpenAIServer(reply=reply) as server:
        raw = _chat(server, model="judge-model", messages=messages)[2]
        assert json.loads(_content(raw) or "") == {"result": True, "rationale": "model=judge-model"}
        assert _content(_chat(server)[2]) == "fake reply"  # None falls through
        status, _, raw = _chat(server, messages=[{"role": "user", "content": "boom"}])
        assert status == 500
        assert "scripted failure" in json.loads(raw)["error"]["message"]
        start = time.perf_counter()
        assert _content(_chat(server, messages=[{"role": "user", "content": "slow"}])[2]) == "late"
        assert time.perf_counter() - start >= 0.05
        answered = [r.answered_by for r in server.requests]
        assert answered == ["callable", "auto", "callable_error", "callable"]
        first = server.requests[0]
        assert first.path == "/v1/chat/completions"
        assert first.body["model"] == "judge-model"
        assert first.headers["Authorization"] == "Bearer sk-fake"
        assert first.headers["Content-Type"] == "application/json"
        assert first.status == 200


def test_rate_limit_carries_retry_after() -> None:
    plan = FaultPlan(rate=1.0, kinds=("rate_limit",), retry_after_s=0.25)
    with FakeOpenAIServer(faults=plan) as server:
        server.enqueue("never used: faults come first")
        status, headers, raw = _chat(server)
        assert status == 429
        assert headers["Retry-After"] == "0.25"
        assert headers["retry-after-ms"] == "250"
        error = json.loads(raw)["error"]
        assert error["type"] == "rate_limit_error"
        assert set(error) >= {"message", "type", "code"}
        assert server.queued == 1
        assert server.stats["fault_rate_limit"] == 1
        assert server.requests[0].answered_by == "fault:rate_limit"
    with FakeOpenAIServer() as server:
        server.enqueue(Reply(status=429, headers={"Retry-After": "0"}), "ok")
        status, headers, _ = _chat(server)
        assert (status, headers["Retry-After"]) == (429, "0")
        assert _content(_chat(server)[2]) == "ok"
        assert server.stats["errors"] == 1


def test_malformed_bad_content_and_wrong_type_faults() -> None:
    rf = _schema_format(
        {
            "type": "object",
            "properties": {"result": {"type": "boolean"}, "rationale": {"type": "string"}},
        }
    )
    with FakeOpenAIServer(faults=FaultPlan(rate=1.0, kinds=("malformed",))) as server:
        status, headers, raw = _chat(server)
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        with pytest.raises(ValueError):
            json.loads(raw)
    with FakeOpenAIServer(faults=FaultPlan(rate=1.0, kinds=("bad_content",))) as server:
        content = _content(_chat(server, response_format=rf)[2]) or ""
        assert "{" not in content
        with pytest.raises(ValueError):
            json.loads(content)
    with FakeOpenAIServer(faults=FaultPlan(rate=1.0, kinds=("wrong_type",))) as server:
        payload = json.loads(_content(_chat(server, response_format=rf)[2]) or "")
        assert payload == {"result": "banana", "rationale": "fake rationale"}
        string_result = _schema_format(
            {"type": "object", "properties": {"result": {"type": "string"}}}
        )
        payload = json.loads(_content(_chat(server, response_format=string_result)[2]) or "")
        assert not isinstance(payload["result"], str)
        payload = json.loads(_content(_chat(server)[2]) or "")
        assert payload == {"result": "banana", "rationale": "x"}
    with FakeOpenAIServer() as server:
        server.enqueue(Reply(raw_body="{not json", status=200))
        status, _, raw = _chat(server)
        assert (status, raw) == (200, b"{not json")


def test_fault_plan_is_deterministic_and_counted() -> None:
    def run() -> list[int]:
        plan = FaultPlan(rate=0.5, kinds=("server_error", "rate_limit"), seed=7)
        with FakeOpenAIServer(faults=plan) as server:
            statuses = [_chat(server)[0] for _ in range(30)]
            stats = server.stats
            assert stats["faults"] == stats["fault_server_error"] + stats["fault_rate_limit"]
            assert stats["faults"] == sum(s != 200 for s in statuses)
            server.reset()
            assert [_chat(server)[0] for _ in range(30)] == statuses
            assert server.stats["chat"] == 30
            return statuses

    first = run()
    assert first == run()
    assert 5 < sum(s != 200 for s in first) < 25
    assert {500, 429} <= set(first)
    with pytest.raises(ValueError):
        FaultPlan(rate=1.5)
    with pytest.raises(ValueError):
        FaultPlan(rate=0.5, kinds=("nope",))  # type: ignore[arg-type]


def test_hang_is_released_by_stop() -> None:
    plan = FaultPlan(rate=1.0, kinds=("hang",), hang_s=30.0)
    server = FakeOpenAIServer(faults=plan).start()
    try:
        with pytest.raises((socket.timeout, TimeoutError)):
            _chat(server, timeout=0.2)
        outcome: list[BaseException | tuple[int, dict[str, str], bytes]] = []

        def patient() -> None:
            try:
                outcome.append(_chat(server))  # 5 s timeout, hang is 30 s
            except BaseException as exc:
                outcome.append(exc)

        waiter = threading.Thread(target=patient)
        waiter.start()
        deadline = time.monotonic() + 2.0
        while server.stats["fault_hang"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.stats["fault_hang"] == 2
    finally:
        start = time.perf_counter()
        server.stop()
        stop_s = time.perf_counter() - start
    waiter.join(timeout=2.0)
    assert stop_s < 1.0
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(
        outcome[0], (ConnectionError, http.client.HTTPException)
    )
    assert not server.running


def test_requests_dropped_by_stop_are_recorded_unanswered() -> None:
    """A hang or a latency cut short by stop: recorded with status 0, no reply consumed."""
    cases: list[tuple[dict[str, Any], str]] = [
        ({"faults": FaultPlan(rate=1.0, kinds=("hang",), hang_s=30.0)}, "fault:hang"),
        ({"latency_s": 30.0}, "auto"),
    ]
    for options, answered_by in cases:
        server = FakeOpenAIServer(**options).start()
        server.enqueue("never sent")
        try:
            with pytest.raises((socket.timeout, TimeoutError)):
                _chat(server, timeout=0.2)
        finally:
            server.stop()
        deadline = time.monotonic() + 2.0  # the handler thread records after stop wakes it
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [(r.answered_by, r.status) for r in server.requests] == [(answered_by, 0)]
        assert server.queued == 1


def test_hang_ends_and_answers_when_short() -> None:
    with FakeOpenAIServer(faults=FaultPlan(rate=1.0, kinds=("hang",), hang_s=0.05)) as server:
        server.enqueue("after the hang")
        status, _, raw = _chat(server)
        assert (status, _content(raw)) == (200, "after the hang")
        assert server.requests[0].answered_by == "fault:hang"


def test_streaming_sends_sse_chunks() -> None:
    with FakeOpenAIServer() as server:
        server.enqueue("a streamed answer of some length")
        status, headers, raw = _chat(server, stream=True, stream_options={"include_usage": True})
        assert status == 200
        assert headers["Content-Type"] == "text/event-stream"
        events = [line[len("data: ") :] for line in raw.decode().split("\n\n") if line]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
        )
        assert text == "a streamed answer of some length"
        assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
        assert chunks[-1]["usage"]["total_tokens"] > 0


def test_keep_alive_models_and_errors() -> None:
    with FakeOpenAIServer() as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            for _ in range(3):  # three requests on one connection
                conn.request("GET", "/v1/models")
                response = conn.getresponse()
                models = json.loads(response.read())
                assert response.status == 200
                assert models["data"][0]["id"] == "fake"
        finally:
            conn.close()
        status, _, raw = _call(server, "/v1/nope", {})
        assert status == 404
        assert set(json.loads(raw)["error"]) >= {"message", "type", "code"}
        assert _call(server, "/v1/chat/completions", method="GET")[0] == 405
        assert _call(server, "/v1/chat/completions", {"messages": "x"})[0] == 400
        # the /v1 prefix is optional (MLflow's native adapter posts to the full URL)
        assert _call(server, "/chat/completions", {"messages": []})[0] == 200
        assert server.chat_url.endswith("/v1/chat/completions")
        assert [r.answered_by for r in server.requests][-4:] == [
            "not_found",
            "method_not_allowed",
            "bad_request",
            "auto",
        ]
        server.reset()
        assert server.requests == [] and server.stats["requests"] == 0


# --- embeddings ----------------------------------------------------------------------


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_embeddings_are_deterministic_normalised_and_base64() -> None:
    texts = ["The cat sits on the mat.", "A cat is sitting on a mat.", "Stock prices fell."]
    with FakeOpenAIServer(embedding_dim=64) as server:
        status, _, raw = _call(server, "/v1/embeddings", {"model": "fake-embed", "input": texts})
        assert status == 200
        reply = json.loads(raw)
        assert reply["object"] == "list" and reply["model"] == "fake-embed"
        assert reply["usage"]["prompt_tokens"] > 0
        vectors = [d["embedding"] for d in sorted(reply["data"], key=lambda d: d["index"])]
        assert all(len(v) == 64 for v in vectors)
        assert all(math.isclose(math.sqrt(_cosine(v, v)), 1.0) for v in vectors)
        assert vectors == [fake_embedding(t, 64) for t in texts]
        assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])

        again = json.loads(_call(server, "/v1/embeddings", {"input": texts[0]})[2])
        assert again["data"][0]["embedding"] == vectors[0]

        body = {"input": texts[:2], "encoding_format": "base64"}
        encoded = json.loads(_call(server, "/v1/embeddings", body)[2])
        for item, expected in zip(encoded["data"], vectors[:2], strict=True):
            decoded = struct.unpack("<64f", base64.b64decode(item["embedding"]))
            assert all(
                math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-7)
                for x, y in zip(decoded, expected, strict=True)
            )

        sized = json.loads(_call(server, "/v1/embeddings", {"input": "x", "dimensions": 8})[2])
        assert len(sized["data"][0]["embedding"]) == 8
        assert _call(server, "/v1/embeddings", {"input": 3})[0] == 400
        assert server.stats["embeddings"] == 5
        assert server.stats["chat"] == 0
    assert fake_embedding("") == fake_embedding("")
    assert math.isclose(math.sqrt(_cosine(fake_embedding(""), fake_embedding(""))), 1.0)


# --- concurrency ---------------------------------------------------------------------


def test_concurrent_requests_are_served_in_parallel() -> None:
    with FakeOpenAIServer(latency_s=0.2) as server:
        statuses: list[int] = []
        lock = threading.Lock()
        barrier = threading.Barrier(32)

        def client(i: int) -> None:
            barrier.wait()
            if i % 2:
                status = _chat(server, messages=[{"role": "user", "content": f"q{i}"}])[0]
            else:
                status = _call(server, "/v1/embeddings", {"input": f"text {i}"})[0]
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        assert statuses == [200] * 32
        assert 0.2 <= elapsed < 1.5, elapsed
        assert len(server.requests) == 32
        assert server.stats["requests"] == 32


# --- litellm -------------------------------------------------------------------------


def test_litellm_completion_and_embedding() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm
    from pydantic import BaseModel

    class Verdict(BaseModel):
        result: bool
        rationale: str
        score: int

    with FakeOpenAIServer() as server:
        response: Any = litellm.completion(
            model="openai/fake",
            api_base=server.base_url,
            api_key="sk-fake",
            messages=[{"role": "user", "content": "Is 2+2=4?"}],
            response_format=Verdict,
        )
        verdict = Verdict.model_validate_json(response.choices[0].message.content)
        assert verdict == Verdict(result=True, rationale="fake rationale", score=1)
        sent = server.requests[0].body
        assert sent["model"] == "fake"
        assert sent["response_format"]["type"] == "json_schema"

        server.enqueue({"result": False, "rationale": "scripted", "score": 2})
        response = litellm.completion(
            model="openai/fake",
            api_base=server.base_url,
            api_key="sk-fake",
            messages=[{"role": "user", "content": "Is 2+2=5?"}],
            response_format=Verdict,
        )
        assert Verdict.model_validate_json(response.choices[0].message.content).score == 2

        embedded: Any = litellm.embedding(
            model="openai/fake-embed",
            api_base=server.base_url,
            api_key="sk-fake",
            input=["first text", "second text"],
        )
        vectors = [item["embedding"] for item in embedded.data]
        assert vectors == [fake_embedding("first text"), fake_embedding("second text")]
        assert server.stats["embeddings"] == 1
