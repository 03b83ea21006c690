"""``optimize_prompts``: improve registered prompts against any scorers, with any optimizer.

What it guarantees on top of the optimizer it runs:

* misuse is caught before any optimization spend: every data row is checked, and
  ``predict_fn`` and the scorers are run once on the first record (``predict_fn`` must
  read at least one target prompt, or no candidate could ever change its behaviour).
  That check is not paid twice: when the optimizer scores the original prompts on the
  first record, it gets the check's result, inside its own budget. Otherwise it is
  reported in ``details["metric_calls_by_phase"]["preflight"]``;
* every candidate keeps its template variables (``{{ x }}`` spacing is normalised, a
  candidate that drops, renames or adds one is rejected with a warning);
* a new prompt version is registered only when the optimized prompts score better than
  the originals; otherwise the originals come back with ``improved=False`` and a warning.

Validation data: an optimizer that declares ``supports_val_data = True`` (or whose
``optimize`` has a ``val_data`` parameter) receives ``val_data=`` as a keyword argument,
in the same record shape as ``train_data``; other optimizers get a warning that it was
not used.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from judgealign import ConfigurationError, RateLimit
from judgealign.optimize_support import announce, repair_template, use_rate_limit
from optimizers._base import BasePromptOptimizer, EvaluationResultRecord, PromptOptimizerOutput
from optimizers._scoring import AggregationFn, Evaluator, PredictFn, Scorer
from optimizers.prompts._registry import (
    PromptTemplate,
    get_prompt_store,
    load_prompt,
    register_prompt,
)

__all__ = ["PromptOptimizationResult", "PromptOptimizationWarning", "optimize_prompts"]


class PromptOptimizationWarning(UserWarning):
    """An optimization found nothing better, or a candidate prompt was rejected."""


@dataclass(frozen=True)
class PromptOptimizationResult:
    """What :func:`optimize_prompts` returns.

    Attributes:
        optimized_prompts: one prompt per ``prompt_uris`` entry, in order: the newly
            registered version where the prompt improved, else the original.
        optimizer_name: the optimizer's class name.
        initial_eval_score: the original prompts' mean score (``None`` without data).
        final_eval_score: the returned prompts' mean score (``None`` without data).
        initial_eval_score_per_scorer: scorer name -> mean initial score.
        final_eval_score_per_scorer: scorer name -> mean final score.
        improved: whether new prompt versions were registered.
        details: the optimizer's extras plus ``unsafe_final_prompts`` (prompt name ->
            why the optimizer's final candidate was rejected by the template check),
            ``metric_calls`` (every record scored, all phases), ``metric_calls_by_phase``
            and ``verified`` (whether the improvement was measured, false in zero-shot
            mode). The phases: ``optimizer`` is what the optimizer asked for (GEPA's
            ``max_metric_calls`` bounds it); ``preflight`` is the check on
            ``train_data[0]`` when the optimizer did not reuse it (it is reused, so 0,
            when the optimizer scores the original prompts on that record);
            ``verification`` is re-scoring the originals and the result when the
            optimizer's own scores could not be trusted.
    """

    optimized_prompts: list[PromptTemplate]
    optimizer_name: str
    initial_eval_score: float | None = None
    final_eval_score: float | None = None
    initial_eval_score_per_scorer: dict[str, float] = field(default_factory=lambda: {})
    final_eval_score_per_scorer: dict[str, float] = field(default_factory=lambda: {})
    improved: bool = False
    details: dict[str, Any] = field(default_factory=lambda: {})

    @property
    def history(self) -> list[Any]:
        """The optimizer's per-iteration history, when it reports one."""
        history: object = self.details.get("history")
        return list(cast("list[Any]", history)) if isinstance(history, list) else []


@dataclass(frozen=True)
class _Scores:
    initial: float | None
    final: float | None
    initial_per_scorer: dict[str, float]
    final_per_scorer: dict[str, float]


