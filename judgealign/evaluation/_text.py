"""Plain text and JSON for the agreement reports: numbers, intervals, id lists, tables."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

from judgealign.judges._labels import Weighting

__all__ = [
    "SHOWN_IDS",
    "id_line",
    "indent",
    "interval_text",
    "json_ready",
    "kappa_name",
    "number_text",
    "signed",
    "table",
]

SHOWN_IDS = 10
"""How many ids a report lists before it says how many more there are."""


def json_ready(value: Any) -> Any:
    """``value`` with every ``nan`` float, however deeply nested, replaced by ``None``."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in cast("dict[str, Any]", value).items()}
    if isinstance(value, list):
        return [json_ready(v) for v in cast("list[Any]", value)]
    return value


def kappa_name(weighting: Weighting) -> str:
    """How the report names the kappa of this weighting."""
    return "quadratic-weighted" if weighting == "quadratic" else "unweighted"


def number_text(value: float) -> str:
    """Three decimals, or ``n/a`` for ``nan``."""
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def interval_text(value: float, interval: tuple[float, float]) -> str:
    """The value followed by its interval in brackets, when the interval is defined."""
    if math.isnan(interval[0]):
        return number_text(value)
    return f"{number_text(value)} [{interval[0]:.3f}, {interval[1]:.3f}]"


def signed(value: float) -> str:
    """Three decimals with a sign, or ``n/a`` for ``nan``."""
    return "n/a" if math.isnan(value) else f"{value:+.3f}"


def id_line(title: str, ids: Sequence[str]) -> str:
    """``title (count): id, id, ...``, listing at most :data:`SHOWN_IDS` ids."""
    if not ids:
        return f"{title} (0): none"
    shown = ", ".join(ids[:SHOWN_IDS])
    more = f", ... ({len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
    return f"{title} ({len(ids)}): {shown}{more}"


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def indent(lines: list[str]) -> list[str]:
    """The lines, each indented by two spaces."""
    return ["  " + line for line in lines]
