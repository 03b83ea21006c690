"""How a record and the verdict format are written into a judge's prompt."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from judgealign.core._errors import (
    ConfigurationError,
)
from judgealign.judges._values import ValueSpec

TEMPLATE_VARIABLES = ("inputs", "outputs", "expectations", "trace", "conversation")
"""The record fields a judge's instructions may use, as ``{{ name }}``."""


def field_text(value: Any) -> str | None:
    """A field as the judge writes it out (a string as is, anything else as JSON)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return None


def quote_record(fields: Mapping[str, Any]) -> str:
    """The record as JSON data. ``</`` is escaped so content cannot close the tag.

    Raises:
        ConfigurationError: a field cannot be written as JSON (e.g. a circular dict).
    """
    try:
        text = json.dumps(dict(fields), indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        name = next((k for k, v in fields.items() if not json_ok(v)), "record")
        raise ConfigurationError(
            f"The record's {name} cannot be sent to the model as JSON ({exc}); pass plain "
            "dicts, lists, strings and numbers (no circular references)."
        ) from None
    return text.replace("</", "<\\/")


def json_ok(value: Any, *, strict: bool = False) -> bool:
    try:
        json.dumps(value) if strict else json.dumps(value, default=str)
    except (TypeError, ValueError):
        return False
    return True


def verdict_schema(spec: ValueSpec) -> dict[str, Any]:
    """The JSON schema of a verdict: a rationale, then the result."""
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "description": "Why, in a few sentences."},
            "result": {**spec.json_schema(), "description": "The verdict."},
        },
        "required": ["rationale", "result"],
        "additionalProperties": False,
    }


def output_format(spec: ValueSpec) -> str:
    return (
        "## Output\nReply with only a JSON object with two fields, and nothing else:\n"
        '- "rationale" (string): a short explanation, written before the verdict.\n'
        f'- "result" ({spec.describe()}): the verdict.'
    )
