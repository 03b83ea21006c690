"""A size cap on each record field a judge sends, so one huge field cannot blow the context.

A field whose text (the string itself, or the JSON of any other value) is longer than the
cap is cut from the middle: its beginning and end are kept around a visible marker that
says how much was cut. Every cut is announced with :func:`warnings.warn` naming the field,
and the judge lists the cut fields in the feedback's ``metadata["truncated_fields"]``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from typing import Any

from judgealign.core._caller import caller_stacklevel
from judgealign.core._errors import ConfigurationError

__all__ = ["DEFAULT_MAX_FIELD_CHARS", "check_max_field_chars", "fit_fields"]

DEFAULT_MAX_FIELD_CHARS = 50_000
"""Characters per record field (about 12,500 tokens); five full fields fit a 128k context."""

_MIN_FIELD_CHARS = 200


def check_max_field_chars(value: object) -> int | None:
    """``value`` if it is ``None`` or an integer of at least 200, else a ConfigurationError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < _MIN_FIELD_CHARS:
        raise ConfigurationError(
            f"max_field_chars={value!r} must be an integer >= {_MIN_FIELD_CHARS} (characters "
            f"per record field), or None to send fields whole; the default is "
            f"{DEFAULT_MAX_FIELD_CHARS}."
        )
    return value


def fit_fields(
    fields: Mapping[str, Any], limit: int | None, *, judge: str, window: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``fields`` with every field longer than ``limit`` cut from the middle, and the names
    of the fields that were cut (each also announced with a warning).

    ``window`` names the model's context window when ``limit`` was sized to fit it (see
    ``judgealign.judges._context_fit``) rather than taken from ``max_field_chars``."""
    fitted = dict(fields)
    if limit is None:
        return fitted, []
    cut: list[str] = []
    for name, value in fields.items():
        text = value if isinstance(value, str) else _json_text(value)
        if text is None or len(text) <= limit:
            continue
        fitted[name], removed = _cut_middle(text, limit, name)
        cut.append(name)
        target = (
            f"the {window} ({limit:,} characters per field)"
            if window
            else f"max_field_chars={limit}"
        )
        fix = (
            "Serve the model with a larger context to send more of it."
            if window
            else "Raise max_field_chars (or pass None) in make_judge to send it whole."
        )
        warnings.warn(
            f"Judge {judge!r}: the record's {name} has {len(text):,} characters; "
            f"{removed:,} were cut from its middle to fit {target}. {fix}",
            UserWarning,
            stacklevel=caller_stacklevel(),
        )
    return fitted, cut


def _json_text(value: Any) -> str | None:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # quote_record reports unserialisable fields
        return None


def _marker(removed: int, name: str) -> str:
    return f"\n[... {removed:,} characters of {name} cut here by judgealign ...]\n"


def _cut_middle(text: str, limit: int, name: str) -> tuple[str, int]:
    """At most ``limit`` characters: head, marker, tail; and how many were removed."""
    keep = max(0, limit - len(_marker(len(text), name)))
    head, tail = keep - keep // 2, keep // 2
    removed = len(text) - keep
    return text[:head] + _marker(removed, name) + text[len(text) - tail :], removed
