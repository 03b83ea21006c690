"""An OpenAI-compatible fake HTTP server for tests, built on the standard library only.

:class:`FakeOpenAIServer` runs a real HTTP server on ``127.0.0.1`` (any free port) in a
background thread, so that code under test talks to it exactly as it would talk to a
provider: through litellm, the openai SDK, MLflow or plain ``urllib``. It answers

* ``POST /v1/chat/completions``: scripted replies (:meth:`FakeOpenAIServer.enqueue`), a
  ``reply`` callable, or an automatic reply generated from the request's JSON schema or
  forced tool; ``stream: true`` is answered with server-sent events;
* ``POST /v1/embeddings``: deterministic hashed bag-of-words + character-trigram vectors,
  L2-normalised, as floats or base64;
* ``GET /v1/models``: one model.

The ``/v1`` prefix is optional. Every request is recorded (:attr:`FakeOpenAIServer.requests`)
and counted (:attr:`FakeOpenAIServer.stats`). Faults (rate limits, server errors, hangs,
malformed bodies, unparseable or wrongly typed content) are injected at random with a
seeded :class:`FaultPlan`, or scheduled one by one with :class:`Reply`.

Example::

    with FakeOpenAIServer() as server:
        server.enqueue({"result": True, "rationale": "correct"})
        litellm.completion(
            model="openai/fake",
            api_base=server.base_url,
            api_key="sk-fake",
            messages=[{"role": "user", "content": "Is 2+2=4?"}],
        )
        assert server.stats["chat"] == 1
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeAlias, cast

from judgealign.testing._decoding import Decoding
from judgealign.testing._limits import ServerLimit
from judgealign.testing._request import ChatRequest
from judgealign.testing._schema_values import schema_instance

__all__ = [
    "FAULT_KINDS",
    "ChatRequest",
    "EmbeddingShape",
    "FakeOpenAIServer",
    "FaultKind",
    "FaultPlan",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "ServerQuirks",
    "JsonSchemaSupport",
    "fake_embedding",
]

FaultKind: TypeAlias = Literal[
    "rate_limit", "server_error", "hang", "malformed", "bad_content", "wrong_type"
]
"""The kinds of fault a :class:`FaultPlan` can inject."""

FAULT_KINDS: tuple[FaultKind, ...] = (
    "rate_limit",
    "server_error",
    "hang",
    "malformed",
    "bad_content",
    "wrong_type",
)
"""Every :data:`FaultKind`, in a fixed order."""

_MALFORMED_BODY = '{"id": "chatcmpl-fake", "object": "chat.completion", "choices": [{"mess'
_BAD_CONTENT = "I think the answer is probably yes, but I would rather not commit to a format."
_MODEL_ID = "fake"


def _empty_headers() -> dict[str, str]:
    return {}


# ---------------------------------------------------------------------------------------
# Public data types
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted answer to a chat request.

    A plain ``str`` given to :meth:`FakeOpenAIServer.enqueue` (or returned by a ``reply``
    callable) means ``Reply(content=...)``; a ``dict`` means ``Reply(json=...)``. A
    ``Reply`` with no ``content``, ``json``, ``tool_calls`` or ``raw_body`` and a
    success status gets the automatic content, so ``Reply(delay_s=1.0)`` is "a slow
    automatic reply".

    Every fault kind can be scheduled explicitly:

    * rate limit: ``Reply(status=429, headers={"Retry-After": "0"})``;
    * server error: ``Reply(status=500)``;
    * hang: ``Reply(delay_s=30.0)`` (ended at once by :meth:`FakeOpenAIServer.stop`);
    * malformed body: ``Reply(raw_body="{not json")``;
    * bad content: ``Reply(content="prose with no JSON object")``;
    * wrong type: ``Reply(json={"result": "banana", "rationale": "x"})``.

    Attributes:
        content: the assistant message content.
        json: a JSON-serialisable value, sent as the content (``json.dumps``). Mutually
            exclusive with ``content``.
        tool_calls: tool calls, either in the OpenAI shape
            (``{"id", "type": "function", "function": {"name", "arguments"}}``) or the
            short form ``{"name": ..., "arguments": dict | str}``. Missing ids are made up.
        status: the HTTP status. A status of 400 or more sends an OpenAI error body.
        error_message: the error message of an error reply.
        headers: extra response headers, e.g. ``{"Retry-After": "1"}``.
        delay_s: seconds to wait before answering (after the server's ``latency_s``).
        raw_body: a body sent verbatim with ``status`` (for malformed responses); the
            content fields are then ignored.
        usage: overrides for the ``usage`` object of the completion.
        finish_reason: overrides the ``finish_reason`` (default ``"stop"``, or
            ``"tool_calls"`` when there are tool calls).
    """

    content: str | None = None
    json: Any = None
    tool_calls: list[dict[str, Any]] | None = None
    status: int = 200
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=_empty_headers)
    delay_s: float = 0.0
    raw_body: str | None = None
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None

    def __post_init__(self) -> None:
        """Validate the reply.

        Raises:
            ValueError: if both ``content`` and ``json`` are set, the status is not a
                valid HTTP status or the delay is negative.
        """
        if self.content is not None and self.json is not None:
            raise ValueError("Reply: give either content or json, not both")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply: status must be an HTTP status, got {self.status}")
        if self.delay_s < 0:
            raise ValueError(f"Reply: delay_s must be >= 0, got {self.delay_s}")

    @property
    def is_empty(self) -> bool:
        """True if the reply names no content, so the automatic content is used."""
        return (
            self.content is None
            and self.json is None
            and self.tool_calls is None
            and self.raw_body is None
        )