def optimize_prompts(
    *,
    predict_fn: PredictFn,
    train_data: Any,
    prompt_uris: Sequence[str],
    optimizer: BasePromptOptimizer,
    scorers: Sequence[Scorer] | None = None,
    aggregation: AggregationFn | None = None,
    val_data: Any = None,
    enable_tracking: bool = True,
    label_scores: Mapping[str, float] | None = None,
    max_workers: int = 8,
    rate_limit: RateLimit | None = None,
) -> PromptOptimizationResult:
    """Improve the prompts ``predict_fn`` uses so that the scorers rate its outputs higher.

    Args:
        predict_fn: the application, called as ``predict_fn(**inputs)``. It must load
            its prompts with :func:`load_prompt` (or format a :class:`PromptTemplate`) so
            that candidates can be swapped in.
        train_data: a list of dicts, a pandas DataFrame or an MLflow ``EvaluationDataset``
            with ``inputs`` (a non-empty dict of ``predict_fn`` arguments) and optional
            ``expectations`` (a dict).
            Empty or ``None`` means zero-shot: the optimizer rewrites without data.
        prompt_uris: the prompts to optimize, e.g. ``["prompts:/qa/1"]``.
        optimizer: e.g. ``MetaPromptOptimizer(...)`` or the GEPA optimizer.
        scorers: the objectives: judges or callables taking some of ``inputs``,
            ``outputs``, ``expectations``. Required with ``train_data``.
        aggregation: per record, MLflow's ``aggregation(scores) -> float`` with scorer
            name -> the scorer's raw result (bool, number, label or Feedback), or
            ``aggregation(scores, feedback)`` with the normalised numbers first; the
            default is the mean of the normalised per-scorer scores.
        val_data: held-out records (same shape) for optimizers that rank on them.
        enable_tracking: passed to the optimizer (MLflow tracking comes later).
        label_scores: scores for labels that scorers return, e.g. ``{"good": 1.0}``.
        max_workers: how many records are evaluated at once.
        rate_limit: the provider's limit (:class:`judgealign.RateLimit`) for every call
            made through judgealign's models during the run, whatever thread makes it:
            the judges and scorers, the optimizer's reflection or meta-prompt calls, and
            ``predict_fn``'s own calls when it uses a judgealign model. One object is one
            budget: every model under it shares it.

    Raises:
        ConfigurationError: on bad arguments or data rows (naming the row and field), or
            when ``predict_fn`` fails on the first record or never reads a target prompt;
            a ``rate_limit`` that is not a :class:`judgealign.RateLimit`.
    """
    optimizer_name = _check_optimizer(optimizer)
    originals = _load_targets(prompt_uris)
    records = _records(train_data, "train_data")
    val_records = _records(val_data, "val_data")
    evaluator = _make_evaluator(
        predict_fn, records, val_records, scorers, aggregation, label_scores, max_workers
    )
    templates = {p.name: p.stored_template for p in originals}
    with use_rate_limit(rate_limit):  # every model call of the run, in whatever thread
        if records:
            _check_first_record(evaluator, templates, records[0])
        checked = evaluator.records_evaluated
        output = _run(optimizer, evaluator, records, val_records, templates, enable_tracking)
        optimized, reused_by_optimizer = evaluator.records_evaluated, evaluator.checks_reused
        candidates, rejected = _safe_candidates(templates, output.optimized_prompts)
        scores = _settle_scores(
            evaluator, templates, candidates, rejected, output, val_records or records
        )
    improved = _decide(templates, candidates, scores, optimizer_name)
    prompts = _publish(originals, candidates if improved else templates, optimizer_name)
    if not improved:
        scores = _Scores(
            scores.initial, scores.initial, scores.initial_per_scorer, scores.initial_per_scorer
        )
    total, reused = evaluator.records_evaluated, evaluator.checks_reused
    details = {
        **output.details,
        "unsafe_final_prompts": rejected,
        "metric_calls": total,
        # A reused check counts for the phase that asked for its result.
        "metric_calls_by_phase": {
            "preflight": checked - reused,
            "optimizer": optimized - checked + reused_by_optimizer,
            "verification": total - optimized + reused - reused_by_optimizer,
        },
        "verified": scores.initial is not None,
    }
    result = PromptOptimizationResult(
        optimized_prompts=prompts,
        optimizer_name=optimizer_name,
        initial_eval_score=scores.initial,
        final_eval_score=scores.final,
        initial_eval_score_per_scorer=scores.initial_per_scorer,
        final_eval_score_per_scorer=scores.final_per_scorer,
        improved=improved,
        details=details,
    )
    _record_outcome(result, prompt_uris, len(records), len(val_records), evaluator.scorer_names)
    return result


