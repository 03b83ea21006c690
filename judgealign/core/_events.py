"""The observation seam: domain code announces what it finished; observers listen.

Judging, alignment, comparison and optimization call :func:`announce` with what they
produced. They never import an observer and never wait for one: with nobody listening
``announce`` returns at once, and an observer that raises is reported as a warning and
skipped, because watching an operation must not break it. ``judgealign.tracking``
registers its observer when it is imported (which setting a tracker does), and turns
announcements into runs, metrics and figures.

The events, and what each carries:

* ``"evaluation"``: ``judge``, ``records``, ``result`` (a judge's batch).
* ``"alignment"``: ``aligned``, ``result`` (one align / unalign of an aligned judge).
* ``"comparison"``: ``comparison`` (a base-versus-aligned comparison).
* ``"optimization"``: ``result``, ``prompt_uris``, ``train_size``, ``val_size``,
  ``scorer_names`` (a prompt optimization).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

__all__ = ["Event", "Observer", "add_observer", "announce", "remove_observer"]

Event = Literal["evaluation", "alignment", "comparison", "optimization"]
Observer = Callable[[Event, Mapping[str, Any]], None]

_lock = threading.Lock()
_observers: tuple[Observer, ...] = ()


def add_observer(observer: Observer) -> None:
    """Call ``observer(event, payload)`` on every announcement from now on (idempotent)."""
    global _observers
    with _lock:
        if observer not in _observers:
            _observers = (*_observers, observer)


def remove_observer(observer: Observer) -> None:
    """Stop calling ``observer``; unknown observers are ignored."""
    global _observers
    with _lock:
        _observers = tuple(o for o in _observers if o is not observer)


def announce(event: Event, /, **payload: Any) -> None:
    """Tell every observer that ``event`` happened, with what it produced."""
    for observer in _observers:  # a snapshot: the tuple is replaced, never mutated
        try:
            observer(event, payload)
        except Exception as exc:  # an observer must never break the observed operation
            warnings.warn(
                f"An observer of {event!r} failed and was skipped "
                f"({type(exc).__name__}); the operation itself completed.",
                RuntimeWarning,
                stacklevel=2,
            )
