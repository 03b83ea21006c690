"""The provider adapter: the only module that imports litellm (lazily, when a call needs it).

Model URIs come in MLflow form (``openai:/gpt-4o-mini``) or litellm form
(``openai/gpt-4o-mini``). ``local:/smollm2`` and ``local:/<file.gguf>`` reach the embedded
llama.cpp model through a litellm custom provider, so that every model takes the same
path: retries, timeouts, usage accounting, the cache and the network switch.

Why chat calls to OpenAI-style endpoints skip ``litellm.completion``
--------------------------------------------------------------------
Profiling ``litellm.completion`` against a local server (figures in ``benchmarks/README.md``
and B1) showed that most of its CPU per call is work that gives the same answer on every
call of a judge (resolving the provider, mapping parameters, building a logging object, the
openai SDK's request transformation and response models, and the cost lookup); the HTTP
exchange itself is a small part. A judge makes thousands of identical-shaped calls, and
with the GIL that CPU, not the model's latency, bounds how fast a batch can go.

So for ``openai:/...`` models (OpenAI itself and every OpenAI-compatible server: vLLM,
llama.cpp, proxies) litellm is asked once per model how it would shape the request (its
``get_optional_params`` parameter mapping; for a model its table does not list, called
with plain sampling parameters, the answer is known without importing litellm at all:
``_litellm_table.py``), and every call is then posted on a shared,
pooled ``httpcore`` connection (``httpx`` when proxy variables are set); the price comes
from litellm's ``cost_per_token``. Retries,
``Retry-After``, timeouts, the network switch, the cache, secret redaction and usage work
exactly as on the litellm path. Anything the route does not cover goes through
``litellm.completion`` as before: other providers, the local model, parameters beyond the
plain sampling ones, a missing key, and litellm callbacks or a litellm cache that a user
configured (so MLflow's litellm autologging still sees every call). Setting
``JUDGEALIGN_DIRECT_HTTP=0`` sends every call through ``litellm.completion``.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from judgealign.core._errors import ConfigurationError, ModelOutputError
from judgealign.core._redact import is_secret_name, redact, strip_url_credentials
from judgealign.core._usage import Usage
from judgealign.models._cache import ResponseCache, cache_key
from judgealign.models._chat import Completion, Message
from judgealign.models._litellm_table import (
    PASSED_UNCHANGED,
    answered_without_litellm,
    unknown_to_litellm,
)
from judgealign.models._network import check_endpoint
from judgealign.models._refusals import (
    context_overflow,
    embeddings_disabled,
    refuses_response_format,
)
from judgealign.models._retry import (
    CallFailure,
    RetryPolicy,
    get_default_retry_policy,
    run_with_retries,
)
from judgealign.models._uri import parse_model_uri
from judgealign.models.rate_limit import current_rate_limit, paced_attempt

__all__ = [
    "LiteLLMModel",
    "default_model_uri",
    "endpoint_root",
    "litellm_embed",
    "missing_provider_keys",
]

MODEL_ENV = "JUDGEALIGN_MODEL"
CHAT_PATH = "/chat/completions"
EMBEDDINGS_PATH = "/embeddings"
DIRECT_HTTP_ENV = "JUDGEALIGN_DIRECT_HTTP"
_LOCAL_PROVIDER = "judgealign_local"
_import_lock = threading.Lock()
_litellm: Any = None


def _loaded_lib() -> Any:
    """litellm when this process has imported it (its settings may then differ from the
    defaults), else ``None``: nobody can have configured a module never imported."""
    if _litellm is None and "litellm" not in sys.modules:
        return None
    return _lib()


def _lib() -> Any:
    """Import litellm once, quietly and without its online cost-map fetch."""
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True
            _register_local_provider(litellm)
            _litellm = litellm
    return _litellm


def endpoint_root(url: str | None, path: str) -> str | None:
    """The API root of ``url``, which may also be the full URL of the ``path`` endpoint.

    MLflow's ``base_url`` is the URL posted to (``http://host:8000/v1/chat/completions``);
    litellm's and the openai SDK's ``api_base`` is the root they append the endpoint to
    (``http://host:8000/v1``). Either is accepted: a URL that already ends in ``path``
    (``/chat/completions`` for chat, ``/embeddings`` for embeddings) is used as is, by
    posting to it; any other URL gets ``path`` appended.
    """
    if url is None:
        return None
    trimmed = url.strip().rstrip("/")
    return trimmed[: -len(path)] if trimmed.endswith(path) else url


def default_model_uri() -> str:
    """The judge model named by ``JUDGEALIGN_MODEL``, or a clear error when unset."""
    uri = os.environ.get(MODEL_ENV, "").strip()
    if not uri:
        raise ConfigurationError(
            "No model given and JUDGEALIGN_MODEL is not set. Pass model='openai:/gpt-4o-mini' "
            "(or any litellm model), model='local:/smollm2' for the offline model, or set "
            "JUDGEALIGN_MODEL."
        )
    parse_model_uri(uri)
    return uri


class LiteLLMModel:
    """A chat model reached through litellm.

    Args:
        model: the model URI, ``provider:/name`` or ``provider/name``.
        api_base: the endpoint (``base_url`` in MLflow): the root, e.g.
            ``http://host:8000/v1``, or the full chat-completions URL
            ``http://host:8000/v1/chat/completions`` as MLflow's ``make_judge`` takes it
            (see :func:`endpoint_root`).
        api_key: a key for this model only; otherwise litellm reads the provider's usual
            environment variable. Never stored in files, reprs or messages.
        params: extra completion parameters (temperature, max_tokens, ...). A
            ``max_tokens`` or ``max_completion_tokens`` here wins over
            ``default_max_tokens``; ``max_tokens=None`` sends no limit at all.
        retry: the retry policy; defaults to :func:`get_default_retry_policy`.
        cache: a :class:`ResponseCache` or a path to one; ``None`` (the default) disables it.
            Replies cut by the token limit are not cached.
        default_max_tokens: the reply limit sent when ``params`` sets none (judges, distillation
            and optimizers set their own, see ``judgealign.models._reply_limits``).
    """

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        params: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | str | Path | None = None,
        default_max_tokens: int | None = None,
    ) -> None:
        self._provider, self._name = parse_model_uri(model)
        self._given = dict(params or {})
        params = _with_default_limit(self._given, default_max_tokens)
        self._uri = f"{self._provider}:/{self._name}"
        self._api_base = endpoint_root(api_base, CHAT_PATH)
        self._api_key = api_key
        self._params = _public_params(params or {})
        self._secret_params = {k: v for k, v in (params or {}).items() if is_secret_name(k)}
        self._retry = retry
        self._cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache
        self._route_lock = threading.Lock()
        self._route: _DirectRoute | None = None
        self._route_checked = False
        self._default_max_tokens = default_max_tokens

    def with_default_max_tokens(self, max_tokens: int) -> LiteLLMModel:
        """This model with another default reply limit (its own ``params`` still win)."""
        if max_tokens == self._default_max_tokens:
            return self
        return LiteLLMModel(
            self._uri,
            api_base=self._api_base,
            api_key=self._api_key,
            params=self._given,
            retry=self._retry,
            cache=self._cache,
            default_max_tokens=max_tokens,
        )

    def portable_spec(self) -> dict[str, Any] | None:
        """What rebuilds this model in another process (``LiteLLMModel(**spec)``), or
        ``None`` when it holds a secret (an ``api_key``), which never travels."""
        if self._api_key or self._secret_params:
            return None
        base = strip_url_credentials(self._api_base) if self._api_base else None
        return {
            "model": self._uri,
            "api_base": base,
            "params": _public_params(self._given),
            "default_max_tokens": self._default_max_tokens,
        }

    @property
    def uri(self) -> str:
        """The model URI in MLflow form."""
        return self._uri

    @property
    def endpoint(self) -> str:
        """The endpoint root the model is reached at (``""`` for the provider's default);
        what the structured-output layer remembers a server's capabilities by."""
        base = self._api_base or _env_api_base(self._provider) or ""
        return strip_url_credentials(base)

    @property
    def is_local(self) -> bool:
        """Whether the model runs in this process (``local:/...``)."""
        return self._provider == "local"

    def __repr__(self) -> str:
        base = f", api_base={strip_url_credentials(self._api_base)!r}" if self._api_base else ""
        return f"LiteLLMModel({self._uri!r}{base})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Send one chat request, with retries, caching and usage accounting."""
        if self.is_local:
            _check_local_model(self._name)
        else:
            check_endpoint(self._uri, self._api_base or _env_api_base(self._provider))
        key = self._cache_key(messages, response_format)
        hit = self._cache.get(key) if (self._cache is not None and key) else None
        if hit is not None:
            usage = Usage(prompt_tokens=hit[1], completion_tokens=hit[2], cached=True)
            return Completion(text=hit[0], usage=usage, model=self._uri)
        policy = self._retry or get_default_retry_policy()
        if timeout is not None:
            policy = policy.with_changes(timeout_s=timeout)
        started = time.perf_counter()
        limit = current_rate_limit()
        estimate = self._token_estimate(messages) if limit is not None else 0

        def attempt(timeout_s: float) -> Any:
            if limit is None:
                return self._request(messages, response_format, timeout_s)
            return paced_attempt(
                limit,
                estimate,
                lambda: self._request(messages, response_format, timeout_s),
                self._classify,
            )

        response = run_with_retries(attempt, self._classify, policy)
        completion = self._to_completion(response, (time.perf_counter() - started) * 1000)
        if limit is not None:
            used = completion.usage.prompt_tokens + completion.usage.completion_tokens
            limit.settle_tokens(estimate, used)
        if self._cache is not None and key and completion.finish_reason != "length":
            self._cache.put(
                key,
                completion.text,
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
            )
        return completion

    def _token_estimate(self, messages: Sequence[Message]) -> int:
        """What a request may cost in tokens before it is sent: its prompt (characters / 4,
        as rate limiters commonly estimate) plus its reply limit."""
        reply = self._params.get("max_tokens") or self._params.get("max_completion_tokens")
        prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4
        return prompt + (reply if isinstance(reply, int) and not isinstance(reply, bool) else 0)

    def _cache_key(self, messages: Sequence[Message], response_format: Any) -> str | None:
        if self._cache is None:
            return None
        return cache_key(self._uri, list(messages), response_format, self._params)

    def _request(
        self, messages: Sequence[Message], response_format: dict[str, Any] | None, timeout: float
    ) -> Any:
        route = self._direct_route()
        if route is not None:
            return route.send(messages, response_format, timeout)
        kwargs: dict[str, Any] = {**self._params, **self._secret_params}
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self._api_base:
            kwargs["api_base"] = self._api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        return _lib().completion(
            model=self._litellm_name(),
            messages=list(messages),
            timeout=timeout,
            num_retries=0,
            max_retries=0,
            **kwargs,
        )

    def _litellm_name(self) -> str:
        if self.is_local:
            return f"{_LOCAL_PROVIDER}/{self._name}"
        return f"{self._provider}/{self._name}"

    def _direct_route(self) -> _DirectRoute | None:
        """The direct HTTP route for this model, decided once (``None``: use litellm)."""
        if not self._route_checked:
            with self._route_lock:
                if not self._route_checked:
                    # The direct route needs every parameter, secret ones included.
                    params = {**self._params, **self._secret_params}
                    key = self._api_key or params.pop("api_key", None)
                    self._route = _plan_direct_route(
                        self._provider, self._name, params, key, self._api_base
                    )
                    self._route_checked = True
        route = self._route
        return route if route is not None and _direct_http_allowed() else None

    def _to_completion(self, response: Any, latency_ms: float) -> Completion:
        if isinstance(response, _DirectReply):
            return response.to_completion(self._uri, latency_ms)
        choice = response.choices[0]
        message = choice.message
        text = message.content or ""
        usage_obj = getattr(response, "usage", None)
        usage = Usage(
            prompt_tokens=int(getattr(usage_obj, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage_obj, "completion_tokens", 0) or 0),
            cost_usd=_cost_of(response),
            latency_ms=latency_ms,
        )
        raw: dict[str, Any] = {}
        tool_calls = getattr(message, "tool_calls", None)
        if tool_calls:
            raw["tool_calls"] = [tc.model_dump() for tc in tool_calls]
        finish = getattr(choice, "finish_reason", None)
        return Completion(
            text=text,
            usage=usage,
            model=self._uri,
            raw=raw,
            finish_reason=finish if isinstance(finish, str) else None,
        )

    def _classify(self, exc: BaseException) -> CallFailure:
        route_key = self._route.key if self._route is not None else ""
        secrets = [self._api_key or "", str(self._secret_params.get("api_key") or ""), route_key]
        return classify_error(exc, self._uri, secrets)


def _check_local_model(name: str) -> None:
    """Fail at once (no retries) when the local model's extra or file is missing."""
    from judgealign.models import _local

    if not _local.is_available(name):
        raise _local.LocalExtraMissingError(name, weights=_local.is_builtin(name))
    _local.resolve_gguf(name)


def _with_default_limit(params: dict[str, Any], default: int | None) -> dict[str, Any]:
    """``params`` with the default reply limit added when they set none; an explicit
    ``max_tokens=None`` means no limit and is dropped (providers reject a null)."""
    if "max_tokens" in params or "max_completion_tokens" in params:
        return {k: v for k, v in params.items() if not (k == "max_tokens" and v is None)}
    return params if default is None else {**params, "max_tokens": default}


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not is_secret_name(k)}


def _env_api_base(provider: str) -> str | None:
    if provider != "openai":
        return None
    # litellm's order (OPENAI_BASE_URL first), so the network check sees the real target
    return os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or None


def _cost_of(response: Any) -> float | None:
    hidden: Any = getattr(response, "_hidden_params", None)
    cost: Any = (
        cast(dict[str, Any], hidden).get("response_cost") if isinstance(hidden, dict) else None
    )
    return float(cost) if isinstance(cost, (int, float)) else None


_RETRYABLE_NAMES = (
    "RateLimitError",
    "Timeout",
    "APITimeoutError",
    "APIConnectionError",
    "InternalServerError",
    "ServiceUnavailableError",
    "BadGatewayError",
    "APIResponseValidationError",
    "JSONDecodeError",
)


def classify_error(exc: BaseException, model_uri: str, secrets: Sequence[str]) -> CallFailure:
    """Turn a litellm/openai/httpx exception into a secret-free :class:`CallFailure`."""
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else None
    name = getattr(exc, "kind", None) or type(exc).__name__
    retryable = name in _RETRYABLE_NAMES or (
        status is not None and (status == 429 or status >= 500)
    )
    if name in ("AuthenticationError", "PermissionDeniedError", "NotFoundError"):
        retryable = False
    if status in (400, 401, 403, 404, 422):
        retryable = False
    text = str(exc)
    detail = redact(text, secrets)[:500]
    hint = _HINTS.get(status or 0, "")
    overflow = context_overflow(status, name, text)
    reason = "context_length" if overflow is not None else None
    if reason is None and refuses_response_format(status, name, text):
        reason = "response_format"
    if reason is None and embeddings_disabled(status, name, text):
        reason, hint = "embeddings_off", _EMBEDDINGS_OFF_HINT
    return CallFailure(
        message=f"{model_uri}: {name}{f' (HTTP {status})' if status else ''}: {detail}{hint}",
        retryable=retryable and reason is None,
        status=status,
        retry_after_s=_retry_after(exc),
        reason=reason,
        window=overflow.window if overflow else None,
        prompt_tokens=overflow.prompt_tokens if overflow else None,
    )


_EMBEDDINGS_OFF_HINT = (
    " -- this server does not serve embeddings: start llama-cpp-python's server with "
    "--embedding true (llama.cpp's llama-server with --embeddings), or pick another "
    "embedding_model (the default local one needs no server)."
)
_HINTS = {
    401: " -- check the provider's API key (e.g. OPENAI_API_KEY) or pass api_key.",
    403: " -- the key is not allowed to use this model.",
    404: " -- check the model name and api_base.",
}


def missing_provider_keys(model_uri: str) -> list[str]:
    """The environment variables litellm says ``model_uri``'s provider needs and this
    process lacks (empty for the local model or a provider litellm does not know)."""
    provider, name = parse_model_uri(model_uri)
    if provider == "local":
        return []
    try:
        found: dict[str, Any] = _lib().validate_environment(model=f"{provider}/{name}")
    except Exception:  # an unknown provider: the first call will say what is wrong
        return []
    missing: list[Any] = list(found.get("missing_keys") or [])
    return [str(key) for key in missing]


def _retry_after(exc: BaseException) -> float | None:
    headers: Any = getattr(exc, "litellm_response_headers", None)
    response = getattr(exc, "response", None)
    if headers is None and response is not None:
        headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def litellm_embed(
    model_uri: str,
    texts: Sequence[str],
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    **params: Any,
) -> list[list[float]]:
    """Embed ``texts`` with a litellm embedding model, with the usual retries.

    ``api_base`` is the API root (``http://host:8000/v1``) or the full embeddings URL
    (``http://host:8000/v1/embeddings``); see :func:`endpoint_root`.
    """
    provider, name = parse_model_uri(model_uri)
    api_base = endpoint_root(api_base, EMBEDDINGS_PATH)
    check_endpoint(model_uri, api_base or _env_api_base(provider))
    extra: dict[str, Any] = dict(params)
    if api_base:
        extra["api_base"] = api_base
    if api_key:
        extra["api_key"] = api_key

    # The direct route (see the module docstring) skips the openai SDK's response models,
    # which cost seconds for a few hundred vectors; extra parameters stay on litellm. It
    # asks for base64 float32 vectors, as the openai SDK does by default (so servers made
    # for that SDK accept it): half the bytes of JSON numbers and no float parsing. A
    # server that answers with lists of numbers anyway still works.
    endpoint = None
    if provider == "openai" and set(params) <= {"dimensions"} and _direct_http_allowed():
        endpoint = _openai_endpoint(api_key, api_base)

    def attempt(timeout: float) -> Any:
        if endpoint is not None:
            body = {"model": name, "input": list(texts), "encoding_format": "base64", **params}
            url = endpoint[1] + EMBEDDINGS_PATH
            data = _post_json(url, body, endpoint[0], timeout).get("data")
            if not isinstance(data, list):
                raise EndpointError("APIResponseValidationError", "the reply has no data list")
            return cast(list[Any], data)
        return (
            _lib()
            .embedding(
                model=f"{provider}/{name}",
                input=list(texts),
                timeout=timeout,
                num_retries=0,
                **extra,
            )
            .data
        )

    def classify(exc: BaseException) -> CallFailure:
        failure = classify_error(exc, model_uri, [api_key or "", endpoint[0] if endpoint else ""])
        if failure.reason == "context_length" and failure.window is None:
            # llama-cpp-python's server fails to decode a batch of several texts for a
            # model without pooling ("llama_decode returned -1"): not an overflow of the
            # context, and the same batch would fail again. The embedder splits it.
            return replace(failure, reason="batch_refused", window=None, prompt_tokens=None)
        return failure

    data = run_with_retries(attempt, classify, get_default_retry_policy())
    rows: list[Any] = sorted(data, key=lambda item: _field(item, "index"))
    return [_vector(_field(item, "embedding"), model_uri) for item in rows]


def _vector(value: Any, model_uri: str) -> list[float]:
    """One embedding from a reply, in any of the shapes servers send.

    * a list of numbers (one vector per input);
    * base64 of little-endian float32 values (``encoding_format="base64"``);
    * a list of per-token vectors: llama.cpp servers return these for a model without a
      pooling layer (a chat model such as SmolLM2). They are mean-pooled into one vector,
      what sentence-embedding models do with their token states and what llama.cpp's own
      ``--pooling mean`` computes, so such a server still gives usable (if weak) vectors;
      a warning says so once per model.

    Raises:
        ModelOutputError: any other shape, naming the model, the shape and the fix.
    """
    if isinstance(value, str):
        return _base64_vector(value, model_uri)
    if isinstance(value, list):
        items = cast(list[Any], value)
        if items and all(isinstance(row, list) for row in items):
            return _pooled(items, model_uri)
        if all(_is_number(x) for x in items):
            return [float(x) for x in items]
    raise ModelOutputError(_bad_shape(model_uri, value))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _base64_vector(value: str, model_uri: str) -> list[float]:
    import base64
    import binascii

    import numpy as np

    try:
        raw: bytes | None = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = None
    if raw is None or len(raw) % 4:
        raise ModelOutputError(_bad_shape(model_uri, value))
    return cast(list[float], np.frombuffer(raw, dtype="<f4").tolist())


_pool_warned: set[str] = set()


def _pooled(rows: list[Any], model_uri: str) -> list[float]:
    """The mean of per-token vectors (all of one width), as one vector."""
    import warnings

    import numpy as np

    widths = {len(cast(list[Any], row)) for row in rows}
    numeric = all(_is_number(x) for row in rows for x in cast(list[Any], row))
    if len(widths) != 1 or 0 in widths or not numeric:
        raise ModelOutputError(_bad_shape(model_uri, rows))
    if model_uri not in _pool_warned:
        _pool_warned.add(model_uri)
        warnings.warn(
            f"{model_uri} returned one vector per token instead of one per text (a model "
            "served without pooling); judgealign averages them. For better retrieval, "
            "serve an embedding model, or start llama.cpp's server with --pooling mean.",
            UserWarning,
            stacklevel=2,
        )
    return cast(list[float], np.asarray(rows, dtype=np.float64).mean(axis=0).tolist())


def _bad_shape(model_uri: str, value: Any) -> str:
    return (
        f"{model_uri} returned an embedding judgealign cannot read: {describe_shape(value)}. "
        "Expected per text a list of numbers, base64 of float32 values, or a list of "
        "per-token vectors. Check that the model is an embedding model and that the server "
        "implements OpenAI's /embeddings reply, or pick another embedding_model."
    )


def describe_shape(value: Any, depth: int = 0) -> str:
    """A short description of a JSON value's shape, e.g. ``a list of 3 lists of 576
    numbers``."""
    if isinstance(value, list):
        items = cast(list[Any], value)
        if not items:
            return "an empty list"
        if depth >= 2:
            return f"a list of {len(items)} items"
        inner = describe_shape(items[0], depth + 1).removeprefix("a ").removeprefix("an ")
        if all(_is_number(x) for x in items):
            inner = "numbers"
        elif inner.startswith("list"):
            inner = inner.replace("list", "lists", 1)
        return f"a list of {len(items)} {inner}"
    if isinstance(value, str):
        return f"a string of {len(value)} characters that is not base64 of float32 values"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _field(item: Any, name: str) -> Any:
    return cast(dict[str, Any], item)[name] if isinstance(item, dict) else getattr(item, name)


# -- the direct HTTP route for OpenAI-style chat endpoints (see the module docstring) ----

# Sampling parameters whose wire form litellm's parameter mapping fully decides; anything
# else (extra headers, api versions, provider options) keeps the call on litellm.
# (PASSED_UNCHANGED: the plain ones, which litellm passes as given to an unlisted model.)
_DIRECT_PARAMS = PASSED_UNCHANGED | {"user", "reasoning_effort", "verbosity", "service_tier"}
# Error names as the openai SDK (and so litellm) reports them, for the same classification.
_STATUS_KINDS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    408: "Timeout",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_http_lock = threading.Lock()
_http_client: Any = None
_http_pool: Any = None
_tls: Any = None
_priced: dict[str, bool] = {}


_MAX_ERROR_CHARS = 500


class EndpointError(Exception):
    """A failed direct call, carrying what :func:`classify_error` reads from litellm's
    exceptions: a ``kind`` (the openai SDK's error name), ``status_code`` and ``response``
    (for ``Retry-After``).

    The message often quotes the provider's reply, which can echo the key or the request,
    and it reaches tracebacks through the exception chain: it is redacted here (the
    ``secrets`` given, the environment's secrets, bearer tokens, ``sk-`` keys, URL
    credentials) and cut to 500 characters, saying so.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status_code: int | None = None,
        response: Any = None,
        secrets: Sequence[str] = (),
    ) -> None:
        text = redact(strip_url_credentials(message), secrets)
        if len(text) > _MAX_ERROR_CHARS:
            cut = len(text) - _MAX_ERROR_CHARS
            text = f"{text[:_MAX_ERROR_CHARS]}... [{cut} more characters cut]"
        super().__init__(text)
        self.kind = kind
        self.status_code = status_code
        self.response = response


@dataclass(frozen=True)
class _DirectReply:
    """A parsed chat completion from the direct route, and its price when known."""

    data: Mapping[str, Any]
    cost_usd: float | None

    def to_completion(self, uri: str, latency_ms: float) -> Completion:
        choice: dict[str, Any] = self.data["choices"][0]
        message: dict[str, Any] = choice.get("message") or {}
        finish = choice.get("finish_reason")
        content = message.get("content")
        usage: Mapping[str, Any] = self.data.get("usage") or {}
        raw: dict[str, Any] = {}
        if message.get("tool_calls"):
            raw["tool_calls"] = message["tool_calls"]
        return Completion(
            text=content if isinstance(content, str) else "",
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
                cost_usd=self.cost_usd,
                latency_ms=latency_ms,
            ),
            model=uri,
            raw=raw,
            finish_reason=finish if isinstance(finish, str) else None,
        )


@dataclass(frozen=True)
class _DirectRoute:
    """Where and how one model's chat requests are posted; ``key`` is never shown."""

    url: str
    model: str
    params: Mapping[str, Any]
    key: str = field(repr=False)

    def send(
        self, messages: Sequence[Message], response_format: dict[str, Any] | None, timeout: float
    ) -> _DirectReply:
        body: dict[str, Any] = {"model": self.model, "messages": list(messages), **self.params}
        if response_format is not None:
            body["response_format"] = response_format
        data = _post_json(self.url, body, self.key, timeout)
        try:
            if not isinstance(data["choices"][0], dict):
                raise TypeError("choices[0] is not an object")
        except (KeyError, IndexError, TypeError) as exc:
            raise EndpointError(
                "APIResponseValidationError", f"the reply is not a chat completion ({exc})"
            ) from exc
        return _DirectReply(data, _cost_usd(self.model, data.get("usage")))


def _plan_direct_route(
    provider: str, name: str, params: Mapping[str, Any], api_key: str | None, api_base: str | None
) -> _DirectRoute | None:
    """The direct route for a model, or ``None`` when its calls must go through litellm.

    Args:
        provider: the model's provider.
        name: the model name.
        params: every completion parameter (``api_key`` apart).
        api_key: the model's own key, if it has one.
        api_base: the model's own endpoint root, if it has one.

    Parameters are mapped by litellm's ``get_optional_params``; a model that litellm
    would send to the Responses API stays on litellm. Any doubt means ``None``.
    """
    if provider != "openai" or name.startswith("responses/") or not set(params) <= _DIRECT_PARAMS:
        return None
    endpoint = _openai_endpoint(api_key, api_base)
    if endpoint is None:
        return None
    if _loaded_lib() is None and answered_without_litellm(name, params):
        # An unlisted model with plain parameters: litellm's answer is known, so its import
        # (seconds of CPU) waits for a call that needs it.
        return _DirectRoute(
            url=endpoint[1] + CHAT_PATH, model=name, params=dict(params), key=endpoint[0]
        )
    lib = _lib()
    try:
        info, _ = lib.main.responses_api_bridge_check(
            model=name,
            custom_llm_provider="openai",
            reasoning_effort=params.get("reasoning_effort"),
            api_base=endpoint[1],
        )
        if info.get("mode") == "responses":
            return None
        mapped: dict[str, Any] = dict(
            lib.utils.get_optional_params(model=name, custom_llm_provider="openai", **dict(params))
        )
    except Exception:  # litellm refuses or does not know: let it say so on the real call
        return None
    extra: Any = mapped.pop("extra_body", None) or {}
    if mapped.pop("stream", False) or not isinstance(extra, dict):
        return None
    return _DirectRoute(
        url=endpoint[1] + CHAT_PATH,
        model=name,
        params={**mapped, **cast(dict[str, Any], extra)},
        key=endpoint[0],
    )


def _openai_endpoint(api_key: str | None, api_base: str | None) -> tuple[str, str] | None:
    """``(key, endpoint root)`` resolved in litellm's order for the openai provider
    (argument, litellm globals, environment, OpenAI's default); ``None`` without a key."""
    lib = _loaded_lib()
    key = api_key or (lib and (lib.api_key or lib.openai_key)) or os.environ.get("OPENAI_API_KEY")
    base = (
        api_base
        or (lib and lib.api_base)
        or os.environ.get("OPENAI_BASE_URL")
        or os.environ.get("OPENAI_API_BASE")
        or "https://api.openai.com/v1"
    )
    base = str(base).strip().rstrip("/")
    return (str(key), base) if key and base else None


def _post_json(url: str, body: dict[str, Any], key: str, timeout: float) -> dict[str, Any]:
    """POST ``body`` to an OpenAI-style endpoint; a failure raises :class:`EndpointError`."""
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "judgealign (direct OpenAI-compatible route)",
    }
    lib = _loaded_lib()
    organization = (lib and lib.organization) or os.environ.get("OPENAI_ORGANIZATION")
    if organization:
        headers["OpenAI-Organization"] = str(organization)
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    status, response = _post(url, headers, payload, timeout)
    if status >= 400:
        kind = _STATUS_KINDS.get(status, "InternalServerError" if status >= 500 else "APIError")
        raise EndpointError(
            kind, _error_text(response), status_code=status, response=response, secrets=[key]
        )
    try:
        data: Any = json.loads(response.content)
    except ValueError as exc:
        raise EndpointError("APIResponseValidationError", f"the reply is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise EndpointError("APIResponseValidationError", "the reply is not a JSON object")
    return cast(dict[str, Any], data)


def _post(url: str, headers: dict[str, str], payload: bytes, timeout: float) -> tuple[int, Any]:
    """Send one POST; returns the status and an ``httpx.Response``-like object.

    Without proxy variables in the environment the request goes straight to a pooled
    ``httpcore`` connection, skipping httpx's request and response models (their CPU cost
    per call is in B1). With a proxy configured, ``httpx`` (which honours them) sends it.
    """
    import httpcore
    import httpx

    try:
        if any(os.environ.get(name) for name in _PROXY_VARIABLES):
            response = _http().post(url, content=payload, headers=headers, timeout=timeout)
            return response.status_code, response
        raw = _pool().request(
            "POST",
            url,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
            content=payload,
            extensions={"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)},
        )
    except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
        raise EndpointError("Timeout", f"no reply within {timeout:g} s") from exc
    except (
        httpx.HTTPError,
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
    ) as exc:
        raise EndpointError(
            "APIConnectionError", f"{type(exc).__name__}: {exc}", secrets=_header_secrets(headers)
        ) from exc
    if raw.status < 400:
        return raw.status, raw  # .content is all the caller reads
    return raw.status, httpx.Response(raw.status, headers=raw.headers, content=raw.content)


_PROXY_VARIABLES = tuple(
    name for base in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY") for name in (base, base.lower())
)


def _tls_context() -> Any:
    global _tls
    with _http_lock:
        if _tls is None:
            import httpx

            lib = _loaded_lib()
            _tls = httpx.create_ssl_context(verify=True if lib is None else lib.ssl_verify)
        return _tls


def _pool() -> Any:
    """The process-wide ``httpcore`` connection pool of the direct route (thread-safe)."""
    global _http_pool
    if _http_pool is None:
        context = _tls_context()
        with _http_lock:
            if _http_pool is None:
                import httpcore

                _http_pool = httpcore.ConnectionPool(
                    ssl_context=context, max_connections=None, max_keepalive_connections=128
                )
                atexit.register(_http_pool.close)  # no unclosed-socket warnings at exit
    return _http_pool


def _direct_http_allowed() -> bool:
    """The route's preconditions that can change after it was planned: the switch, and no
    litellm callbacks or litellm cache configured since (those expect every call)."""
    if os.environ.get(DIRECT_HTTP_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    lib = _loaded_lib()
    return lib is None or not (
        lib.callbacks
        or lib.success_callback
        or lib.failure_callback
        or lib.input_callback
        or lib._async_success_callback  # pyright: ignore[reportPrivateUsage]
        or lib._async_failure_callback  # pyright: ignore[reportPrivateUsage]
        or lib.cache is not None
    )


def _http() -> Any:
    """The process-wide pooled ``httpx`` client of the direct route, used when proxy
    variables are set (thread-safe)."""
    global _http_client
    if _http_client is None:
        context = _tls_context()
        with _http_lock:
            if _http_client is None:
                import httpx

                _http_client = httpx.Client(
                    limits=httpx.Limits(max_connections=None, max_keepalive_connections=128),
                    verify=context,
                )
    return _http_client


def _error_text(response: Any) -> str:
    try:
        error: Any = response.json().get("error")
        message: Any = (
            cast(dict[str, Any], error).get("message") if isinstance(error, dict) else error
        )
        if message:
            return f"OpenAIException - {message}"
    except (ValueError, AttributeError):
        pass
    return f"OpenAIException - {response.text}"  # EndpointError redacts, then cuts


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The secret values in request headers (the key in ``Authorization: Bearer <key>``)."""
    return [
        value.removeprefix("Bearer ").strip()
        for name, value in headers.items()
        if is_secret_name(name)
    ]


def _cost_usd(model_name: str, usage: Any) -> float | None:
    """The call's price from litellm's price table, ``None`` for an unpriced model."""
    if not isinstance(usage, dict):
        return None
    if _loaded_lib() is None and unknown_to_litellm(model_name):
        return None  # litellm's table has no price for it (and nobody added one)
    lib = _lib()
    priced = _priced.get(model_name)
    if priced is None:
        try:
            info = lib.get_model_info(model=model_name, custom_llm_provider="openai")
            priced = bool(info.get("input_cost_per_token") or info.get("output_cost_per_token"))
        except Exception:  # litellm raises for a model it has no price for
            priced = False
        _priced[model_name] = priced
    if not priced:
        return None
    try:
        prompt, completion = lib.cost_per_token(
            model=model_name, custom_llm_provider="openai", usage_object=lib.Usage(**usage)
        )
    except Exception:  # an unusual usage object: no price rather than a failed call
        return None
    return float(prompt) + float(completion)


def _register_local_provider(litellm: Any) -> None:
    """Register ``judgealign_local/<model>`` as a litellm custom provider.

    The handler runs llama.cpp in this process (see :mod:`judgealign.models._local`); going
    through litellm keeps one code path for retries, usage and caching.
    """
    from litellm.llms.custom_llm import CustomLLM

    class _LocalHandler(CustomLLM):  # type: ignore[misc]
        def completion(self, *args: Any, **kwargs: Any) -> Any:
            return _local_completion(litellm, kwargs)

    if not any(p.get("provider") == _LOCAL_PROVIDER for p in litellm.custom_provider_map):
        litellm.custom_provider_map.append(
            {"provider": _LOCAL_PROVIDER, "custom_handler": _LocalHandler()}
        )
        litellm.utils.custom_llm_setup()


def _local_completion(litellm: Any, kwargs: dict[str, Any]) -> Any:
    from judgealign.models._local import local_chat_completion

    model = str(kwargs["model"]).split("/", 1)[-1]
    optional: dict[str, Any] = kwargs.get("optional_params") or {}
    schema = _schema_of(optional.get("response_format"))
    reply = local_chat_completion(
        model,
        [dict(m) for m in kwargs["messages"]],
        json_schema=schema,
        max_tokens=int(optional.get("max_tokens") or 256),
        temperature=float(optional.get("temperature") or 0.0),
        seed=int(optional.get("seed") or 0),
    )
    return litellm.ModelResponse(**reply)


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    spec = cast(dict[str, Any], cast(dict[str, Any], response_format).get("json_schema") or {})
    schema: Any = spec.get("schema")
    return json.loads(json.dumps(schema)) if isinstance(schema, dict) else None
