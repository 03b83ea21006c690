"""Structured replies from any :class:`ChatModel`.

How the schema is requested is negotiated per endpoint and model, from what the server
actually answers. Three rungs, tried in this order:

1. ``json_schema``: ``response_format={"type": "json_schema", "json_schema": {...}}``
   (OpenAI's structured outputs; vLLM, SGLang, llama.cpp's ``llama-server``);
2. ``json_object``: ``{"type": "json_object", "schema": {...}}``, the JSON mode with the
   schema alongside, which llama-cpp-python's server turns into a grammar and servers
   with a plain JSON mode accept;
3. ``prompt``: no ``response_format``; the schema is described in the prompt and the reply
   is parsed tolerantly.

A server moves a request down one rung when it refuses the rung by its content (HTTP 400,
422 or 500 whose reply names ``response_format`` or ``json_schema``, see
:mod:`judgealign.models._refusals`; such a refusal is never retried), or when it ignores the
schema: a reply and its repair whose texts hold no JSON object at all, before any reply
of that endpoint on that rung did (one such reply is taken for the model's slip and
repaired as usual; the repair is then asked again one rung down). The lower rung is
remembered for that endpoint and model only once it has produced a reply, and a single
warning names the rung in use. Any other failure (context overflow, rate limits, a bad
parameter) leaves the rung where it is.

The reply is then extracted tolerantly (code fences, prose around the object) and parsed;
a reply that still does not fit gets one repair message, then an explicit
:class:`ModelOutputError`. Every request paid for counts in the usage, replies that
ignored the schema included.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from judgealign.core._errors import ModelCallError, ModelError, ModelOutputError
from judgealign.core._usage import Usage
from judgealign.models._chat import ChatModel, Completion, Message
from judgealign.models._metering import MeteredModel
from judgealign.models._refusals import refuses_response_format
from judgealign.models._reply_limits import raise_limit_hint, truncation_note

__all__ = [
    "MAX_INT_ENUM",
    "RUNGS",
    "StructuredReply",
    "complete_structured",
    "extract_json_object",
    "generate_structured",
    "structured_rung",
]

MAX_INT_ENUM = 256
"""The widest integer range sent as an ``enum`` of its values (a 0-100 score fits)."""

T = TypeVar("T")
logger = logging.getLogger("judgealign")

_RAISE_LIMIT = "give the model a larger max_tokens in its parameters (e.g. {max_tokens})"
RUNGS = ("json_schema", "json_object", "prompt")
"""The structured-output rungs, from the most to the least constrained."""

_rungs: dict[str, str] = {}
_confirmed: set[str] = set()
_rungs_lock = threading.Lock()


@dataclass(frozen=True)
class StructuredReply(Generic[T]):
    """A parsed reply, the raw text it came from, and what all attempts cost."""

    value: T
    raw_text: str
    usage: Usage
    repaired: bool = False


class ReplyError(ValueError):
    """Raised by a parse function when a reply does not fit; the message is shown to the
    model in the repair request."""


def generate_structured(
    model: ChatModel,
    messages: Sequence[Message],
    *,
    schema_name: str,
    schema: dict[str, Any],
    parse: Callable[[dict[str, Any]], T],
    timeout: float | None = None,
    raise_limit: str = _RAISE_LIMIT,
) -> StructuredReply[T]:
    """Ask ``model`` for a JSON object matching ``schema`` and ``parse`` it.

    The reply's usage counts every request sent (a schema-rejected request, a repair); a
    raised error carries that usage too (``ModelError.usage``).

    A reply cut by the token limit (``finish_reason == "length"``) is used only if a whole
    object that fits came before the cut; otherwise the repair message says it was cut
    and asks for a shorter reply, and if that is cut too the error says so and how to
    raise the limit (``raise_limit``, with ``{max_tokens}`` where the value goes).

    Raises:
        ModelCallError: the provider failed (after retries).
        ModelOutputError: the reply did not fit, even after one repair message.
    """
    metered = MeteredModel(model)
    try:
        value, text, repaired = _generate(
            metered, messages, schema_name, schema, parse, timeout, raise_limit
        )
    except ModelError as exc:
        exc.usage = metered.total
        raise
    return StructuredReply(value, text, metered.total, repaired=repaired)


def _generate(
    model: ChatModel,
    messages: Sequence[Message],
    schema_name: str,
    schema: dict[str, Any],
    parse: Callable[[dict[str, Any]], T],
    timeout: float | None,
    raise_limit: str,
) -> tuple[T, str, bool]:
    """The parsed value, the text it came from and whether a repair was needed."""
    completion = complete_structured(model, messages, schema_name, schema, timeout)
    try:
        return _parse(completion, parse), completion.text, False
    except ReplyError as first:
        repair = [
            *messages,
            Message(role="assistant", content=completion.text),
            Message(role="user", content=_repair_text(str(first), schema)),
        ]
        # A first reply without any JSON: if the repair has none either, the server may
        # be ignoring the schema, and the repair is asked again one rung down.
        ignored = _ignored_schema(completion)
        second = complete_structured(
            model, repair, schema_name, schema, timeout, after_ignored=ignored
        )
        try:
            return _parse(second, parse), second.text, True
        except ReplyError as again:
            cut = f" {raise_limit_hint(second, raise_limit)}" if truncation_note(second) else ""
            raise ModelOutputError(
                f"The reply of {model.uri} did not fit the expected output after one repair "
                f"attempt: {again}.{cut}",
                raw_output=second.text[:2000],
            ) from again


def capability_key(model: ChatModel) -> str:
    """What a server's structured-output capability is remembered by: the model and the
    endpoint it is reached at."""
    inner: Any = model
    for _ in range(8):  # wrappers (metering, the CLI's) keep the real model as ``inner``
        if getattr(inner, "inner", None) is None:
            break
        inner = inner.inner
    endpoint: Any = getattr(inner, "endpoint", "")
    return f"{model.uri}@{endpoint}" if isinstance(endpoint, str) and endpoint else model.uri


def structured_rung(model: ChatModel) -> str:
    """The rung this process uses for ``model`` (``json_schema`` until a server refuses)."""
    with _rungs_lock:
        return _rungs.get(capability_key(model), RUNGS[0])


def response_format_for(rung: str, schema_name: str, schema: dict[str, Any]) -> Any:
    """The ``response_format`` a rung sends (``None`` for the prompt rung)."""
    if rung == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "strict": True, "schema": schema},
        }
    if rung == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def complete_structured(
    model: ChatModel,
    messages: Sequence[Message],
    schema_name: str,
    schema: dict[str, Any],
    timeout: float | None = None,
    *,
    after_ignored: bool = False,
) -> Completion:
    """One reply asked for on the negotiated rung (pass a :class:`MeteredModel` to count
    what every attempt cost).

    ``after_ignored`` says that the previous reply of the same operation held no JSON at
    all: a second such reply, from an endpoint that never sent JSON on its rung, reads as
    the server ignoring the schema, and the request is sent again one rung down.

    Raises:
        ModelCallError: a failure that is not a refusal of the rung, or a refusal on the
            last rung.
    """
    key = capability_key(model)
    with _rungs_lock:
        start = RUNGS.index(_rungs.get(key, RUNGS[0]))
        # Once a rung has produced JSON for this endpoint, a reply without JSON is the
        # model's slip (repaired by the caller), not the server ignoring the schema.
        confirmed = key in _confirmed
    for rung in RUNGS[start:]:
        try:
            completion = model.complete(
                messages,
                response_format=response_format_for(rung, schema_name, schema),
                timeout=timeout,
            )
        except ModelCallError as exc:
            if rung == RUNGS[-1] or not _refuses_rung(exc):
                raise
            continue
        ignored = _ignored_schema(completion)
        if ignored and after_ignored and rung != RUNGS[-1] and not confirmed:
            after_ignored = False  # one step down per operation
            continue
        if not ignored:
            _remember(key, rung, announce=rung != RUNGS[start])
        return completion
    raise AssertionError("unreachable: the last rung returns or raises")  # pragma: no cover


def _refuses_rung(exc: ModelCallError) -> bool:
    """Whether a failure is the server refusing the structured-output request itself."""
    if exc.reason is not None:
        return exc.reason == "response_format"
    # Models outside judgealign's adapter raise ModelCallError without a reason.
    return refuses_response_format(exc.status, type(exc).__name__, str(exc))


def _ignored_schema(completion: Completion) -> bool:
    """A reply with text but no JSON object, not cut by the token limit: the server did
    not apply the schema."""
    text = completion.text
    return (
        bool(text.strip())
        and extract_json_object(text) is None
        and truncation_note(completion) is None
    )


def forget_structured_rungs() -> None:
    """Forget every negotiated rung (tests start each case from ``json_schema``)."""
    with _rungs_lock:
        _rungs.clear()
        _confirmed.clear()


def _remember(key: str, rung: str, *, announce: bool) -> None:
    """Record that ``rung`` produced JSON for ``key``; a lower rung than the known one
    is announced once."""
    with _rungs_lock:
        known = _rungs.get(key, RUNGS[0])
        lower = RUNGS.index(rung) > RUNGS.index(known)
        if lower:
            _rungs[key] = rung
        if rung == _rungs.get(key, RUNGS[0]):
            _confirmed.add(key)
    if not (announce and lower):
        return
    how = {
        "json_object": 'response_format {"type": "json_object"} with the schema',
        "prompt": "JSON described in the prompt, parsed tolerantly",
    }[rung]
    logger.warning(
        "%s refused or ignored the higher structured-output rungs; using rung %r (%s) "
        "for it from now on.",
        key,
        rung,
        how,
    )


def _parse(completion: Completion, parse: Callable[[dict[str, Any]], T]) -> T:
    obj = extract_json_object(completion.text)
    cut = truncation_note(completion)
    try:
        if obj is None:
            raise ReplyError("the reply contains no JSON object")
        return parse(obj)
    except ReplyError as exc:
        if cut is None:
            raise
        # A fragment is not what the model meant: say it was cut, never judge the fragment.
        raise ReplyError(
            f"{cut}, and what came before the cut does not fit ({exc}); reply again, "
            "shorter: keep every text field brief"
        ) from exc


def _repair_text(problem: str, schema: dict[str, Any]) -> str:
    return (
        f"Your previous reply could not be used: {problem}. Reply again with only one JSON "
        f"object that matches this JSON schema, and nothing else:\n{json.dumps(schema)}"
    )


def extract_json_object(text: str) -> dict[str, Any] | None:
    """Find the first JSON object in ``text``: bare, inside a code fence, or amid prose."""
    decoder = json.JSONDecoder(strict=False)
    stripped = text.strip()
    start = stripped.find("{")
    while start != -1:
        try:
            obj, _ = decoder.raw_decode(stripped, start)
        except json.JSONDecodeError:
            start = stripped.find("{", start + 1)
            continue
        if isinstance(obj, dict):
            return obj  # pyright: ignore[reportUnknownVariableType]
        start = stripped.find("{", start + 1)
    return None
