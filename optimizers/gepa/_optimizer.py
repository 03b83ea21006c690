"""``GepaPromptOptimizer``: reflective prompt evolution with Pareto selection (GEPA).

GEPA (Agrawal et al., 2025, arXiv 2507.19457) keeps a pool of candidate prompt sets. Each
iteration picks a parent from the per-validation-record Pareto front, shows a reflection
model how the parent did on a small train minibatch (outputs, scores and the scorers'
rationales) and asks for a better version of one prompt. A proposal that wins on the same
minibatch is scored on the validation set and joins the pool. This is an independent
implementation of the published algorithm (see :mod:`optimizers.gepa._engine`).
"""

from __future__ import annotations

import logging
import random
import warnings
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast, get_args

from judgealign import ChatModel, ConfigurationError, resolve_model
from judgealign.optimize_support import REFLECTION_MAX_TOKENS, with_reply_limit
from optimizers._api import PromptOptimizationWarning
from optimizers._base import BasePromptOptimizer, EvalFn, PromptOptimizerOutput
from optimizers.gepa._checkpoint import Checkpoint
from optimizers.gepa._engine import (
    ComponentSelector,
    DataSplit,
    Engine,
    EngineSettings,
    StopReason,
)
from optimizers.gepa._eval import BudgetedEvaluator
from optimizers.gepa._kwargs import gepa_options
from optimizers.gepa._pareto import pareto_front
from optimizers.gepa._reflect import DEFAULT_REFLECTION_PROMPT, check_reflection_prompt
from optimizers.gepa._state import Candidate, RunState, fingerprint, prompts_key

__all__ = ["GEPA", "GepaPromptOptimizer", "split_data"]

_log = logging.getLogger("optimizers.gepa")


