"""What agreement says when held-out records are in an aligned judge's memory.

Which records those are is decided in :mod:`judgealign.judges._memorised`; this module
words the warning (how many were left out) and the refusal (none left to measure).
"""

from __future__ import annotations

from collections.abc import Sequence

from judgealign.core._errors import ConfigurationError
from judgealign.evaluation._text import SHOWN_IDS

__all__ = ["leak_warning", "refuse_all_leaked"]


def leak_warning(ids: Sequence[str], total: int, where: str) -> str:
    """The warning for ``ids`` left out of ``where`` (one of ``total`` records)."""
    shown = ", ".join(ids[:SHOWN_IDS]) + (", ..." if len(ids) > SHOWN_IDS else "")
    return (
        f"{len(ids)} of {total} held-out records are in the aligned judge's memory (same id "
        f"or same judged content) and were left out of {where}: a stored record retrieves "
        f"itself with the expert's verdict, which would inflate agreement. Ids: {shown}."
    )


def refuse_all_leaked(total: int, where: str) -> ConfigurationError:
    """The error when every one of ``total`` records is in the judge's memory."""
    return ConfigurationError(
        f"All {total} records given to {where} are in the aligned judge's memory (same id or "
        "same judged content), so there is nothing held out to measure. Evaluate on records "
        "that were not used for alignment, e.g. split them first with "
        "judgealign.split_records(records, test_size=0.3)."
    )
