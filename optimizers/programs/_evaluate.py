"""The ``eval_fn`` that optimizers climb, for a DSPy program.

Candidate prompts are predictor instructions by name; a record is one ``dspy.Example``
(by its position in the data). Each candidate runs on a deep copy of the program, records
concurrently (up to ``num_threads``). Every record runs in a copy of the context
``optimize_program`` was called in, so the caller's ``dspy.context(lm=...)`` holds even
when an optimizer calls ``eval_fn`` from threads of its own. Each record's ``trace``
lists every predictor call with that predictor's own inputs and outputs, so GEPA's
reflection on one predictor sees what that predictor was given and what it produced, not
only the program's final answer.

When the metric gives per-predictor feedback (a five-argument metric, see
:mod:`optimizers.programs._metric`), GEPA calls :meth:`ProgramEvaluator.component_feedback`
before it reflects on a predictor: the metric is asked again, for the reflection minibatch
only, with ``pred_name`` and that predictor's ``pred_trace`` from each record's run, and
its answer replaces the program-level feedback the reflection model reads. The runs are
kept in memory for that (the most recent :data:`_KEPT_RUNS`); a record whose run is no
longer there (evicted, or scored before a resume) keeps its program-level feedback.

A program that raises on one record scores it 0 with the error as feedback; the other
records go on.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

from judgealign import ConfigurationError
from judgealign.dspy import ProgramRun, run_program, with_instructions
from judgealign.optimize_support import ContextThreadPool
from optimizers._base import EvaluationResultRecord
from optimizers._scoring import _error_text  # pyright: ignore[reportPrivateUsage]
from optimizers.programs._metric import ProgramMetric, example_fields, prediction_outputs

__all__ = ["ProgramEvaluator", "record_of"]

_EXAMPLE_KEY = "example"
_T = TypeVar("_T")
_KEPT_RUNS = 256
"""Recent (candidate, record) runs kept for per-predictor feedback: a reflection uses the
runs of the minibatch just evaluated, so a few hundred cover it with room to spare."""


def record_of(position: int, example: Any) -> dict[str, Any]:
    """The record an optimizer sees for the example at ``position`` (plain JSON data, so
    checkpoints can fingerprint it)."""
    inputs, labels = example_fields(example)
    return {_EXAMPLE_KEY: position, "inputs": inputs, "expectations": labels or None}


class ProgramEvaluator:
    """``eval_fn(candidate_instructions, records)`` for a DSPy program.

    Args:
        program: the program; never changed (candidates run on copies).
        examples: every example, by the position its record carries.
        metric: how predictions are scored.
        num_threads: records evaluated at once.
    """

    def __init__(
        self, program: Any, examples: Sequence[Any], metric: ProgramMetric, *, num_threads: int
    ) -> None:
        self._program = program
        self._examples = list(examples)
        # The caller's context (its dspy.context settings): every record runs in a copy.
        self._context = contextvars.copy_context()
        self._metric = metric
        self._threads = num_threads
        self._lock = threading.Lock()
        self._checked: dict[str, EvaluationResultRecord] = {}
        self._runs: OrderedDict[str, ProgramRun] = OrderedDict()
        self.records_evaluated = 0
        """Every (candidate, record) pair run so far: the metric calls paid for."""
        self.feedback_calls = 0
        """Metric calls made for per-predictor feedback (reflection minibatches only)."""
        self.feedback_missing = 0
        """Reflection records whose run was no longer kept (program-level feedback shown)."""

    def check(self, instructions: Mapping[str, str], record: Mapping[str, Any]) -> None:
        """Run one record strictly (a failing program or metric raises) and keep the
        result: the first evaluation of the same pair is served from it, not paid twice.

        Raises:
            ConfigurationError: the program or the metric failed on the record.
        """
        program = with_instructions(self._program, instructions)
        key = _pair_key(instructions, record)
        result = self._in_context(program, record, key, strict=True)
        with self._lock:
            self._checked[key] = result

    @property
    def unused_checks(self) -> int:
        """Checks no evaluation reused (each was a metric call outside the optimizer)."""
        with self._lock:
            return len(self._checked)

    def __call__(
        self, candidate_prompts: dict[str, str], dataset: Sequence[dict[str, Any]]
    ) -> list[EvaluationResultRecord]:
        """Score the candidate instructions on every record; one result each, in order."""
        keys = [_pair_key(candidate_prompts, record) for record in dataset]
        with self._lock:
            results = [self._checked.pop(key, None) for key in keys]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            program = with_instructions(self._program, candidate_prompts)
            done = self._in_threads(
                [
                    partial(self._in_context, program, dataset[i], keys[i], strict=False)
                    for i in todo
                ]
            )
            for i, result in zip(todo, done, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def component_feedback(
        self,
        candidate_prompts: Mapping[str, str],
        component: str,
        dataset: Sequence[Mapping[str, Any]],
        results: Sequence[EvaluationResultRecord],
    ) -> list[EvaluationResultRecord]:
        """``results`` with the metric's feedback for predictor ``component`` in place of
        the program-level feedback (see the module docstring); unchanged when the metric
        gives none per predictor."""
        if not self._metric.per_predictor:
            return list(results)
        return self._in_threads(
            [
                partial(self._feedback_in_context, candidate_prompts, component, record, result)
                for record, result in zip(dataset, results, strict=True)
            ]
        )

    def _in_threads(self, calls: Sequence[Callable[[], _T]]) -> list[_T]:
        """Each call's result, in order, up to ``num_threads`` of them running at once."""
        workers = min(self._threads, len(calls))
        if workers <= 1:
            return [call() for call in calls]
        with ContextThreadPool(workers, thread_name_prefix="optimizers-dspy") as pool:
            futures = [pool.submit(call) for call in calls]
            return [future.result() for future in futures]

    def _feedback_in_context(
        self,
        prompts: Mapping[str, str],
        component: str,
        record: Mapping[str, Any],
        result: EvaluationResultRecord,
    ) -> EvaluationResultRecord:
        with self._lock:
            run = self._runs.get(_pair_key(prompts, record))
        if run is None:
            if result.outputs is not None:  # a failed program run has nothing to show
                with self._lock:
                    self.feedback_missing += 1
            return result
        pred_trace = run.predictor_trace(component)
        if not pred_trace:  # the predictor did not run for this record
            return result
        example = self._examples[int(record[_EXAMPLE_KEY])]
        with self._lock:
            self.feedback_calls += 1
        feedback, error = self._context.copy().run(
            self._metric.predictor_feedback,
            example,
            run.prediction,
            run.trace,
            component,
            pred_trace,
        )
        rationales = dict(result.rationales)
        name = self._metric.name
        if error is None:
            rationales[name] = feedback
        else:
            rationales[name] = (
                f"{rationales.get(name, '')} (no feedback for {component!r}: {error})"
            )
        return replace(result, rationales=rationales)

    def _keep(self, key: str, run: ProgramRun) -> None:
        with self._lock:
            self._runs[key] = run
            self._runs.move_to_end(key)
            while len(self._runs) > _KEPT_RUNS:
                self._runs.popitem(last=False)

    def _in_context(
        self, program: Any, record: Mapping[str, Any], key: str, *, strict: bool
    ) -> EvaluationResultRecord:
        return self._context.copy().run(self._evaluate_one, program, record, key, strict=strict)

    def _evaluate_one(
        self, program: Any, record: Mapping[str, Any], key: str, *, strict: bool
    ) -> EvaluationResultRecord:
        with self._lock:
            self.records_evaluated += 1
        example = self._examples[int(record[_EXAMPLE_KEY])]
        inputs, labels = example_fields(example)
        try:
            run = run_program(program, inputs)
        except Exception as exc:
            error = f"the program raised {_error_text(exc)}"
            if strict:
                raise ConfigurationError(
                    f"{error} on the first example {example!r:.120}; fix the program (or the "
                    "model it calls) before optimizing it"
                ) from exc
            return EvaluationResultRecord(
                inputs=inputs,
                outputs=None,
                expectations=labels or None,
                score=0.0,
                rationales={self._metric.name: f"not scored: {error}"},
                individual_scores={self._metric.name: 0.0},
                error=error,
            )
        scored = self._metric.score(example, run.prediction, strict=strict)
        if self._metric.per_predictor:
            self._keep(key, run)
        return EvaluationResultRecord(
            inputs=inputs,
            outputs=prediction_outputs(run.prediction),
            expectations=labels or None,
            score=scored.score,
            trace=run.steps,
            rationales=scored.rationales,
            individual_scores=scored.individual_scores,
            error=scored.error,
        )


def _pair_key(instructions: Mapping[str, str], record: Mapping[str, Any]) -> str:
    text = json.dumps([dict(instructions), dict(record)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
