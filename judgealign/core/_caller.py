"""Pointing a warning at the user's code rather than at judgealign's own frames."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["caller_stacklevel"]


def caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside judgealign."""
    package = Path(__file__).resolve().parents[1]  # judgealign/ and all its subpackages
    frame = sys._getframe(1)  # pyright: ignore[reportPrivateUsage]
    level = 1
    while frame is not None and Path(frame.f_code.co_filename).resolve().is_relative_to(package):
        frame = frame.f_back
        level += 1
    return level
