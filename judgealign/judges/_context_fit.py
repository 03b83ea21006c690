"""Fitting a judge's record into the context window a server reports.

``max_field_chars`` caps each record field at a fixed size, chosen for large hosted
models (50,000 characters). A small local server has a far smaller window: llama-cpp-
python's server defaults to 2,048 tokens, so a long document overflows it and the server
refuses the request. When a server says how large its window is (and most do, in the
refusal: "maximum context length is 2048 tokens ... you requested 3531 tokens"), the judge
learns, per endpoint and model:

* the window, in tokens;
* how many characters of this prompt made a token (the fewest seen, to stay on the safe
  side), from the refused prompt's size and the token count the server gave;

and cuts the record's longest fields from the middle (with the usual marker, warning and
``truncated_fields`` metadata) so that the prompt, plus room for the reply, fits. Later
records to the same endpoint are fitted before they are sent, so the refusal is paid for
once. A server that refuses without giving its window gets a :class:`ContextLengthError`
back to the user as the record's error, naming ``max_field_chars`` as the fix; so does a
judge made with ``max_field_chars=None`` ("send fields whole"), which is never cut.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judgealign.core._errors import ContextLengthError
from judgealign.models._chat import Message

__all__ = ["ContextWindows", "field_sizes", "water_level"]

# When the server gave no token count, assume this many characters per token: English
# prose runs at about 4, JSON-quoted text with escapes at about 3.
_DEFAULT_CHARS_PER_TOKEN = 3.0
# Aim under the budget: a chat template adds tokens around each message.
_SAFETY = 0.9
_MIN_FIELD_CHARS = 200
_MAX_REPLY_RESERVE = 512


@dataclass(frozen=True)
class _Window:
    tokens: int
    chars_per_token: float


class ContextWindows:
    """What servers said about their context windows, by endpoint and model
    (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, _Window] = {}

    def learn(self, key: str, error: ContextLengthError, prompt_chars: int) -> bool:
        """Record what a refusal says; ``False`` when it gives no window to fit into."""
        if error.window is None or error.window <= 0:
            return False
        ratio = _DEFAULT_CHARS_PER_TOKEN
        if error.prompt_tokens:
            ratio = max(0.5, prompt_chars / error.prompt_tokens)
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                ratio = min(ratio, known.chars_per_token)
            self._known[key] = _Window(error.window, ratio)
        return True

    def forget(self) -> None:
        """Forget every window (tests start each case from scratch)."""
        with self._lock:
            self._known.clear()

    def window(self, key: str) -> int | None:
        """The window learned for ``key``, in tokens, or ``None``."""
        with self._lock:
            known = self._known.get(key)
        return known.tokens if known else None

    def field_limit(
        self,
        key: str,
        messages: Sequence[Message],
        sizes: Mapping[str, int],
        reply_tokens: int | None,
    ) -> int | None:
        """The per-field cap that makes ``messages`` fit the learned window, or ``None``
        when no window is known or the fields already fit.

        Args:
            key: the endpoint and model.
            messages: the request as it would be sent with the current fields.
            sizes: the characters of each record field in those messages.
            reply_tokens: the ``max_tokens`` the judge asks for, if any.
        """
        with self._lock:
            known = self._known.get(key)
        if known is None:
            return None
        reserve = reply_tokens or min(_MAX_REPLY_RESERVE, known.tokens // 4)
        budget_chars = (known.tokens - reserve) * _SAFETY * known.chars_per_token
        total = sum(len(m["content"]) for m in messages)
        if total <= budget_chars:
            return None
        overhead = total - sum(sizes.values())
        return water_level(sizes, max(0.0, budget_chars - overhead))


def water_level(sizes: Mapping[str, int], allowed: float) -> int:
    """The largest per-field cap ``L`` with ``sum(min(size, L)) <= allowed`` (at least
    200 characters, the smallest ``max_field_chars``): short fields stay whole and the
    long ones share what is left."""
    remaining = allowed
    ordered = sorted(sizes.values())
    for index, size in enumerate(ordered):
        share = remaining / (len(ordered) - index)
        if size > share:
            return max(_MIN_FIELD_CHARS, int(share))
        remaining -= size
    return max(_MIN_FIELD_CHARS, int(max(ordered, default=0)))


def field_sizes(fields: Mapping[str, Any], text_of: Callable[[Any], str | None]) -> dict[str, int]:
    """The characters each field takes once written out (``text_of`` turns a value into
    the text the judge sends)."""
    sizes: dict[str, int] = {}
    for name, value in fields.items():
        text = text_of(value)
        sizes[name] = len(text) if text is not None else 0
    return sizes