# -- checking the arguments --------------------------------------------------------------


def _check_optimizer(optimizer: object) -> str:
    if not callable(getattr(optimizer, "optimize", None)):
        raise ConfigurationError(
            f"optimizer={optimizer!r} has no optimize() method; pass an optimizer such as "
            "MetaPromptOptimizer(reflection_model=...) or a BasePromptOptimizer subclass."
        )
    return type(optimizer).__name__


def _load_targets(prompt_uris: Sequence[str]) -> list[PromptTemplate]:
    if isinstance(prompt_uris, str) or not prompt_uris:
        raise ConfigurationError(
            f"prompt_uris={prompt_uris!r} must be a non-empty list of prompt URIs, "
            "e.g. ['prompts:/qa/1']."
        )
    prompts = [load_prompt(uri) for uri in prompt_uris]
    names = [p.name for p in prompts]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ConfigurationError(f"prompt_uris names the prompt(s) {duplicated} twice.")
    return prompts


def _records(data: object, which: str) -> list[dict[str, Any]]:
    if data is None:
        return []
    to_df = cast("Callable[[], object] | None", getattr(data, "to_df", None))
    if callable(to_df):  # MLflow's EvaluationDataset: its records as a DataFrame
        data = to_df()
    to_dict = cast("Callable[..., Any] | None", getattr(data, "to_dict", None))
    if isinstance(data, list | tuple):
        rows: list[Any] = list(cast("Sequence[Any]", data))
    elif to_dict is not None:  # a pandas DataFrame
        rows = list(cast("Sequence[Any]", to_dict(orient="records")))
    else:
        raise ConfigurationError(
            f"{which} must be a list of dicts or a pandas DataFrame (or an MLflow "
            f"EvaluationDataset), got {type(data).__name__}."
        )
    return [_record(row, f"{which}[{i}]") for i, row in enumerate(rows)]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _record(row: object, where: str) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise ConfigurationError(
            f"{where} must be a dict with 'inputs' (and optional 'expectations'), "
            f"got {type(row).__name__}."
        )
    fields = cast("Mapping[str, Any]", row)
    inputs = _as_dict(fields.get("inputs"))
    if not inputs:
        raise ConfigurationError(
            f"{where}['inputs'] must be a non-empty dict of predict_fn keyword arguments, "
            f"got {fields.get('inputs')!r:.100}."
        )
    if not all(isinstance(key, str) for key in cast("dict[object, Any]", inputs)):
        raise ConfigurationError(f"{where}['inputs'] keys must be strings.")
    raw = fields.get("expectations")
    if _missing(raw) and not _missing(fields.get("outputs")) and fields.get("outputs") != {}:
        raw = {"expected_response": fields["outputs"]}  # MLflow's fallback
    expectations = None if _missing(raw) else _as_dict(raw)
    if expectations is None and not _missing(raw):
        raise ConfigurationError(
            f"{where}['expectations'] must be a dict (e.g. {{'expected_response': ...}}), "
            f"got {type(raw).__name__}."
        )
    return {"inputs": inputs, "expectations": expectations}


def _as_dict(value: object) -> dict[str, Any] | None:
    return dict(cast("Mapping[str, Any]", value)) if isinstance(value, Mapping) else None


def _check_inputs_fit(predict_fn: PredictFn, records: Sequence[dict[str, Any]], which: str) -> None:
    try:
        params = list(inspect.signature(predict_fn).parameters.values())
    except (TypeError, ValueError):
        return
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = {p.name for p in params if p.kind in named}
    required = {p.name for p in params if p.kind in named and p.default is p.empty}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params)
    for i, record in enumerate(records):
        keys: set[str] = set(record["inputs"])
        unknown: set[str] = set() if open_ended else keys - names
        missing = required - keys
        if unknown or missing:
            raise ConfigurationError(
                f"{which}[{i}]['inputs'] does not fit predict_fn{inspect.signature(predict_fn)}: "
                f"unexpected {sorted(unknown)}, missing {sorted(missing)}."
            )


