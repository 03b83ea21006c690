"""How :class:`~judgealign.testing.FakeOpenAIServer` imitates a real model server's decoding.

By default the fake is an ideal server: its automatic replies satisfy every keyword of the
requested JSON schema and stop as soon as the object is complete. Real servers are not
ideal, and :class:`Decoding` reproduces two of their habits seen in the wild:

* **Grammar-based servers ignore numeric bounds.** llama.cpp turns a JSON schema into a
  grammar that fixes each value's type but not its ``minimum``/``maximum``; a small model
  then writes ``13`` or ``2019`` for a 1-5 score. An ``enum`` of the allowed values is
  enforced.
* **Replies run on without a limit.** Without a grammar and without ``max_tokens`` a small
  model may write thousands of tokens; with ``max_tokens`` the reply is cut there and its
  ``finish_reason`` is ``"length"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

if TYPE_CHECKING:
    from judgealign.testing._request import ChatRequest

__all__ = ["Decoding"]

_CHARS_PER_TOKEN = 4  # the fake's token count: one token per 4 characters
_FILLER = "and, to say it once more in other words, "
_OUT_OF_BOUNDS = 5  # how far past a bound a grammar-only reply lands (1-5 gives 10)


@dataclass(frozen=True)
class Decoding:
    """How the fake server's replies imitate a real model server (default: an ideal one).

    Attributes:
        schema_bounds: ``"honoured"`` (the default) or ``"ignored"``, as a grammar-based
            server does: an automatic reply then puts each ``integer``/``number`` that has
            a ``minimum`` or ``maximum`` but no ``enum`` outside its bounds (``maximum +
            5``, else ``minimum - 5``). An ``enum`` (or ``const``) is still obeyed.
        run_on_tokens: ``None`` (the default), or the length in tokens that an automatic
            reply runs on to when nothing stops it: the ``rationale`` (else the first
            string) of a JSON reply is padded, plain text gets more words. When set, every
            reply (queued ones too) honours the request's ``max_tokens`` (or
            ``max_completion_tokens``): longer content is cut there, with
            ``finish_reason: "length"``. The fake counts one token per 4 characters.

    Example::

        # A llama.cpp-like server: a 1-5 score comes back as 10 unless sent as an enum,
        # and a reply without max_tokens runs to 3,000 tokens.
        FakeOpenAIServer(decoding=Decoding(schema_bounds="ignored", run_on_tokens=3000))
    """

    schema_bounds: Literal["honoured", "ignored"] = "honoured"
    run_on_tokens: int | None = None

    def __post_init__(self) -> None:
        """Validate the settings.

        Raises:
            ValueError: an unknown ``schema_bounds`` or a ``run_on_tokens`` below 1.
        """
        if self.schema_bounds not in ("honoured", "ignored"):
            raise ValueError(
                f"Decoding: schema_bounds must be 'honoured' or 'ignored', "
                f"got {self.schema_bounds!r}"
            )
        if self.run_on_tokens is not None and self.run_on_tokens < 1:
            raise ValueError(f"Decoding: run_on_tokens must be >= 1, got {self.run_on_tokens}")

    def as_decoded(self, request: ChatRequest) -> ChatRequest:
        """The request as the decoder enforces it: with ignored bounds, the schema's
        numbers carry an out-of-bounds ``const`` instead of ``minimum``/``maximum``."""
        if self.schema_bounds == "honoured" or request.response_format is None:
            return request
        response_format = _unbounded(request.response_format)
        return replace(request, response_format=cast(dict[str, Any], response_format))

    def run_on(self, content: str | None) -> str | None:
        """An automatic reply's content, run on to ``run_on_tokens`` when that is set."""
        if self.run_on_tokens is None or content is None:
            return content
        target = self.run_on_tokens * _CHARS_PER_TOKEN
        try:
            obj: Any = json.loads(content)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return _pad_json(cast(dict[str, Any], obj), target)
        return content + " " + _filler(target - len(content) - 1)

    def cut(self, content: str | None, body: dict[str, Any]) -> tuple[str | None, bool]:
        """``content`` cut to the request's token limit, and whether it was cut."""
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        if self.run_on_tokens is None or content is None or not isinstance(limit, int):
            return content, False
        keep = max(1, limit) * _CHARS_PER_TOKEN
        if len(content) <= keep:
            return content, False
        return content[:keep], True


def _filler(chars: int) -> str:
    repeats = chars // len(_FILLER) + 1
    return (_FILLER * repeats)[: max(0, chars)]


def _pad_json(obj: dict[str, Any], target: int) -> str:
    """The object as JSON text of about ``target`` characters: the rationale (or the first
    string field) grows, the way a model repeats itself inside a string."""
    key = "rationale" if isinstance(obj.get("rationale"), str) else None
    key = key or next((k for k, v in obj.items() if isinstance(v, str)), None)
    text = json.dumps(obj)
    if key is None:
        return text + " " + _filler(target - len(text) - 1)
    obj[key] = str(obj[key]) + " " + _filler(target - len(text) - 1)
    return json.dumps(obj)


def _unbounded(node: Any) -> Any:
    """A copy of a schema (or any part of one) whose bounded numbers are out of bounds."""
    if isinstance(node, list):
        return [_unbounded(item) for item in cast(list[Any], node)]
    if not isinstance(node, dict):
        return node
    out = {key: _unbounded(value) for key, value in cast(dict[str, Any], node).items()}
    kind = out.get("type")
    if kind in ("integer", "number") and "enum" not in out and "const" not in out:
        value = _outside(out, integer=kind == "integer")
        if value is not None:
            out["const"] = value
    return out


def _outside(schema: dict[str, Any], *, integer: bool) -> float | None:
    high, low = schema.get("maximum"), schema.get("minimum")
    if isinstance(high, (int, float)) and not isinstance(high, bool):
        return math.floor(high) + _OUT_OF_BOUNDS if integer else high + _OUT_OF_BOUNDS + 0.5
    if isinstance(low, (int, float)) and not isinstance(low, bool):
        return math.ceil(low) - _OUT_OF_BOUNDS if integer else low - _OUT_OF_BOUNDS - 0.5
    return None
