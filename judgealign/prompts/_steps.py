"""The prompt steps of one prediction: which prompts ``predict_fn`` filled in, with what.

In a program of several prompts (say, one that summarises and one that answers from the
summary), the final output says little about the first prompt; the values the second
prompt was filled with (the summary) are that prompt's intermediate output. While a
record is evaluated, every :meth:`PromptTemplate.format` call adds a step
``{"prompt": name, "variables": {...}}`` here, in order, and the evaluator keeps the list
as the record's ``trace``. GEPA's reflection shows them next to each example, marking the
prompt being rewritten. Values are cut to a bounded length: they are shown to a model and
checkpointed, not replayed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["PromptStep", "capture_steps", "record_step"]

PromptStep = dict[str, Any]
"""``{"prompt": name, "variables": {name: value}}``."""

_MAX_VALUE_CHARS = 4_000
_STEPS: ContextVar[list[PromptStep] | None] = ContextVar("optimizers_prompt_steps", default=None)


@contextmanager
def capture_steps() -> Iterator[list[PromptStep]]:
    """Collect the prompt steps taken in this context (and in tasks it starts)."""
    steps: list[PromptStep] = []
    token = _STEPS.set(steps)
    try:
        yield steps
    finally:
        _STEPS.reset(token)


def record_step(prompt: str, variables: Mapping[str, object]) -> None:
    """Note that ``prompt`` was filled with ``variables`` (a no-op outside a capture)."""
    steps = _STEPS.get()
    if steps is not None:
        shown = {name: _bounded(value) for name, value in variables.items()}
        steps.append({"prompt": prompt, "variables": shown})


def _bounded(value: object) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else _text(value)
    if len(text) <= _MAX_VALUE_CHARS:
        return text
    return text[:_MAX_VALUE_CHARS] + f"... [{len(text) - _MAX_VALUE_CHARS} more characters]"


def _text(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)
