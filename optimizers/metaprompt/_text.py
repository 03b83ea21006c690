"""What the metaprompt optimizer tells the reflection model, and how it reads the reply.

The optimizer logic lives in :mod:`optimizers.metaprompt._optimizer`; this module holds the wording
of the system prompt and tasks, renders prompts, scores, history and examples into
message sections, and parses the JSON reply that :func:`answer_block` and
:func:`reply_schema` ask for.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

from judgealign.optimize_support import template_variables
from optimizers._base import EvaluationResultRecord
from optimizers.metaprompt._history import IterationRecord, LabelFn

__all__ = [
    "FOCUS",
    "REVISE_TASK",
    "SYSTEM",
    "ZERO_SHOT_TASK",
    "ReplyProblem",
    "answer_block",
    "context_blocks",
    "examples_block",
    "history_block",
    "parse_reply",
    "prompts_block",
    "repair_request",
    "reply_schema",
    "scores_block",
]

SYSTEM = """\
You are a prompt engineer. You revise the prompt templates of an application so that it \
produces better outputs, as judged by the evaluation described to you.

Work the way you would fix a bug: first find out why the current prompts led to the \
outputs you see, then change the prompts so that those causes go away, without breaking \
what already works.

Rules that always apply:
1. Placeholders in double curly braces, such as {{ question }}, are filled in by the \
application. Keep every placeholder of a template, spelled exactly as given, and add no \
new ones. A template without placeholders must stay without them.
2. Keep the purpose of each prompt and any output format the application relies on, \
unless the evidence shows that the format itself causes the failures.
3. Write general instructions that fix a whole class of failures. Never paste example \
inputs or expected answers into a prompt.
4. Keep each prompt as short as its job allows; drop instructions that do not help.
5. Answer with one JSON object and nothing else."""

ZERO_SHOT_TASK = """\
There is no evaluation data. Find the weaknesses of the templates below and rewrite them \
following these practices:
- say plainly what the task is, who the output is for, and what a good result contains;
- state the output format exactly (structure, length, allowed values);
- mark where inserted values begin and end, so that instructions and data cannot mix;
- say what to do with missing, ambiguous or out-of-scope input;
- list the constraints and the mistakes to avoid;
- ask for step-by-step reasoning only where the task needs it and the output format \
leaves room for it."""

REVISE_TASK = """\
## What to do
1. Diagnose. Compare the outputs with the expectations and the feedback. Which failure \
patterns recur? What do the successful examples have in common (keep it)? Which wording \
in the prompts, or which missing instruction, causes each failure?
2. Revise the prompts to remove those causes. Focus of this attempt: {focus}"""

FOCUS = (
    "the most frequent failure pattern.",
    "instructions that are ambiguous, or that the outputs ignored.",
    "the exact output format and how edge cases must be answered.",
    "plain, concise wording: remove what does not help, sharpen what does.",
    "what the best-scoring examples did right, made explicit for every input.",
    "the checks the model should make before it answers.",
)

_REPAIR = """\
Your reply could not be used: {problem}. Reply again with only this JSON object: \
{{"diagnosis": "...", "prompts": {{{names}}}}}, giving the full text of every prompt."""


class ReplyProblem(ValueError):
    """A reflection reply held no usable prompts."""


# -- sections of the request -----------------------------------------------------------


def prompts_block(prompts: dict[str, str]) -> str:
    """Each template with its placeholders, fenced so that it cannot mix with the rest."""
    parts = ["## Prompt templates"]
    for name, template in prompts.items():
        variables = sorted(template_variables(template))
        shown = ", ".join("{{ " + v + " }}" for v in variables) or "none"
        parts.append(f'### Prompt "{name}" (placeholders: {shown})\n<<<\n{template}\n>>>')
    return "\n\n".join(parts)


def scores_block(
    score: float,
    per_scorer_means: Mapping[str, float],
    records: Sequence[EvaluationResultRecord],
    label_fn: LabelFn,
) -> str:
    """The mean scores, per scorer, and the outcome counts of the records shown."""
    per_scorer = ", ".join(f"{n} {s:.3f}" for n, s in per_scorer_means.items())
    counts: dict[str, int] = {}
    for record in records:
        label = str(label_fn(record))
        counts[label] = counts.get(label, 0) + 1
    outcomes = ", ".join(f"{label} {n}" for label, n in sorted(counts.items()))
    return (
        f"## How the current prompts score\nMean score {score:.3f} (higher is better; "
        f"1.0 is the maximum). Per scorer: {per_scorer or 'n/a'}. "
        f"Outcomes on {len(records)} training records: {outcomes or 'n/a'}."
    )


def history_block(history: Sequence[IterationRecord], limit: int) -> str:
    """The last six attempts, their scores and prompts; empty before the first attempt."""
    attempts = [r for r in history if r.iteration > 0][-6:]
    if not attempts:
        return ""
    lines = ["## Earlier attempts (do not repeat the ones that failed)"]
    for r in attempts:
        score = "not evaluated" if r.score is None else f"score {r.score:.3f}"
        kept = "kept" if r.accepted else "not kept"
        lines.append(f"- Attempt {r.iteration}: {score}, {kept}. {r.note}")
        for name, template in r.prompts.items():
            lines.append(f"  {name}: {_cut(template, limit // 2)}")
    return "\n".join(lines)


def examples_block(
    examples: list[tuple[str, EvaluationResultRecord]], total: int, limit: int
) -> str:
    """Each ``(outcome label, record)``: inputs, output, expectations, feedback, error."""
    lines = [f"## Examples ({len(examples)} of {total}, sampled across outcomes)"]
    for i, (label, r) in enumerate(examples, 1):
        lines += [
            f"\n### Example {i} (outcome: {label}, score {r.score:.3f})",
            f"Inputs: {_cut(r.inputs, limit)}",
            f"Output: {_cut(r.outputs, limit)}",
            f"Expected: {_cut(r.expectations, limit) if r.expectations else 'not given'}",
        ]
        feedback = [
            f"- {name} ({r.individual_scores.get(name, 0.0):.2f}): "
            f"{_cut(text, limit) if text else '(no rationale)'}"
            for name, text in r.rationales.items()
        ]
        lines += ["Feedback:", *feedback] if feedback else []
        if r.error:
            lines.append(f"Error: {_cut(r.error, limit)}")
    return "\n".join(lines)


def context_blocks(guidelines: str | None, target_model: str | None) -> list[str]:
    """The user's requirements and the target model, for the sections that are given."""
    blocks: list[str] = []
    if guidelines:
        blocks.append(f"## Requirements from the user (always respect them)\n{guidelines}")
    if target_model:
        blocks.append(f"## The model that will run these prompts\n{target_model}")
    return blocks


