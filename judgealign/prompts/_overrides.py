"""Candidate prompt text that overrides registered text, per context.

An optimizer evaluates a candidate prompt by running the user's ``predict_fn`` while the
candidate is "swapped in". When ``predict_fn`` loads its prompt the MLflow way
(``mlflow.genai.load_prompt(...).format(...)``), judgealign's MLflow integration makes
``PromptVersion.template`` ask :func:`prompt_override` first.

:func:`prompt_override` consults, in order:

1. templates set by :func:`overriding_prompts` in the current context (judgealign's own,
   e.g. ``promote_if_improved`` comparing two versions);
2. lookups registered with :func:`add_prompt_override`. The ``optimizers`` package
   registers its candidate lookup when it is imported, so judgealign never imports
   ``optimizers`` (the layering forbids it) and ``optimizers`` never imports mlflow.

Lookups must read context variables, not globals, so that concurrent evaluations of
different candidates (threads, asyncio tasks) each see their own text.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = [
    "PromptLookup",
    "add_prompt_override",
    "overriding_prompts",
    "prompt_override",
]

PromptLookup = Callable[[str], "str | None"]
"""``lookup(prompt_name)``: the candidate text in effect here, or ``None``."""

_lock = threading.Lock()
_lookups: tuple[PromptLookup, ...] = ()
_local: ContextVar[Mapping[str, str] | None] = ContextVar("judgealign_prompts", default=None)


def add_prompt_override(lookup: PromptLookup) -> Callable[[], None]:
    """Register ``lookup``; registering the same function again does nothing.

    Returns:
        A function that unregisters it.
    """
    global _lookups
    with _lock:
        if lookup not in _lookups:
            _lookups = (*_lookups, lookup)

    def remove() -> None:
        global _lookups
        with _lock:
            _lookups = tuple(f for f in _lookups if f is not lookup)

    return remove


def prompt_override(name: str) -> str | None:
    """The text that replaces the prompt ``name`` in the current context, or ``None``."""
    local = _local.get()
    if local is not None and name in local:
        return local[name]
    for lookup in _lookups:
        text = lookup(name)
        if text is not None:
            return text
    return None


@contextmanager
def overriding_prompts(templates: Mapping[str, str]) -> Iterator[None]:
    """Inside the block, in this context only, prompt ``name`` reads ``templates[name]``.

    Worker threads see it when started with ``contextvars.copy_context().run``.
    """
    outer = _local.get() or {}
    token = _local.set({**outer, **templates})
    try:
        yield
    finally:
        _local.reset(token)
