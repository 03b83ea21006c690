"""What a server's error reply says about the request: too long, or an unsupported
structured-output request.

OpenAI-compatible servers disagree on status codes. The same condition arrives as 400,
413, 422 or 500 depending on the implementation, so the reply's text decides, not the
status alone. Both conditions are refusals by content: sending the same request again
cannot succeed, so they are never retried.

Context overflow, as servers word it:

* OpenAI, vLLM, llama-cpp-python's server (HTTP 400): "This model's maximum context
  length is 2048 tokens. However, you requested 3531 tokens (3531 in the messages, ...)";
* llama.cpp's own ``llama-server``: "the request exceeds the available context size";
* llama-cpp-python's decode path (HTTP 500): "llama_decode returned -1", which it reports
  when a prompt runs past the context it was given (the window is then unknown);
* litellm's mapping of all of these: ``ContextWindowExceededError``.

A server started without embeddings says so (llama-cpp-python's server, in its default
configuration, answers ``/v1/embeddings`` with HTTP 500 "Llama model must be created with
embedding=True to call this method").

A refused structured-output request names the parameter: llama-cpp-python's server answers
``response_format: {"type": "json_schema"}`` with HTTP 500 and a validation message
("Input should be 'text' or 'json_object'"); others answer 400 or 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ContextOverflow",
    "context_overflow",
    "embeddings_disabled",
    "refuses_response_format",
]


@dataclass(frozen=True)
class ContextOverflow:
    """A context-overflow refusal and the sizes the server gave, when it gave them."""

    window: int | None = None
    prompt_tokens: int | None = None


_OVERFLOW = re.compile(
    r"maximum context length|context_length_exceeded|ContextWindowExceeded"
    r"|exceeds? (?:the available )?context (?:size|window)|context window of \d"
    r"|llama_decode returned -1|prompt is too long|input is too long for the model",
    re.IGNORECASE,
)
_WINDOW = (
    re.compile(r"maximum context length is ([\d,]+) tokens", re.IGNORECASE),
    re.compile(r"context window of ([\d,]+)", re.IGNORECASE),
    re.compile(r"\bn_ctx\D{1,4}(\d+)"),
)
_PROMPT = (
    re.compile(r"\(([\d,]+) in the messages", re.IGNORECASE),
    re.compile(r"messages resulted in ([\d,]+) tokens", re.IGNORECASE),
    re.compile(r"Requested tokens \(([\d,]+)\)", re.IGNORECASE),
    re.compile(r"\bn_prompt_tokens\D{1,4}(\d+)"),
)
_RESPONSE_FORMAT = re.compile(r"response_format|json_schema|json schema", re.IGNORECASE)
# The statuses servers use to refuse a request by its content (500: llama-cpp-python's
# server turns a request validation error into an internal error).
_REFUSAL_STATUSES = frozenset({400, 413, 422, 500})
_REFUSAL_KINDS = frozenset(
    {"BadRequestError", "UnprocessableEntityError", "UnsupportedParamsError"}
)


def _number(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None:
            return int(match.group(1).replace(",", ""))
    return None


def _is_refusal(status: int | None, kind: str) -> bool:
    return (status in _REFUSAL_STATUSES) or (status is None and kind in _REFUSAL_KINDS)


def context_overflow(status: int | None, kind: str, text: str) -> ContextOverflow | None:
    """The overflow a failed call reports, or ``None`` when it reports none.

    Args:
        status: the HTTP status, when there was one.
        kind: the error's name (``BadRequestError``, ``ContextWindowExceededError``, ...).
        text: the error message, with the server's reply in it.
    """
    named = "ContextWindowExceeded" in kind
    if not named and not (_is_refusal(status, kind) and _OVERFLOW.search(text)):
        return None
    return ContextOverflow(window=_number(_WINDOW, text), prompt_tokens=_number(_PROMPT, text))


def refuses_response_format(status: int | None, kind: str, text: str) -> bool:
    """Whether a failed call is the server refusing the ``response_format`` it was sent."""
    return _is_refusal(status, kind) and _RESPONSE_FORMAT.search(text) is not None


_EMBEDDINGS_OFF = re.compile(
    r"created with embedding=True|embeddings? (?:is |are )?(?:not enabled|disabled)"
    r"|does not support embeddings|start (?:it|the server) with --embeddings?",
    re.IGNORECASE,
)


def embeddings_disabled(status: int | None, kind: str, text: str) -> bool:
    """Whether a failed call is a server that does not serve embeddings at all."""
    return (_is_refusal(status, kind) or status == 501) and _EMBEDDINGS_OFF.search(text) is not None
