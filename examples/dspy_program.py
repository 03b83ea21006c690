"""Optimize a two-predictor DSPy program with an aligned judge as the metric.

1. **Program.** ``Explainer`` is a DSPy program with two predictors: ``outline`` lists the
   key points of a security term, ``explain`` turns them into an explanation for a
   colleague who is not technical.
2. **Metric.** A ``Literal["excellent", "fair", "poor"]`` judge with ``label_scores``
   (excellent = 1, fair = 0.5, poor = 0) is aligned with an IT trainer's ratings (written
   for this example): correct but jargon-heavy explanations without an everyday example
   are only *fair*. ``aligned.as_dspy_metric()`` makes it a DSPy metric whose feedback is
   the judge's rationale.
3. **Optimization.** ``optimize_program`` runs judgealign's GEPA: each predictor's
   instructions is one component, rewritten by a reflection model that sees that
   predictor's own inputs and outputs and the judge's rationale. The original program is
   untouched; ``result.optimized_program`` is an optimized copy.

Models. ``--model`` (default ``$JUDGEALIGN_MODEL``, else the local ``local:/smollm2``) is
the judge and the reflection model. The program's own LM is ``--program-model`` (any
model name ``dspy.LM`` accepts, e.g. ``openai/gpt-4o-mini``); by default it is a small
offline stand-in: a ``judgealign.testing.FakeOpenAIServer`` on 127.0.0.1 whose replies
follow rules (an everyday example only when the ``explain`` instructions ask for one), so
that the example runs anywhere, with no key and no network. Needs ``judgealign[dspy]``.

    python examples/dspy_program.py
    python examples/dspy_program.py --model openai:/gpt-4o-mini --program-model openai/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import dspy

from judgealign import (
    ChatModel,
    JudgeAlignError,
    MemAlignOptimizer,
    make_judge,
    resolve_model,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer
from optimizers import GepaPromptOptimizer, optimize_program

Rating = Literal["excellent", "fair", "poor"]
LABEL_SCORES = {"excellent": 1.0, "fair": 0.5, "poor": 0.0}
INSTRUCTIONS = (
    "Rate how well {{ outputs }} explains the term in {{ inputs }} to a colleague who is "
    "not technical: excellent, fair or poor."
)
GOOD = "Correct, plain words and an everyday example: exactly what a new colleague needs."
JARGON = "Correct, but jargon and no everyday example; a newcomer would not follow it."
WRONG = "Factually wrong; it would mislead a colleague."

# (term, explanation, the trainer's rating, the trainer's rationale)
RATINGS: list[tuple[str, str, Rating, str]] = [
    ("backup", "A second copy of your files kept elsewhere. For example, your photos on an "
     "external drive, so a broken laptop loses nothing.", "excellent", GOOD),
    ("backup", "A redundant copy of data on separate media enabling restoration.", "fair",
     JARGON),
    ("backup", "When the computer goes back to an old version by itself.", "poor", WRONG),
    ("phishing", "A fake message pretending to be someone you trust, to get your password. "
     "For example, an email 'from IT' asking you to confirm it.", "excellent", GOOD),
    ("phishing", "A social-engineering vector using fraudulent communications to harvest "
     "credentials.", "fair", JARGON),
    ("phishing", "A virus that spreads through Wi-Fi.", "poor", WRONG),
    ("VPN", "A private tunnel from your laptop to the office network. For example, you "
     "connect it at home before opening the internal wiki.", "excellent", GOOD),
    ("VPN", "An encrypted tunnel to a remote network gateway.", "fair", JARGON),
]  # fmt: skip

TERMS = ["firewall", "malware", "encryption", "password manager", "cookie", "spam"]
"""Terms the program explains: the first four train, the last two validate."""


class Explainer(dspy.Module):
    """Outline the key points of a term, then explain it from them."""

    def __init__(self) -> None:
        super().__init__()
        self.outline = dspy.Predict("term -> key_points")
        self.explain = dspy.Predict("term, key_points -> explanation")

    def forward(self, term: str) -> Any:
        key_points = self.outline(term=term).key_points
        return self.explain(term=term, key_points=key_points)


def sme_records() -> list[dict[str, Any]]:
    """The trainer's ratings as labelled records."""
    return [
        {"inputs": {"term": t}, "outputs": text, "label": rating, "rationale": why}
        for t, text, rating, why in RATINGS
    ]


