"""Scoring candidate prompts: call ``predict_fn`` and the scorers, one record at a time.

A *scorer* is any callable taking some of ``inputs``, ``outputs`` and ``expectations`` by
name (a judge is one). What it returns is mapped to a number:

* ``bool`` -> 0 or 1; ``int`` / ``float`` -> as is, and it must lie in [0, 1] (NaN or a
  number outside [0, 1] is an error: it is never clamped);
* a label (``str``) -> ``label_scores[label]``, else yes/no/true/false/pass/fail;
* a :class:`~judgealign.Feedback` -> its value through the scorer's own
  ``normalize(value)`` when it has one, else by the rules above; a feedback ``error``
  scores 0 with the error as rationale.

A record's score is the mean of its scorers' scores, or ``aggregation(...)`` (MLflow's
one-argument form or the two-argument one, see :mod:`optimizers._aggregation`), which
must return a number in [0, 1]. With ``aggregation``, per-scorer values are passed
on unbounded (the aggregation maps them); without it, each must lie in [0, 1]. A scorer
that declares an unranged numeric verdict (a judge with ``feedback_value_type=int`` or
``float`` and no ``value_range``) is refused when the evaluator is built, before any paid
call, unless an ``aggregation`` is given.

A ``predict_fn`` or scorer that raises on one record scores that record 0 with the error
text as feedback; the other records go on. A record's ``trace`` lists the prompts
``predict_fn`` filled in, with their values, in order (see :mod:`judgealign.prompts._steps`).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import math
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from judgealign import ConfigurationError, Feedback
from judgealign.optimize_support import ContextThreadPool, capture_steps, redact
from optimizers._aggregation import AggregationFn, bind_aggregation
from optimizers._base import EvaluationResultRecord
from optimizers._unit_score import SCALE_FIX, outside_unit_range
from optimizers.prompts._registry import PromptUsage, candidate_prompts

__all__ = [
    "AggregationFn",
    "Evaluator",
    "PredictFn",
    "Scorer",
    "make_eval_fn",
    "scorer_name",
]

Scorer = Callable[..., Any]
"""Any callable taking some of ``inputs``, ``outputs``, ``expectations`` by keyword."""

PredictFn = Callable[..., Any]
"""The application under optimization, called as ``predict_fn(**record["inputs"])``."""


_ARGS = frozenset({"inputs", "outputs", "expectations"})
_DEFAULT_LABELS = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "pass": 1.0, "fail": 0.0}
_MAX_ERROR_CHARS = 1000


class _UnscorableError(Exception):
    """A scorer returned something that cannot be mapped to a number."""


@dataclass(frozen=True)
class _ScorerOutcome:
    score: float
    rationale: str
    raw: Any
    error: str | None = None


@dataclass(frozen=True)
class _BoundScorer:
    name: str
    call: Scorer
    args: frozenset[str]


def scorer_name(scorer: Scorer) -> str:
    """A scorer's name: its ``name`` attribute, else its function or class name."""
    name = getattr(scorer, "name", None)
    if isinstance(name, str) and name:
        return name
    return str(getattr(scorer, "__name__", type(scorer).__name__))


def _accepted_args(scorer: Scorer, name: str) -> frozenset[str]:
    try:
        params = list(inspect.signature(scorer).parameters.values())
    except (TypeError, ValueError):  # builtins and C callables without a signature
        return _ARGS
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return _ARGS
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    accepted = frozenset(p.name for p in params if p.kind in named) & _ARGS
    unfillable = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and (p.name not in _ARGS or p.kind is p.POSITIONAL_ONLY)
    ]
    if not accepted or unfillable:
        raise ConfigurationError(
            f"Scorer {name!r} must take some of inputs, outputs, expectations by keyword "
            f"(and nothing else that is required); its parameters are "
            f"{[p.name for p in params]}."
        )
    return accepted


def _unranged_numeric(scorer: Scorer) -> str | None:
    """``int``/``float`` when the scorer declares a numeric verdict with no range, else None.

    Reads a judgealign judge's ``value_spec`` and an MLflow judge's ``feedback_value_type``
    (MLflow judges have no range, so a numeric one always needs a mapping).
    """
    spec = getattr(scorer, "value_spec", None)
    if spec is not None:
        kind = getattr(spec, "kind", None)
        unranged = getattr(spec, "low", None) is None or getattr(spec, "high", None) is None
        return str(kind) if kind in ("int", "float") and unranged else None
    value_type = getattr(scorer, "feedback_value_type", None)
    return {int: "int", float: "float"}.get(value_type) if value_type in (int, float) else None


def _check_scale(scorer: Scorer, name: str, aggregated: bool) -> None:
    kind = _unranged_numeric(scorer)
    if kind is not None and not aggregated:
        raise ConfigurationError(
            f"Scorer {name!r} returns an unranged {kind}, which is not a score in [0, 1] "
            f"(a 2 out of 5 would count as better than perfect). To fix it, {SCALE_FIX}."
        )