def _make_evaluator(
    predict_fn: PredictFn,
    records: list[dict[str, Any]],
    val_records: list[dict[str, Any]],
    scorers: Sequence[Scorer] | None,
    aggregation: AggregationFn | None,
    label_scores: Mapping[str, float] | None,
    max_workers: int,
) -> Evaluator:
    if scorers is not None and (callable(scorers) or isinstance(scorers, str)):
        raise ConfigurationError("scorers must be a list, e.g. scorers=[my_judge].")
    if records and not scorers:
        raise ConfigurationError(
            "train_data was given without scorers: pass scorers=[...] to say what a better "
            "output is, or omit train_data for a zero-shot rewrite."
        )
    if not records and (scorers or val_records):
        raise ConfigurationError(
            "scorers and val_data need train_data; zero-shot optimization (no train_data) "
            "uses neither."
        )
    _check_inputs_fit(predict_fn, records, "train_data")
    _check_inputs_fit(predict_fn, val_records, "val_data")
    return Evaluator(
        predict_fn,
        list(scorers or []),
        aggregation=aggregation,
        label_scores=label_scores,
        max_workers=max_workers,
    )


def _check_first_record(
    evaluator: Evaluator, templates: dict[str, str], record: dict[str, Any]
) -> None:
    try:
        accessed = evaluator.check_record(templates, record)
    except ConfigurationError as exc:
        raise ConfigurationError(f"On train_data[0]: {exc}") from exc
    unused = sorted(set(templates) - accessed)
    if len(unused) == len(templates):
        raise ConfigurationError(
            f"predict_fn never loaded the prompt(s) {unused}, so no candidate could change "
            "what it does (MLflow would run anyway; judgealign refuses rather than waste "
            "the calls). Inside predict_fn, call load_prompt('prompts:/<name>/<version>') "
            "and .format(...) it (or format a PromptTemplate you loaded earlier)."
        )
    if unused:
        warnings.warn(
            f"predict_fn did not use the prompt(s) {unused} on train_data[0]; their "
            "candidates may never be evaluated.",
            PromptOptimizationWarning,
            stacklevel=3,
        )


# -- running the optimizer and checking what it returns -----------------------------------


def accepts_val_data(optimizer: object) -> bool:
    """Whether ``optimizer.optimize`` takes ``val_data=`` (flag or parameter)."""
    flag = getattr(optimizer, "supports_val_data", None)
    if isinstance(flag, bool):
        return flag
    try:
        optimize = cast("Callable[..., Any]", getattr(optimizer, "optimize", None))
        return "val_data" in inspect.signature(optimize).parameters
    except (TypeError, ValueError):
        return False


def _run(
    optimizer: BasePromptOptimizer,
    evaluator: Evaluator,
    records: list[dict[str, Any]],
    val_records: list[dict[str, Any]],
    templates: dict[str, str],
    enable_tracking: bool,
) -> PromptOptimizerOutput:
    extra: dict[str, Any] = {}
    if val_records and accepts_val_data(optimizer):
        extra["val_data"] = val_records
    elif val_records:
        warnings.warn(
            f"{type(optimizer).__name__} does not take val_data; it was not used.",
            PromptOptimizationWarning,
            stacklevel=3,
        )
    output = optimizer.optimize(
        evaluator, records, dict(templates), enable_tracking=enable_tracking, **extra
    )
    if not isinstance(output, PromptOptimizerOutput):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"{type(optimizer).__name__}.optimize() returned {type(output).__name__}, "
            "not a PromptOptimizerOutput."
        )
    return output


