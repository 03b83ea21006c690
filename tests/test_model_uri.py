"""One model-URI grammar: chat models and embedders read a URI the same way."""

from __future__ import annotations

import pytest

from judgealign import ConfigurationError, LiteLLMEmbedder, resolve_model

WELL_FORMED = [
    ("openai:/gpt-4o-mini", ("openai", "gpt-4o-mini")),
    ("openai/gpt-4o-mini", ("openai", "gpt-4o-mini")),
    ("OpenRouter/meta-llama/llama-3-8b", ("openrouter", "meta-llama/llama-3-8b")),
    ("  hosted_vllm:/Qwen2.5-7B  ", ("hosted_vllm", "Qwen2.5-7B")),
]
MALFORMED = ["gpt-4o-mini", "http://example.com/v1", "openai:/text embedding", "openai:/", ""]


@pytest.mark.parametrize(("uri", "parts"), WELL_FORMED)
def test_chat_models_and_embedders_accept_the_same_uris(uri: str, parts: tuple[str, str]) -> None:
    canonical = f"{parts[0]}:/{parts[1]}"
    assert resolve_model(uri).uri == canonical  # type: ignore[attr-defined]
    assert LiteLLMEmbedder(uri, dimension=8).id == canonical


@pytest.mark.parametrize("uri", MALFORMED)
def test_chat_models_and_embedders_refuse_the_same_uris(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="Malformed"):
        resolve_model(uri)
    with pytest.raises(ConfigurationError, match="Malformed"):
        LiteLLMEmbedder(uri, dimension=8)
