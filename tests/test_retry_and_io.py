"""Retry policy, the network switch, redaction and atomic writes."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from judgealign import (
    ModelCallError,
    NetworkForbiddenError,
    RetryPolicy,
    forbid_network,
    set_network_allowed,
)
from judgealign.core._files import atomic_write_text
from judgealign.core._redact import redact
from judgealign.models._network import check_endpoint
from judgealign.models._retry import CallFailure, _Clock, run_with_retries


class FakeClock(_Clock):
    def __init__(self) -> None:
        super().__init__(sleep=self._sleep, monotonic=lambda: self.now, rng=random.Random(0))
        self.now = 0.0
        self.waits: list[float] = []

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def failing(times: int, failure: CallFailure):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def attempt(timeout: float) -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise RuntimeError("x")
        return "ok"

    return attempt, calls, (lambda exc: failure)


def test_backoff_doubles_with_jitter_and_honours_retry_after() -> None:
    clock = FakeClock()
    attempt, calls, classify = failing(3, CallFailure("429", retryable=True, retry_after_s=3.0))
    policy = RetryPolicy(max_attempts=5, base_delay_s=1.0, max_delay_s=10.0)
    assert run_with_retries(attempt, classify, policy, clock) == "ok"
    assert calls["n"] == 4 and clock.waits[:2] == [3.0, 3.0]
    assert 3.0 <= clock.waits[2] <= 4.0  # jittered 4 s backoff, never below Retry-After
    clock = FakeClock()
    attempt, calls, classify = failing(3, CallFailure("500", retryable=True))
    run_with_retries(attempt, classify, policy.with_changes(jitter=False), clock)
    assert clock.waits == [1.0, 2.0, 4.0]


def test_non_retryable_fails_fast() -> None:
    clock = FakeClock()
    attempt, calls, classify = failing(5, CallFailure("401 bad key", retryable=False, status=401))
    with pytest.raises(ModelCallError, match="401 bad key") as info:
        run_with_retries(attempt, classify, RetryPolicy(), clock)
    assert calls["n"] == 1 and clock.waits == [] and info.value.status == 401


def test_attempts_and_deadline_bound_the_retries() -> None:
    clock = FakeClock()
    attempt, calls, classify = failing(99, CallFailure("500", retryable=True))
    with pytest.raises(ModelCallError, match="gave up after 3 attempts"):
        run_with_retries(attempt, classify, RetryPolicy(max_attempts=3), clock)
    assert calls["n"] == 3
    clock = FakeClock()
    attempt, _, classify = failing(99, CallFailure("500", retryable=True))
    policy = RetryPolicy(
        max_attempts=50, base_delay_s=1.0, max_delay_s=1.0, deadline_s=5.0, jitter=False
    )
    with pytest.raises(ModelCallError):
        run_with_retries(attempt, classify, policy, clock)
    assert clock.now < 5.0


def test_the_final_error_says_how_many_attempts_over_how_long_and_why_it_stopped() -> None:
    # Each attempt times out after 50 s: the last attempt's message alone ("no reply within
    # 50 s") would hide that the call was tried for minutes.
    clock = FakeClock()

    def attempt(timeout: float) -> str:
        clock.now += timeout
        raise TimeoutError(f"no reply within {timeout:g} s")

    classify = lambda exc: CallFailure(str(exc), retryable=True)  # noqa: E731
    policy = RetryPolicy(
        max_attempts=5,
        base_delay_s=2.0,
        max_delay_s=2.0,
        deadline_s=120,
        timeout_s=50,
        jitter=False,
    )
    with pytest.raises(ModelCallError) as info:
        run_with_retries(attempt, classify, policy, clock)
    assert str(info.value) == (
        "no reply within 16 s (gave up after 3 attempts over 120.0 s: another attempt would "
        "pass the 120 s deadline; RetryPolicy(max_attempts=5, deadline_s=120, timeout_s=50) "
        "sets these limits)"
    )
    assert info.value.attempts == 3


def test_network_switch() -> None:
    set_network_allowed(True)
    try:
        check_endpoint("openai:/x", "https://api.example.com")
        with forbid_network(), pytest.raises(NetworkForbiddenError):
            check_endpoint("openai:/x", "https://api.example.com")
        check_endpoint("openai:/x", "https://api.example.com")
    finally:
        set_network_allowed(False)
    check_endpoint("openai:/x", "http://127.0.0.1:8000/v1")
    check_endpoint("openai:/x", "http://localhost:8000/v1")


def test_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-abcdef-123")
    text = redact("key tok-abcdef-123 and sk-live-abcdefgh and Bearer abc.def.ghijk")
    assert "tok-abcdef-123" not in text and "sk-live" not in text and "abc.def" not in text


def test_atomic_write_keeps_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    atomic_write_text(target, "old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_atomic_write_honours_umask_and_existing_mode(tmp_path: Path) -> None:
    fresh = atomic_write_text(tmp_path / "fresh.json", "x")
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~_current_umask()
    kept = tmp_path / "kept.json"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert kept.stat().st_mode & 0o777 == 0o640 and kept.read_text() == "new"


def _current_umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old
