"""The fake server's provider rate limit: requests and tokens per minute, 429 beyond.

Providers refill their budgets continuously (a limit of 600 requests per minute admits
about one request every 100 ms, with a short burst allowed) and answer a request over the
budget with HTTP 429 and a ``Retry-After`` header. :class:`ServerLimit` does the same with
a virtual-scheduling token bucket per budget. A request is charged its prompt tokens plus
its ``max_tokens`` when it arrives, as providers estimate it, and the charge is settled to
the tokens of the reply once it is written.
"""

from __future__ import annotations

import math
import threading
import time

__all__ = ["ServerLimit"]


class _Bucket:
    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(burst_s, 1.0 / self.rate)
        self.tat = 0.0

    def wait_needed(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` fits the budget (0: it fits now)."""
        start = max(self.tat, now)
        return max(0.0, start + cost / self.rate - self.burst - now - cost / self.rate)

    def charge(self, cost: float, now: float) -> None:
        self.tat = max(self.tat, now) + cost / self.rate


class ServerLimit:
    """A provider's per-minute budgets, as the fake server enforces them.

    Args:
        requests_per_minute: requests admitted per minute, or ``None``.
        tokens_per_minute: prompt plus reply tokens admitted per minute, or ``None``.
        burst_s: how many seconds of the budget may be used at once.

    Raises:
        ValueError: a limit or ``burst_s`` that is not positive.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        burst_s: float = 1.0,
    ) -> None:
        for name, value in (
            ("requests_per_minute", requests_per_minute),
            ("tokens_per_minute", tokens_per_minute),
        ):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        if not burst_s > 0:
            raise ValueError(f"burst_s must be positive, got {burst_s!r}")
        self._lock = threading.Lock()
        self._requests = (
            None if requests_per_minute is None else _Bucket(requests_per_minute, burst_s)
        )
        self._tokens = None if tokens_per_minute is None else _Bucket(tokens_per_minute, burst_s)

    @property
    def active(self) -> bool:
        """Whether any budget is set."""
        return self._requests is not None or self._tokens is not None

    def admit(self, tokens: int) -> float | None:
        """Charge a request of ``tokens`` estimated tokens; ``None`` when admitted, else
        the seconds to wait before a retry can fit (the ``Retry-After``)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                bucket.wait_needed(cost, now)
                for bucket, cost in ((self._requests, 1.0), (self._tokens, float(tokens)))
                if bucket is not None
            ]
            wait = max(waits, default=0.0)
            if wait > 0:
                return wait
            if self._requests is not None:
                self._requests.charge(1.0, now)
            if self._tokens is not None:
                self._tokens.charge(float(tokens), now)
            return None

    def settle(self, estimated: int, actual: int) -> None:
        """Correct an admitted request's token charge to the tokens it really used."""
        if self._tokens is None:
            return
        with self._lock:
            self._tokens.tat -= (estimated - actual) / self._tokens.rate

    @staticmethod
    def retry_after_headers(wait_s: float) -> dict[str, str]:
        """``Retry-After`` in seconds and ``retry-after-ms`` in milliseconds (as OpenAI
        sends it), rounded up to the millisecond; fractional seconds as the fake's
        injected rate-limit faults send them."""
        millis = max(1, math.ceil(wait_s * 1000))
        return {"Retry-After": f"{millis / 1000:g}", "retry-after-ms": str(millis)}