class GepaPromptOptimizer(BasePromptOptimizer):
    """Optimize prompts with GEPA under a hard budget of metric calls.

    One metric call is one record scored by ``eval_fn``; a (prompts, record) pair is never
    paid for twice. A reflective proposal costs at most ``2 * minibatch_size`` calls, plus
    the validation set size when it is accepted; scoring the target prompts first costs
    the validation set size.

    Args:
        reflection_model: the model that rewrites prompts: a ``ChatModel``, a model URI,
            or ``None`` for ``JUDGEALIGN_MODEL``. Use a strong model.
        max_metric_calls: the budget; never exceeded.
        display_progress_bar: MLflow's name for ``progress``.
        gepa_kwargs: MLflow's pass-through to the ``gepa`` library: the keys with an
            option here (``reflection_minibatch_size``, ``seed``, ``use_merge``,
            ``max_merge_invocations``, ``run_dir``, ``display_progress_bar``) set it;
            any other key is refused by name.
        minibatch_size: train records shown to the reflection model per proposal.
        val_fraction: share of ``train_data`` held out for validation when no
            ``val_data`` is given (at least one record each; a single record serves as
            both, which makes the validation score optimistic).
        seed: seeds the split, parent selection, minibatches and merges.
        use_merge: also try combining two front candidates that improved different prompts.
        max_merge_attempts: merges tried at most.
        max_workers: ``eval_fn`` calls in flight at once: a batch of records is split into
            up to this many chunks evaluated concurrently. The default 1 suits
            ``optimize_prompts``, whose ``eval_fn`` already runs records concurrently within
            its own ``max_workers``; raise it for an ``eval_fn`` that is sequential.
        patience: stop after this many iterations without a new best validation score.
        score_threshold: stop once the best validation score reaches this value.
        timeout_s: stop starting iterations after this many seconds.
        run_dir: folder for the checkpoint (``gepa_state.jsonl``, an append-only journal:
            each save writes only what is new); a new optimizer given the same folder,
            prompts and data resumes where the last one stopped.
        show_val_in_reflection: let validation records reach the reflection model (by
            default only train records do, so validation stays an honest selector).
        progress: show a progress bar over metric calls (``None``: when on a terminal).
        reflection_prompt: a custom reflection prompt with ``{current_prompt}`` and
            ``{examples}`` (optionally ``{component_name}`` and ``{variables}``).
        component_selector: which prompt a reflection rewrites when there are several:
            ``"adaptive"`` (the components whose rewrites have been accepted most often;
            ties are rewritten together, concurrently) or ``"round_robin"`` (one per
            iteration, each in turn, as the ``gepa`` library does); see
            :mod:`optimizers.gepa._engine`.

    Raises:
        ConfigurationError: on an invalid option or an unresolvable model.
    """

    supports_val_data = True
    """``optimize`` takes ``val_data=`` (``optimize_prompts`` passes its validation data)."""

    def __init__(
        self,
        reflection_model: str | ChatModel | None = None,
        max_metric_calls: int = 100,
        display_progress_bar: bool | None = None,
        gepa_kwargs: Mapping[str, Any] | None = None,
        *,
        minibatch_size: int = 3,
        val_fraction: float = 0.3,
        seed: int = 0,
        use_merge: bool = False,
        max_merge_attempts: int = 5,
        max_workers: int = 1,
        patience: int | None = None,
        score_threshold: float | None = None,
        timeout_s: float | None = None,
        run_dir: str | Path | None = None,
        show_val_in_reflection: bool = False,
        progress: bool | None = None,
        reflection_prompt: str | None = None,
        component_selector: ComponentSelector = "adaptive",
    ) -> None:
        options = gepa_options(gepa_kwargs)  # MLflow's spelling of the options below
        component_selector = options.get("component_selector", component_selector)
        minibatch_size = options.get("minibatch_size", minibatch_size)
        seed = options.get("seed", seed)
        use_merge = options.get("use_merge", use_merge)
        max_merge_attempts = options.get("max_merge_attempts", max_merge_attempts)
        run_dir = options.get("run_dir", run_dir)
        if progress is None:
            progress = options.get("progress", display_progress_bar)
        _check_options(
            max_metric_calls=max_metric_calls,
            minibatch_size=minibatch_size,
            max_merge_attempts=max_merge_attempts,
            max_workers=max_workers,
            seed=seed,
            val_fraction=val_fraction,
            patience=patience,
            score_threshold=score_threshold,
            timeout_s=timeout_s,
            component_selector=component_selector,
        )
        # A reflection reply is a whole rewritten prompt: its own default reply limit.
        self.reflection_model = with_reply_limit(
            resolve_model(reflection_model), REFLECTION_MAX_TOKENS
        )
        self.settings = EngineSettings(
            max_metric_calls=max_metric_calls,
            minibatch_size=minibatch_size,
            use_merge=use_merge,
            max_merge_attempts=max_merge_attempts,
            patience=patience,
            score_threshold=score_threshold,
            timeout_s=timeout_s,
            show_val_in_reflection=show_val_in_reflection,
            reflection_prompt=check_reflection_prompt(
                reflection_prompt or DEFAULT_REFLECTION_PROMPT
            ),
            component_selector=component_selector,
        )
        self.val_fraction = val_fraction
        self.seed = seed
        self.max_workers = max_workers
        self.run_dir = Path(run_dir).expanduser() if run_dir is not None else None
        self.progress = progress

    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
        *,
        val_data: Sequence[dict[str, Any]] | None = None,
    ) -> PromptOptimizerOutput:
        """Run GEPA and return the best prompts found (the targets if none was better).

        Args:
            eval_fn: scores candidate prompts on records (see :data:`EvalFn`).
            train_data: records for reflection (and for validation when ``val_data`` is
                ``None``).
            target_prompts: prompt name -> template to start from.
            enable_tracking: accepted for the plug-in contract; GEPA itself logs nothing
                to MLflow (``optimize_prompts`` does).
            val_data: records to select candidates on; never shown to the reflection model
                unless ``show_val_in_reflection``.

        Raises:
            ConfigurationError: on empty data or prompts, a budget too small to score the
                target prompts, or a ``run_dir`` holding another run.
        """
        if not _is_prompt_map(target_prompts):
            raise ConfigurationError(
                f"target_prompts={target_prompts!r} must map prompt names to template strings, "
                "with at least one prompt"
            )
        split = split_data(train_data, val_data, val_fraction=self.val_fraction, seed=self.seed)
        state, checkpoint = self._load_or_start(target_prompts, train_data, val_data)
        resumed = bool(state.candidates)
        self._warn_small_budget(split)
        evaluator = BudgetedEvaluator(
            eval_fn,
            split.records,
            state,
            max_metric_calls=self.settings.max_metric_calls,
            max_workers=self.max_workers,
            progress=self.progress,
        )
        engine = Engine(
            self.settings,
            model=self.reflection_model,
            evaluator=evaluator,
            state=state,
            split=split,
            checkpoint=checkpoint,
        )
        try:
            reason = engine.run(dict(target_prompts))
        finally:
            evaluator.close()
        return self._output(state, split, reason, resumed=resumed)

    def _load_or_start(
        self,
        prompts: dict[str, str],
        train: Sequence[dict[str, Any]],
        val: Sequence[dict[str, Any]] | None,
    ) -> tuple[RunState, Checkpoint | None]:
        fresh = RunState(rng=random.Random(self.seed))
        if self.run_dir is None:
            return fresh, None
        split_options = {
            "seed": self.seed,
            "val_fraction": self.val_fraction if val is None else None,
        }
        stamp = fingerprint(
            prompts=prompts,
            train=list(train),
            val=None if val is None else list(val),
            split=split_options,
        )
        checkpoint = Checkpoint(self.run_dir, stamp)
        saved = checkpoint.load()
        return (saved or fresh), checkpoint

    def _warn_small_budget(self, split: DataSplit) -> None:
        v, b = len(split.val_ids), min(self.settings.minibatch_size, len(split.train_ids))
        floor = 2 * v + 2 * b
        if self.settings.max_metric_calls < floor:
            _log.warning(
                "GEPA: max_metric_calls=%d is below %d (validation %d + one proposal %d + its "
                "validation %d); no proposal can be admitted, the targets will come back as is",
                self.settings.max_metric_calls,
                floor,
                v,
                2 * b,
                v,
            )

    def _output(
        self, state: RunState, split: DataSplit, reason: StopReason, *, resumed: bool
    ) -> PromptOptimizerOutput:
        seed, best = state.candidates[0], state.best()
        improved = best.id != seed.id
        details: dict[str, Any] = {
            "best_candidate": best.id,
            "improved": improved,
            "candidates": [c.to_dict() for c in state.candidates],
            "lineage": state.lineage(best.id),
            "pareto_front": pareto_front(state.candidates),
            "metric_calls_used": state.metric_calls,
            "max_metric_calls": self.settings.max_metric_calls,
            "iterations": state.iteration,
            "stop_reason": reason,
            "rejected_candidates": [vars(r).copy() for r in state.rejected],
            "rejection_counts": dict(Counter(r.reason for r in state.rejected)),
            "reflection_failures": len(state.reflection_failures),
            "reflection_errors": list(state.reflection_failures),
            "reflection_calls": state.reflection_calls,
            "reflection_tokens": state.reflection_tokens,
            "merges": {"attempted": state.merge_attempts, "accepted": _merged(state.candidates)},
            "history": list(state.history),
            "split": {
                "source": split.source,
                "train_ids": list(split.train_ids),
                "val_ids": list(split.val_ids),
            },
            "resumed": resumed,
        }
        if not improved:
            details["note"] = "no candidate beat the target prompts on validation"
        failures = state.reflection_failures
        if failures and len(failures) >= state.reflection_calls:
            details["note"] = (
                f"every reflection call failed ({len(failures)} of {state.reflection_calls}), so "
                f"no candidate was ever proposed; last error: {failures[-1]['error']}"
            )
            warnings.warn(
                f"GEPA: {details['note']}. Check the reflection model (its name, endpoint "
                "and API key).",
                PromptOptimizationWarning,
                stacklevel=3,
            )
        return PromptOptimizerOutput(
            optimized_prompts=dict(best.prompts),
            initial_eval_score=seed.aggregate,
            final_eval_score=best.aggregate,
            initial_eval_score_per_scorer=_per_scorer(state, seed, split),
            final_eval_score_per_scorer=_per_scorer(state, best, split),
            details=details,
        )


