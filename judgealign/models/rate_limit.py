"""A provider rate limit shared by every call that runs under it.

A :class:`RateLimit` paces requests and tokens per minute and adapts how many requests are
in flight, and how fast they go, to what the provider answers:

* pacing is a generic cell-rate algorithm (a token bucket kept as one "theoretical arrival
  time"): a request is sent once the bucket has room for it within a short burst
  allowance, and then charged its cost, so a large request waits longer instead of being
  refused forever. Room is claimed at the moment of sending, not reserved ahead: a
  waiting request holds no concurrency slot, and a rate lowered meanwhile applies to it;
* concurrency follows additive increase, multiplicative decrease (AIMD), as TCP does: it
  grows by one per success until the first throttle, by one per window of successes
  after it, and halves on a 429; a 429's ``Retry-After`` pauses every caller sharing the
  limit, not just the one that was refused;
* the request rate follows AIMD too, which a window alone cannot do (with requests of
  100 ms and a limit of 10 a second, one request in flight is the limit and two are
  twice it): the first 429 sets a learnt rate just under the rate of the last seconds'
  requests, each further 429 lowers it by a tenth, and each success raises it so that
  it grows by a hundredth of its last lowered value per second. Never above
  ``requests_per_minute``.

One congestion is one decrease: 429s answered to requests sent before the last decrease
(those already in flight or queued at the provider then) do not lower the window or the
rate again.

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
from collections import deque
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
# The learnt request rate: cut by a tenth per congestion, regained at a hundredth of its
# value per second (about ten seconds to climb back), measured over the last seconds.
_RATE_BACKOFF = 0.9
_RATE_PROBE = 0.01
_MEASURE_S = 5.0
_MIN_RATE = 1.0 / 60.0  # one request a minute
# How long a waiting caller sleeps at most before looking again (a release wakes it).
_POLL_S = 0.5

_ACTIVE: contextvars.ContextVar[RateLimit | None] = contextvars.ContextVar(
    "judgealign_rate_limit", default=None
)


class _Pace:
    """One per-minute limit as a virtual-scheduling token bucket (thread-safe by caller)."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.burst_s = burst_s
        self.rate = per_minute / 60.0  # units per second
        self.burst = max(1.0 / self.rate, burst_s)  # always lets one unit through
        self.tat = 0.0  # the theoretical arrival time of the next unit

    def set_rate(self, per_second: float) -> None:
        """Change the rate from now on (what is already charged stays charged)."""
        self.rate = per_second
        self.burst = max(1.0 / per_second, self.burst_s)

    def ready_at(self, now: float) -> float:
        """When the next request may be sent (``now`` if it may go at once)."""
        return max(now, self.tat - self.burst)

    def take(self, cost: float, now: float) -> None:
        """Charge ``cost`` units to a request sent at ``now``."""
        self.tat = max(self.tat, now) + cost / self.rate

    def refund(self, cost: float) -> None:
        """Give back ``cost`` units reserved but not used (negative: charge more)."""
        self.tat -= cost / self.rate


@dataclass(frozen=True)
class RateLimitStats:
    """What a :class:`RateLimit` saw: requests let through, 429s, the current window and
    the learnt request rate (requests per minute; ``None`` before the first 429)."""

    requests: int
    throttled: int
    window: float
    learnt_requests_per_minute: float | None = None


