"""Prompt optimizers (GEPA, metaprompt) that climb any scorer, an aligned judge included.

``optimize_prompts`` mirrors MLflow's: give it a ``predict_fn`` that loads its prompt with
:func:`load_prompt`, training data, the prompt URIs and an optimizer. A scorer is any
callable taking some of ``inputs``, ``outputs`` and ``expectations`` and returning a bool,
a number, a label or a :class:`judgealign.Feedback`; a judge is one.

Each public name loads its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judgealign.optimize_support import template_variables
    from optimizers._api import (
        PromptOptimizationResult,
        PromptOptimizationWarning,
        optimize_prompts,
    )
    from optimizers._base import (
        BasePromptOptimizer,
        EvalFn,
        EvaluationResultRecord,
        PromptOptimizerOutput,
    )
    from optimizers._scoring import AggregationFn, Evaluator, PredictFn, Scorer, make_eval_fn
    from optimizers.gepa._optimizer import GEPA, GepaPromptOptimizer
    from optimizers.metaprompt._optimizer import IterationRecord, MetaPromptOptimizer
    from optimizers.programs import (
        ProgramOptimizationResult,
        ProgramOptimizer,
        optimize_program,
    )
    from optimizers.prompts._registry import (
        InMemoryPromptStore,
        PromptStore,
        PromptTemplate,
        PromptUsage,
        candidate_prompts,
        get_prompt_store,
        load_prompt,
        register_prompt,
        set_prompt_alias,
        set_prompt_store,
    )

# Each public name and the private module that defines it; imported on first access.
_EXPORTS: dict[str, str] = {
    "PromptOptimizationResult": "optimizers._api",
    "PromptOptimizationWarning": "optimizers._api",
    "optimize_prompts": "optimizers._api",
    "BasePromptOptimizer": "optimizers._base",
    "EvalFn": "optimizers._base",
    "EvaluationResultRecord": "optimizers._base",
    "PromptOptimizerOutput": "optimizers._base",
    "GEPA": "optimizers.gepa._optimizer",
    "GepaPromptOptimizer": "optimizers.gepa._optimizer",
    "IterationRecord": "optimizers.metaprompt._optimizer",
    "MetaPromptOptimizer": "optimizers.metaprompt._optimizer",
    "InMemoryPromptStore": "optimizers.prompts._registry",
    "PromptStore": "optimizers.prompts._registry",
    "PromptTemplate": "optimizers.prompts._registry",
    "PromptUsage": "optimizers.prompts._registry",
    "candidate_prompts": "optimizers.prompts._registry",
    "get_prompt_store": "optimizers.prompts._registry",
    "load_prompt": "optimizers.prompts._registry",
    "register_prompt": "optimizers.prompts._registry",
    "set_prompt_alias": "optimizers.prompts._registry",
    "set_prompt_store": "optimizers.prompts._registry",
    "AggregationFn": "optimizers._scoring",
    "Evaluator": "optimizers._scoring",
    "PredictFn": "optimizers._scoring",
    "Scorer": "optimizers._scoring",
    "make_eval_fn": "optimizers._scoring",
    "template_variables": "judgealign.optimize_support",
    "ProgramOptimizationResult": "optimizers.programs",
    "ProgramOptimizer": "optimizers.programs",
    "optimize_program": "optimizers.programs",
}

__all__ = [
    "AggregationFn",
    "BasePromptOptimizer",
    "EvalFn",
    "EvaluationResultRecord",
    "Evaluator",
    "GEPA",
    "GepaPromptOptimizer",
    "InMemoryPromptStore",
    "IterationRecord",
    "MetaPromptOptimizer",
    "PredictFn",
    "ProgramOptimizationResult",
    "ProgramOptimizer",
    "PromptOptimizationResult",
    "PromptOptimizationWarning",
    "PromptOptimizerOutput",
    "PromptStore",
    "PromptTemplate",
    "PromptUsage",
    "Scorer",
    "candidate_prompts",
    "get_prompt_store",
    "load_prompt",
    "make_eval_fn",
    "optimize_program",
    "optimize_prompts",
    "register_prompt",
    "set_prompt_alias",
    "set_prompt_store",
    "template_variables",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562), then cache the name."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
