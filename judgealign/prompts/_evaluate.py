"""Scoring a ``predict_fn`` on records with chosen prompt texts swapped in.

Used to compare two registered prompt versions on held-out records before moving an
alias. Each record is ``{"inputs": {...}, "expectations": {...}}``; ``predict_fn`` is
called as ``predict_fn(**inputs)`` inside :func:`~judgealign.prompts._overrides.overriding_prompts`,
so however it loads its prompts (MLflow's ``load_prompt`` or judgealign's registry objects)
it reads the texts being compared. A scorer is a judge or any callable taking some of
``inputs``, ``outputs`` and ``expectations``; its result becomes a number in [0, 1] like
``optimizers`` does it: ``bool`` -> 0/1, a number as is, a label through ``label_scores``
(or yes/no, true/false, pass/fail), a feedback through the scorer's ``normalize``. A record
whose prediction or scorer fails scores 0, and the failure is counted.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judgealign.core._threads import ContextThreadPool
from judgealign.prompts._overrides import overriding_prompts

__all__ = ["TemplateScore", "score_templates"]

_ARGS = ("inputs", "outputs", "expectations")
_LABELS = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "pass": 1.0, "fail": 0.0}


@dataclass(frozen=True)
class TemplateScore:
    """How a set of prompt texts scored.

    Attributes:
        score: the mean record score in [0, 1] (records that failed count as 0).
        scores: each record's score, in record order.
        failures: how many predictions or scorer calls failed.
    """

    score: float
    scores: tuple[float, ...]
    failures: int


def score_templates(
    predict_fn: Callable[..., Any],
    records: Sequence[Mapping[str, Any]],
    scorers: Sequence[Callable[..., Any]],
    templates: Mapping[str, str],
    *,
    label_scores: Mapping[str, float] | None = None,
    max_workers: int = 4,
) -> TemplateScore:
    """Score ``predict_fn`` on ``records`` while ``templates`` (name -> text) are in effect."""
    labels = {k.casefold(): float(v) for k, v in (label_scores or {}).items()}

    def one(record: Mapping[str, Any]) -> tuple[float, int]:
        with overriding_prompts(templates):
            return _score_record(predict_fn, record, scorers, labels)

    workers = max(1, min(max_workers, len(records)))
    with ContextThreadPool(workers, thread_name_prefix="judgealign-heldout") as pool:
        futures = [pool.submit(one, r) for r in records]
        results = [f.result() for f in futures]
    scores = tuple(score for score, _ in results)
    mean = sum(scores) / len(scores) if scores else 0.0
    return TemplateScore(mean, scores, sum(failed for _, failed in results))


def _score_record(
    predict_fn: Callable[..., Any],
    record: Mapping[str, Any],
    scorers: Sequence[Callable[..., Any]],
    labels: Mapping[str, float],
) -> tuple[float, int]:
    inputs = dict(record.get("inputs") or {})
    try:
        outputs = predict_fn(**inputs)
    except Exception:
        return 0.0, 1
    fields = {"inputs": inputs, "outputs": outputs, "expectations": record.get("expectations")}
    total, failures = 0.0, 0
    for scorer in scorers:
        try:
            total += _number(scorer, scorer(**_arguments(scorer, fields)), labels)
        except Exception:
            failures += 1
    return total / len(scorers), failures


def _arguments(scorer: Callable[..., Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(scorer).parameters.values()
    except (TypeError, ValueError):
        return dict(fields)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return dict(fields)
    names = {p.name for p in params}
    return {k: v for k, v in fields.items() if k in names and k in _ARGS}


def _number(scorer: Any, result: Any, labels: Mapping[str, float]) -> float:
    if hasattr(result, "value") and hasattr(result, "rationale"):
        if getattr(result, "error", None):
            raise ValueError(str(result.error))
        normalize = getattr(scorer, "normalize", None)
        normalised = normalize(result.value) if callable(normalize) else None
        result = result.value if normalised is None else normalised
    if isinstance(result, bool):
        return 1.0 if result else 0.0
    if isinstance(result, int | float) and math.isfinite(result):
        return float(result)
    if isinstance(result, str):
        key = result.strip().casefold()
        if key in labels:
            return labels[key]
        if key in _LABELS:
            return _LABELS[key]
    raise ValueError(f"cannot score {result!r}")
