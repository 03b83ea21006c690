"""The chat-model seam: what every model (litellm, local, scripted) implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from judgealign.core._usage import Usage

__all__ = ["ChatModel", "Completion", "Message"]


class Message(TypedDict):
    """One chat message, in the OpenAI shape."""

    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class Completion:
    """A model's reply to one request.

    Attributes:
        text: the assistant message content.
        usage: tokens, cost and latency of the call.
        model: the model URI that answered.
        raw: provider-specific extras worth keeping (never secrets).
        finish_reason: why generation stopped, as the provider says (``"stop"``;
            ``"length"`` when the token limit cut the reply); ``None`` when unknown.
    """

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    raw: dict[str, Any] = field(default_factory=lambda: {})
    finish_reason: str | None = None


@runtime_checkable
class ChatModel(Protocol):
    """A model that answers chat requests.

    ``response_format`` is an OpenAI-style ``{"type": "json_schema", ...}`` dict or
    ``None``. An implementation that cannot honour it raises
    :class:`~judgealign.ModelCallError` with ``status=400``; the structured-output layer
    then falls back to instructed JSON.
    """

    @property
    def uri(self) -> str:
        """A stable, secret-free name of the model (recorded in feedback and files)."""
        ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Answer one chat request."""
        ...
