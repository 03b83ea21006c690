"""Token, cost and latency accounting for model calls."""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Usage", "UsageTotals"]


@dataclass(frozen=True)
class Usage:
    """What one model call cost.

    Attributes:
        prompt_tokens: tokens sent to the model.
        completion_tokens: tokens the model produced.
        cost_usd: price of the call when the provider's price is known, else ``None``.
        latency_ms: wall time of the call, retries and backoff included.
        calls: number of model calls folded into this value, failed ones included (a
            reply that could not be parsed, its repair message, a request the provider
            refused). Retries of one call after a transient error (429, 5xx, timeout) are
            part of that call.
        cached: whether the reply came from the on-disk response cache.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    latency_ms: float = 0.0
    calls: int = 1
    cached: bool = False

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None or other.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (other.cost_usd or 0.0)
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=cost,
            latency_ms=self.latency_ms + other.latency_ms,
            calls=self.calls + other.calls,
            cached=self.cached and other.cached,
        )


ZERO_USAGE = Usage(calls=0, cached=True)


class UsageTotals:
    """A thread-safe running sum of :class:`Usage`, kept per judge and per run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = ZERO_USAGE

    def add(self, usage: Usage) -> None:
        """Fold one call's usage into the total."""
        with self._lock:
            self._total = self._total + usage

    @property
    def total(self) -> Usage:
        """The sum so far (``calls == 0`` when nothing was recorded)."""
        with self._lock:
            return self._total