GEPA = GepaPromptOptimizer
"""Short alias of :class:`GepaPromptOptimizer`."""


def split_data(
    train_data: Sequence[dict[str, Any]],
    val_data: Sequence[dict[str, Any]] | None,
    *,
    val_fraction: float,
    seed: int,
) -> DataSplit:
    """Assign record ids and decide which records are for training and for validation.

    With ``val_data``, all of ``train_data`` trains and all of ``val_data`` validates.
    Otherwise ``round(n * val_fraction)`` records (at least one, and at most ``n - 1``) are
    held out by a ``random.Random(seed)`` shuffle; a single record serves as both.

    Raises:
        ConfigurationError: when ``train_data`` (or a given ``val_data``) is empty.
    """
    if not train_data:
        raise ConfigurationError("train_data is empty; GEPA needs at least one record")
    records = {f"train:{i}": dict(r) for i, r in enumerate(train_data)}
    if val_data is not None:
        if not val_data:
            raise ConfigurationError("val_data is empty; pass None to split train_data instead")
        records.update({f"val:{i}": dict(r) for i, r in enumerate(val_data)})
        val_ids = tuple(f"val:{i}" for i in range(len(val_data)))
        return DataSplit(
            records, tuple(f"train:{i}" for i in range(len(train_data))), val_ids, "val_data"
        )
    n = len(train_data)
    if n == 1:
        return DataSplit(records, ("train:0",), ("train:0",), "shared")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[: min(n - 1, max(1, round(n * val_fraction)))])
    train_ids = tuple(f"train:{i}" for i in range(n) if i not in held)
    val_ids = tuple(f"train:{i}" for i in sorted(held))
    return DataSplit(records, train_ids, val_ids, "split")


