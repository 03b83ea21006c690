"""A thread pool whose tasks run in the context of the code that submitted them.

``concurrent.futures.ThreadPoolExecutor`` runs each task in its worker thread's own
(empty) context, so context variables set by the caller are lost there: the rate limit a
batch runs under (``judgealign.models.rate_limit``), the candidate prompts an optimizer
swaps in, the tracker of the current run. :class:`ContextThreadPool` copies the
submitter's context for every task, ``map`` included, so a setting made around a call
reaches every thread that call starts, however deeply pools are nested. Every pool of
judgealign and the bundled optimizers is one (``tests/test_rate_limit_everywhere.py``
checks it).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ContextThreadPool"]

P = ParamSpec("P")
T = TypeVar("T")


class ContextThreadPool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose every task runs in a copy of the submitter's context.

    Each task gets its own copy (one ``Context`` cannot be entered by two threads at
    once), taken when it is submitted: what the caller sets afterwards does not reach it,
    and what the task sets does not leak back.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)`` in a copy of the current context."""
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)
