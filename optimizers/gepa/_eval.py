"""Metric-call accounting for GEPA: a cache in front of ``eval_fn`` and a hard budget.

One record evaluated by ``eval_fn`` is one metric call. A (prompts, record) pair already
evaluated is served from the cache for free. The engine asks :meth:`BudgetedEvaluator.cost` before
it evaluates anything and never starts an evaluation that does not fit the budget, so the
budget is a hard cap, not a target that one last iteration may overshoot.

Scores must lie in [0, 1]: a number outside it raises :class:`ConfigurationError` (GEPA
reads 1 as perfect, so clamping a 2-out-of-5 to 1 would end the run as "perfect"). A score
that is not a number at all (``None``, NaN) marks a record that was not scored: it counts
as 0, with a warning.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from judgealign import ConfigurationError
from judgealign.optimize_support import ContextThreadPool
from optimizers._base import EvalFn, EvaluationResultRecord
from optimizers._unit_score import check_unit_scores
from optimizers.gepa._state import RunState, prompts_key

__all__ = ["BudgetedEvaluator", "clean_score"]

_log = logging.getLogger("optimizers.gepa")


class BudgetedEvaluator:
    """Evaluates prompts on records by id, through the run state's cache and budget.

    ``eval_fn`` calls may run on worker threads (up to ``max_workers`` chunks of one batch
    at once); the workers only call ``eval_fn``. The cache and the counter are updated
    under a lock, on the calling thread, once the chunks have returned.

    Args:
        eval_fn: the caller's evaluation function.
        records: record id -> record.
        state: the run state holding the cache and the metric-call counter.
        max_metric_calls: the hard budget.
        max_workers: how many ``eval_fn`` calls may run at once.
        progress: show a tqdm bar over metric calls (``None``: when stderr is a terminal).
    """

    def __init__(
        self,
        eval_fn: EvalFn,
        records: dict[str, dict[str, Any]],
        state: RunState,
        *,
        max_metric_calls: int,
        max_workers: int,
        progress: bool | None,
    ) -> None:
        self._eval_fn = eval_fn
        self._records = records
        self._state = state
        self._budget = max_metric_calls
        self._workers = max_workers
        self._lock = threading.Lock()
        self._bar: Any = _progress_bar(progress, max_metric_calls, state.metric_calls)
        self.after_store: Callable[[], None] | None = None
        """Called after each batch of results is stored (the engine checkpoints there)."""

    @property
    def remaining(self) -> int:
        """Metric calls left in the budget."""
        with self._lock:
            return self._budget - self._state.metric_calls

    def cached(self, prompts: dict[str, str], rid: str) -> EvaluationResultRecord | None:
        """The cached result of ``prompts`` on record ``rid``, if any."""
        with self._lock:
            return self._state.cache.get(prompts_key(prompts), {}).get(rid)

    def cost(self, prompts: dict[str, str], ids: Sequence[str]) -> int:
        """Metric calls that evaluating ``prompts`` on ``ids`` would take (cache misses)."""
        return len(self._misses(prompts, ids))

    def evaluate(self, prompts: dict[str, str], ids: Sequence[str]) -> list[EvaluationResultRecord]:
        """Results of ``prompts`` on ``ids``, in order; only cache misses reach ``eval_fn``.

        Raises:
            RuntimeError: if the misses do not fit the budget (the engine checks first).
            ConfigurationError: if ``eval_fn`` returns the wrong number of results.
        """
        return self.evaluate_many([prompts], ids)[0]

    def evaluate_many(
        self, candidates: Sequence[dict[str, str]], ids: Sequence[str]
    ) -> list[list[EvaluationResultRecord]]:
        """:meth:`evaluate` for several candidates at once: their ``eval_fn`` calls run
        concurrently (one proposal or several cost the same wall time).

        Raises:
            RuntimeError: if the misses do not fit the budget (the engine checks first).
            ConfigurationError: if ``eval_fn`` returns the wrong number of results.
        """
        jobs: list[tuple[dict[str, str], list[str]]] = []
        for prompts in candidates:
            misses = self._misses(prompts, ids)
            if misses:
                size = math.ceil(len(misses) / min(self._workers, len(misses)))
                jobs += [(prompts, misses[i : i + size]) for i in range(0, len(misses), size)]
        if sum(len(chunk) for _, chunk in jobs) > self.remaining:
            raise RuntimeError("GEPA engine bug: evaluation started beyond the budget")
        self._run(jobs)
        with self._lock:
            tables = [self._state.cache[prompts_key(p)] if ids else {} for p in candidates]
            return [[table[rid] for rid in ids] for table in tables]

    def for_component(
        self,
        prompts: dict[str, str],
        component: str,
        ids: Sequence[str],
        results: list[EvaluationResultRecord],
    ) -> list[EvaluationResultRecord]:
        """``results`` as the reflection on ``component`` should see them.

        An ``eval_fn`` may offer ``eval_fn.component_feedback(candidate_prompts,
        component, dataset, results)`` returning the results with feedback about that
        component alone (``optimize_program`` asks a DSPy metric with ``pred_name``).
        Those calls score nothing GEPA selects on, so they are not metric calls of the
        budget; the ``eval_fn`` counts them. Without it, ``results`` are returned as is.

        Raises:
            ConfigurationError: if it returns the wrong number of results.
        """
        hook: Any = getattr(self._eval_fn, "component_feedback", None)
        if not callable(hook):
            return results
        data = [self._records[rid] for rid in ids]
        shown = list(
            cast("list[EvaluationResultRecord]", hook(dict(prompts), component, data, results))
        )
        if len(shown) != len(results):
            raise ConfigurationError(
                f"eval_fn.component_feedback returned {len(shown)} results for "
                f"{len(results)}; it must return one per result, in order"
            )
        return shown

    def close(self) -> None:
        """Close the progress bar, if any."""
        if self._bar is not None:
            self._bar.close()

    def _misses(self, prompts: dict[str, str], ids: Sequence[str]) -> list[str]:
        with self._lock:
            table = self._state.cache.get(prompts_key(prompts), {})
            return list(dict.fromkeys(rid for rid in ids if rid not in table))

    def _run(self, jobs: list[tuple[dict[str, str], list[str]]]) -> None:
        """Run ``(prompts, record ids)`` jobs, concurrently when there are several; results
        are stored on this thread, in order."""
        if len(jobs) <= 1:
            for prompts, ids in jobs:
                self._store(prompts, ids, self._call(prompts, ids))
            return
        # Each job runs in a copy of the caller's context (a rate limit set there holds).
        with ContextThreadPool(max_workers=len(jobs)) as pool:
            futures = [pool.submit(self._call, dict(prompts), ids) for prompts, ids in jobs]
        failure: BaseException | None = None
        for (prompts, ids), future in zip(jobs, futures, strict=True):
            error = future.exception()
            if error is None:
                # Jobs that finished count, even when another failed: on resume they are
                # served from the cache instead of being paid for twice.
                self._store(prompts, ids, future.result())
            elif failure is None:
                failure = error
        if failure is not None:
            raise failure

    def _call(self, prompts: dict[str, str], ids: list[str]) -> list[EvaluationResultRecord]:
        results = list(self._eval_fn(dict(prompts), [self._records[rid] for rid in ids]))
        if len(results) != len(ids):
            raise ConfigurationError(
                f"eval_fn returned {len(results)} results for {len(ids)} records; it must "
                "return exactly one EvaluationResultRecord per record, in order"
            )
        check_unit_scores(results, "eval_fn")  # before caching: a bad scale is never stored
        return results

    def _store(
        self, prompts: dict[str, str], ids: list[str], results: list[EvaluationResultRecord]
    ) -> None:
        with self._lock:
            table = self._state.cache.setdefault(prompts_key(prompts), {})
            for rid, result in zip(ids, results, strict=True):
                table[rid] = _with_clean_score(result)
            self._state.metric_calls += len(ids)
        if self._bar is not None:
            self._bar.update(len(ids))
        if self.after_store is not None:
            self.after_store()


def _with_clean_score(record: EvaluationResultRecord) -> EvaluationResultRecord:
    score = clean_score(record.score)
    if score == record.score:
        return record
    _log.warning("eval_fn returned score %r, not a number; counting it as 0", record.score)
    return EvaluationResultRecord(
        inputs=record.inputs,
        outputs=record.outputs,
        expectations=record.expectations,
        score=score,
        trace=record.trace,
        rationales=record.rationales,
        individual_scores=record.individual_scores,
        error=record.error,
    )


def clean_score(value: object) -> float:
    """A checked score as a float; anything non-numeric, NaN or infinite counts as 0.

    Finite numbers outside [0, 1] never reach here (:func:`check_unit_scores` refuses them).
    """
    if not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def _progress_bar(progress: bool | None, total: int, initial: int) -> Any:
    show = sys.stderr.isatty() if progress is None else progress
    if not show:
        return None
    from tqdm.auto import tqdm  # a core dependency, imported only when a bar is shown

    return tqdm(total=total, initial=initial, desc="GEPA metric calls", unit="call")
