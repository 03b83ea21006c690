"""GEPA's reflection step: show the reflection model how one prompt fared, read back a new one.

The prompt asks for a *general* rewrite: it tells the model to diagnose failures from the
scorers' feedback, to keep every template variable, and not to paste example-specific
answers or phrasing into the instruction (the copying and bloat problems reported against
reflective optimizers).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, cast

from judgealign import ConfigurationError, Message
from judgealign.optimize_support import template_variables
from optimizers._base import EvaluationResultRecord

__all__ = [
    "DEFAULT_REFLECTION_PROMPT",
    "REFLECTION_PLACEHOLDERS",
    "build_reflection_messages",
    "check_reflection_prompt",
    "parse_proposal",
]

REFLECTION_PLACEHOLDERS = ("{component_name}", "{current_prompt}", "{variables}", "{examples}")
"""Markers a reflection prompt may use; ``{current_prompt}`` and ``{examples}`` are required.

``{component_name}`` is the prompt's name, ``{variables}`` a sentence naming its template
variables and the rule to keep them, ``{examples}`` the rendered minibatch results."""

DEFAULT_REFLECTION_PROMPT = """\
You are refining one prompt of an AI system. The system's output on each input is scored \
by an automatic evaluator between 0 (bad) and 1 (good), and the evaluator explains its \
scores. Your rewrite of the prompt will be scored on other inputs than the ones below.

The prompt to improve is named "{component_name}". Its current text:

```
{current_prompt}
```

{variables}

Here is how the system did with this prompt on a few inputs: what it received, what it \
produced, the score, what was expected (when known) and the evaluator's feedback.

{examples}

Write an improved version of the prompt.
- Work out why the low-scoring outputs fell short, and what the high-scoring ones did right.
- Turn that into clear, general guidance: the task, the input format, the decision rules, \
the output format, and the domain knowledge the feedback reveals.
- Do not copy example-specific answers, names or phrasing into the prompt; it must work \
on inputs you have not seen.
- Keep what already works, and keep the prompt concise.

Reply with the complete new prompt inside one ``` fenced block, and nothing else inside \
fences."""

_PLACEHOLDER = re.compile(r"\{(component_name|current_prompt|variables|examples)\}")
_FENCED = re.compile(r"```[^\n`]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[^\n`]*\n")
_MAX_FIELD_CHARS = 2_000
_MAX_SPANS = 20


def check_reflection_prompt(template: str) -> str:
    """Return ``template`` if it can serve as a reflection prompt, else raise.

    Raises:
        ConfigurationError: when ``{current_prompt}`` or ``{examples}`` is missing.
    """
    missing = [m for m in ("{current_prompt}", "{examples}") if m not in template]
    if missing:
        raise ConfigurationError(
            f"reflection_prompt is missing {' and '.join(missing)}; a reflection prompt must "
            "show the current prompt and the examples. Available markers: "
            + ", ".join(REFLECTION_PLACEHOLDERS)
        )
    return template


def build_reflection_messages(
    template: str,
    *,
    component_name: str,
    current_prompt: str,
    records: Sequence[EvaluationResultRecord],
) -> list[Message]:
    """The chat messages asking for a better ``current_prompt``, given how it scored.

    Markers are substituted in one pass, so prompt or record text that happens to contain
    a marker is never expanded.
    """
    names = sorted(template_variables(current_prompt))
    values = {
        "component_name": component_name,
        "current_prompt": current_prompt,
        "variables": _variables_rule(names),
        "examples": render_examples(records, component=component_name),
    }
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    return [{"role": "user", "content": text}]


def _variables_rule(names: list[str]) -> str:
    if not names:
        return "It has no template variables; do not add any (nothing in double braces)."
    listed = ", ".join("{{ " + n + " }}" for n in names)
    return (
        f"It uses the template variables {listed}, filled in at run time. A new version must "
        "keep each of them, in double braces, and must not add any other."
    )


def render_examples(
    records: Sequence[EvaluationResultRecord], *, component: str | None = None
) -> str:
    """Markdown blocks for the records: inputs, the steps in between (when the record has
    a trace), output, score, expectations, feedback. ``component`` is the prompt being
    rewritten; its steps are marked."""
    return "\n\n".join(_render_one(i, r, component) for i, r in enumerate(records, start=1))


def _render_one(number: int, record: EvaluationResultRecord, component: str | None) -> str:
    lines = [f"### Example {number}", f"Inputs: {_show(record.inputs)}"]
    lines.extend(_render_trace(record.trace, component))
    lines.append(f"Output: {_show(record.outputs)}")
    lines.append(f"Score: {record.score:.3f}")
    if record.expectations:
        lines.append(f"Expected: {_show(record.expectations)}")
    if record.error:
        lines.append(f"Error: {_clip(record.error)}")
    if record.rationales:
        lines.append("Feedback:")
        for scorer, rationale in sorted(record.rationales.items()):
            score = record.individual_scores.get(scorer)
            shown = f" (score {score:.3f})" if score is not None else ""
            lines.append(f"- {scorer}{shown}: {_clip(rationale)}")
    return "\n".join(lines)


def _render_trace(trace: object, component: str | None) -> list[str]:
    """What happened between the inputs and the output: the prompt steps the evaluator
    recorded, or the spans of an MLflow-style trace (``trace.data.spans``)."""
    if isinstance(trace, list):
        steps = cast("list[Any]", trace)
        lines = ["Steps (the prompts the system filled in, in order, with their values):"]
        for step in steps:
            if isinstance(step, dict):
                entry = cast("dict[str, Any]", step)
                name = str(entry.get("prompt", "?"))
                mark = " <- the prompt to improve" if name == component else ""
                line = f'- prompt "{name}"{mark}: {_show(entry.get("variables", {}))}'
                if "outputs" in entry:  # a DSPy predictor's step also records what it produced
                    line += f"; it produced {_show(entry['outputs'])}"
                lines.append(line)
        return lines if len(lines) > 1 else []
    spans: Any = getattr(getattr(trace, "data", None), "spans", None)
    if not spans:
        return []
    lines = ["Steps (the spans of the trace, in order):"]
    for span in list(spans)[:_MAX_SPANS]:
        name = getattr(span, "name", "?")
        inputs, outputs = getattr(span, "inputs", None), getattr(span, "outputs", None)
        lines.append(f"- {name}: inputs {_show(inputs)}; outputs {_show(outputs)}")
    return lines


def _show(value: Any) -> str:
    if isinstance(value, str):
        return _clip(value)
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return _clip(text)


def _clip(text: str) -> str:
    if len(text) <= _MAX_FIELD_CHARS:
        return text
    return text[:_MAX_FIELD_CHARS] + f"... [{len(text) - _MAX_FIELD_CHARS} more characters]"


def parse_proposal(text: str) -> str:
    """The new prompt in a reflection reply: the last fenced block, else the whole text.

    A language tag on the opening fence is dropped; an opening fence that is never closed
    yields everything after it. Returns ``''`` when the reply holds no text.
    """
    blocks = _FENCED.findall(text)
    if blocks:
        return str(blocks[-1]).strip()
    openings = list(_OPEN_FENCE.finditer(text))
    if openings:
        return text[openings[-1].end() :].strip()
    return text.strip().strip("`").strip()