def _safe_candidates(
    templates: dict[str, str], proposed: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Each prompt's candidate if its variables survive (repaired), else the original."""
    kept = dict(templates)
    rejected: dict[str, str] = {}
    for name, candidate in proposed.items():
        if name not in templates:
            rejected[name] = "not one of the prompts being optimized"
            continue
        repaired = repair_template(templates[name], str(candidate))
        if repaired is None:
            rejected[name] = "the candidate drops, renames or adds a template variable"
        else:
            kept[name] = repaired
    for name, why in rejected.items():
        warnings.warn(
            f"Candidate for prompt {name!r} rejected: {why}; the original is kept.",
            PromptOptimizationWarning,
            stacklevel=4,
        )
    return kept, rejected


def _mean_scores(
    evaluator: Evaluator, templates: dict[str, str], records: list[dict[str, Any]]
) -> tuple[float, dict[str, float]]:
    results: list[EvaluationResultRecord] = evaluator(templates, records)
    per_scorer = {
        name: sum(r.individual_scores.get(name, 0.0) for r in results) / len(results)
        for name in evaluator.scorer_names
    }
    return sum(r.score for r in results) / len(results), per_scorer


def _settle_scores(
    evaluator: Evaluator,
    templates: dict[str, str],
    candidates: dict[str, str],
    rejected: dict[str, str],
    output: PromptOptimizerOutput,
    records: list[dict[str, Any]],
) -> _Scores:
    """The optimizer's scores, re-measured when they may not describe what is returned."""
    reported = _Scores(
        output.initial_eval_score,
        output.final_eval_score,
        dict(output.initial_eval_score_per_scorer),
        dict(output.final_eval_score_per_scorer),
    )
    changed = candidates != templates
    unsure = rejected or reported.initial is None or reported.final is None
    if not records or not changed or not unsure:
        return reported
    initial, initial_per = _mean_scores(evaluator, templates, records)
    final, final_per = _mean_scores(evaluator, candidates, records)
    return _Scores(initial, final, initial_per, final_per)


def _decide(
    templates: dict[str, str], candidates: dict[str, str], scores: _Scores, optimizer_name: str
) -> bool:
    if candidates == templates:
        why = "it proposed no usable change"
    elif scores.initial is None or scores.final is None:
        return True  # zero-shot: nothing to measure with
    elif scores.final > scores.initial:
        return True
    else:
        why = f"the best candidate scored {scores.final:.4g}, not above {scores.initial:.4g}"
    warnings.warn(
        f"{optimizer_name} found no better prompt ({why}); the original prompts are "
        "returned and no new version was registered (unlike MLflow, judgealign registers "
        "a version only when it scores higher).",
        PromptOptimizationWarning,
        stacklevel=3,
    )
    return False


def _publish(
    originals: list[PromptTemplate], chosen: dict[str, str], optimizer_name: str
) -> list[PromptTemplate]:
    published: list[PromptTemplate] = []
    for prompt in originals:
        if chosen[prompt.name] == prompt.stored_template:
            published.append(prompt)
            continue
        note = f"Optimized by {optimizer_name} from {prompt.uri}."
        # The new version keeps the settings registered with the original, as in MLflow.
        published.append(
            register_prompt(
                prompt.name,
                chosen[prompt.name],
                commit_message=note,
                response_format=getattr(prompt, "response_format", None),
                model_config=getattr(prompt, "model_config", None),
            )
        )
    return published


def _record_outcome(
    result: PromptOptimizationResult,
    prompt_uris: Sequence[str],
    train_size: int,
    val_size: int,
    scorer_names: Sequence[str],
) -> None:
    """Report the run to the tracker (a no-op by default) and, for stores that keep version
    tags (MLflow), tag each newly registered version with the scores that justified it."""
    announce(
        "optimization",
        result=result,
        prompt_uris=prompt_uris,
        train_size=train_size,
        val_size=val_size,
        scorer_names=scorer_names,
    )
    set_tags = getattr(get_prompt_store(), "set_version_tags", None)
    if not result.improved or not callable(set_tags):
        return
    tags = {
        "judgealign.optimizer": result.optimizer_name,
        "judgealign.scorers": ",".join(scorer_names),
        "judgealign.initial_score": f"{result.initial_eval_score}",
        "judgealign.final_score": f"{result.final_eval_score}",
        "judgealign.validated_on": "val_data" if val_size else "train_data",
    }
    for prompt in result.optimized_prompts:
        try:
            if prompt.version is not None:
                set_tags(prompt.name, prompt.version, tags)
        except Exception as exc:  # the version is registered; its tags are a courtesy
            warnings.warn(
                f"Could not tag {prompt.uri} with its scores: {exc}",
                PromptOptimizationWarning,
                stacklevel=3,
            )
