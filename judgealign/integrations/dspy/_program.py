"""A DSPy program seen as prompts: each named predictor's instructions is one component.

What ``optimizers.optimize_program`` needs of a program, kept here so that this package
stays the only one that imports dspy (lazily: only when a program is optimized).
Programs are never changed in place: candidates run on deep copies.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from judgealign.core._errors import ConfigurationError, MissingExtraError

__all__ = [
    "ProgramRun",
    "ProgramSteps",
    "instructions_of",
    "load_dspy",
    "predictors_of",
    "run_program",
    "run_traced",
    "with_instructions",
]

ProgramSteps = list[dict[str, Any]]
"""Per predictor call, in order: ``{"prompt": name, "variables": inputs, "outputs": ...}``."""

_MAX_VALUE_CHARS = 4_000


def load_dspy() -> Any:
    """The ``dspy`` module.

    Raises:
        MissingExtraError: when dspy is not installed.
    """
    try:
        return importlib.import_module("dspy")
    except ImportError as exc:
        raise MissingExtraError("Optimizing a DSPy program", "dspy", "dspy") from exc


def predictors_of(program: object) -> list[tuple[str, Any]]:
    """The program's named predictors, in DSPy's order.

    Raises:
        ConfigurationError: when ``program`` is not a ``dspy.Module`` or has no predictor.
    """
    dspy = load_dspy()
    if not isinstance(program, dspy.Module):
        raise ConfigurationError(
            f"program={program!r:.80} is not a DSPy program; pass a dspy.Module (for example "
            "dspy.ChainOfThought('question -> answer') or your own dspy.Module subclass)"
        )
    module: Any = program
    named: list[tuple[str, Any]] = [(str(n), p) for n, p in module.named_predictors()]
    if not named:
        raise ConfigurationError(
            f"program {type(program).__name__} has no predictors, so it has no instructions "
            "to optimize; give it dspy.Predict / dspy.ChainOfThought attributes (set in "
            "__init__, e.g. self.answer = dspy.Predict('question -> answer'))"
        )
    return named


def instructions_of(program: object) -> dict[str, str]:
    """Predictor name -> its signature's instructions."""
    return {name: str(p.signature.instructions) for name, p in predictors_of(program)}


def with_instructions(program: Any, instructions: Mapping[str, str]) -> Any:
    """A deep copy of ``program`` whose predictors carry ``instructions`` (by name)."""
    copy = program.deepcopy()
    for name, predictor in copy.named_predictors():
        if name in instructions:
            predictor.signature = predictor.signature.with_instructions(instructions[name])
    return copy


@dataclass(frozen=True)
class ProgramRun:
    """One run of a program: its prediction and DSPy's trace of it.

    Attributes:
        prediction: what the program returned.
        trace: DSPy's trace: one ``(predictor, inputs, outputs)`` per predictor call.
        steps: the same calls as plain data (see :data:`ProgramSteps`), values bounded.
        names: each traced predictor's name in the program, by ``id``.
    """

    prediction: Any
    trace: list[Any]
    steps: ProgramSteps
    names: dict[int, str]

    def predictor_trace(self, name: str) -> list[Any]:
        """The trace entries of the predictor called ``name`` (GEPA's ``pred_trace``)."""
        return [entry for entry in self.trace if self.names.get(id(entry[0])) == name]


def run_program(program: Any, inputs: Mapping[str, Any]) -> ProgramRun:
    """Run ``program(**inputs)`` with DSPy's trace on, and keep the trace."""
    dspy = load_dspy()
    names = {id(p): str(n) for n, p in program.named_predictors()}
    with dspy.context(trace=[]):
        prediction = program(**inputs)
        trace: list[Any] = list(dspy.settings.trace or [])
    steps: ProgramSteps = []
    for predictor, step_inputs, step_outputs in trace:
        outputs = step_outputs.toDict() if hasattr(step_outputs, "toDict") else step_outputs
        steps.append(
            {
                "prompt": names.get(id(predictor), type(predictor).__name__),
                "variables": {k: _bounded(v) for k, v in dict(step_inputs).items()},
                "outputs": {k: _bounded(v) for k, v in dict(outputs).items()},
            }
        )
    return ProgramRun(prediction, trace, steps, names)


def run_traced(program: Any, inputs: Mapping[str, Any]) -> tuple[Any, ProgramSteps]:
    """Run ``program(**inputs)`` and return the prediction and each predictor's own inputs
    and outputs (from DSPy's trace), by predictor name."""
    run = run_program(program, inputs)
    return run.prediction, run.steps


def _bounded(value: object) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= _MAX_VALUE_CHARS:
        return text
    return text[:_MAX_VALUE_CHARS] + f"... [{len(text) - _MAX_VALUE_CHARS} more characters]"
