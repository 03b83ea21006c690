"""Optimizing DSPy programs: each predictor's instructions is a component GEPA rewrites.

``optimize_program(program, trainset, valset, metric=judge.as_dspy_metric())`` returns
the optimized copy of the program with its scores before and after. dspy is imported only
when a program is optimized (install ``judgealign[dspy]``).
"""

from __future__ import annotations

from optimizers.programs._optimize import (
    AUTO_PROPOSALS,
    ProgramOptimizationResult,
    ProgramOptimizer,
    auto_budget,
    optimize_program,
)

__all__ = [
    "AUTO_PROPOSALS",
    "ProgramOptimizationResult",
    "ProgramOptimizer",
    "auto_budget",
    "optimize_program",
]
