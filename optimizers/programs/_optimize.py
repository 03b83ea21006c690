"""``optimize_program``: improve a DSPy program's instructions with GEPA (or any optimizer).

Each named predictor's instructions is one component; GEPA rewrites one at a time from the
metric's feedback on a train minibatch, showing that predictor's own inputs and outputs
from the program's trace. Every model-free check runs first (the program has predictors,
every example is a ``dspy.Example`` the metric can read), then the program and the metric
run once on the first validation example, strictly: a metric that raises is reported
before any optimization spend. That check is the seed's first metric call, not an extra.

``auto`` budgets (metric calls, one per example scored):
``V + n * P * (2 * b + V)`` where ``V`` is the validation size, ``P`` the number of
predictors, ``b`` GEPA's minibatch size (3) and ``n`` = 6 (light), 12 (medium) or 18
(heavy): enough for ``n`` reflective proposals per predictor even if each were accepted
and scored on the whole validation set. Rejected proposals cost only ``2 * b``, so a run
usually tries more. The budget is hard: GEPA never starts an evaluation that might not fit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from judgealign import ChatModel, ConfigurationError, RateLimit
from judgealign.dspy import instructions_of, load_dspy, with_instructions
from judgealign.optimize_support import use_rate_limit
from optimizers._aggregation import AggregationFn
from optimizers._base import BasePromptOptimizer, PromptOptimizerOutput
from optimizers.gepa._optimizer import GepaPromptOptimizer, split_data
from optimizers.programs._evaluate import ProgramEvaluator, record_of
from optimizers.programs._metric import ProgramMetric

__all__ = [
    "AUTO_PROPOSALS",
    "ProgramOptimizationResult",
    "ProgramOptimizer",
    "auto_budget",
    "optimize_program",
]

Auto = Literal["light", "medium", "heavy"]

AUTO_PROPOSALS: dict[str, int] = {"light": 6, "medium": 12, "heavy": 18}
"""Reflective proposals per predictor that each ``auto`` level pays for (see the module)."""

_DEFAULT_VAL_FRACTION = 0.3
_DEFAULT_MINIBATCH = 3


@dataclass(frozen=True)
class ProgramOptimizationResult:
    """What :func:`optimize_program` returns.

    Attributes:
        optimized_program: a copy of the program with the best instructions found (the
            original program is never changed).
        initial_score: the original program's mean validation score.
        final_score: the optimized program's mean validation score.
        improvement: ``final_score - initial_score``.
        instructions_before: predictor name -> original instructions.
        instructions_after: predictor name -> optimized instructions.
        metric_calls: examples scored in all (program run + metric), the check included.
        max_metric_calls: the budget GEPA ran under (``None`` for another optimizer).
        details: the optimizer's extras (GEPA: candidates, lineage, history, rejections,
            reflection calls, stop reason, ...).
        feedback_calls: extra metric calls asking a five-argument metric for one
            predictor's feedback (``pred_name``) on reflection minibatches; they score
            nothing, so they are outside ``metric_calls`` and the budget. 0 for a metric
            with ``feedback_per_predictor = False`` (judgealign's own) or scorers.
            ``details["feedback_missing"]`` counts reflection examples whose run was no
            longer in memory (scored before a resume), shown with program-level feedback.
    """

    optimized_program: Any
    initial_score: float | None
    final_score: float | None
    improvement: float | None
    instructions_before: dict[str, str]
    instructions_after: dict[str, str]
    metric_calls: int
    max_metric_calls: int | None
    details: dict[str, Any] = field(default_factory=lambda: {})
    feedback_calls: int = 0

    @property
    def changed_predictors(self) -> list[str]:
        """Names of the predictors whose instructions changed."""
        return [
            n for n, text in self.instructions_after.items() if text != self.instructions_before[n]
        ]


def auto_budget(auto: str, *, predictors: int, val_size: int, minibatch_size: int = 3) -> int:
    """The metric-call budget of an ``auto`` level (see the module docstring).

    Raises:
        ConfigurationError: on an unknown level.
    """
    if auto not in AUTO_PROPOSALS:
        raise ConfigurationError(
            f"auto={auto!r} is not a budget level; use one of {sorted(AUTO_PROPOSALS)} or "
            "pass optimizer=GepaPromptOptimizer(max_metric_calls=...)"
        )
    n = AUTO_PROPOSALS[auto]
    return val_size + n * predictors * (2 * minibatch_size + val_size)


def optimize_program(
    program: Any,
    trainset: Sequence[Any],
    valset: Sequence[Any] | None = None,
    *,
    metric: Callable[..., Any] | None = None,
    scorers: Sequence[Any] | None = None,
    optimizer: BasePromptOptimizer | None = None,
    auto: Auto | None = None,
    reflection_model: str | ChatModel | None = None,
    aggregation: AggregationFn | None = None,
    label_scores: Mapping[str, float] | None = None,
    num_threads: int = 8,
    seed: int = 0,
    rate_limit: RateLimit | None = None,
) -> ProgramOptimizationResult:
    """Optimize the instructions of a DSPy program's predictors against a metric.

    Args:
        program: a ``dspy.Module`` with at least one predictor. Not changed.
        trainset: ``dspy.Example`` objects (inputs marked with ``with_inputs``) that the
            reflection model learns from.
        valset: examples candidates are selected on; default: a held-out share of
            ``trainset`` (GEPA's ``val_fraction``, 0.3).
        metric: a DSPy metric (``judge.as_dspy_metric()``, ``combine_metrics(...)`` or
            your own, in either signature); its feedback is what GEPA reflects on.
        scorers: instead of ``metric``: judges or scorer callables, averaged (see
            :mod:`optimizers.programs._metric` for the fields they receive).
        optimizer: default ``GepaPromptOptimizer(reflection_model, max_metric_calls=...)``
            with the ``auto`` budget; any :class:`BasePromptOptimizer` works.
        auto: ``"light"`` (default without ``optimizer``), ``"medium"`` or ``"heavy"``.
        reflection_model: the model that rewrites instructions when no ``optimizer`` is
            given (default: ``JUDGEALIGN_MODEL``).
        aggregation: with ``scorers``, how their scores combine (default: the mean).
        label_scores: what labels returned by the metric or scorers are worth, e.g. SME
            ratings ``{"excellent": 1, "fair": 0.5, "poor": 0}``.
        num_threads: examples run at once (each in the caller's ``dspy.context``); 8 is
            DSPy's own default (``dspy.settings.num_threads``).
        seed: seeds the train/validation split and GEPA's sampling.
        rate_limit: the provider's limit (:class:`judgealign.RateLimit`) for every call
            made through judgealign's models during the run, whatever thread makes it:
            the judges in the metric or scorers and the reflection calls. The program's
            own ``dspy.LM`` calls do not go through judgealign and are not paced by it.

    Raises:
        ConfigurationError: a program with no predictors, examples that are not
            ``dspy.Example`` or lack a field the metric reads, neither or both of
            ``metric`` and ``scorers``, ``auto`` together with ``optimizer``, or a program
            or metric that fails on the first validation example; all before any
            optimization spend.
        MissingExtraError: dspy is not installed.
    """
    before = instructions_of(program)
    train = _check_examples("trainset", trainset, required=True)
    val = _check_examples("valset", valset, required=False) if valset is not None else None
    scorer = ProgramMetric(metric, scorers, aggregation=aggregation, label_scores=label_scores)
    for example in [*train, *(val or [])]:
        scorer.check_example(example)
    if num_threads < 1:
        raise ConfigurationError(f"num_threads={num_threads} must be at least 1")
    if optimizer is not None and (auto is not None or reflection_model is not None):
        raise ConfigurationError(
            "give either optimizer= or auto=/reflection_model=, not both: the optimizer "
            "carries its own budget (max_metric_calls) and reflection model"
        )
    train, val = _split(train, val, optimizer, seed)
    if optimizer is None:
        budget = auto_budget(auto or "light", predictors=len(before), val_size=len(val))
        optimizer = GepaPromptOptimizer(reflection_model, max_metric_calls=budget, seed=seed)
    train_records = [record_of(i, e) for i, e in enumerate(train)]
    val_records = [record_of(len(train) + i, e) for i, e in enumerate(val)]
    # The evaluator keeps the context it is made in for every example it runs.
    with use_rate_limit(rate_limit):
        evaluator = ProgramEvaluator(program, [*train, *val], scorer, num_threads=num_threads)
        evaluator.check(before, val_records[0])
        output = _run(optimizer, evaluator, train_records, val_records, before)
    after = {name: output.optimized_prompts.get(name, text) for name, text in before.items()}
    initial, final = output.initial_eval_score, output.final_eval_score
    settings = getattr(optimizer, "settings", None)
    return ProgramOptimizationResult(
        optimized_program=with_instructions(program, after),
        initial_score=initial,
        final_score=final,
        improvement=None if initial is None or final is None else final - initial,
        instructions_before=dict(before),
        instructions_after=after,
        metric_calls=evaluator.records_evaluated,
        max_metric_calls=cast("int | None", getattr(settings, "max_metric_calls", None)),
        details=_details(output, evaluator),
        feedback_calls=evaluator.feedback_calls,
    )


class ProgramOptimizer:
    """``optimize_program`` in DSPy's optimizer shape: build it with the budget, then call
    ``.optimize(program=..., trainset=..., valset=..., metric=...)``.

    Args:
        optimizer: as for :func:`optimize_program`.
        auto: as for :func:`optimize_program`.
        reflection_model: as for :func:`optimize_program`.
        aggregation: as for :func:`optimize_program` (with ``scorers``).
        label_scores: as for :func:`optimize_program`.
        num_threads: examples run at once.
        seed: seeds the split and GEPA's sampling.
        rate_limit: as for :func:`optimize_program`.

    ``aggregation`` and ``label_scores`` may be given here or to :meth:`optimize` (not
    both, unless equal).
    """

    def __init__(
        self,
        optimizer: BasePromptOptimizer | None = None,
        *,
        auto: Auto | None = None,
        reflection_model: str | ChatModel | None = None,
        aggregation: AggregationFn | None = None,
        label_scores: Mapping[str, float] | None = None,
        num_threads: int = 8,
        seed: int = 0,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.auto: Auto | None = auto
        self.reflection_model = reflection_model
        self.aggregation = aggregation
        self.label_scores = label_scores
        self.num_threads = num_threads
        self.seed = seed
        self.rate_limit = rate_limit

    def optimize(
        self,
        *,
        program: Any,
        trainset: Sequence[Any],
        valset: Sequence[Any] | None = None,
        metric: Callable[..., Any] | None = None,
        scorers: Sequence[Any] | None = None,
        aggregation: AggregationFn | None = None,
        label_scores: Mapping[str, float] | None = None,
    ) -> ProgramOptimizationResult:
        """Run :func:`optimize_program` with this optimizer's settings.

        Raises:
            ConfigurationError: ``aggregation`` or ``label_scores`` given both here and to
                the constructor, with different values; and as :func:`optimize_program`.
        """
        aggregation = _once("aggregation", self.aggregation, aggregation)
        label_scores = _once("label_scores", self.label_scores, label_scores)
        return optimize_program(
            program,
            trainset,
            valset,
            metric=metric,
            scorers=scorers,
            optimizer=self.optimizer,
            auto=self.auto,
            reflection_model=self.reflection_model,
            aggregation=aggregation,
            label_scores=label_scores,
            num_threads=self.num_threads,
            seed=self.seed,
            rate_limit=self.rate_limit,
        )


def _details(output: PromptOptimizerOutput, evaluator: ProgramEvaluator) -> dict[str, Any]:
    details = dict(output.details)
    if evaluator.feedback_missing:  # e.g. records scored before a resume: runs not kept
        details["feedback_missing"] = evaluator.feedback_missing
    return details


def _once(name: str, built: Any, given: Any) -> Any:
    """The setting given to the constructor or to ``optimize`` (refusing two that differ)."""
    if built is not None and given is not None and built != given:
        raise ConfigurationError(
            f"ProgramOptimizer: {name} was given to the constructor and to optimize() with "
            "different values; give it once"
        )
    return given if given is not None else built


def _check_examples(name: str, data: Sequence[Any] | None, *, required: bool) -> list[Any]:
    dspy = load_dspy()
    if data is None or isinstance(data, str | bytes | Mapping) or len(data) == 0:
        if not required and data is not None and not isinstance(data, str | bytes | Mapping):
            raise ConfigurationError(f"{name} is empty; pass None to hold out part of trainset")
        raise ConfigurationError(
            f"{name} must be a non-empty list of dspy.Example, got {_short(data)}"
        )
    examples: list[Any] = list(data)
    for i, example in enumerate(examples):
        if not isinstance(example, dspy.Example):
            fields = _row_fields(example)
            raise ConfigurationError(
                f"{name}[{i}] is a {_type_name(example)}, not a dspy.Example; wrap each "
                f"row: dspy.Example({fields}).with_inputs(<input field names>)"
            )
        if not getattr(example, "_input_keys", None):
            raise ConfigurationError(
                f"{name}[{i}] has no input fields; mark them with .with_inputs(...) "
                f"(its fields: {list(example.keys())})"
            )
    return examples


def _split(
    train: list[Any], val: list[Any] | None, optimizer: BasePromptOptimizer | None, seed: int
) -> tuple[list[Any], list[Any]]:
    """Hold out validation examples here (as GEPA would), so the first one can be checked
    and its result reused by GEPA's first evaluation."""
    if val is not None:
        return train, val
    fraction, split_seed = _DEFAULT_VAL_FRACTION, seed
    if isinstance(optimizer, GepaPromptOptimizer):
        fraction, split_seed = optimizer.val_fraction, optimizer.seed
    ids = [{"position": i} for i in range(len(train))]
    split = split_data(ids, None, val_fraction=fraction, seed=split_seed)
    position = {rid: int(split.records[rid]["position"]) for rid in split.records}
    return (
        [train[position[rid]] for rid in split.train_ids],
        [train[position[rid]] for rid in split.val_ids],
    )


def _run(
    optimizer: BasePromptOptimizer,
    evaluator: ProgramEvaluator,
    train: list[dict[str, Any]],
    val: list[dict[str, Any]],
    instructions: dict[str, str],
) -> PromptOptimizerOutput:
    if getattr(optimizer, "supports_val_data", False):
        run = cast("Callable[..., PromptOptimizerOutput]", optimizer.optimize)
        return run(evaluator, train, dict(instructions), True, val_data=val)
    return optimizer.optimize(evaluator, train + val, dict(instructions), True)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(value: object) -> str:
    return type(value).__name__


def _row_fields(row: object) -> str:
    if isinstance(row, Mapping):
        return ", ".join(f"{k}=..." for k in cast("Mapping[str, Any]", row))
    return "..."
