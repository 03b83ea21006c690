"""Plug your own prompt optimizer into ``optimize_prompts``.

An optimizer is a ``BasePromptOptimizer`` subclass with one method,
``optimize(eval_fn, train_data, target_prompts, enable_tracking)``. ``eval_fn`` scores
candidate templates (prompt name -> text) on records and returns one
``EvaluationResultRecord`` per record (score in [0, 1], the judge's rationale, errors).
``optimize_prompts`` does the rest: it checks the data and ``predict_fn`` before any
spend, rejects candidates that drop a ``{{ variable }}``, and registers a new prompt
version only if the result scores better than the original.

The optimizer below needs no reflection model: it greedily appends instructions from a
list you give it, keeping each one only if the judge's score goes up. The judge checks
that the assistant's answer about a coffee machine is short and gives concrete steps.

    python examples/custom_optimizer.py
    python examples/custom_optimizer.py --model openai:/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from judgealign import ChatModel, JudgeAlignError, make_judge, resolve_model
from optimizers import (
    BasePromptOptimizer,
    EvalFn,
    PromptOptimizerOutput,
    load_prompt,
    optimize_prompts,
    register_prompt,
)

PROMPT = (
    "You answer questions about the Brewmaster 3000 coffee machine.\n\nQuestion: {{ question }}"
)
QUESTIONS = [
    "How do I descale the machine?",
    "The coffee tastes bitter. What should I change?",
    "How do I clean the milk frother?",
    "The machine shows a red light. What does it mean?",
]
INSTRUCTIONS = [
    "Be friendly.",
    "Answer in at most three numbered steps.",
    "Mention where the setting is on the machine.",
]
JUDGE_INSTRUCTIONS = (
    "Decide whether {{ outputs }} answers the question in {{ inputs }} with concrete, "
    "numbered steps and no more than about 60 words. Answer true or false."
)


@dataclass(frozen=True)
class Attempt:
    """One scored candidate."""

    iteration: int
    added: str | None
    score: float
    accepted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "added": self.added,
            "score": self.score,
            "accepted": self.accepted,
        }


class InstructionSearch(BasePromptOptimizer):
    """Greedy search: append the instruction that raises the mean score most, repeat.

    Args:
        instructions: sentences to try appending to the first paragraph of each prompt.
        max_rounds: how many instructions may be added at most.
    """

    def __init__(self, instructions: Sequence[str], *, max_rounds: int = 2) -> None:
        self.instructions = list(instructions)
        self.max_rounds = max_rounds

    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
    ) -> PromptOptimizerOutput:
        def score(prompts: dict[str, str]) -> float:
            results = eval_fn(prompts, list(train_data))
            return sum(r.score for r in results) / len(results)

        best, best_score = dict(target_prompts), score(target_prompts)
        history = [Attempt(0, None, best_score, True)]
        initial, unused = best_score, list(self.instructions)
        for iteration in range(1, self.max_rounds + 1):
            scored = [(score(_with(best, text)), text) for text in unused]
            top_score, top_text = max(scored, default=(best_score, ""))
            better = top_score > best_score
            for value, text in scored:
                history.append(Attempt(iteration, text, value, better and text == top_text))
            if not better:
                break  # no instruction helps any more
            best, best_score = _with(best, top_text), top_score
            unused.remove(top_text)
        return PromptOptimizerOutput(
            optimized_prompts=best,
            initial_eval_score=initial,
            final_eval_score=best_score,
            details={"history": [a.to_dict() for a in history]},
        )


def _with(prompts: dict[str, str], instruction: str) -> dict[str, str]:
    """Each prompt with ``instruction`` added to its first paragraph."""
    changed = {}
    for name, text in prompts.items():
        head, sep, rest = text.partition("\n\n")
        changed[name] = f"{head} {instruction}{sep}{rest}"
    return changed


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Optimize the coffee-machine prompt with ``InstructionSearch`` and print the result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI for the assistant and the judge",
    )
    args = parser.parse_args(argv)
    try:
        chat = model or resolve_model(args.model, params={"max_tokens": 160})
        judge = make_judge(name="concise_steps", instructions=JUDGE_INSTRUCTIONS, model=chat)
        prompt = register_prompt("coffee_support", PROMPT)

        def predict_fn(question: str) -> str:
            text = load_prompt(prompt.uri).format(question=question)
            return chat.complete([{"role": "user", "content": text}]).text

        result = optimize_prompts(
            predict_fn=predict_fn,
            train_data=[{"inputs": {"question": q}} for q in QUESTIONS],
            prompt_uris=[prompt.uri],
            optimizer=InstructionSearch(INSTRUCTIONS),
            scorers=[judge],
        )
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{result.optimizer_name}: {result.initial_eval_score:.2f} -> {result.final_eval_score:.2f}"
    )
    for attempt in result.history:
        added = attempt["added"] or "(original prompt)"
        kept = "kept" if attempt["accepted"] and attempt["added"] else "    "
        print(f"  round {attempt['iteration']}: {attempt['score']:.2f} {kept} {added}")
    final = result.optimized_prompts[0]
    print(f"\n{final.uri} ({'new version' if result.improved else 'unchanged'}):\n{final.template}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
