"""A provider rate limit shared by every call that runs under it.

A :class:`RateLimit` paces requests and tokens per minute and adapts how many requests are
in flight to what the provider answers:

* pacing is a generic cell-rate algorithm (a token bucket kept as one "theoretical arrival
  time"): each request reserves its share of the minute and waits until the reservation
  falls within a short burst allowance, so a large request waits longer instead of being
  refused forever;
* concurrency follows additive increase, multiplicative decrease (AIMD), as TCP does: it
  grows by one per success until the first throttle, by one per window of successes
  after it, and halves on every 429; a 429's ``Retry-After`` pauses every caller sharing
  the limit, not just the one that was refused.

The limit applies to the calls made inside :func:`use_rate_limit` (``judge.evaluate``,
``judge.align``, ``optimizers.optimize_prompts`` and ``optimize_program`` do that when
given ``rate_limit=``). It lives in a context variable, and every thread pool of
judgealign and the optimizers is a ``ContextThreadPool`` (``judgealign.core._threads``),
so the threads a run starts inherit it, and two runs with different limits do not
interfere. It paces every attempt of a URI model (``LiteLLMModel``), retries included;
embedding requests are not charged to it (providers limit each model on its own).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from judgealign.core._errors import ConfigurationError
from judgealign.models._retry import CallFailure

__all__ = ["RateLimit", "RateLimitStats", "current_rate_limit", "paced_attempt", "use_rate_limit"]

T = TypeVar("T")

# How far ahead of the steady rate a client may run (seconds of the limit): small, so that
# pacing stays below a provider that allows a burst of about a second.
_CLIENT_BURST_S = 0.25
# Concurrency bounds of the AIMD window.
_MIN_WINDOW = 1.0
_START_WINDOW = 4.0

_ACTIVE: contextvars.ContextVar[RateLimit | None] = contextvars.ContextVar(
    "judgealign_rate_limit", default=None
)


class _Pace:
    """One per-minute limit as a virtual-scheduling token bucket (thread-safe by caller)."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0  # units per second
        self.burst = max(1.0 / self.rate, burst_s)  # always lets one unit through
        self.tat = 0.0  # the theoretical arrival time of the next unit

    def reserve(self, cost: float, now: float) -> float:
        """Reserve ``cost`` units; the time at which the caller may send."""
        start = max(self.tat, now)
        self.tat = start + cost / self.rate
        return max(now, self.tat - self.burst - cost / self.rate)

    def refund(self, cost: float) -> None:
        """Give back ``cost`` units reserved but not used (negative: charge more)."""
        self.tat -= cost / self.rate


@dataclass(frozen=True)
class RateLimitStats:
    """What a :class:`RateLimit` saw: requests let through, 429s, and the current window."""

    requests: int
    throttled: int
    window: float


