"""The verdicts a metric gave recently, by the (example, prediction) objects they were on.

``dspy.GEPA`` scores each example once (``pred_name=None``), then, to build its reflective
dataset, calls the metric again on the same example and prediction objects once per
predictor, with ``pred_name`` set. A judge's verdict is on the program's output and does
not depend on ``pred_name``, so asking the judge again would pay for the same verdict
once more per predictor. :class:`RecentVerdicts` lets those calls reuse it.

Entries are keyed by the objects' ``id`` and hold weak references, so a recycled ``id``
(a new object at a freed address) is never mistaken for the one that was scored.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Generic, TypeVar

__all__ = ["RecentVerdicts"]

T = TypeVar("T")

_DEFAULT_SIZE = 1024


class RecentVerdicts(Generic[T]):
    """A small thread-safe map (example, prediction) -> verdict, oldest evicted first.

    Args:
        size: how many verdicts to keep.
    """

    def __init__(self, size: int = _DEFAULT_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[int, int], tuple[Any, Any, T]] = OrderedDict()

    def get(self, gold: object, pred: object) -> T | None:
        """The verdict kept for exactly these two objects, else ``None``."""
        with self._lock:
            entry = self._entries.get((id(gold), id(pred)))
        if entry is None:
            return None
        gold_ref, pred_ref, verdict = entry
        return verdict if gold_ref() is gold and pred_ref() is pred else None

    def put(self, gold: object, pred: object, verdict: T) -> None:
        """Keep ``verdict`` for the two objects (skipped when they cannot be weakly
        referenced: their identity could not be checked later)."""
        try:
            refs = (weakref.ref(gold), weakref.ref(pred))
        except TypeError:
            return
        with self._lock:
            self._entries[(id(gold), id(pred))] = (*refs, verdict)
            self._entries.move_to_end((id(gold), id(pred)))
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
