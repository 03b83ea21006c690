"""RateLimit: client-side pacing and AIMD concurrency against the fake server's real
per-minute limit (429 with Retry-After beyond it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from judgealign import ConfigurationError, RateLimit, RetryPolicy, make_judge
from judgealign.testing import FakeOpenAIServer

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"


def _judge(server: FakeOpenAIServer, retry: RetryPolicy | None = None) -> Any:
    judge = make_judge(
        name="j",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=server.base_url,
        inference_params={"api_key": "sk-fake-limit-0000"},
    )
    if retry is not None:
        judge.model._retry = retry  # pyright: ignore
    return judge


def _records(count: int) -> list[dict[str, Any]]:
    return [{"inputs": f"{i}+{i}?", "outputs": str(2 * i)} for i in range(count)]


def _post(url: str) -> tuple[int, dict[str, str]]:
    body = json.dumps({"model": "fake", "messages": [{"role": "user", "content": "hi"}]})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_the_fake_server_refuses_requests_beyond_its_limit_with_retry_after() -> None:
    # 60 a minute is one a second, with about one second of burst: of five requests sent
    # at once, the first one or two are admitted and the rest refused.
    with FakeOpenAIServer(requests_per_minute=60) as server:
        answers = [_post(server.chat_url) for _ in range(5)]
        stats = server.stats
    statuses = [status for status, _ in answers]
    assert statuses[0] == 200 and statuses.count(429) >= 3, statuses
    refused = [headers for status, headers in answers if status == 429]
    assert all(0 < float(h["Retry-After"]) <= 1.0 for h in refused), refused
    assert all(int(h["retry-after-ms"]) >= 1 for h in refused)
    assert stats["rate_limited"] == statuses.count(429)


def test_the_fake_server_limits_tokens_per_minute() -> None:
    with FakeOpenAIServer(tokens_per_minute=600) as server:  # 10 tokens a second
        answers = [_post(server.chat_url) for _ in range(20)]
    assert [s for s, _ in answers].count(429) >= 10


def test_paced_batch_stays_under_the_servers_limit_and_loses_no_record() -> None:
    with FakeOpenAIServer(requests_per_minute=600, latency_s=0.01) as server:
        judge = _judge(server)
        limit = RateLimit(requests_per_minute=600)
        result = judge.evaluate(_records(30), max_workers=16, rate_limit=limit)
        stats = server.stats
    assert result.errors == []
    assert stats["rate_limited"] == 0, stats
    assert limit.stats.requests == 30 and limit.stats.throttled == 0


def test_without_a_rate_limit_the_same_batch_is_throttled() -> None:
    # The control for the test above: the server's limit is real, and unpaced clients hit it.
    with FakeOpenAIServer(requests_per_minute=600, latency_s=0.01) as server:
        result = _judge(server, RetryPolicy(max_attempts=20, base_delay_s=0.0)).evaluate(
            _records(30), max_workers=16
        )
        stats = server.stats
    assert stats["rate_limited"] > 0
    assert result.errors == []  # Retry-After is honoured by the retries


def _refusals(limit: RateLimit | None) -> tuple[int, Any]:
    with FakeOpenAIServer(requests_per_minute=300, latency_s=0.05) as server:
        judge = _judge(server, RetryPolicy(max_attempts=30, base_delay_s=0.0))
        result = judge.evaluate(_records(40), max_workers=32, rate_limit=limit)
        return server.stats["rate_limited"], result


def test_on_429s_concurrency_halves_and_retry_after_pauses_every_caller() -> None:
    # No budget given to the client: it learns the server's limit from the 429s alone.
    limit = RateLimit()
    refused, result = _refusals(limit)
    assert result.errors == []
    assert limit.stats.throttled == refused > 0
    assert limit.stats.window < 32
    # The control: the same pool with no limiter is refused far more often.
    unpaced, _ = _refusals(None)
    assert refused * 2 < unpaced, (refused, unpaced)


def test_tokens_per_minute_pacing_matches_the_servers_accounting() -> None:
    with FakeOpenAIServer(tokens_per_minute=60_000, latency_s=0.01) as server:
        limit = RateLimit(tokens_per_minute=60_000)
        result = _judge(server).evaluate(_records(12), max_workers=8, rate_limit=limit)
        stats = server.stats
    assert result.errors == []
    assert stats["rate_limited"] == 0, stats


def test_share_splits_every_budget() -> None:
    share = RateLimit(600, 90_000, max_concurrency=64).share(4)
    assert (share.requests_per_minute, share.tokens_per_minute) == (150, 22_500)
    assert share.max_concurrency == 16
    assert share is not RateLimit(600).share(1)


@pytest.mark.parametrize("bad", [0, -1, "600", True])
def test_bad_limits_are_refused_with_the_field_named(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="requests_per_minute"):
        RateLimit(requests_per_minute=bad)


def test_evaluate_refuses_a_rate_limit_of_the_wrong_type() -> None:
    with FakeOpenAIServer() as server:
        judge = _judge(server)
        with pytest.raises(ConfigurationError, match="rate_limit"):
            judge.evaluate(_records(1), rate_limit=600)  # pyright: ignore[reportArgumentType]


def test_one_congestion_is_one_decrease_and_sets_a_learnt_rate() -> None:
    limit = RateLimit()
    first, second = limit.acquire(), limit.acquire()
    assert limit.stats.learnt_requests_per_minute is None  # nothing learnt before a 429
    limit.release(throttled=True, ticket=first)
    after_one = limit.stats
    # The other request was sent before that decrease: the same congestion, no new cut.
    limit.release(throttled=True, ticket=second)
    assert limit.stats.window == after_one.window == 2.0
    assert limit.stats.learnt_requests_per_minute == after_one.learnt_requests_per_minute
    learnt = after_one.learnt_requests_per_minute
    assert learnt is not None and learnt > 0
    # A request sent after the decrease that is refused again is a new congestion.
    third = limit.acquire()
    limit.release(throttled=True, ticket=third)
    assert limit.stats.window == 1.0
    lowered = limit.stats.learnt_requests_per_minute
    assert lowered is not None and lowered < learnt
    # Successes raise the learnt rate again, never above a given budget (the releases
    # alone are enough to show it: acquiring would wait for the pace).
    capped = RateLimit(requests_per_minute=60)
    capped.release(throttled=True, ticket=capped.acquire())
    start = capped.stats.learnt_requests_per_minute
    capped.release(throttled=False)
    raised = capped.stats.learnt_requests_per_minute
    assert start is not None and raised is not None and start < raised <= 60.0
    for _ in range(200):
        capped.release(throttled=False)
    assert capped.stats.learnt_requests_per_minute == 60.0


def test_without_a_budget_the_learnt_rate_stops_the_429s() -> None:
    # 20 requests a second and 50 ms per request: one request in flight is the limit and
    # two are twice it, so a concurrency window alone keeps being refused (about half the
    # later requests before the request rate was learnt; measured 23 of 50).
    with FakeOpenAIServer(requests_per_minute=1200, latency_s=0.05) as server:
        judge = _judge(server, RetryPolicy(max_attempts=30, base_delay_s=0.0))
        result = judge.evaluate(_records(60), max_workers=32, rate_limit=RateLimit())
        refused = [r.answered_by == "rate_limit" for r in server.requests if "chat" in r.path]
    assert result.errors == []
    later = refused[len(refused) // 2 :]
    assert sum(later) <= 5, (sum(later), len(later))


def test_the_send_times_kept_for_the_learnt_rate_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that is never refused keeps only the last seconds of send times (the window
    the learnt rate is measured over), not one entry per request ever sent."""
    import types

    import judgealign.models.rate_limit as rate_limit_module

    clock = [0.0]
    monkeypatch.setattr(
        rate_limit_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0])
    )
    limit = RateLimit()
    for _ in range(5000):  # 100 requests a second for 50 s, none refused
        clock[0] += 0.01
        limit.release(throttled=False, ticket=limit.acquire())
    kept = len(limit._recent)  # pyright: ignore[reportPrivateUsage]
    assert kept <= 100 * 5 + 1, kept
    # The rate learnt at the first 429 is still measured over those last seconds.
    limit.release(throttled=True, ticket=limit.acquire())
    learnt = limit.stats.learnt_requests_per_minute
    assert learnt is not None and 0.8 * 6000 < learnt < 6000