class RateLimit:
    """A provider's rate limit, shared by every call made under it.

    Pass it to ``judge.evaluate(records, rate_limit=RateLimit(requests_per_minute=600))``,
    ``judge.align``, ``optimize_prompts`` or ``optimize_program`` (or enter it with
    :func:`use_rate_limit`); on Spark, ``evaluate_spark`` gives each
    running task its share of it (:meth:`share`). One object is one budget: batches that
    run at the same time under the same object share it.

    Args:
        requests_per_minute: requests allowed per minute, or ``None`` for no request limit.
        tokens_per_minute: prompt plus reply tokens allowed per minute, or ``None``. A
            request is charged its estimated prompt (characters / 4) plus its reply limit
            before it is sent, and settled to the tokens the provider reports after.
        max_concurrency: the most requests in flight at once (``None``: no cap beyond the
            batch's ``max_workers``). The adaptive window never exceeds it.

    Raises:
        ConfigurationError: a limit that is not a positive number.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        max_concurrency: int | None = None,
    ) -> None:
        self.requests_per_minute = _positive("requests_per_minute", requests_per_minute)
        self.tokens_per_minute = _positive("tokens_per_minute", tokens_per_minute)
        cap = _positive("max_concurrency", max_concurrency)
        self.max_concurrency = None if cap is None else max(1, int(cap))
        self._cond = threading.Condition()
        self._requests = (
            None
            if self.requests_per_minute is None
            else _Pace(self.requests_per_minute, _CLIENT_BURST_S)
        )
        self._tokens = (
            None
            if self.tokens_per_minute is None
            else _Pace(self.tokens_per_minute, _CLIENT_BURST_S)
        )
        self._window = min(_START_WINDOW, float(self.max_concurrency or _START_WINDOW))
        self._threshold: float | None = None  # set at the first 429 (end of slow start)
        self._in_flight = 0
        self._paused_until = 0.0
        self._sent = 0
        self._throttled = 0

    def __repr__(self) -> str:
        return (
            f"RateLimit(requests_per_minute={self.requests_per_minute!r}, "
            f"tokens_per_minute={self.tokens_per_minute!r}, "
            f"max_concurrency={self.max_concurrency!r})"
        )

    def share(self, parts: int) -> RateLimit:
        """A new, independent limit with ``1/parts`` of each budget (for one of ``parts``
        workers that run at the same time, e.g. the running tasks of a Spark job)."""
        if parts < 1:
            raise ConfigurationError(f"parts={parts!r} must be >= 1.")
        rpm, tpm = self.requests_per_minute, self.tokens_per_minute
        cap = self.max_concurrency
        return RateLimit(
            None if rpm is None else rpm / parts,
            None if tpm is None else tpm / parts,
            max_concurrency=None if cap is None else max(1, cap // parts),
        )

    @property
    def stats(self) -> RateLimitStats:
        """Requests let through and 429s seen so far, and the current concurrency window."""
        with self._cond:
            return RateLimitStats(self._sent, self._throttled, self._window)

    # -- the calls' side --------------------------------------------------------------

    def acquire(self, tokens: int = 0) -> None:
        """Wait for a concurrency slot, any ``Retry-After`` pause and the request's share
        of the per-minute budgets; then count it as in flight."""
        with self._cond:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    self._cond.wait(self._paused_until - now)
                elif self._in_flight >= int(self._window):
                    self._cond.wait(0.5)
                else:
                    break
            self._in_flight += 1
            self._sent += 1
            send_at = now
            if self._requests is not None:
                send_at = max(send_at, self._requests.reserve(1.0, now))
            if self._tokens is not None and tokens > 0:
                send_at = max(send_at, self._tokens.reserve(float(tokens), now))
        delay = send_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def release(self, *, throttled: bool, retry_after_s: float | None = None) -> None:
        """End a request: a success widens the window, a 429 halves it and pauses every
        caller for ``retry_after_s`` (the server's ``Retry-After``) when given."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            if throttled:
                self._throttled += 1
                self._window = max(_MIN_WINDOW, self._window / 2)
                self._threshold = self._window
                if retry_after_s is not None and retry_after_s > 0:
                    until = time.monotonic() + retry_after_s
                    self._paused_until = max(self._paused_until, until)
            else:
                slow_start = self._threshold is None
                self._window += 1.0 if slow_start else 1.0 / max(self._window, 1.0)
                if self.max_concurrency is not None:
                    self._window = min(self._window, float(self.max_concurrency))
            self._cond.notify_all()

    def settle_tokens(self, estimated: int, actual: int) -> None:
        """Correct a request's token charge to what the provider reported."""
        if self._tokens is None or actual <= 0:
            return
        with self._cond:
            self._tokens.refund(float(estimated - actual))


@contextlib.contextmanager
def use_rate_limit(limit: RateLimit | None) -> Iterator[None]:
    """Run the block's model calls (and those of threads judgealign starts in it) under
    ``limit``; ``None`` leaves the current limit in place."""
    if limit is None:
        yield
        return
    if not isinstance(limit, RateLimit):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"rate_limit={limit!r} must be a RateLimit, e.g. "
            "RateLimit(requests_per_minute=600), or None."
        )
    token = _ACTIVE.set(limit)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current_rate_limit() -> RateLimit | None:
    """The limit the current call runs under, if any."""
    return _ACTIVE.get()


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(f"{name}={value!r} must be a positive number or None.")
    return float(value)


def paced_attempt(
    limit: RateLimit,
    tokens: int,
    send: Callable[[], T],
    classify: Callable[[BaseException], CallFailure],
) -> T:
    """One attempt of a request under ``limit``: wait for its turn, send, and tell the
    limit whether the provider throttled it (HTTP 429, with its ``Retry-After``)."""
    limit.acquire(tokens)
    try:
        result = send()
    except Exception as exc:
        failure = classify(exc)
        limit.release(throttled=failure.status == 429, retry_after_s=failure.retry_after_s)
        raise
    limit.release(throttled=False)
    return result
