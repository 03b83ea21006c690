"""Structured replies from any :class:`ChatModel`.

The request carries a JSON-schema ``response_format``. A model that rejects it (HTTP 400)
is remembered and asked again with the schema only described in the prompt. The reply is
then extracted tolerantly (code fences, prose around the object) and parsed; a reply that
still does not fit gets one repair message, then an explicit :class:`ModelOutputError`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from judgealign._chat import ChatModel, Completion, Message
from judgealign._errors import ModelCallError, ModelError, ModelOutputError
from judgealign._metering import MeteredModel
from judgealign._reply_limits import raise_limit_hint, truncation_note
from judgealign._usage import ZERO_USAGE, Usage

__all__ = ["StructuredReply", "extract_json_object", "generate_structured"]

T = TypeVar("T")
logger = logging.getLogger("judgealign")

_RAISE_LIMIT = "give the model a larger max_tokens in its parameters (e.g. {max_tokens})"
_no_schema_support: set[str] = set()
_support_lock = threading.Lock()


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
    completion = _complete(model, messages, schema_name, schema, timeout)
    try:
        return _parse(completion, parse), completion.text, False
    except ReplyError as first:
        repair = [
            *messages,
            Message(role="assistant", content=completion.text),
            Message(role="user", content=_repair_text(str(first), schema)),
        ]
        second = _complete(model, repair, schema_name, schema, timeout)
        try:
            return _parse(second, parse), second.text, True
        except ReplyError as again:
            cut = f" {raise_limit_hint(second, raise_limit)}" if truncation_note(second) else ""
            raise ModelOutputError(
                f"The reply of {model.uri} did not fit the expected output after one repair "
                f"attempt: {again}.{cut}",
                raw_output=second.text[:2000],
            ) from again


def _complete(
    model: ChatModel,
    messages: Sequence[Message],
    schema_name: str,
    schema: dict[str, Any],
    timeout: float | None,
) -> Completion:
    with _support_lock:
        supported = model.uri not in _no_schema_support
    if supported:
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": schema_name, "strict": True, "schema": schema},
        }
        try:
            return model.complete(messages, response_format=response_format, timeout=timeout)
        except ModelCallError as exc:
            if exc.status != 400:
                raise
        # Remembered only once the same request succeeds without the schema: a 400 for
        # another reason (context too long, a bad parameter) must not switch it off.
        completion = model.complete(messages, response_format=None, timeout=timeout)
        logger.info("%s rejected response_format; using instructed JSON", model.uri)
        with _support_lock:
            _no_schema_support.add(model.uri)
        return completion
    return model.complete(messages, response_format=None, timeout=timeout)


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


def total_usage(usages: Sequence[Usage]) -> Usage:
    """Sum several usages."""
    total = ZERO_USAGE
    for usage in usages:
        total = total + usage
    return total