class RateLimit:
    """A provider's rate limit, shared by every call made under it.

    Pass it to ``judge.evaluate(records, rate_limit=RateLimit(requests_per_minute=600))``,
    ``judge.align``, ``optimize_prompts`` or ``optimize_program`` (or enter it with
    :func:`use_rate_limit`); on Spark, ``evaluate_spark`` gives each
    running task its share of it (:meth:`share`). One object is one budget: batches that
    run at the same time under the same object share it.

    Args:
        requests_per_minute: requests allowed per minute, or ``None`` when unknown: the
            rate is then learnt from the provider's 429s alone (and, when given, it is
            lowered below this figure too if the provider still answers 429).
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
        self._learnt: _Pace | None = None  # the request rate learnt from 429s
        self._learnt_base = 0.0  # its value at the last decrease (requests per second)
        self._recover = 0  # requests sent up to the last decrease (one congestion)
        self._recent: deque[float] = deque()  # send times of the last _MEASURE_S
        self._first_sent: float | None = None

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
            learnt = None if self._learnt is None else self._learnt.rate * 60.0
            return RateLimitStats(self._sent, self._throttled, self._window, learnt)

    # -- the calls' side --------------------------------------------------------------

    def acquire(self, tokens: int = 0) -> int:
        """Wait for a concurrency slot, any ``Retry-After`` pause and room in every
        per-minute budget (the learnt rate included); then count the request as in
        flight and charge it. Returns the request's number, for :meth:`release`."""
        with self._cond:
            while True:
                now = time.monotonic()
                wait = self._wait_needed(now)
                if wait <= 0:
                    break
                self._cond.wait(min(wait, _POLL_S))
            for pace, cost in self._paces(tokens):
                pace.take(cost, now)
            self._in_flight += 1
            self._sent += 1
            self._recent.append(now)
            self._forget_before(now - _MEASURE_S)  # bounded even when no 429 ever comes
            if self._first_sent is None:
                self._first_sent = now
            return self._sent

    def _wait_needed(self, now: float) -> float:
        if now < self._paused_until:
            return self._paused_until - now
        if self._in_flight >= int(self._window):
            return _POLL_S  # a release wakes the caller sooner
        ready = max((pace.ready_at(now) for pace, _ in self._paces(0)), default=now)
        return ready - now

    def _paces(self, tokens: int) -> list[tuple[_Pace, float]]:
        paces = [(pace, 1.0) for pace in (self._requests, self._learnt) if pace is not None]
        if self._tokens is not None:
            paces.append((self._tokens, float(tokens)))
        return paces

    def release(
        self, *, throttled: bool, retry_after_s: float | None = None, ticket: int | None = None
    ) -> None:
        """End a request: a success widens the window and raises the learnt rate; a 429
        halves the window and lowers the rate (once per congestion: not again for a
        request numbered ``ticket`` that was sent before the last decrease), and pauses
        every caller for ``retry_after_s`` (the server's ``Retry-After``) when given."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            now = time.monotonic()
            if throttled:
                self._throttled += 1
                if ticket is None or ticket > self._recover:
                    self._decrease(now)
                if retry_after_s is not None and retry_after_s > 0:
                    self._paused_until = max(self._paused_until, now + retry_after_s)
            else:
                self._increase()
            self._cond.notify_all()

    def _decrease(self, now: float) -> None:
        self._recover = self._sent
        self._window = max(_MIN_WINDOW, self._window / 2)
        self._threshold = self._window
        recent = self._recent_rate(now)
        current = recent if self._learnt is None else min(self._learnt.rate, recent)
        rate = max(_MIN_RATE, current * _RATE_BACKOFF)
        if self._learnt is None:
            self._learnt = _Pace(rate * 60.0, _CLIENT_BURST_S)
        else:
            self._learnt.set_rate(rate)
        self._learnt_base = rate

    def _increase(self) -> None:
        slow_start = self._threshold is None
        self._window += 1.0 if slow_start else 1.0 / max(self._window, 1.0)
        if self.max_concurrency is not None:
            self._window = min(self._window, float(self.max_concurrency))
        if self._learnt is not None:
            # About _RATE_PROBE of the base per second: one step per success, and a rate
            # of r has about r successes a second.
            rate = self._learnt.rate + _RATE_PROBE * self._learnt_base / self._learnt.rate
            if self._requests is not None:
                rate = min(rate, self._requests.rate)
            self._learnt.set_rate(rate)

    def _forget_before(self, cutoff: float) -> None:
        while self._recent and self._recent[0] < cutoff:
            self._recent.popleft()

    def _recent_rate(self, now: float) -> float:
        """Requests sent per second over the last seconds (at least one request)."""
        self._forget_before(now - _MEASURE_S)
        started = self._first_sent if self._first_sent is not None else now
        span = min(_MEASURE_S, max(1.0, now - started))
        return max(1, len(self._recent)) / span

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
    ticket = limit.acquire(tokens)
    try:
        result = send()
    except Exception as exc:
        failure = classify(exc)
        limit.release(
            throttled=failure.status == 429, retry_after_s=failure.retry_after_s, ticket=ticket
        )
        raise
    limit.release(throttled=False, ticket=ticket)
    return result
