"""Prompt optimizers (GEPA, metaprompt) that climb any scorer, an aligned judge included.

``optimize_prompts`` mirrors MLflow's: give it a ``predict_fn`` that loads its prompt with
:func:`load_prompt`, training data, the prompt URIs and an optimizer. A scorer is any
callable taking some of ``inputs``, ``outputs`` and ``expectations`` and returning a bool,
a number, a label or a :class:`judgealign.Feedback`; a judge is one.
"""

from __future__ import annotations

from optimizers._api import PromptOptimizationResult, PromptOptimizationWarning, optimize_prompts
from optimizers._base import (
    BasePromptOptimizer,
    EvalFn,
    EvaluationResultRecord,
    PromptOptimizerOutput,
)
from optimizers._gepa import GEPA, GepaPromptOptimizer
from optimizers._metaprompt import IterationRecord, MetaPromptOptimizer
from optimizers._prompts import (
    InMemoryPromptStore,
    PromptStore,
    PromptTemplate,
    PromptUsage,
    candidate_prompts,
    get_prompt_store,
    load_prompt,
    register_prompt,
    set_prompt_store,
)
from optimizers._scoring import AggregationFn, Evaluator, PredictFn, Scorer, make_eval_fn
from optimizers._templates import template_variables

__all__ = [
    "GEPA",
    "AggregationFn",
    "BasePromptOptimizer",
    "EvalFn",
    "EvaluationResultRecord",
    "Evaluator",
    "GepaPromptOptimizer",
    "InMemoryPromptStore",
    "IterationRecord",
    "MetaPromptOptimizer",
    "PredictFn",
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
    "optimize_prompts",
    "register_prompt",
    "set_prompt_store",
    "template_variables",
]
