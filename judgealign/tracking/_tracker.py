"""The tracking seam: a small :class:`Tracker` protocol, a no-op default, the current one.

Core code (judging, alignment, optimization) reports what it did through
:func:`get_tracker` and never asks which tracker that is. The default,
:class:`NoOpTracker`, does nothing and costs nothing: the reporting helpers in
:mod:`judgealign.tracking._events` return before building anything when it is in effect.
``judgealign.mlflow_integration.MlflowTracker`` sends everything to MLflow.

Which tracker is in effect: the one set by :func:`use_tracker` in the current context
(thread or asyncio task), else the process default set by :func:`set_tracker`, else the
no-op tracker. Worker threads that do not copy the context see the process default.

A tracker must never raise into the code that reports to it; the reporting helpers
nevertheless guard every call, so a faulty third-party tracker only produces a
:class:`TrackingWarning`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "FigureFactory",
    "NoOpTracker",
    "Tracker",
    "TrackingWarning",
    "get_tracker",
    "set_tracker",
    "use_tracker",
]

FigureFactory = Callable[[], Any]
"""A function that builds a matplotlib ``Figure``; called only by trackers that log it."""


class TrackingWarning(UserWarning):
    """Something could not be tracked; the tracked operation itself went on unharmed."""


@runtime_checkable
class Tracker(Protocol):
    """Where runs, parameters, metrics and artifacts are recorded.

    Every method must return quickly and never raise: a tracker that talks to a slow
    store should queue the work (as ``MlflowTracker`` does).
    """

    def start_run(
        self, name: str, *, tags: Mapping[str, str] | None = None
    ) -> AbstractContextManager[Any]:
        """A context in which the other calls go to a new run called ``name``.

        A run started inside another becomes its child.
        """
        ...

    def log_params(self, params: Mapping[str, str]) -> None:
        """Record parameters of the current run (already free of secrets)."""
        ...

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Record metrics of the current run, optionally at a step (an iteration)."""
        ...

    def log_text(self, text: str, artifact_file: str) -> None:
        """Record a text artifact, e.g. ``"guidelines.txt"``."""
        ...

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Record a JSON artifact, e.g. ``"agreement.json"``."""
        ...

    def log_figure(self, figure: FigureFactory, artifact_file: str) -> None:
        """Record a figure, built by calling ``figure()`` only if the tracker keeps it."""
        ...


class NoOpTracker:
    """The default tracker: records nothing."""

    def start_run(
        self, name: str, *, tags: Mapping[str, str] | None = None
    ) -> AbstractContextManager[None]:
        """A context that does nothing."""
        return nullcontext()

    def log_params(self, params: Mapping[str, str]) -> None:
        """Do nothing."""

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Do nothing."""

    def log_text(self, text: str, artifact_file: str) -> None:
        """Do nothing."""

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Do nothing."""

    def log_figure(self, figure: FigureFactory, artifact_file: str) -> None:
        """Do nothing (the figure is never built)."""


NOOP_TRACKER = NoOpTracker()
_current: ContextVar[Tracker | None] = ContextVar("judgealign_tracker", default=None)
_default_lock = threading.Lock()
_default: Tracker = NOOP_TRACKER


def get_tracker() -> Tracker:
    """The tracker in effect here: :func:`use_tracker`'s, else the process default."""
    tracker = _current.get()
    if tracker is not None:
        return tracker
    with _default_lock:
        return _default


def set_tracker(tracker: Tracker | None) -> Tracker:
    """Make ``tracker`` the process default (``None`` restores the no-op one).

    Returns:
        The previous default.

    Raises:
        TypeError: when ``tracker`` lacks a method of :class:`Tracker`.
    """
    global _default
    chosen = NOOP_TRACKER if tracker is None else _checked(tracker)
    with _default_lock:
        previous, _default = _default, chosen
    return previous


@contextmanager
def use_tracker(tracker: Tracker | None) -> Iterator[Tracker]:
    """Use ``tracker`` in the current context (thread or task) inside the block.

    ``None`` means the no-op tracker, e.g. to silence tracking for one call.

    Raises:
        TypeError: when ``tracker`` lacks a method of :class:`Tracker`.
    """
    chosen = NOOP_TRACKER if tracker is None else _checked(tracker)
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def _checked(tracker: object) -> Tracker:
    if not isinstance(tracker, Tracker):
        raise TypeError(
            f"{tracker!r} is not a tracker: it needs start_run, log_params, log_metrics, "
            "log_text, log_dict and log_figure."
        )
    return tracker