def answer_block(prompts: dict[str, str]) -> str:
    """The JSON object the reply must be, with one entry per prompt name."""
    shape = {
        "diagnosis": "<your analysis in a few sentences>",
        "prompts": {name: "<the complete revised template>" for name in prompts},
    }
    return (
        "## Answer format\nReply with exactly this JSON object, giving the complete text of "
        f"every prompt under the names listed:\n{json.dumps(shape, indent=2)}"
    )


# -- the reply -------------------------------------------------------------------------


def reply_schema(prompts: dict[str, str]) -> dict[str, Any]:
    """The ``response_format`` that constrains the reply to :func:`answer_block`'s shape."""
    names = list(prompts)
    schema = {
        "type": "object",
        "properties": {
            "diagnosis": {"type": "string"},
            "prompts": {
                "type": "object",
                "properties": {name: {"type": "string"} for name in names},
                "required": names,
                "additionalProperties": False,
            },
        },
        "required": ["diagnosis", "prompts"],
        "additionalProperties": False,
    }
    return {
        "type": "json_schema",
        "json_schema": {"name": "prompt_revision", "strict": True, "schema": schema},
    }


def repair_request(problem: ReplyProblem, prompts: dict[str, str]) -> str:
    """Asks again, after a reply that could not be used, for the JSON object alone."""
    names = ", ".join(f'"{n}": "..."' for n in prompts)
    return _REPAIR.format(problem=problem, names=names)


def _json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text``: bare, fenced, or surrounded by prose."""
    decoder = json.JSONDecoder(strict=False)
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return cast("dict[str, Any]", value)
        start = text.find("{", start + 1)
    return None


def parse_reply(text: str, current: dict[str, str]) -> tuple[dict[str, str], str]:
    """``(prompts, diagnosis)`` from a reply; prompts missing from it keep their text."""
    obj = _json_object(text)
    if obj is None:
        raise ReplyProblem("it contains no JSON object")
    nested = obj.get("prompts")
    source = cast("dict[str, Any]", nested) if isinstance(nested, dict) else obj
    found = {
        name: value
        for name, value in source.items()
        if name in current and isinstance(value, str) and value.strip()
    }
    if not found:
        raise ReplyProblem(f'it has no text under "prompts" for {sorted(current)}')
    diagnosis = obj.get("diagnosis")
    return {**current, **found}, diagnosis if isinstance(diagnosis, str) else ""


def _cut(value: object, limit: int) -> str:
    """``value`` as text (JSON unless it is a string), cut to ``limit`` characters."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):  # e.g. a circular structure
            text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"
