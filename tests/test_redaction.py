"""Secret detection and scrubbing: which names are secrets, credentials in URLs, and
provider error bodies on the direct HTTP route."""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import pytest

from judgealign import Judge, LiteLLMModel, Message, ModelCallError, ResponseCache, make_judge
from judgealign.core._redact import is_secret_name, strip_url_credentials
from judgealign.models._litellm import EndpointError
from judgealign.testing import FakeOpenAIServer, Reply, no_retry_waits

# -- secret names -------------------------------------------------------------------------

SECRET_NAMES = [
    "api_key",
    "apikey",
    "apiKey",
    "apiKey2",
    "api_keys",
    "APIKey",
    "x-api-key",
    "X-API-KEY",
    "OPENAI_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "token",
    "access_token",
    "accessToken",
    "auth_token",
    "authtoken",
    "id_token",
    "refresh_token",
    "HF_TOKEN",
    "GITHUB_TOKEN",
    "token2",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "secret",
    "client_secret",
    "clientSecret",
    "secret_key",
    "aws_secret_access_key",
    "AWS_ACCESS_KEY_ID",
    "password",
    "passwd",
    "Authorization",
    "bearer",
    "auth",
    "basic_auth",
    "private_key",
    "credentials",
    "Ocp-Apim-Subscription-Key",
]
NOT_SECRET_NAMES = [
    "max_tokens",
    "max_completion_tokens",
    "max_new_tokens",
    "maxTokens",
    "num_tokens",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "token_limit",
    "token_count",
    "max_token",
    "eos_token_id",
    "pad_token_id",
    "token_type_ids",
    "top_logprobs",
    "logprobs",
    "tokenizer",
    "TOKENIZERS_PARALLELISM",
    "author",
    "cache_key",
    "sort_key",
    "temperature",
    "reasoning_effort",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_token_counts_and_lookalikes_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_to_dict_keeps_max_tokens_and_drops_the_key() -> None:
    judge = make_judge(
        name="j",
        instructions="Is {{ outputs }} right?",
        model="openai:/m",
        inference_params={
            "max_tokens": 64,
            "max_completion_tokens": 32,
            "top_logprobs": 2,
            "temperature": 0,
            "api_key": "plain-key-0123456789",
            "extra_headers": {"x-api-key": "plain-key-0123456789", "X-Trace": "t1"},
        },
    )
    params = judge.to_dict()["inference_params"]
    assert params == {
        "max_tokens": 64,
        "max_completion_tokens": 32,
        "top_logprobs": 2,
        "temperature": 0,
        "extra_headers": {"X-Trace": "t1"},
    }


def test_judges_differing_only_in_max_tokens_do_not_share_cached_replies(
    tmp_path: Path,
) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    messages: list[Message] = [{"role": "user", "content": "hi"}]
    with FakeOpenAIServer() as server:

        def model(max_tokens: int) -> LiteLLMModel:
            return LiteLLMModel(
                "openai:/fake",
                api_base=server.base_url,
                api_key="sk-fake",
                params={"max_tokens": max_tokens},
                cache=cache,
            )

        assert not model(16).complete(messages).usage.cached
        assert not model(512).complete(messages).usage.cached
        assert model(512).complete(messages).usage.cached
        assert [r.body["max_tokens"] for r in server.requests] == [16, 512]
    assert len(cache) == 2


# -- credentials in URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://user:pass@host:8000/v1", "http://host:8000/v1"),
        ("https://u:p@ss@llm.example.com/v1", "https://llm.example.com/v1"),
        ("https://h.example.com/v1?api_key=abc&x=1", "https://h.example.com/v1?x=1"),
        ("https://h/v1?x=1&access_token=z#frag", "https://h/v1?x=1#frag"),
        ("https://h/v1?key=AIzaSecret", "https://h/v1"),
        ("https://h/cb#access_token=abc", "https://h/cb"),
        ("http://u@[::1]:8000/v1?max_tokens=5", "http://[::1]:8000/v1?max_tokens=5"),
        ("http://localhost:8000/v1", "http://localhost:8000/v1"),
        ("see http://a:b@h:1/p and 'http://c:d@e/'", "see http://h:1/p and 'http://e/'"),
    ],
)
def test_strip_url_credentials(url: str, expected: str) -> None:
    assert strip_url_credentials(url) == expected


def test_saved_judge_has_no_url_credentials(tmp_path: Path) -> None:
    judge = make_judge(
        name="j",
        instructions="Is {{ outputs }} right?",
        model="openai:/m",
        base_url="http://user:pa55word@proxy.example.com:8000/v1?api_key=qk-123456&region=eu",
        inference_params={"api_base": "https://bob:hunter22@other.example.com/v1"},
    )
    data = judge.to_dict()
    assert data["base_url"] == "http://proxy.example.com:8000/v1?region=eu"
    assert data["inference_params"] == {"api_base": "https://other.example.com/v1"}
    text = judge.save(tmp_path / "j.json").read_text()
    for secret in ("pa55word", "user:", "qk-123456", "hunter22", "bob:"):
        assert secret not in text
    assert Judge.load(tmp_path / "j.json").base_url == data["base_url"]
    assert judge.base_url is not None and "pa55word" in judge.base_url  # still used for calls


# -- provider error bodies ----------------------------------------------------------------

KEY = "plainKEY-0123456789abcdef"  # not sk- shaped and not in the environment


def test_endpoint_error_redacts_and_cuts_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_API_KEY", "env-secret-abcdef")
    body = f"bad key {KEY} from env-secret-abcdef at http://u:pw@h/v1 " + "x" * 2000
    error = EndpointError("AuthenticationError", body, status_code=401, secrets=[KEY])
    text = str(error)
    for secret in (KEY, "env-secret-abcdef", "u:pw"):
        assert secret not in text
    assert text.startswith("bad key [REDACTED] from [REDACTED] at http://h/v1 ")
    assert text.endswith("more characters cut]") and len(text) < 600
    assert error.kind == "AuthenticationError" and error.status_code == 401
    assert str(EndpointError("Timeout", "no reply within 2 s")) == "no reply within 2 s"


@pytest.mark.parametrize("status", [401, 500])
def test_an_echoed_key_never_reaches_the_exception_chain(status: int) -> None:
    long_echo = f"Incorrect API key provided: {KEY}. " + "request body echoed " * 100
    with FakeOpenAIServer() as server, no_retry_waits(timeout_s=2.0):
        server.enqueue(*[Reply(status=status, error_message=long_echo)] * 5)
        model = LiteLLMModel("openai:/fake", api_base=server.base_url, api_key=KEY)
        with pytest.raises(ModelCallError) as info:
            model.complete([{"role": "user", "content": "hi"}])
        assert {r.headers.get("Authorization") for r in server.requests} == {f"Bearer {KEY}"}
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    shown = "".join(traceback.format_exception(info.value)) + json.dumps(
        [[str(e), e.args] for e in chain], default=str
    )
    assert KEY not in shown and "plainKEY" not in shown
    endpoint_errors = [e for e in chain if isinstance(e, EndpointError)]
    for error in endpoint_errors:
        assert len(str(error)) < 600 and "more characters cut" in str(error)


def test_model_repr_hides_url_credentials() -> None:
    model = LiteLLMModel("openai:/m", api_base="http://ana:hunter2@127.0.0.1:9/v1?api_key=k-1")
    assert "hunter2" not in repr(model) and "k-1" not in repr(model)
    assert "127.0.0.1:9/v1" in repr(model)
