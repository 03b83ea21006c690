"""Offline test models: replies queued in advance, or computed from the messages."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from judgealign.core._errors import ModelCallError
from judgealign.core._usage import Usage
from judgealign.models._chat import Completion, Message

__all__ = ["FunctionModel", "ModelRequest", "ScriptedModel"]

ReplySpec = str | dict[str, Any] | BaseException


@dataclass(frozen=True)
class ModelRequest:
    """One request a test model received.

    Attributes:
        messages: the chat messages.
        response_format: the requested ``response_format`` (``None`` when not asked for).
    """

    messages: tuple[Message, ...]
    response_format: dict[str, Any] | None = None

    @property
    def system(self) -> str:
        """The system message text ('' when there is none)."""
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    @property
    def last_user(self) -> str:
        """The text of the last user message."""
        return next((m["content"] for m in reversed(self.messages) if m["role"] == "user"), "")


class _RecordingModel:
    def __init__(self, uri: str) -> None:
        self._uri = uri
        self._lock = threading.Lock()
        self._requests: list[ModelRequest] = []

    @property
    def uri(self) -> str:
        """The model's name, recorded in feedback (``test:/...``)."""
        return self._uri

    @property
    def requests(self) -> list[ModelRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._requests)

    def _record(self, messages: Sequence[Message], response_format: Any) -> ModelRequest:
        request = ModelRequest(tuple(messages), response_format)
        with self._lock:
            self._requests.append(request)
        return request


def _to_completion(reply: ReplySpec, uri: str) -> Completion:
    if isinstance(reply, BaseException):
        raise reply
    text = reply if isinstance(reply, str) else json.dumps(reply)
    usage = Usage(prompt_tokens=10, completion_tokens=max(1, len(text) // 4))
    return Completion(text=text, usage=usage, model=uri)


class ScriptedModel(_RecordingModel):
    """A model that answers with queued replies, in order, and records every request.

    Args:
        replies: each a string (the reply text), a dict (sent as JSON text) or an
            exception instance (raised for that request).
        uri: the name recorded in feedback.
        default: what to answer once the queue is empty; by default running out raises
            :class:`ModelCallError` so that a test notices unexpected calls.

    Example:
        >>> model = ScriptedModel([{"result": True, "rationale": "matches"}])
    """

    def __init__(
        self,
        replies: Iterable[ReplySpec] = (),
        *,
        uri: str = "test:/scripted",
        default: ReplySpec | None = None,
    ) -> None:
        super().__init__(uri)
        self._queue = list(replies)
        self._default = default

    def add(self, *replies: ReplySpec) -> None:
        """Queue more replies."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def remaining(self) -> int:
        """How many queued replies are left."""
        with self._lock:
            return len(self._queue)

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Record the request and pop the next reply."""
        self._record(messages, response_format)
        with self._lock:
            reply = self._queue.pop(0) if self._queue else self._default
        if reply is None:
            raise ModelCallError(f"{self.uri}: no scripted reply left for this request")
        return _to_completion(reply, self.uri)


class FunctionModel(_RecordingModel):
    """A model whose reply is computed by a function of the request.

    Args:
        function: receives a :class:`ModelRequest` and returns a string, a dict (sent as
            JSON) or raises.
        uri: the name recorded in feedback.
    """

    def __init__(
        self,
        function: Callable[[ModelRequest], str | dict[str, Any]],
        *,
        uri: str = "test:/function",
    ) -> None:
        super().__init__(uri)
        self._function = function

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Record the request and answer with the function's result."""
        request = self._record(messages, response_format)
        return _to_completion(self._function(request), self.uri)