def _per_scorer(state: RunState, candidate: Candidate, split: DataSplit) -> dict[str, float]:
    table = state.cache.get(prompts_key(candidate.prompts), {})
    sums: dict[str, list[float]] = {}
    for rid in split.val_ids:
        record = table.get(rid)
        for scorer, score in (record.individual_scores if record else {}).items():
            sums.setdefault(scorer, []).append(float(score))
    return {scorer: sum(values) / len(values) for scorer, values in sorted(sums.items())}


def _merged(candidates: list[Candidate]) -> int:
    return sum(c.origin == "merge" for c in candidates)


def _is_prompt_map(value: object) -> bool:
    if not isinstance(value, dict) or not value:
        return False
    mapping = cast("dict[object, object]", value)
    return all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


Rule = tuple[Callable[[object], bool], str]


def _int_at_least(low: int) -> Rule:
    return (lambda v: _is_int(v) and cast(int, v) >= low), f"an int >= {low}"


def _number_in(low: float, high: float, *, open_interval: bool = False) -> Rule:
    if open_interval:
        return (lambda v: _is_number(v) and low < cast(float, v) < high), f"in ({low:g}, {high:g})"
    return (lambda v: _is_number(v) and low <= cast(float, v) <= high), f"in [{low:g}, {high:g}]"


def _or_none(rule: Rule) -> Rule:
    check, expected = rule
    return (lambda v: v is None or check(v)), f"None or {expected}"


# Each numeric option: the check it must pass and the words that say what it must be.
_OPTION_RULES: dict[str, Rule] = {
    "max_metric_calls": _int_at_least(1),
    "minibatch_size": _int_at_least(1),
    "max_merge_attempts": _int_at_least(0),
    "max_workers": _int_at_least(1),
    "seed": (_is_int, "an int"),
    "val_fraction": _number_in(0.0, 1.0, open_interval=True),
    "patience": _or_none(_int_at_least(1)),
    "score_threshold": _or_none(_number_in(0.0, 1.0)),
    "timeout_s": _or_none((lambda v: _is_number(v) and cast(float, v) >= 0, "a number >= 0")),
    "component_selector": (
        lambda v: v in get_args(ComponentSelector),
        " or ".join(repr(v) for v in get_args(ComponentSelector)),
    ),
}


def _check_options(**values: object) -> None:
    """Raise a ConfigurationError naming the first option that breaks its rule."""
    for name, value in values.items():
        check, expected = _OPTION_RULES[name]
        if not check(value):
            raise ConfigurationError(f"{name}={value!r} is invalid; it must be {expected}")
