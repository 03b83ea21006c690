"""A chat-completion request as the fake server's scripts see it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

__all__ = ["ChatRequest", "content_text"]


@dataclass(frozen=True)
class ChatRequest:
    """A chat-completion request, as passed to the ``reply`` callable.

    Attributes:
        model: the ``model`` field of the request (litellm strips its provider prefix).
        messages: the ``messages`` list.
        response_format: the ``response_format`` field, or ``None``.
        tools: the ``tools`` list, or ``None``.
        body: the whole request body.
    """

    model: str
    messages: list[dict[str, Any]]
    response_format: dict[str, Any] | None
    tools: list[dict[str, Any]] | None
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """The text of every message, joined with newlines (for substring matching)."""
        return "\n".join(content_text(m.get("content")) for m in self.messages)

    @property
    def last_user(self) -> str:
        """The content of the last user message, or ``""`` if there is none."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema of a ``json_schema`` response format, or of a ``json_object``
        one that carries a ``schema`` (as llama-cpp-python's server accepts), or ``None``."""
        rf = self.response_format
        if rf is not None and rf.get("type") == "json_object":
            schema_field = rf.get("schema")
            return cast("dict[str, Any]", schema_field) if isinstance(schema_field, dict) else None
        if rf is None or rf.get("type") != "json_schema":
            return None
        spec = rf.get("json_schema")
        if not isinstance(spec, dict):
            return None
        schema = cast("dict[str, Any]", spec).get("schema")
        return cast("dict[str, Any]", schema) if isinstance(schema, dict) else None


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for part in cast("list[Any]", content):
            if isinstance(part, dict):
                text = cast("dict[str, Any]", part).get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return ""