def stand_in_reply(request: ChatRequest) -> str | None:
    """The offline program LM: DSPy chat-format replies that follow simple rules."""
    system = str(request.messages[0].get("content", ""))
    term = _field(request.last_user, "term") or "it"
    if "`explanation`" not in system:  # the outline predictor
        points = f"{term}: what it is, why it matters"
        return f"[[ ## key_points ## ]]\n{points}\n\n[[ ## completed ## ]]"
    objective = system.rsplit("your objective is:", 1)[-1].lower()
    text = f"{term.capitalize()} is a security mechanism governed by technical controls."
    if "example" in objective:
        text = (
            f"{term.capitalize()} keeps your work safe. For example, it stops a stranger "
            "reading your files."
        )
    return f"[[ ## explanation ## ]]\n{text}\n\n[[ ## completed ## ]]"


def _field(text: str, name: str) -> str:
    match = re.search(rf"\[\[ ## {name} ## \]\]\s*(.*?)(?=\[\[ ##|\Z)", text, re.DOTALL)
    return match.group(1).strip() if match else ""


@contextmanager
def program_lm(name: str | None) -> Iterator[Any]:
    """``dspy.LM`` for the program: the named model, else the offline stand-in."""
    if name:
        yield dspy.LM(name, cache=False)
        return
    with FakeOpenAIServer(reply=stand_in_reply) as server:
        yield dspy.LM("openai/stand-in", api_base=server.base_url, api_key="none", cache=False)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="judge and reflection model (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    parser.add_argument("--program-model", help="dspy.LM model name (default: offline stand-in)")
    parser.add_argument("--embedding-model", help="e.g. hashing (default: the local embedder)")
    parser.add_argument("--budget", type=int, default=40, help="GEPA max_metric_calls")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Align the rating judge, then optimize the program with it as the metric."""
    args = parse_args(argv)
    try:
        chat = model or resolve_model(args.model, params={"max_tokens": 300})
        judge = make_judge(
            name="explanation_quality",
            instructions=INSTRUCTIONS,
            model=chat,
            feedback_value_type=Rating,
            label_scores=LABEL_SCORES,
        )
        aligner = MemAlignOptimizer(embedding_model=args.embedding_model, retrieval_k=3)
        aligned = judge.align(sme_records(), optimizer=aligner)
        data = [dspy.Example(term=t).with_inputs("term") for t in TERMS]
        program = Explainer()
        with program_lm(args.program_model) as lm, dspy.context(lm=lm):
            result = optimize_program(
                program,
                data[:4],
                data[4:],
                metric=aligned.as_dspy_metric(),
                optimizer=GepaPromptOptimizer(chat, max_metric_calls=args.budget),
            )
            sample = result.optimized_program(term="firewall").explanation
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Judge aligned on {len(RATINGS)} ratings: {len(aligned.guidelines)} guidelines")
    print(
        f"Validation score (excellent = 1, fair = 0.5, poor = 0): "
        f"{result.initial_score:.2f} -> {result.final_score:.2f} "
        f"in {result.metric_calls} metric calls (budget {result.max_metric_calls})"
    )
    for name in result.instructions_before:
        mark = " (changed)" if name in result.changed_predictors else ""
        print(f"[{name}]{mark}\n  before: {result.instructions_before[name]}")
        print(f"  after:  {result.instructions_after[name]}")
    print(f"The optimized program on 'firewall': {sample}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
