"""Metering: the usage of every model call, failed calls included.

A failed call still cost something: the request was sent, and when a reply arrived (one
that could not be parsed, say) its tokens were paid for. :class:`MeteredModel` wraps a
:class:`ChatModel` and sums the usage of every call made through it, whatever the outcome;
an operation that makes several calls (a reply, then its repair) runs them through one
meter and, when it fails, hands the sum on with the exception (``ModelError.usage``), so
that callers count what was spent from one place instead of guessing per call site.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

from judgealign.core._errors import ModelError
from judgealign.core._usage import ZERO_USAGE, Usage, UsageTotals
from judgealign.models._chat import ChatModel, Completion, Message
from judgealign.models._reply_limits import with_reply_limit

__all__ = ["MeteredModel", "UsageSink", "usage_of_error"]


class UsageSink(Protocol):
    """Where a metered model puts each call's usage (:class:`UsageTotals` is one)."""

    @property
    def total(self) -> Usage:
        """The usage added so far."""
        ...

    def add(self, usage: Usage) -> None:
        """Add one call's usage."""
        ...


class MeteredModel:
    """A :class:`ChatModel` that delegates to ``inner`` and sums the usage of every call.

    A call that raises :class:`ModelError` counts as one call with the usage the error
    carries (``ModelError.usage``), or as one call with no tokens when it carries none
    (the request was sent; no reply with a token count came back).

    Args:
        inner: the model that answers.
        totals: where each call's usage is added; a new :class:`UsageTotals` by default.
            Several models may share one (the command line sums a whole session's calls
            in one, and it tells the progress bar about each).
    """

    def __init__(self, inner: ChatModel, totals: UsageSink | None = None) -> None:
        self.inner = inner
        self._totals: UsageSink = totals if totals is not None else UsageTotals()

    @property
    def uri(self) -> str:
        """The inner model's URI."""
        return self.inner.uri

    @property
    def total(self) -> Usage:
        """The usage of every call so far (``calls == 0`` before the first)."""
        return self._totals.total

    def with_default_max_tokens(self, max_tokens: int) -> MeteredModel:
        """The same metering around the inner model with that default reply limit (see
        :mod:`judgealign.models._reply_limits`)."""
        return MeteredModel(with_reply_limit(self.inner, max_tokens), self._totals)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Answer with the inner model and record what the call cost."""
        started = time.perf_counter()
        try:
            completion = self.inner.complete(
                messages, response_format=response_format, timeout=timeout
            )
        except ModelError as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            self._totals.add(exc.usage or Usage(latency_ms=elapsed_ms))
            raise
        self._totals.add(completion.usage)
        return completion


def usage_of_error(exc: BaseException) -> Usage:
    """What a failed operation cost, as its :class:`ModelError` says (nothing otherwise)."""
    usage = exc.usage if isinstance(exc, ModelError) else None
    return usage if usage is not None else ZERO_USAGE