ReplyLike: TypeAlias = "Reply | str | dict[str, Any]"
"""What :meth:`FakeOpenAIServer.enqueue` accepts: a :class:`Reply`, a content string or a
JSON object sent as the content."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received, and how it was answered.

    Attributes:
        method: the HTTP method.
        path: the request path, query string included.
        body: the parsed JSON body; the raw text if it was not JSON; ``None`` if empty.
        headers: the request headers, names in canonical case whatever the client sent
            (``Authorization``, ``Content-Type``, ``User-Agent``, ``X-Stainless-Os``).
        answered_by: how the request was answered: ``"queue"``, ``"callable"``,
            ``"auto"``, ``"fault:<kind>"``, ``"callable_error"`` (the ``reply`` callable
            raised; answered with 500), ``"embeddings"``, ``"models"``, ``"bad_request"``,
            ``"not_found"`` or ``"method_not_allowed"``.
        status: the HTTP status sent, or 0 if the server stopped before answering.
        response: the JSON object sent (for a stream, the completion it was cut from), the
            raw text of a ``raw_body`` reply, or ``None``.
        time: when the request was answered (``time.time()``).
    """

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    answered_by: str
    status: int
    response: Any = None
    time: float = 0.0


@dataclass(frozen=True)
class FaultPlan:
    """Random fault injection for chat requests, deterministic for a given seed.

    For each chat request the server draws from ``random.Random(seed)`` (under a lock):
    with probability ``rate`` the request gets a fault whose kind is drawn uniformly from
    ``kinds``. The sequence of decisions is fixed by the seed; which concurrent request
    gets which decision depends on arrival order. Faults are drawn before the reply queue
    is consulted, and a faulted request does not consume a queued reply (except ``hang``,
    which answers normally once it is over).

    Attributes:
        rate: probability in [0, 1] that a chat request gets a fault.
        kinds: the kinds to draw from:

            * ``"rate_limit"``: 429 with a ``Retry-After`` header (and ``retry-after-ms``);
            * ``"server_error"``: 500;
            * ``"hang"``: wait ``hang_s`` seconds, then answer normally (ended at once by
              :meth:`FakeOpenAIServer.stop`);
            * ``"malformed"``: HTTP 200 whose body is not JSON;
            * ``"bad_content"``: a valid completion whose content is prose, not JSON;
            * ``"wrong_type"``: a valid completion whose JSON content has a wrongly typed
              ``result`` field (or first schema property), e.g. ``{"result": "banana"}``.
        seed: seed of the decision sequence.
        retry_after_s: the ``Retry-After`` value of rate-limit faults, in seconds.
        hang_s: how long a hang lasts, in seconds.
    """

    rate: float
    kinds: tuple[FaultKind, ...] = ("rate_limit", "server_error", "malformed")
    seed: int = 0
    retry_after_s: float = 0.01
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        """Validate the plan.

        Raises:
            ValueError: if ``rate`` is outside [0, 1], ``kinds`` is empty or holds an
                unknown kind, or a duration is negative.
        """
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"FaultPlan: rate must be in [0, 1], got {self.rate}")
        if not self.kinds:
            raise ValueError("FaultPlan: kinds must not be empty")
        unknown = [k for k in self.kinds if k not in FAULT_KINDS]
        if unknown:
            raise ValueError(f"FaultPlan: unknown fault kinds {unknown}; known: {FAULT_KINDS}")
        if self.retry_after_s < 0 or self.hang_s < 0:
            raise ValueError("FaultPlan: retry_after_s and hang_s must be >= 0")


# ---------------------------------------------------------------------------------------
# Helpers: content, schemas, embeddings
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Incompatibilities of real OpenAI-compatible servers (mimicked on demand)
# ---------------------------------------------------------------------------------------

JsonSchemaSupport: TypeAlias = Literal["accept", "refuse_500", "refuse_400", "ignore"]
EmbeddingShape: TypeAlias = Literal["flat", "per_token", "refuse"]

# llama-cpp-python 0.3.16's server, word for word where it matters.
_JSON_SCHEMA_REFUSAL = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'response_format', "
    "'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema', "
    "'ctx': {'expected': \"'text' or 'json_object'\"}}"
)
_EMBEDDINGS_OFF = "Llama model must be created with embedding=True to call this method"
_DECODE_FAILED = "llama_decode returned -1"