def _bind_scorers(
    scorers: Sequence[Scorer], *, aggregated: bool = False
) -> tuple[_BoundScorer, ...]:
    bound: list[_BoundScorer] = []
    seen: set[str] = set()
    for scorer in scorers:
        if not callable(scorer):
            raise ConfigurationError(f"Scorer {scorer!r} is not callable.")
        base = name = scorer_name(scorer)
        suffix = 2
        while name in seen:  # two lambdas, or two judges with one name
            name, suffix = f"{base}_{suffix}", suffix + 1
        seen.add(name)
        _check_scale(scorer, name, aggregated)
        bound.append(_BoundScorer(name, scorer, _accepted_args(scorer, name)))
    return tuple(bound)


def _check_label_scores(label_scores: Mapping[str, float] | None) -> dict[str, float]:
    table = dict(label_scores or {})
    for label, score in table.items():
        number = isinstance(score, int | float) and not isinstance(score, bool)  # pyright: ignore[reportUnnecessaryIsInstance]
        if not number or not 0.0 <= score <= 1.0:  # NaN fails the range check too
            raise ConfigurationError(
                f"label_scores[{label!r}]={score!r} must be a number in [0, 1], e.g. "
                f"label_scores={{{label!r}: 1.0}}."
            )
    return {label: float(score) for label, score in table.items()}


def _error_text(exc: BaseException) -> str:
    # Provider errors can echo an API key; this text is checkpointed and shown to models.
    return redact(f"{type(exc).__name__}: {exc}")[:_MAX_ERROR_CHARS]


def _number(value: object, label_scores: Mapping[str, float]) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        if not math.isfinite(number):
            raise _UnscorableError(f"the score {value!r} is not a finite number")
        return number
    if isinstance(value, str):
        return _label_score(value, label_scores)
    raise _UnscorableError(
        f"a {type(value).__name__} ({value!r:.80}) cannot be turned into a score; return a "
        "bool, a number, a label with label_scores, or a Feedback, or pass aggregation="
    )


def _label_score(label: str, label_scores: Mapping[str, float]) -> float:
    key = label.strip()
    if key in label_scores:
        return float(label_scores[key])
    folded = {k.casefold(): v for k, v in label_scores.items()}
    for table in (folded, _DEFAULT_LABELS):
        if key.casefold() in table:
            return float(table[key.casefold()])
    raise _UnscorableError(
        f"the label {label!r} has no score; pass label_scores={{{label!r}: <0..1>, ...}}"
    )


def _feedback_parts(result: object) -> tuple[object, str, str | None] | None:
    """(value, rationale, error) of a Feedback or a Feedback-like object, else None."""
    if isinstance(result, Feedback):
        return result.value, result.rationale, result.error
    if hasattr(result, "value") and hasattr(result, "rationale"):  # e.g. MLflow's Feedback
        error = getattr(result, "error", None)
        return (
            getattr(result, "value", None),
            str(getattr(result, "rationale", "") or ""),
            None if error is None else str(error),
        )
    return None


def _outcome(
    result: object, scorer: Scorer, label_scores: Mapping[str, float], bounded: bool
) -> _ScorerOutcome:
    """The scorer's result as a number; ``bounded``: it must lie in [0, 1] (no aggregation
    will map it there)."""
    parts = _feedback_parts(result)
    if parts is None:
        return _ScorerOutcome(_bounded(_number(result, label_scores), bounded), "", result)
    value, rationale, error = parts
    if error:
        return _ScorerOutcome(0.0, error, result, error)
    if value is None:
        raise _UnscorableError("the feedback has neither a value nor an error")
    normalize = getattr(scorer, "normalize", None)
    normalised = normalize(value) if callable(normalize) else None
    score = _number(value if normalised is None else normalised, label_scores)
    return _ScorerOutcome(_bounded(score, bounded), rationale, result)


def _bounded(score: float, bounded: bool) -> float:
    if bounded and outside_unit_range(score):
        raise _UnscorableError(f"the score {score!r} is outside [0, 1]; to fix it, {SCALE_FIX}")
    return score


def _call_predict(predict_fn: PredictFn, inputs: Mapping[str, Any]) -> Any:
    result = predict_fn(**inputs)
    if inspect.isawaitable(result):
        return asyncio.run(_wait(result))
    return result


