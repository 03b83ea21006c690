"""A toy two-predictor DSPy program and a rule-based fake LM for it (offline tests).

The program drafts an answer, then writes the final one. The fake LM (a
``FakeOpenAIServer`` reply function) answers each predictor in DSPy's chat format; the
final answer comes in capitals only when the ``answer`` predictor's instructions ask for
"UPPERCASE". The judge wants capitals, so a reflection model that adds that word to the
right predictor's instructions is a real improvement, and to the other one is not.
"""

from __future__ import annotations

import json
import re
from typing import Any

import dspy

from judgealign import make_judge
from judgealign.testing import ChatRequest, FunctionModel, ModelRequest

CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "Peru": "Lima",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Chile": "Santiago",
}


class TwoStep(dspy.Module):
    """Draft, then answer."""

    def __init__(self) -> None:
        super().__init__()
        self.draft = dspy.Predict("question -> draft")
        self.answer = dspy.Predict("question, draft -> answer")

    def forward(self, question: str) -> Any:
        draft = self.draft(question=question).draft
        return self.answer(question=question, draft=draft)


def examples(countries: list[str] | None = None) -> list[Any]:
    names = countries or list(CAPITALS)
    return [
        dspy.Example(question=f"What is the capital of {c}?", answer=CAPITALS[c]).with_inputs(
            "question"
        )
        for c in names
    ]


def _field(text: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\s*(.*?)(?=\[\[ ##|\Z)", text, re.DOTALL)
    return match.group(1).strip() if match else ""


def program_reply(request: ChatRequest) -> str | None:
    """The program's LM: answers DSPy chat-format requests; ``None`` for anything else."""
    system = str(request.messages[0].get("content", ""))
    if "Your output fields are" not in system:
        return None
    user = request.last_user
    question = _field(user, "question")
    country = next((c for c in CAPITALS if c in question), "")
    city = CAPITALS.get(country, "unknown")
    if "`draft`" in system.split("Your output fields are", 1)[1].split("All interactions")[0]:
        return f"[[ ## draft ## ]]\nprobably {city}\n\n[[ ## completed ## ]]"
    objective = system.rsplit("your objective is:", 1)[-1]
    answer = city.upper() if "UPPERCASE" in objective else city
    return f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"


def capitals_judge() -> Any:
    """A judge that wants the capital in capitals (rationale says so)."""

    def verdict(request: ModelRequest) -> dict[str, Any]:
        body = request.last_user.split("<record>", 1)[1].rsplit("</record>", 1)[0]
        answer = str(json.loads(body)["outputs"])
        ok = answer.isupper() and answer.title() in CAPITALS.values()
        why = "correct and in capitals" if ok else f"{answer!r} must be written in UPPERCASE"
        return {"rationale": why, "result": ok}

    return make_judge(
        name="capitals",
        instructions="Is {{ outputs }} the capital asked for in {{ inputs }}, in capitals?",
        model=FunctionModel(verdict),
    )


def reflection_model(seen: list[str] | None = None) -> FunctionModel:
    """Appends "Write the answer in UPPERCASE." to whichever prompt it is asked about."""

    def rewrite(request: ModelRequest) -> str:
        text = str(request.messages[-1]["content"])
        if seen is not None:
            seen.append(text)
        current = text.split("```\n", 1)[1].split("\n```", 1)[0]
        return f"```\n{current} Write the answer in UPPERCASE.\n```"

    return FunctionModel(rewrite)