@dataclass(frozen=True)
class ServerQuirks:
    """Behaviours of real OpenAI-compatible servers that differ from OpenAI's, for testing
    the fallbacks (all off by default).

    Attributes:
        json_schema: how ``response_format: {"type": "json_schema"}`` is met: ``"accept"``
            (OpenAI, vLLM); ``"refuse_500"`` (llama-cpp-python's server: HTTP 500 with a
            validation message naming ``response_format``); ``"refuse_400"`` (a 400 naming
            it); ``"ignore"`` (the field is dropped: the reply is plain text).
        json_object: whether ``{"type": "json_object"}`` is accepted (with a ``schema``
            field honoured, as llama-cpp-python does); ``False`` refuses it like
            ``json_schema="refuse_400"``.
        embeddings: the ``/embeddings`` reply: ``"flat"`` (one vector per input, float or
            base64); ``"per_token"`` (llama-cpp-python with ``--embedding`` on a model
            without pooling: a list of per-token vectors per input, floats whatever the
            ``encoding_format``, and HTTP 500 "llama_decode returned -1" for a request
            with more than one input); ``"refuse"`` (its default configuration: HTTP 500).
        context_window: prompts estimated above this many tokens are refused.
        overflow_status: how: 400 with OpenAI's "maximum context length is N tokens"
            message (llama-cpp-python's prompt check), or 500 with "llama_decode returned
            -1" (its decode path, which does not say the window).
    """

    json_schema: JsonSchemaSupport = "accept"
    json_object: bool = True
    embeddings: EmbeddingShape = "flat"
    context_window: int | None = None
    overflow_status: Literal[400, 500] = 400


def _quirk_refusal(quirks: ServerQuirks, request: ChatRequest) -> Reply | None:
    """The error a quirky server answers a chat request with, or ``None``."""
    rf_type = (request.response_format or {}).get("type")
    if rf_type == "json_schema" and quirks.json_schema == "refuse_500":
        return Reply(status=500, error_message=_JSON_SCHEMA_REFUSAL)
    if rf_type == "json_schema" and quirks.json_schema == "refuse_400":
        return Reply(status=400, error_message="response_format type json_schema is unsupported")
    if rf_type == "json_object" and not quirks.json_object:
        return Reply(status=400, error_message="response_format type json_object is unsupported")
    window = quirks.context_window
    prompt = _tokens(request.text)
    if window is None or prompt <= window:
        return None
    if quirks.overflow_status == 500:
        return Reply(status=500, error_message=_DECODE_FAILED)
    return Reply(
        status=400,
        error_message=(
            f"This model's maximum context length is {window} tokens. However, you requested "
            f"{prompt} tokens ({prompt} in the messages, None in the completion). Please "
            "reduce the length of the messages or completion."
        ),
    )


def _quirk_request(quirks: ServerQuirks, request: ChatRequest) -> ChatRequest:
    """The request as a server that ignores ``json_schema`` sees it."""
    rf_type = (request.response_format or {}).get("type")
    if quirks.json_schema != "ignore" or rf_type != "json_schema":
        return request
    body = {k: v for k, v in request.body.items() if k != "response_format"}
    return ChatRequest(request.model, request.messages, None, request.tools, body)


def _per_token_vectors(text: str, dim: int) -> list[list[float]]:
    """One vector per (whitespace) token, as a server without pooling returns."""
    return [fake_embedding(token, dim) for token in (text.split() or [text])]


def _as_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(content=value)
    if isinstance(value, dict):
        return Reply(json=value)
    raise TypeError(f"expected a Reply, str or dict, got {type(value).__name__}")


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _reply_limit(body: dict[str, Any]) -> int:
    """The request's reply limit (``max_tokens`` or ``max_completion_tokens``), else 0."""
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _used_tokens(sent: Any) -> int:
    """The total tokens of a completion the server sent (0 for an error or raw body)."""
    usage = cast("dict[str, Any]", sent).get("usage") if isinstance(sent, dict) else None
    total = cast("dict[str, Any]", usage).get("total_tokens") if isinstance(usage, dict) else 0
    return total if isinstance(total, int) else 0


_WORD_RE = re.compile(r"\w+")


def fake_embedding(text: str, dim: int = 384) -> list[float]:
    """The vector :class:`FakeOpenAIServer` returns for ``text``.

    A signed, hashed bag of lower-cased words (weight 1) and character trigrams
    (weight 0.5), hashed with BLAKE2b so that it is the same in every process, then
    L2-normalised. Texts sharing words or spellings get a positive cosine similarity.

    Args:
        text: the text to embed.
        dim: the number of dimensions.

    Returns:
        A unit-length list of ``dim`` floats.

    Raises:
        ValueError: if ``dim`` is not positive.
    """
    if dim <= 0:
        raise ValueError(f"dim must be positive, got {dim}")
    lowered = text.lower()
    features: list[tuple[str, float]] = [("w:" + w, 1.0) for w in _WORD_RE.findall(lowered)]
    padded = f" {' '.join(lowered.split())} "
    features.extend(("c:" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2))
    if not features:
        features.append(("empty:", 1.0))
    vector = [0.0] * dim
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dim
        sign = 1.0 if digest[4] & 1 else -1.0
        vector[bucket] += sign * weight
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


# ---------------------------------------------------------------------------------------
# Request handling (independent of the socket layer)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]


