"""A scripted stand-in for every model the ``judgealign demo`` calls, and CLI test helpers.

:func:`demo_model` plays, deterministically and offline:

* a **naive judge**: it rejects replies that are plainly wrong (the ``wrong`` policy of
  the demo data) and accepts every other reply, unless a guideline in its prompt names
  the house rule the reply breaks; then it agrees with the support lead;
* a **reflection model** that distills one guideline per house rule found in the expert
  rationales it is shown (citing those records), and that rewrites the assistant's prompt
  to ask for exact menu paths;
* the **support assistant**: vague replies unless its prompt asks for menu paths.

So alignment fixes exactly the records that break a house rule, and optimization with
the aligned judge improves the prompt, as the demo intends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from judgealign.testing import FunctionModel, ModelRequest

DEMO_DIR = Path(__file__).resolve().parents[1] / "judgealign" / "resources" / "demo"
RULES = {
    "refund-window": "Only promise a refund for charges less than 30 days old; otherwise "
    "explain the 30-day policy.",
    "credentials": "Reject any reply that asks the customer for a password, a card number "
    "or a CVC.",
    "escalation": "Possible data loss or account compromise must be escalated to a "
    "specialist team with a priority ticket.",
    "vague": "Reject replies that give no concrete menu path or step.",
    "tone": "Reject replies that blame or dismiss the customer.",
}
PATH_RULE = "Always give the exact menu path, such as Settings > Security."
VAGUE_REPLY = "You can do that from your account settings."
PATH_REPLY = "Go to Settings > Account and follow the steps there."


def demo_rows() -> list[dict[str, Any]]:
    """The demo's labelled records, as shipped."""
    text = (DEMO_DIR / "support_feedback.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_ROWS = demo_rows()
_BY_OUTPUT = {row["outputs"]: row for row in _ROWS}
_BY_ID = {row["id"]: row for row in _ROWS}


def _schema(request: ModelRequest) -> str:
    fmt = request.response_format
    return fmt["json_schema"]["name"] if fmt else ""


def _shown_records(text: str) -> list[dict[str, Any]]:
    body = text.split("<records>", 1)[1].rsplit("</records>", 1)[0]
    decoder, position, found = json.JSONDecoder(), 0, []
    while (start := body.find("{", position)) != -1:
        obj, position = decoder.raw_decode(body, start)
        found.append(obj)
    return found


def _judged_output(request: ModelRequest) -> str:
    body = request.last_user.split("<record>", 1)[1].rsplit("</record>", 1)[0]
    return str(json.loads(body.replace("<\\/", "</"))["outputs"])


def judge_verdict(request: ModelRequest) -> dict[str, Any]:
    """The naive judge, corrected by the guidelines in its system prompt."""
    output = _judged_output(request)
    row = _BY_OUTPUT.get(output)
    policy = row["policy"] if row else ("none" if ">" in output else "vague")
    knows = policy in ("none", "wrong") or RULES[policy] in request.system
    verdict = (row["label"] == "yes" if row else policy == "none") if knows else True
    return {"rationale": f"checked against {policy}", "result": verdict}


def distill(request: ModelRequest) -> dict[str, Any]:
    """One guideline per house rule among the shown records, citing them."""
    cited: dict[str, list[str]] = {}
    for record in _shown_records(request.last_user):
        row = _BY_ID.get(record["id"]) or _BY_OUTPUT[record["outputs"]]  # ids of traces differ
        policy = row["policy"]
        if policy in RULES:
            cited.setdefault(policy, []).append(record["id"])
    return {"guidelines": [{"text": RULES[p], "source_ids": ids} for p, ids in cited.items()]}


def revise_prompt(request: ModelRequest) -> dict[str, Any]:
    """Add the menu-path rule to every prompt being optimized."""
    assert request.response_format is not None
    names = request.response_format["json_schema"]["schema"]["properties"]["prompts"]["required"]
    template = (
        "You are the support assistant of Nimbus Drive. " + PATH_RULE + "\n\n"
        "Customer message: {{ message }}"
    )
    return {"diagnosis": "Replies name no menu path.", "prompts": dict.fromkeys(names, template)}


def answer(request: ModelRequest) -> str | dict[str, Any]:
    """The demo's every model call."""
    kind = _schema(request)
    if kind == "Verdict":
        return judge_verdict(request)
    if kind == "DistilledGuidelines":
        return distill(request)
    if kind == "ConsolidatedGuidelines":
        return {"guidelines": []}
    if kind == "prompt_revision":
        return revise_prompt(request)
    return PATH_REPLY if "menu path" in request.last_user else VAGUE_REPLY


def demo_model() -> FunctionModel:
    """A fresh scripted model for the demo."""
    return FunctionModel(answer, uri="test:/demo")