async def _wait(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class Evaluator:
    """The ``eval_fn(candidate_prompts, dataset)`` handed to every optimizer.

    Records are evaluated concurrently (at most ``max_workers`` at once); each worker runs
    inside the candidate's :func:`~optimizers.candidate_prompts` context, so concurrent
    calls with different candidates never see each other's prompts. Safe to call from
    several threads at once.

    Args:
        predict_fn: called as ``predict_fn(**record["inputs"])``; may be ``async``.
        scorers: the objectives (judges or plain callables).
        aggregation: MLflow's ``aggregation(scores) -> float`` (scorer name -> the scorer's
            raw result), or ``aggregation(scores, feedback)`` (normalised numbers, then the
            raw results); default: the mean of the normalised scores.
        label_scores: scores for string labels that scorers return.
        max_workers: how many records are evaluated at once.

    Raises:
        ConfigurationError: a scorer is not callable or cannot take the record's fields,
            a scorer declares an unranged numeric verdict and no ``aggregation`` is
            given, or ``max_workers`` is below 1.
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        scorers: Sequence[Scorer],
        *,
        aggregation: AggregationFn | None = None,
        label_scores: Mapping[str, float] | None = None,
        max_workers: int = 8,
    ) -> None:
        if not callable(predict_fn):
            raise ConfigurationError(f"predict_fn={predict_fn!r} is not callable.")
        if max_workers < 1:
            raise ConfigurationError(f"max_workers={max_workers} must be at least 1.")
        self._predict_fn = predict_fn
        self._scorers = _bind_scorers(scorers, aggregated=aggregation is not None)
        self._aggregation = bind_aggregation(aggregation)
        self._label_scores = _check_label_scores(label_scores)
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._records_evaluated = 0
        self._checked: dict[str, tuple[EvaluationResultRecord, frozenset[str]]] = {}
        self._reused = 0

    @property
    def scorer_names(self) -> tuple[str, ...]:
        """The (deduplicated) scorer names that key every record's scores."""
        return tuple(s.name for s in self._scorers)

    @property
    def records_evaluated(self) -> int:
        """How many (candidate, record) evaluations ran so far: the metric calls spent."""
        with self._lock:
            return self._records_evaluated

    @property
    def checks_reused(self) -> int:
        """How many :meth:`check_record` results later served an evaluation."""
        with self._lock:
            return self._reused

    def check_record(
        self, templates: Mapping[str, str], record: Mapping[str, Any]
    ) -> frozenset[str]:
        """Score one record strictly (see :meth:`evaluate_record`) with ``templates``.

        The result is kept: the first later evaluation of the same templates on the same
        record is served from it instead of being paid for again, so a setup check on the
        original prompts is not an extra metric call when the optimizer scores them too.

        Returns:
            The names of the swapped prompts ``predict_fn`` read.

        Raises:
            ConfigurationError: on misuse, as :meth:`evaluate_record` with ``strict``.
        """
        with candidate_prompts(templates) as usage:
            result = self.evaluate_record(record, strict=True)
        with self._lock:
            self._checked[_pair_key(templates, record)] = (result, usage.accessed)
        return usage.accessed

    def __call__(
        self, candidate_prompts: dict[str, str], dataset: Sequence[dict[str, Any]]
    ) -> list[EvaluationResultRecord]:
        """Score ``candidate_prompts`` on every record; one result per record, in order."""
        return self.evaluate(candidate_prompts, dataset)[0]

    def evaluate(
        self, templates: Mapping[str, str], dataset: Sequence[Mapping[str, Any]]
    ) -> tuple[list[EvaluationResultRecord], PromptUsage]:
        """Like calling the evaluator, and also says which prompts ``predict_fn`` read."""
        if dataset and not self._scorers:
            raise ConfigurationError("Scoring records needs at least one scorer.")
        with candidate_prompts(templates) as usage:
            results = self._reuse_checks(templates, dataset, usage)
            todo = [i for i, result in enumerate(results) if result is None]
            workers = min(self._max_workers, len(todo))
            if workers <= 1:
                for i in todo:
                    results[i] = self.evaluate_record(dataset[i])
            else:
                with ContextThreadPool(workers, thread_name_prefix="optimizers-eval") as pool:
                    futures = {i: pool.submit(self.evaluate_record, dataset[i]) for i in todo}
                    for i, future in futures.items():
                        results[i] = future.result()
            return [r for r in results if r is not None], usage

    def _reuse_checks(
        self,
        templates: Mapping[str, str],
        dataset: Sequence[Mapping[str, Any]],
        usage: PromptUsage,
    ) -> list[EvaluationResultRecord | None]:
        """Results kept by :meth:`check_record` for these records (each served once)."""
        results: list[EvaluationResultRecord | None] = [None] * len(dataset)
        with self._lock:
            if not self._checked:
                return results
            for i, record in enumerate(dataset):
                kept = self._checked.pop(_pair_key(templates, record), None)
                if kept is not None:
                    results[i] = kept[0]
                    self._reused += 1
                    for name in kept[1]:
                        usage.record(name)
        return results

    def evaluate_record(
        self, record: Mapping[str, Any], *, strict: bool = False
    ) -> EvaluationResultRecord:
        """Score one record with whatever prompts are in effect in this context.

        Args:
            record: ``{"inputs": {...}, "expectations": {...} | None}``.
            strict: raise :class:`ConfigurationError` on misuse (``predict_fn`` raising,
                a scorer raising ``ConfigurationError``, a value that cannot be scored, a
                failing ``aggregation``) instead of scoring the record 0. Used to check the
                setup on the first record.
        """
        with self._lock:
            self._records_evaluated += 1
        inputs: dict[str, Any] = dict(record.get("inputs") or {})
        expectations: dict[str, Any] | None = record.get("expectations")
        with capture_steps() as steps:
            try:
                outputs = _call_predict(self._predict_fn, inputs)
            except Exception as exc:
                if strict:
                    raise ConfigurationError(f"predict_fn failed: {_error_text(exc)}") from exc
                return self._failed_prediction(inputs, expectations, _error_text(exc))
        fields = {"inputs": inputs, "outputs": outputs, "expectations": expectations}
        outcomes = {s.name: self._score_one(s, fields, strict) for s in self._scorers}
        result = self._aggregate(inputs, outputs, expectations, outcomes, strict)
        return replace(result, trace=list(steps)) if steps else result

    def _score_one(
        self, scorer: _BoundScorer, fields: Mapping[str, Any], strict: bool
    ) -> _ScorerOutcome:
        try:
            result = scorer.call(**{k: fields[k] for k in scorer.args})
            return _outcome(result, scorer.call, self._label_scores, self._aggregation is None)
        except _UnscorableError as exc:
            if strict:
                raise ConfigurationError(f"Scorer {scorer.name!r}: {exc}.") from None
            return _ScorerOutcome(0.0, f"not scored: {exc}", None, str(exc))
        except Exception as exc:
            if strict and isinstance(exc, ConfigurationError):
                raise ConfigurationError(f"Scorer {scorer.name!r}: {exc}") from exc
            text = f"scorer raised {_error_text(exc)}"
            return _ScorerOutcome(0.0, text, Feedback(name=scorer.name, error=text), text)

    def _aggregate(
        self,
        inputs: dict[str, Any],
        outputs: Any,
        expectations: dict[str, Any] | None,
        outcomes: dict[str, _ScorerOutcome],
        strict: bool,
    ) -> EvaluationResultRecord:
        scores = {name: o.score for name, o in outcomes.items()}
        errors = [f"{name}: {o.error}" for name, o in outcomes.items() if o.error]
        try:
            score = self._combine(scores, {name: o.raw for name, o in outcomes.items()})
        except Exception as exc:
            if strict:
                raise ConfigurationError(f"aggregation failed: {_error_text(exc)}") from exc
            score = 0.0
            errors.append(f"aggregation: {_error_text(exc)}")
        return EvaluationResultRecord(
            inputs=inputs,
            outputs=outputs,
            expectations=expectations,
            score=score,
            rationales={name: o.rationale for name, o in outcomes.items()},
            individual_scores=scores,
            error="; ".join(errors) or None,
        )

    def _combine(self, scores: dict[str, float], feedback: dict[str, Any]) -> float:
        if self._aggregation is None:
            return sum(scores.values()) / len(scores)
        value = self._aggregation(dict(scores), dict(feedback))
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise TypeError(f"aggregation returned {value!r}, not a finite number")
        if outside_unit_range(value):
            raise ValueError(f"aggregation returned {value!r}, outside [0, 1]")
        return float(value)

    def _failed_prediction(
        self, inputs: dict[str, Any], expectations: dict[str, Any] | None, error: str
    ) -> EvaluationResultRecord:
        text = f"not scored: predict_fn raised {error}"
        return EvaluationResultRecord(
            inputs=inputs,
            outputs=None,
            expectations=expectations,
            score=0.0,
            rationales={s.name: text for s in self._scorers},
            individual_scores={s.name: 0.0 for s in self._scorers},
            error=f"predict_fn raised {error}",
        )


def _pair_key(templates: Mapping[str, str], record: Mapping[str, Any]) -> str:
    text = json.dumps([dict(templates), dict(record)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_eval_fn(
    predict_fn: PredictFn,
    scorers: Sequence[Scorer],
    *,
    aggregation: AggregationFn | None = None,
    label_scores: Mapping[str, float] | None = None,
    max_workers: int = 8,
) -> Evaluator:
    """Build the ``eval_fn(candidate_prompts, dataset)`` that optimizers climb.

    ``optimize_prompts`` does this for you; use it to drive an optimizer by hand or to
    score a candidate yourself. See :class:`Evaluator` for the arguments.
    """
    return Evaluator(
        predict_fn,
        scorers,
        aggregation=aggregation,
        label_scores=label_scores,
        max_workers=max_workers,
    )
