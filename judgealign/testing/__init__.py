"""Test doubles for code that uses judgealign, all offline.

* :class:`ScriptedModel` answers with replies queued in advance and records requests.
* :class:`FunctionModel` computes each reply from the request.
* :class:`FakeOpenAIServer` is an OpenAI-compatible HTTP server on 127.0.0.1 with
  configurable latency and injected faults, to drive the real litellm path end to end.
* :class:`Decoding` makes the fake server imitate a real one: numeric schema bounds
  ignored as by a grammar, replies that run on unless ``max_tokens`` cuts them.
* :func:`no_retry_waits` makes retries immediate inside a ``with`` block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from judgealign.models._retry import get_default_retry_policy, set_default_retry_policy
from judgealign.testing._decoding import Decoding
from judgealign.testing._scripted import FunctionModel, ModelRequest, ScriptedModel
from judgealign.testing._server import (
    ChatRequest,
    FakeOpenAIServer,
    FaultPlan,
    RecordedRequest,
    Reply,
    ServerQuirks,
)

__all__ = [
    "ChatRequest",
    "Decoding",
    "FakeOpenAIServer",
    "FaultPlan",
    "FunctionModel",
    "ModelRequest",
    "RecordedRequest",
    "Reply",
    "ScriptedModel",
    "ServerQuirks",
    "no_retry_waits",
]


@contextmanager
def no_retry_waits(*, timeout_s: float | None = None) -> Iterator[None]:
    """Zero the backoff between retries (and optionally shorten the per-call timeout)."""
    previous = get_default_retry_policy()
    changes: dict[str, float | int | bool] = {"base_delay_s": 0.0, "max_delay_s": 0.0}
    if timeout_s is not None:
        changes["timeout_s"] = timeout_s
    set_default_retry_policy(previous.with_changes(**changes))
    try:
        yield
    finally:
        set_default_retry_policy(previous)
