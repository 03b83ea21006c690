"""Candidate prompt text that overrides registered text, per context: the one swap.

An optimizer evaluates a candidate prompt by running the user's ``predict_fn`` while the
candidate is "swapped in": inside :func:`overriding_prompts`, every
:class:`~judgealign.prompts._template.PromptTemplate` of a swapped name (whenever and
however it was loaded, from the in-process store or from MLflow's registry) reads the
candidate text, and so does MLflow's own ``PromptVersion.template`` once the MLflow
integration has installed its hook. The swap lives in a :class:`contextvars.ContextVar`,
so two threads (or asyncio tasks) evaluating different candidates each see their own;
worker threads see it when started with ``contextvars.copy_context().run``. Nothing is
patched process-wide. Blocks nest; an inner block's templates win.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["PromptUsage", "overriding_prompts", "prompt_override"]


class PromptUsage:
    """Which swapped prompt names were read while a candidate was in effect.

    Shared by every thread that runs inside the same :func:`overriding_prompts` block.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()

    def record(self, name: str) -> None:
        """Note that the prompt ``name`` was loaded or read."""
        with self._lock:
            self._names.add(name)

    @property
    def accessed(self) -> frozenset[str]:
        """The swapped prompt names read so far."""
        with self._lock:
            return frozenset(self._names)


@dataclass(frozen=True)
class _Swap:
    templates: Mapping[str, str]
    usage: PromptUsage


_SWAP: ContextVar[_Swap | None] = ContextVar("judgealign_prompt_swap", default=None)


def prompt_override(name: str) -> str | None:
    """The text that replaces the prompt ``name`` in the current context, or ``None``.

    A hit is recorded in the block's :class:`PromptUsage`.
    """
    swap = _SWAP.get()
    if swap is None or name not in swap.templates:
        return None
    swap.usage.record(name)
    return swap.templates[name]


@contextmanager
def overriding_prompts(templates: Mapping[str, str]) -> Iterator[PromptUsage]:
    """Swap candidate templates in, by prompt name, for the current context only.

    Args:
        templates: prompt name -> candidate template.

    Yields:
        A :class:`PromptUsage` recording which swapped names were read.

    Example:
        >>> with overriding_prompts({"qa": "Answer briefly: {{ question }}"}) as usage:
        ...     answer = predict_fn(question="2+2?")
        >>> "qa" in usage.accessed
    """
    outer = _SWAP.get()
    merged = {**(outer.templates if outer else {}), **templates}
    usage = PromptUsage()
    token = _SWAP.set(_Swap(templates=merged, usage=usage))
    try:
        yield usage
    finally:
        _SWAP.reset(token)
