"""The score contract every optimizer relies on: a record's score lies in [0, 1].

GEPA treats 1 as perfect (a minibatch of perfect scores is skipped, a validation mean of 1
ends the run) and the metaprompt optimizer stops once every record scores 1. A raw
verdict on another scale, such as a 2 from a 1-to-5 judge, would read as better than
perfect, so a score outside [0, 1] is refused with a :class:`ConfigurationError` that says
how to map it, never clamped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from judgealign import ConfigurationError
from optimizers._base import EvaluationResultRecord

__all__ = ["SCALE_FIX", "check_unit_scores", "outside_unit_range"]

SCALE_FIX = (
    "declare the judge's scale with value_range, e.g. make_judge(..., "
    "feedback_value_type=int, value_range=(1, 5)), so that its verdicts map to [0, 1]; "
    "or pass aggregation= (a function of the per-scorer values) that returns a number in "
    "[0, 1]"
)
"""How to fix a score that is not in [0, 1]; ends every error about the scale."""


def outside_unit_range(value: object) -> bool:
    """Whether ``value`` is a number (not a bool) outside [0, 1]; NaN is not (it is no
    number at all, which callers treat as "not scored")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isnan(value) and not 0.0 <= value <= 1.0


def check_unit_scores(records: Sequence[EvaluationResultRecord], source: str) -> None:
    """Raise when any record's score is a number outside [0, 1].

    Non-numbers and NaN are left to the caller (they mark a record that was not scored).

    Args:
        records: what an ``eval_fn`` returned.
        source: who produced them, for the message (e.g. ``"eval_fn"``).

    Raises:
        ConfigurationError: naming the score and how to put it on [0, 1].
    """
    for record in records:
        if outside_unit_range(record.score):
            raise ConfigurationError(
                f"{source} returned the score {record.score!r}, outside [0, 1]: an "
                f"optimizer would read it as better than perfect. To fix it, {SCALE_FIX}."
            )