_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def _error_object(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", None))
    return {
        "error": {
            "message": message or f"fake error (HTTP {status})",
            "type": kind,
            "param": None,
            "code": code,
        }
    }


def _merge_headers(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    merged = dict(base)
    for key, value in extra.items():
        for existing in [k for k in merged if k.lower() == key.lower()]:
            del merged[existing]
        merged[key] = value
    return merged


def _json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> _Response:
    body = json.dumps(obj).encode("utf-8")
    return _Response(
        status, body, _merge_headers({"Content-Type": "application/json"}, headers or {})
    )


class _State:
    """Everything the request handlers share; every mutable field is guarded by ``lock``."""

    decoding: Decoding = Decoding()  # set by FakeOpenAIServer; immutable

    def __init__(
        self,
        *,
        latency_s: float,
        faults: FaultPlan | None,
        reply: Callable[[ChatRequest], ReplyLike | None] | None,
        embedding_dim: int,
        quirks: ServerQuirks | None = None,
        limit: ServerLimit | None = None,
    ) -> None:
        self.quirks = quirks or ServerQuirks()
        self.limit = limit
        self.latency_s = latency_s
        self.faults = faults
        self.reply = reply
        self.embedding_dim = embedding_dim
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.queue: deque[Reply] = deque()
        self.log: list[RecordedRequest] = []
        self.stats: dict[str, int] = {}
        self.rng = random.Random()
        self.counter = 0
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.queue.clear()
            self.log.clear()
            self.stats = {
                "requests": 0,
                "chat": 0,
                "embeddings": 0,
                "models": 0,
                "errors": 0,
                "queue": 0,
                "callable": 0,
                "auto": 0,
                "faults": 0,
                "rate_limited": 0,
            }
            for kind in FAULT_KINDS:
                self.stats[f"fault_{kind}"] = 0
            self.rng = random.Random(self.faults.seed if self.faults else 0)
            self.counter = 0

    # -- bookkeeping ------------------------------------------------------------------

    def bump(self, *keys: str) -> None:
        with self.lock:
            for key in keys:
                self.stats[key] = self.stats.get(key, 0) + 1

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def record(
        self,
        method: str,
        path: str,
        body: Any,
        headers: dict[str, str],
        answered_by: str,
        status: int,
        response: Any = None,
    ) -> None:
        entry = RecordedRequest(
            method=method,
            path=path,
            body=body,
            headers=headers,
            answered_by=answered_by,
            status=status,
            response=response,
            time=time.time(),
        )
        with self.lock:
            self.log.append(entry)
            if status >= 400:
                self.stats["errors"] += 1

    def wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; False if the server started stopping meanwhile."""
        if seconds <= 0:
            return not self.stopping.is_set()
        return not self.stopping.wait(seconds)

    def draw_fault(self) -> FaultKind | None:
        plan = self.faults
        if plan is None or plan.rate <= 0:
            return None
        with self.lock:
            if self.rng.random() >= plan.rate:
                return None
            kind = plan.kinds[self.rng.randrange(len(plan.kinds))]
            self.stats["faults"] += 1
            self.stats[f"fault_{kind}"] += 1
            return kind

    # -- dispatch ---------------------------------------------------------------------

    def handle(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> _Response | None:
        """Answer one request; ``None`` means: close the connection without answering."""
        self.bump("requests")
        route = path.split("?", 1)[0].rstrip("/")
        if route == "/v1" or route.startswith("/v1/"):
            route = route[3:]

        body: Any = None
        if raw:
            text = raw.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = text

        known = {"/chat/completions": "POST", "/embeddings": "POST", "/models": "GET"}
        expected = known.get(route, "GET" if route.startswith("/models/") else None)
        if expected is None:
            response = _json_response(404, _error_object(404, f"Unknown path {path!r}"))
            self.record(method, path, body, headers, "not_found", 404, json.loads(response.body))
            return response
        if method != expected:
            message = f"Method {method} not allowed on {path!r}; use {expected}"
            response = _json_response(405, _error_object(405, message), {"Allow": expected})
            self.record(method, path, body, headers, "method_not_allowed", 405)
            return response

        if method == "GET":
            return self.models(path, route, headers)
        if not isinstance(body, dict):
            message = "The request body must be a JSON object"
            self.record(method, path, body, headers, "bad_request", 400)
            return _json_response(400, _error_object(400, message))
        request_body = cast("dict[str, Any]", body)
        if route == "/embeddings":
            return self.embeddings(path, request_body, headers)
        return self.chat(path, request_body, headers)

    def models(self, path: str, route: str, headers: dict[str, str]) -> _Response:
        self.bump("models")
        model_id = route[len("/models/") :] if route.startswith("/models/") else _MODEL_ID
        card = {"id": model_id, "object": "model", "created": 0, "owned_by": "judgealign"}
        obj: dict[str, Any] = (
            card
            if route.startswith("/models/")
            else {
                "object": "list",
                "data": [card],
            }
        )
        self.record("GET", path, None, headers, "models", 200, obj)
        return _json_response(200, obj)

    # -- embeddings -------------------------------------------------------------------

    def embeddings(
        self, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> _Response | None:
        if not self.wait(self.latency_s):
            self.record("POST", path, body, headers, "embeddings", 0)
            return None
        self.bump("embeddings")

        def bad(message: str) -> _Response:
            self.record("POST", path, body, headers, "bad_request", 400)
            return _json_response(400, _error_object(400, message))

        texts = _embedding_inputs(body.get("input"))
        if texts is None:
            return bad("'input' must be a string, a list of strings or a list of token lists")
        dims = body.get("dimensions")
        dim = self.embedding_dim
        if dims is not None:
            if not isinstance(dims, int) or isinstance(dims, bool) or dims <= 0:
                return bad("'dimensions' must be a positive integer")
            dim = dims
        encoding = body.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            return bad("'encoding_format' must be 'float' or 'base64'")

        if self.quirks.embeddings == "refuse" or (
            self.quirks.embeddings == "per_token" and len(texts) > 1
        ):
            message = _EMBEDDINGS_OFF if self.quirks.embeddings == "refuse" else _DECODE_FAILED
            self.record("POST", path, body, headers, "quirk", 500)
            return _json_response(500, _error_object(500, message))
        data: list[dict[str, Any]] = []
        for index, text in enumerate(texts):
            vector = fake_embedding(text, dim)
            embedding: Any = vector
            if self.quirks.embeddings == "per_token":
                embedding = _per_token_vectors(text, dim)
            elif encoding == "base64":
                packed = struct.pack(f"<{dim}f", *vector)
                embedding = base64.b64encode(packed).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(_tokens(t) for t in texts)
        obj = {
            "object": "list",
            "data": data,
            "model": str(body.get("model") or _MODEL_ID),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        self.record("POST", path, body, headers, "embeddings", 200, obj)
        return _json_response(200, obj)

    # -- chat -------------------------------------------------------------------------

    def chat(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> _Response | None:
        """Answer one chat request: admission, latency, quirks, faults, reply, recording."""

        def record(answered_by: str, status: int, sent: Any = None) -> None:
            self.record("POST", path, body, headers, answered_by, status, sent)

        request = _chat_request(body)
        if request is None:
            record("bad_request", 400)
            return _json_response(400, _error_object(400, "'messages' must be a list"))
        estimate, refusal = self.admit(request)
        if refusal is not None:  # over the budget: refused at once, as providers do
            response, sent = self.render(request, refusal)
            record("rate_limit", 429, sent)
            return response
        if not self.wait(self.latency_s):
            record("auto", 0)
            return None
        self.bump("chat")
        refusal = _quirk_refusal(self.quirks, request)
        if refusal is not None:
            response, sent = self.render(request, refusal)
            record("quirk", response.status, sent)
            return response
        request = _quirk_request(self.quirks, request)
        answered_by, reply = self.answer(request)
        if reply is None:  # the server stopped during an injected hang
            record(answered_by, 0)
            return None
        response, sent = self.render(request, reply)
        record(answered_by, response.status, sent)
        self.settle(estimate, sent)
        if not self.wait(reply.delay_s):
            return None
        return response

    def admit(self, request: ChatRequest) -> tuple[int, Reply | None]:
        """The request's token estimate, and the refusal to send if over the limit."""
        if self.limit is None or not self.limit.active:
            return 0, None
        estimate = _tokens(request.text) + _reply_limit(request.body)
        wait = self.limit.admit(estimate)
        if wait is None:
            return estimate, None
        self.bump("chat", "rate_limited")
        refusal = Reply(
            status=429,
            error_message="Rate limit reached (the server's per-minute limit).",
            headers=ServerLimit.retry_after_headers(wait),
        )
        return estimate, refusal

    def settle(self, estimate: int, sent: Any) -> None:
        """Replace the admitted estimate by the tokens the reply really used."""
        if self.limit is not None and self.limit.active:
            self.limit.settle(estimate, _used_tokens(sent))

    def answer(self, request: ChatRequest) -> tuple[str, Reply | None]:
        """Who answers and with what: a drawn fault, else the chosen reply.

        A hang waits before the reply is chosen; the reply is None if the server
        stopped meanwhile.
        """
        fault = self.draw_fault()
        if fault is not None and fault != "hang":
            return f"fault:{fault}", self.fault_reply(fault, request)
        if fault == "hang":
            assert self.faults is not None
            if not self.wait(self.faults.hang_s):
                return "fault:hang", None
            return "fault:hang", self.choose_reply(request)[1]
        return self.choose_reply(request)

    def choose_reply(self, request: ChatRequest) -> tuple[str, Reply]:
        with self.lock:
            queued = self.queue.popleft() if self.queue else None
        if queued is not None:
            self.bump("queue")
            return "queue", queued
        if self.reply is not None:
            try:
                value = self.reply(request)
                chosen = None if value is None else _as_reply(value)
            except Exception as exc:
                message = f"the reply callable raised {type(exc).__name__}: {exc}"
                return "callable_error", Reply(status=500, error_message=message)
            if chosen is not None:
                self.bump("callable")
                return "callable", chosen
        self.bump("auto")
        return "auto", Reply()

    def fault_reply(self, kind: FaultKind, request: ChatRequest) -> Reply:
        plan = self.faults
        assert plan is not None
        if kind == "rate_limit":
            return Reply(
                status=429,
                error_message="Rate limit reached (injected by FakeOpenAIServer).",
                headers={
                    "Retry-After": f"{plan.retry_after_s:g}",
                    "retry-after-ms": f"{plan.retry_after_s * 1000:g}",
                },
            )
        if kind == "server_error":
            return Reply(status=500, error_message="Server error (injected by FakeOpenAIServer).")
        if kind == "malformed":
            return Reply(raw_body=_MALFORMED_BODY)
        if kind == "bad_content":
            return Reply(content=_BAD_CONTENT)
        return Reply(json=_wrong_type_payload(request))

    def render(self, request: ChatRequest, reply: Reply) -> tuple[_Response, Any]:
        """Turn a reply into an HTTP response; also returns what to record as sent."""
        if reply.raw_body is not None:
            headers = _merge_headers({"Content-Type": "application/json"}, reply.headers)
            return _Response(reply.status, reply.raw_body.encode("utf-8"), headers), reply.raw_body
        if reply.status >= 400:
            obj = _error_object(reply.status, reply.error_message)
            return _json_response(reply.status, obj, reply.headers), obj
        completion = self.completion(request, reply)
        if request.body.get("stream") is True:
            return _stream_response(request, reply, completion), completion
        return _json_response(reply.status, completion, reply.headers), completion

    def completion(self, request: ChatRequest, reply: Reply) -> dict[str, Any]:
        """The ``chat.completion`` object for a successful reply."""
        content, tool_calls = self.reply_content(request, reply)
        content, cut = self.decoding.cut(content, request.body)
        number = self.next_id()
        calls = _normalise_tool_calls(tool_calls, number) if tool_calls else None
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        finish = reply.finish_reason or ("length" if cut else "tool_calls" if calls else "stop")
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": _usage(request, reply, content, calls),
        }

    def reply_content(
        self, request: ChatRequest, reply: Reply
    ) -> tuple[str | None, list[dict[str, Any]] | None]:
        """The reply's content and tool calls, generated from the request if it is empty."""
        if reply.is_empty:
            content, tool_calls = _auto_content(self.decoding.as_decoded(request))
            return self.decoding.run_on(content), tool_calls
        content = reply.content
        if reply.json is not None:
            content = json.dumps(reply.json)
        return content, reply.tool_calls


def _chat_request(body: dict[str, Any]) -> ChatRequest | None:
    """The chat request ``body`` describes; None if its ``messages`` is not a list."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    response_format = body.get("response_format")
    tools = body.get("tools")
    return ChatRequest(
        model=str(body.get("model") or _MODEL_ID),
        messages=[
            cast("dict[str, Any]", m) for m in cast("list[Any]", messages) if isinstance(m, dict)
        ],
        response_format=(
            cast("dict[str, Any]", response_format) if isinstance(response_format, dict) else None
        ),
        tools=(
            [cast("dict[str, Any]", t) for t in cast("list[Any]", tools) if isinstance(t, dict)]
            if isinstance(tools, list)
            else None
        ),
        body=body,
    )


def _usage(
    request: ChatRequest,
    reply: Reply,
    content: str | None,
    calls: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Token counts of the prompt and of the completion (text and tool arguments)."""
    completion_text = (content or "") + "".join(c["function"]["arguments"] for c in calls or [])
    prompt_tokens = _tokens(request.text)
    completion_tokens = _tokens(completion_text)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if reply.usage:
        usage.update(reply.usage)
    return usage


def _stream_response(request: ChatRequest, reply: Reply, completion: dict[str, Any]) -> _Response:
    """``completion`` as server-sent events, with a usage chunk if the request asked."""
    stream_options = request.body.get("stream_options")
    include_usage = isinstance(stream_options, dict) and bool(
        cast("dict[str, Any]", stream_options).get("include_usage")
    )
    headers = _merge_headers(
        {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, reply.headers
    )
    return _Response(reply.status, _sse_body(completion, include_usage), headers)


def _embedding_inputs(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    items = cast("list[Any]", value)
    if all(isinstance(v, str) for v in items):
        return [cast("str", v) for v in items]
    if all(isinstance(v, int) for v in items):
        return [" ".join(str(v) for v in items)]
    if all(isinstance(v, list) for v in items):
        return [" ".join(str(t) for t in cast("list[Any]", v)) for v in items]
    return None


def _auto_content(request: ChatRequest) -> tuple[str | None, list[dict[str, Any]] | None]:
    """The automatic reply: a schema instance, a forced tool call, or plain text."""
    tool = _forced_tool(request)
    if tool is not None:
        function = cast("dict[str, Any]", tool.get("function") or {})
        parameters = function.get("parameters")
        arguments: Any = (
            schema_instance(cast("dict[str, Any]", parameters), "argument")
            if isinstance(parameters, dict)
            else {}
        )
        call: dict[str, Any] = {"name": str(function.get("name") or "tool"), "arguments": arguments}
        return None, [call]
    schema = request.json_schema
    if schema is not None:
        return json.dumps(schema_instance(schema)), None
    rf = request.response_format
    if rf is not None and rf.get("type") in ("json_object", "json_schema"):
        return json.dumps({"result": True, "rationale": "fake rationale"}), None
    return "fake reply", None


def _forced_tool(request: ChatRequest) -> dict[str, Any] | None:
    tools = request.tools or []
    choice = request.body.get("tool_choice")
    if not tools or choice is None:
        return None
    if choice == "required":
        return tools[0]
    if isinstance(choice, dict):
        function = cast("dict[str, Any]", choice).get("function")
        name = cast("dict[str, Any]", function).get("name") if isinstance(function, dict) else None
        for tool in tools:
            spec = tool.get("function")
            if isinstance(spec, dict) and cast("dict[str, Any]", spec).get("name") == name:
                return tool
    return None


def _wrong_type_payload(request: ChatRequest) -> dict[str, Any]:
    """A JSON object whose ``result`` (or first schema property) has the wrong type."""
    schema = request.json_schema
    payload: dict[str, Any] = {"result": "banana", "rationale": "x"}
    if schema is None:
        return payload
    instance = schema_instance(schema)
    props = schema.get("properties")
    if not isinstance(instance, dict) or not isinstance(props, dict) or not props:
        return payload
    fields = cast("dict[str, Any]", props)
    target = "result" if "result" in fields else next(iter(fields))
    spec = fields[target]
    expected = cast("dict[str, Any]", spec).get("type") if isinstance(spec, dict) else None
    obj = cast("dict[str, Any]", instance)
    obj[target] = 12345 if expected == "string" else "banana"
    return obj


def _normalise_tool_calls(calls: list[dict[str, Any]], number: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        function = call.get("function")
        spec = (
            cast("dict[str, Any]", function)
            if isinstance(function, dict)
            else {"name": call.get("name", ""), "arguments": call.get("arguments", {})}
        )
        arguments = spec.get("arguments", {})
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        out.append(
            {
                "id": str(call.get("id") or f"call_fake_{number}_{index}"),
                "type": "function",
                "function": {"name": str(spec.get("name", "")), "arguments": arguments},
            }
        )
    return out


def _sse_body(completion: dict[str, Any], include_usage: bool) -> bytes:
    """A whole ``text/event-stream`` body for a completion (sent with a Content-Length)."""
    choice = cast("dict[str, Any]", completion["choices"][0])
    message = cast("dict[str, Any]", choice["message"])

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> bytes:
        obj: dict[str, Any] = {
            "id": completion["id"],
            "object": "chat.completion.chunk",
            "created": completion["created"],
            "model": completion["model"],
            "system_fingerprint": completion["system_fingerprint"],
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        obj.update(extra)
        return b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""}, None)]
    content = message.get("content")
    if isinstance(content, str) and content:
        step = max(1, math.ceil(len(content) / 4))
        parts.extend(
            chunk({"content": content[i : i + step]}, None) for i in range(0, len(content), step)
        )
    calls = cast("list[dict[str, Any]]", message.get("tool_calls") or [])
    for index, call in enumerate(calls):
        parts.append(chunk({"tool_calls": [{"index": index, **call}]}, None))
    parts.append(chunk({}, cast("str", choice["finish_reason"])))
    if include_usage:
        usage_chunk = chunk({}, None, usage=completion["usage"])
        obj = json.loads(usage_chunk[len(b"data: ") :])
        obj["choices"] = []
        parts.append(b"data: " + json.dumps(obj).encode("utf-8") + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


# ---------------------------------------------------------------------------------------
# Socket layer
# ---------------------------------------------------------------------------------------


def _canonical_header(name: str) -> str:
    """``content-type`` -> ``Content-Type``, whatever case the client used."""
    return "-".join(part.capitalize() for part in name.split("-"))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, state: _State) -> None:
        self.state = state
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def track(self, connection: socket.socket) -> None:
        with self.connections_lock:
            self.connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self.connections_lock:
            self.connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open connection down, waking handlers blocked on a read."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.state.stopping.is_set():
            return  # a client went away or the server is stopping: not worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120.0  # idle keep-alive connections end after this
    server_version = "FakeOpenAI/1.0"
    sys_version = ""

    def _server(self) -> _HTTPServer:
        return cast("_HTTPServer", self.server)

    def setup(self) -> None:
        super().setup()
        self._server().track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._server().untrack(self.connection)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {_canonical_header(k): v for k, v in self.headers.items()}
        response = self._server().state.handle(self.command, self.path, headers, raw)
        if response is None:
            self.close_connection = True
            return
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        return  # keep test output quiet


# ---------------------------------------------------------------------------------------
# The public server
# ---------------------------------------------------------------------------------------


class FakeOpenAIServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 for tests; use it as a context manager.

    Chat requests are answered, in this order, by: an injected fault (``faults``), the
    next queued reply (:meth:`enqueue`), the ``reply`` callable (returning ``None`` falls
    through), and finally an automatic reply:

    * a ``json_schema`` response format gets a generated instance of the schema
      (boolean → ``true``, integer → ``minimum`` or 1, number → ``minimum`` or 0.5,
      string → ``"fake <field name>"``, enum → first value, anyOf → first non-null
      branch, object → every property, array → one item);
    * a ``json_object`` response format with a ``schema`` gets an instance of it, one
      without gets ``{"result": true, "rationale": ...}``;
    * a forced ``tool_choice`` gets a tool call with generated arguments;
    * anything else gets ``"fake reply"``.

    Every request is served in its own thread, so latency does not add up across
    concurrent clients. The server speaks HTTP/1.1 with keep-alive and TCP_NODELAY.

    Args:
        latency_s: seconds every chat and embeddings request waits before being answered.
        faults: random fault injection for chat requests, or ``None`` for none.
        reply: a function from :class:`ChatRequest` to a :class:`Reply`, a content
            string, a JSON object (sent as content) or ``None`` (use the automatic reply).
            It runs in the request's thread, so it must be thread-safe. If it raises, the
            request is answered with a 500 error naming the exception.
        embedding_dim: dimensions of the embeddings (a request's ``dimensions`` wins).
        decoding: how replies imitate a real server's decoding (:class:`Decoding`):
            schema bounds ignored as by a grammar, replies that run on unless
            ``max_tokens`` cuts them. The default is an ideal server.
        quirks: incompatibilities of real servers to mimic (see :class:`ServerQuirks`);
            a refusal they cause is answered before any fault, queued reply or callable.
        requests_per_minute: a provider's request limit: chat requests beyond it (budget
            refilled continuously, about a second of it usable at once) are answered at
            once with 429 and a ``Retry-After`` saying when one would fit; recorded as
            ``answered_by="rate_limit"`` and counted in ``stats["rate_limited"]``.
        tokens_per_minute: the same for tokens: a request is charged its prompt tokens
            plus its ``max_tokens`` on arrival, settled to the reply's usage after.

    Example::

        with FakeOpenAIServer(reply=lambda r: {"result": "4" in r.last_user}) as server:
            answer = my_judge(api_base=server.base_url)
            assert server.requests[0].answered_by == "callable"
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        reply: Callable[[ChatRequest], ReplyLike | None] | None = None,
        embedding_dim: int = 384,
        decoding: Decoding | None = None,
        quirks: ServerQuirks | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        """Configure the server; it starts on :meth:`start` or ``with``.

        Raises:
            ValueError: if ``latency_s`` is negative, ``embedding_dim`` is not positive or
                a per-minute limit is not positive.
        """
        if latency_s < 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s}")
        if embedding_dim <= 0:
            raise ValueError(f"embedding_dim must be positive, got {embedding_dim}")
        self._state = _State(
            latency_s=latency_s,
            faults=faults,
            reply=reply,
            embedding_dim=embedding_dim,
            quirks=quirks,
            limit=ServerLimit(requests_per_minute, tokens_per_minute),
        )
        self._state.decoding = decoding or Decoding()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind a free port on 127.0.0.1 and serve in a background daemon thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: if the server is already running.
        """
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer is already running")
        self._state.stopping.clear()
        httpd = _HTTPServer(self._state)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"FakeOpenAIServer:{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, promptly: end hangs and delays, close the socket and connections.

        Requests still waiting are dropped without an answer. Calling ``stop`` on a
        server that is not running does nothing. The recorded requests, stats and queue
        are kept; the server can be started again.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._state.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=5.0)
        self._httpd, self._thread = None, None

    def __enter__(self) -> FakeOpenAIServer:
        """Start the server (see :meth:`start`)."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server (see :meth:`stop`)."""
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The TCP port the server listens on.

        Raises:
            RuntimeError: if the server is not running.
        """
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not running; use `with` or start()")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``http://127.0.0.1:PORT/v1`` (for ``api_base``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_url(self) -> str:
        """The full chat-completions endpoint (what MLflow's native ``base_url`` wants)."""
        return f"{self.base_url}/chat/completions"

    # -- scripting and inspection -----------------------------------------------------

    def enqueue(self, *replies: ReplyLike) -> None:
        """Queue replies for the next chat requests, first in first out.

        Args:
            *replies: a :class:`Reply`; a ``str`` (the content); or a ``dict`` (a JSON
                object sent as the content).

        Raises:
            TypeError: if a reply is of another type.
        """
        converted = [_as_reply(r) for r in replies]
        with self._state.lock:
            self._state.queue.extend(converted)

    @property
    def queued(self) -> int:
        """How many queued replies are still unused."""
        with self._state.lock:
            return len(self._state.queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests answered so far, in the order they were answered."""
        with self._state.lock:
            return list(self._state.log)

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the counters.

        Keys: ``requests`` (all), ``chat``, ``embeddings``, ``models``, ``errors``
        (responses with status >= 400), ``queue`` / ``callable`` / ``auto`` (how chat
        requests were answered), ``faults`` (all injected), ``fault_<kind>`` for
        every kind in :data:`FAULT_KINDS` and ``rate_limited`` (chat requests refused by
        the per-minute limits).
        """
        with self._state.lock:
            return dict(self._state.stats)

    def reset(self) -> None:
        """Forget queued replies, recorded requests and counters; restart the fault seed."""
        self._state.reset()
