"""Reply limits: the default ``max_tokens`` of each kind of call the library makes.

A reply with no limit can run on for thousands of tokens (a small model on a server with
no grammar wrote 3,592 tokens for one verdict, about 80 s). So every call the library
makes has a default limit sized for what it asks for:

* a verdict (a short rationale, then the result): :data:`VERDICT_MAX_TOKENS`;
* distillation and consolidation of guidelines (a list of them): :data:`DISTILL_MAX_TOKENS`;
* reflection by an optimizer (a whole rewritten prompt): :data:`REFLECTION_MAX_TOKENS`.

The default applies only when the model's own parameters set no limit: a ``max_tokens``
or ``max_completion_tokens`` in ``inference_params`` (or a :class:`LiteLLMModel`'s
``params``) wins, and ``max_tokens=None`` there removes the limit. Models that are not
:class:`ReplyLimited` (your own :class:`ChatModel`, the test doubles) keep whatever limit
they have. A reply the limit cut (``finish_reason == "length"``) is never taken for a
whole one: see :func:`truncation_note`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from judgealign.models._chat import ChatModel, Completion

__all__ = [
    "DISTILL_MAX_TOKENS",
    "REFLECTION_MAX_TOKENS",
    "VERDICT_MAX_TOKENS",
    "ReplyLimited",
    "raise_limit_hint",
    "truncation_note",
    "with_reply_limit",
]

VERDICT_MAX_TOKENS = 512
"""A rationale of a few sentences and the verdict, with room to spare."""
DISTILL_MAX_TOKENS = 2048
"""A list of guidelines distilled from a batch of records, or consolidated."""
REFLECTION_MAX_TOKENS = 4096
"""A rewritten prompt (or several) and a diagnosis."""


@runtime_checkable
class ReplyLimited(Protocol):
    """A model that takes a default reply limit (as :class:`LiteLLMModel` does)."""

    def with_default_max_tokens(self, max_tokens: int) -> ChatModel:
        """A model like this one whose replies stop at ``max_tokens`` unless its own
        parameters set a limit."""
        ...


def with_reply_limit(model: ChatModel, max_tokens: int) -> ChatModel:
    """``model`` with ``max_tokens`` as its default reply limit, when it takes one."""
    if isinstance(model, ReplyLimited):
        return model.with_default_max_tokens(max_tokens)
    return model


def truncation_note(completion: Completion) -> str | None:
    """Why ``completion`` cannot be whole, when the token limit cut it; else ``None``."""
    if completion.finish_reason != "length":
        return None
    tokens = completion.usage.completion_tokens
    size = f"{tokens} tokens" if tokens else "its token limit"
    return f"the reply was cut off at {size} (finish_reason 'length', the max_tokens limit)"


def raise_limit_hint(completion: Completion, how: str) -> str:
    """How to raise the limit, with a suggested value twice what was used.

    Args:
        completion: the truncated reply.
        how: where the limit is set, with ``{max_tokens}`` where the value goes, e.g.
            ``"make_judge(..., inference_params={'max_tokens': {max_tokens}})"``.
    """
    suggested = max(2 * completion.usage.completion_tokens, 1024)
    return f"Raise the limit: {how.replace('{max_tokens}', str(suggested))}."
