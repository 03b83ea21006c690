"""Retries with exponential backoff, jitter, ``Retry-After`` and a total deadline."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from judgealign.core._errors import ContextLengthError, ModelCallError
from judgealign.core._redact import redact

__all__ = [
    "CallFailure",
    "RetryPolicy",
    "get_default_retry_policy",
    "run_with_retries",
    "set_default_retry_policy",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How model calls are retried.

    Attributes:
        max_attempts: attempts in total, the first one included.
        base_delay_s: the first backoff; it doubles on every retry.
        max_delay_s: cap on one backoff (a longer ``Retry-After`` is still honoured, within
            the deadline).
        deadline_s: total time allowed for one call, retries and waits included.
        timeout_s: per-attempt timeout given to the provider client.
        jitter: spread each wait randomly over [50%, 100%] of its value.
    """

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0
    deadline_s: float = 300.0
    timeout_s: float = 60.0
    jitter: bool = True

    def with_changes(self, **changes: float | int | bool) -> RetryPolicy:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallFailure:
    """A classified failure of one attempt.

    Attributes:
        message: a secret-free description.
        retryable: 429, 5xx, timeouts and connection errors are retryable.
        status: the HTTP status when known.
        retry_after_s: the server's ``Retry-After``, when it sent one.
        reason: ``"context_length"``, ``"response_format"``, ``"embeddings_off"`` or
            ``"batch_refused"`` (an embeddings batch the server cannot decode) when the
            server refused the request by its content or configuration (see
            :mod:`judgealign.models._refusals`); never retried.
        window: the context window the server reported with a ``context_length`` refusal.
        prompt_tokens: the prompt size it reported with it.
    """

    message: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None
    reason: str | None = None
    window: int | None = None
    prompt_tokens: int | None = None


_default_lock = threading.Lock()
_default_policy = RetryPolicy()


def get_default_retry_policy() -> RetryPolicy:
    """The policy used by models that were not given one."""
    with _default_lock:
        return _default_policy


def set_default_retry_policy(policy: RetryPolicy) -> None:
    """Replace the process-wide default policy (tests zero the waits this way)."""
    global _default_policy
    with _default_lock:
        _default_policy = policy


@dataclass
class _Clock:
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)


def run_with_retries(
    attempt: Callable[[float], T],
    classify: Callable[[BaseException], CallFailure],
    policy: RetryPolicy,
    clock: _Clock | None = None,
) -> T:
    """Call ``attempt(timeout_s)`` until it succeeds, a failure is not retryable, the
    attempts run out or the deadline passes; then raise :class:`ModelCallError`."""
    clock = clock or _Clock()
    start = clock.monotonic()
    for number in range(1, policy.max_attempts + 1):
        remaining = policy.deadline_s - (clock.monotonic() - start)
        try:
            return attempt(max(0.001, min(policy.timeout_s, remaining)))
        except Exception as exc:
            failure = classify(exc)
            wait = _backoff(policy, number, failure, clock.rng)
            remaining = policy.deadline_s - (clock.monotonic() - start)
            last = number == policy.max_attempts or wait >= remaining
            if not failure.retryable or failure.reason is not None or last:
                elapsed = clock.monotonic() - start
                error = _as_error(failure, number, elapsed, policy, exhausted=failure.retryable)
                if _holds_secret(exc):  # a traceback would print the provider's raw text
                    raise error from None
                raise error from exc
            clock.sleep(wait)
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover


def _holds_secret(exc: BaseException | None) -> bool:
    """Whether ``exc`` or an exception it chains to shows a secret (see ``redact``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if redact(text) != text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _backoff(policy: RetryPolicy, number: int, failure: CallFailure, rng: random.Random) -> float:
    wait = min(policy.max_delay_s, policy.base_delay_s * 2 ** (number - 1))
    if policy.jitter:
        wait *= 0.5 + rng.random() / 2
    if failure.retry_after_s is not None:
        wait = max(wait, failure.retry_after_s)
    return wait


def _as_error(
    failure: CallFailure, attempts: int, elapsed_s: float, policy: RetryPolicy, *, exhausted: bool
) -> ModelCallError:
    """The error raised after the last attempt. When retries ran out it tells the whole
    story (the message of one attempt, a timeout say, names only that attempt's limit):
    how many attempts over how long, why it stopped, and the policy that decides it."""
    if failure.reason == "context_length":
        return ContextLengthError(
            failure.message,
            status=failure.status,
            attempts=attempts,
            window=failure.window,
            prompt_tokens=failure.prompt_tokens,
        )
    suffix = ""
    if exhausted and not failure.reason:
        why = (
            "every attempt failed"
            if attempts == policy.max_attempts
            else f"another attempt would pass the {policy.deadline_s:g} s deadline"
        )
        plural = "s" if attempts != 1 else ""
        suffix = (
            f" (gave up after {attempts} attempt{plural} over {elapsed_s:.1f} s: {why}; "
            f"RetryPolicy(max_attempts={policy.max_attempts}, deadline_s={policy.deadline_s:g}, "
            f"timeout_s={policy.timeout_s:g}) sets these limits)"
        )
    return ModelCallError(
        failure.message + suffix,
        status=failure.status,
        retryable=failure.retryable and failure.reason is None,
        attempts=attempts,
        reason=failure.reason,
    )
