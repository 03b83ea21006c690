"""The provider adapter: the only module that imports litellm (lazily, on first call).

Model URIs come in MLflow form (``openai:/gpt-4o-mini``) or litellm form
(``openai/gpt-4o-mini``). ``local:/smollm2`` and ``local:/<file.gguf>`` reach the embedded
llama.cpp model through a litellm custom provider, so that every model takes the same
path: retries, timeouts, usage accounting, the cache and the network switch.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from judgealign._cache import ResponseCache, cache_key
from judgealign._chat import Completion, Message
from judgealign._errors import ConfigurationError
from judgealign._network import check_endpoint
from judgealign._redact import is_secret_name, redact
from judgealign._retry import CallFailure, RetryPolicy, get_default_retry_policy, run_with_retries
from judgealign._usage import Usage

__all__ = ["LiteLLMModel", "default_model_uri", "litellm_embed", "parse_model_uri"]

MODEL_ENV = "JUDGEALIGN_MODEL"
_LOCAL_PROVIDER = "judgealign_local"
_URI = re.compile(r"^(?P<provider>[A-Za-z0-9_\-]+)(?::/|/)(?P<name>\S.*)$")
_import_lock = threading.Lock()
_litellm: Any = None


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


def parse_model_uri(uri: str) -> tuple[str, str]:
    """Split a model URI into ``(provider, model_name)``.

    Raises:
        ConfigurationError: when ``uri`` is not ``provider:/model`` or ``provider/model``.
    """
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
    if match is None:
        raise ConfigurationError(
            f"Malformed model URI {uri!r}. Use 'provider:/model' (for example "
            "'openai:/gpt-4o-mini' or 'local:/smollm2') or litellm's 'provider/model'."
        )
    return match["provider"].lower(), match["name"].strip()


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
        api_base: the endpoint root (``base_url`` in MLflow), e.g. ``http://host/v1``.
        api_key: a key for this model only; otherwise litellm reads the provider's usual
            environment variable. Never stored in files, reprs or messages.
        params: extra completion parameters (temperature, max_tokens, ...).
        retry: the retry policy; defaults to :func:`get_default_retry_policy`.
        cache: a :class:`ResponseCache` or a path to one; ``None`` (the default) disables it.
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
    ) -> None:
        self._provider, self._name = parse_model_uri(model)
        self._uri = f"{self._provider}:/{self._name}"
        self._api_base = api_base
        self._api_key = api_key
        self._params = _public_params(params or {})
        self._secret_params = {k: v for k, v in (params or {}).items() if is_secret_name(k)}
        self._retry = retry
        self._cache = ResponseCache(cache) if isinstance(cache, (str, Path)) else cache

    @property
    def uri(self) -> str:
        """The model URI in MLflow form."""
        return self._uri

    @property
    def is_local(self) -> bool:
        """Whether the model runs in this process (``local:/...``)."""
        return self._provider == "local"

    def __repr__(self) -> str:
        base = f", api_base={self._api_base!r}" if self._api_base else ""
        return f"LiteLLMModel({self._uri!r}{base})"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Send one chat request, with retries, caching and usage accounting."""
        if not self.is_local:
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
        response = run_with_retries(
            lambda t: self._request(messages, response_format, t), self._classify, policy
        )
        completion = self._to_completion(response, (time.perf_counter() - started) * 1000)
        if self._cache is not None and key:
            self._cache.put(
                key,
                completion.text,
                completion.usage.prompt_tokens,
                completion.usage.completion_tokens,
            )
        return completion

    def _cache_key(self, messages: Sequence[Message], response_format: Any) -> str | None:
        if self._cache is None:
            return None
        return cache_key(self._uri, list(messages), response_format, self._params)

    def _request(
        self, messages: Sequence[Message], response_format: dict[str, Any] | None, timeout: float
    ) -> Any:
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

    def _to_completion(self, response: Any, latency_ms: float) -> Completion:
        message = response.choices[0].message
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
        return Completion(text=text, usage=usage, model=self._uri, raw=raw)

    def _classify(self, exc: BaseException) -> CallFailure:
        return classify_error(exc, self._uri, [self._api_key or ""])


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if not is_secret_name(k)}


def _env_api_base(provider: str) -> str | None:
    if provider != "openai":
        return None
    return os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL") or None


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
    name = type(exc).__name__
    retryable = name in _RETRYABLE_NAMES or (
        status is not None and (status == 429 or status >= 500)
    )
    if name in ("AuthenticationError", "PermissionDeniedError", "NotFoundError"):
        retryable = False
    if status in (400, 401, 403, 404, 422):
        retryable = False
    detail = redact(str(exc), secrets)[:500]
    hint = _HINTS.get(status or 0, "")
    return CallFailure(
        message=f"{model_uri}: {name}{f' (HTTP {status})' if status else ''}: {detail}{hint}",
        retryable=retryable,
        status=status,
        retry_after_s=_retry_after(exc),
    )


_HINTS = {
    401: " -- check the provider's API key (e.g. OPENAI_API_KEY) or pass api_key.",
    403: " -- the key is not allowed to use this model.",
    404: " -- check the model name and api_base.",
}


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
    """Embed ``texts`` with a litellm embedding model, with the usual retries."""
    provider, name = parse_model_uri(model_uri)
    check_endpoint(model_uri, api_base or _env_api_base(provider))
    extra: dict[str, Any] = dict(params)
    if api_base:
        extra["api_base"] = api_base
    if api_key:
        extra["api_key"] = api_key

    def attempt(timeout: float) -> Any:
        return _lib().embedding(
            model=f"{provider}/{name}", input=list(texts), timeout=timeout, **extra
        )

    def classify(exc: BaseException) -> CallFailure:
        return classify_error(exc, model_uri, [api_key or ""])

    response = run_with_retries(attempt, classify, get_default_retry_policy())
    rows: list[Any] = sorted(response.data, key=lambda item: _field(item, "index"))
    return [[float(x) for x in _field(item, "embedding")] for item in rows]


def _field(item: Any, name: str) -> Any:
    return cast(dict[str, Any], item)[name] if isinstance(item, dict) else getattr(item, name)


def _register_local_provider(litellm: Any) -> None:
    """Register ``judgealign_local/<model>`` as a litellm custom provider.

    The handler runs llama.cpp in this process (see :mod:`judgealign._local`); going
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
    from judgealign._local import local_chat_completion

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
