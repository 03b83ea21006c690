"""One background writer: queued writes performed in order, in batches, off the hot path.

Why: MLflow's sqlite store slows to a crawl (and drops rows) when many threads write to
it at once. Callers therefore never write: they :meth:`BackgroundWriter.submit` an
operation and go on. A single daemon thread takes everything queued (waiting a few
milliseconds for more to arrive), hands it to the sink in one batch, and retries the
operations that failed. An operation that still fails is kept in
:attr:`BackgroundWriter.failed`, never dropped: :meth:`BackgroundWriter.retry_failed`
queues it again. Failures are counted, logged once as they happen, and reported as a
:class:`~judgealign.tracking._tracker.TrackingWarning` by the next :meth:`BackgroundWriter.flush`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from judgealign.core._redact import redact
from judgealign.tracking._tracker import TrackingWarning

__all__ = ["BackgroundWriter", "Failure", "WriteOp"]

_log = logging.getLogger("judgealign.tracking")
_MAX_ERRORS_KEPT = 50
_IDLE_EXIT_S = 2.0  # an idle writer thread ends; the next submit starts a new one


@dataclass
class WriteOp:
    """One queued write.

    Attributes:
        kind: what to do (the sink's vocabulary, e.g. ``"metrics"``).
        target: what it applies to (e.g. a run handle), or ``None``.
        payload: the data.
        attempts: how many times it was tried.
    """

    kind: str
    target: Any = None
    payload: dict[str, Any] = field(default_factory=lambda: {})
    attempts: int = 0


@dataclass(frozen=True)
class Failure:
    """An operation the sink could not perform, and why."""

    op: WriteOp
    error: BaseException


Sink = Callable[[Sequence[WriteOp]], Sequence[Failure]]
"""Performs a batch of operations and returns those that failed."""


class BackgroundWriter:
    """Performs queued :class:`WriteOp` s on one daemon thread (see the module docstring).

    Args:
        sink: performs a batch; must return failures rather than raise.
        name: the thread's name.
        batch_window_s: how long to wait for more operations before writing a batch.
        retries: how many more times a failed operation is tried, with a short backoff.
        max_batch: the most operations handed to the sink at once.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        name: str = "judgealign-writer",
        batch_window_s: float = 0.05,
        retries: int = 2,
        max_batch: int = 500,
    ) -> None:
        self._sink = sink
        self._name = name
        self._window = batch_window_s
        self._retries = retries
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: deque[WriteOp] = deque()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: list[WriteOp] = []
        self._errors: deque[str] = deque(maxlen=_MAX_ERRORS_KEPT)
        self._failures = 0
        self._reported = 0
        self._written = 0
        atexit.register(_flush_at_exit, weakref.ref(self))

    # -- public -----------------------------------------------------------------------

    def submit(self, op: WriteOp) -> None:
        """Queue ``op``; returns at once."""
        with self._cond:
            self._queue.append(op)
            self._start_locked()
            self._cond.notify_all()

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything queued so far was written (or failed for good).

        Warns with a :class:`TrackingWarning` about failures not reported yet.

        Returns:
            ``False`` if ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cond.wait(left)
            done = not self._queue and not self._busy
            new, self._reported = self._failures - self._reported, self._failures
            last = self._errors[-1] if self._errors else ""
        if new:
            warnings.warn(
                f"{new} tracking write(s) failed; they are kept in .failed (retry with "
                f".retry_failed()). Last error: {last}",
                TrackingWarning,
                stacklevel=3,
            )
        return done

    def retry_failed(self) -> int:
        """Queue every failed operation again; returns how many."""
        with self._cond:
            ops, self._failed = self._failed, []
            for op in ops:
                op.attempts = 0
                self._queue.append(op)
            if ops:
                self._start_locked()
                self._cond.notify_all()
            return len(ops)

    @property
    def failures(self) -> int:
        """How many operations failed for good so far (each retry round counts again)."""
        with self._cond:
            return self._failures

    @property
    def failed(self) -> list[WriteOp]:
        """The operations that failed for good and were not retried yet."""
        with self._cond:
            return list(self._failed)

    @property
    def errors(self) -> list[str]:
        """The latest failure messages (secrets redacted), oldest first."""
        with self._cond:
            return list(self._errors)

    @property
    def written(self) -> int:
        """How many operations were performed successfully."""
        with self._cond:
            return self._written

    @property
    def pending(self) -> int:
        """Operations queued or being written."""
        with self._cond:
            return len(self._queue) + self._busy

    def close(self, timeout: float | None = 30.0) -> bool:
        """Flush, then stop the thread. Later submissions start it again."""
        done = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5.0)
        return done

    # -- the thread -------------------------------------------------------------------

    def _start_locked(self) -> None:
        self._closed = False
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                failures = list(self._sink(batch))
            except Exception as exc:  # a sink must not raise; contain it if it does
                failures = [Failure(op, exc) for op in batch]
            self._settle(batch, failures)

    def _next_batch(self) -> list[WriteOp] | None:
        with self._cond:
            idle_since = time.monotonic()
            while not self._queue:
                if self._closed or time.monotonic() - idle_since > _IDLE_EXIT_S:
                    self._thread = None
                    return None
                self._cond.wait(0.5)
        if self._window > 0:
            time.sleep(self._window)  # let a burst of calls arrive and share one batch
        with self._cond:
            batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
            self._busy = len(batch)
            return batch

    def _settle(self, batch: list[WriteOp], failures: list[Failure]) -> None:
        failed_ids = {id(f.op) for f in failures}
        again: list[WriteOp] = []
        gave_up: list[Failure] = []
        for failure in failures:
            failure.op.attempts += 1
            if failure.op.attempts <= self._retries:
                again.append(failure.op)
            else:
                gave_up.append(failure)
        if again:
            time.sleep(min(0.05 * 2 ** max(op.attempts for op in again), 1.0))
        with self._cond:
            self._written += sum(1 for op in batch if id(op) not in failed_ids)
            self._queue.extendleft(reversed(again))  # retried before newer operations
            for failure in gave_up:
                self._record_failure_locked(failure)
            self._busy = 0
            self._cond.notify_all()

    def _record_failure_locked(self, failure: Failure) -> None:
        message = redact(f"{failure.op.kind}: {type(failure.error).__name__}: {failure.error}")
        if not self._failures:
            _log.warning("judgealign tracking write failed (operation kept): %s", message)
        self._failures += 1
        self._failed.append(failure.op)
        self._errors.append(message[:500])


def _flush_at_exit(ref: weakref.ref[BackgroundWriter]) -> None:
    writer = ref()
    if writer is not None and writer.pending:
        _log.info("Flushing %d queued judgealign tracking write(s)...", writer.pending)
        writer.close(timeout=10.0)
