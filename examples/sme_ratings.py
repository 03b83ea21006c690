"""Use subject-matter experts' ratings (excellent / fair / poor) as the metric of a prompt.

1. A ``Literal["excellent", "fair", "poor"]`` judge, with ``label_scores`` saying what
   each rating is worth as an objective (1, 0.5, 0).
2. The judge is aligned with an IT trainer's ratings of explanations of security terms
   written for non-technical colleagues (24 ratings with rationales, written for this
   example): the trainer rates correct but jargon-heavy explanations without an everyday
   example as merely *fair*, and wrong or condescending ones as *poor*.
3. Base and aligned judge are compared on held-out ratings (kappa is quadratic-weighted:
   the ratings are ordered, so calling an excellent answer fair is a smaller miss than
   calling it poor).
4. The aligned judge becomes the objective of ``optimize_prompts``: the prompt that
   explains a term is rewritten until the judge, that is the trainer's taste, rates its
   explanations higher.

    python examples/sme_ratings.py
    python examples/sme_ratings.py --model openai:/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

from judgealign import (
    ChatModel,
    JudgeAlignError,
    MemAlignOptimizer,
    compare_judges,
    load_records,
    make_judge,
    resolve_model,
    split_records,
)
from optimizers import MetaPromptOptimizer, load_prompt, optimize_prompts, register_prompt

Rating = Literal["excellent", "fair", "poor"]
LABEL_SCORES = {"excellent": 1.0, "fair": 0.5, "poor": 0.0}
INSTRUCTIONS = (
    "Rate how well {{ outputs }} explains the term in {{ inputs }} to a colleague who is "
    "not technical: excellent, fair or poor."
)
PROMPT = "Explain the term {{ term }} to a colleague who is not technical, in two sentences."
TERMS_TO_EXPLAIN = ["cookie", "firewall", "spam", "cloud storage"]

GOOD = "Correct, plain words and an everyday example: exactly what a new colleague needs."
JARGON = (
    "Correct, but full of jargon and without an everyday example; a newcomer would not follow it."
)
WRONG = "Factually wrong; it would mislead a colleague."
RUDE = "Wrong and condescending; never talk down to a colleague."

# (term, explanation, trainer's rating, trainer's rationale)
RATINGS: list[tuple[str, str, Rating, str]] = [
    ("backup", "A backup is a second copy of your files kept somewhere else, so you can get "
     "them back if your laptop breaks. For example, a copy of your photos on an external "
     "drive.", "excellent", GOOD),
    ("backup", "A backup is a redundant copy of data stored on separate media to enable "
     "restoration after data loss.", "fair", JARGON),
    ("backup", "A backup is when your computer goes back to an earlier version by itself.",
     "poor", WRONG),
    ("two-factor authentication", "Signing in needs two things: your password and a code "
     "from your phone. For example, after your password you type the six digits your phone "
     "shows, so a stolen password alone is not enough.", "excellent", GOOD),
    ("two-factor authentication", "2FA adds a second authentication factor, such as a TOTP "
     "token, to the password-based login flow.", "fair", JARGON),
    ("two-factor authentication", "It's just a second password; honestly, everyone should "
     "know this already.", "poor", RUDE),
    ("phishing", "Phishing is a fake message that pretends to come from someone you trust, "
     "to trick you into giving a password. For example, an email 'from IT' asking you to "
     "confirm your password.", "excellent", GOOD),
    ("phishing", "Phishing is a social-engineering attack vector using fraudulent "
     "communications to harvest credentials.", "fair", JARGON),
    ("phishing", "Phishing is a type of virus that spreads through Wi-Fi.", "poor", WRONG),
    ("VPN", "A VPN is a private tunnel between your laptop and the office network, so you "
     "can reach office systems safely from home. For example, you connect it before opening "
     "the internal wiki.", "excellent", GOOD),
    ("VPN", "A VPN establishes an encrypted tunnel to a remote network gateway.", "fair",
     JARGON),
    ("VPN", "A VPN makes you completely anonymous online, so you can do whatever you want.",
     "poor", WRONG),
    ("encryption", "Encryption scrambles information so only someone with the right key can "
     "read it. For example, a thief who steals an encrypted laptop sees gibberish.",
     "excellent", GOOD),
    ("encryption", "Encryption transforms plaintext into ciphertext using a cryptographic "
     "algorithm and a key.", "fair", JARGON),
    ("encryption", "Encryption is compressing files so they take less space.", "poor", WRONG),
    ("password manager", "An app that remembers a different strong password for every site, "
     "so you only remember one. For example, it fills in your login for the expense tool.",
     "excellent", GOOD),
    ("password manager", "A secure vault application for credential storage and autofill.",
     "fair", JARGON),
    ("password manager", "It's a notebook for your passwords; if you can't manage that, "
     "that's on you.", "poor", RUDE),
    ("software update", "A new version of a program that fixes problems, often security "
     "holes. For example, the update your laptop asks for on Friday closes a gap attackers "
     "could use.", "excellent", GOOD),
    ("software update", "Updates deliver patches addressing vulnerabilities and defects in "
     "installed software.", "fair", JARGON),
    ("software update", "Updates only change how apps look, so you can skip them.", "poor",
     WRONG),
    ("malware", "Software made to harm your computer or steal from you. For example, a fake "
     "invoice attachment that locks your files until you pay.", "excellent", GOOD),
    ("malware", "Malicious code, including trojans, worms and ransomware, that compromises "
     "system integrity.", "fair", JARGON),
    ("malware", "Malware only affects Windows, so Mac users never need to worry.", "poor",
     WRONG),
]  # fmt: skip


def sme_records() -> list[dict[str, Any]]:
    """The trainer's ratings as labelled records."""
    return [
        {
            "id": f"rating-{n:02d}",
            "inputs": {"term": term},
            "outputs": text,
            "label": rating,
            "rationale": why,
            "annotator": "it-trainer",
        }
        for n, (term, text, rating, why) in enumerate(RATINGS, start=1)
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    parser.add_argument("--embedding-model", help="e.g. hashing (default: the local embedder)")
    parser.add_argument("--test-size", type=float, default=1 / 3)
    parser.add_argument("--iterations", type=int, default=2, help="prompt optimization rounds")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Align a rating judge with the trainer, then optimize a prompt against it."""
    args = parse_args(argv)
    local = model is None and str(args.model).startswith("local")
    try:
        chat = model or resolve_model(args.model, params={"max_tokens": 200})
        judge = make_judge(
            name="explanation_quality",
            instructions=INSTRUCTIONS,
            model=chat,
            feedback_value_type=Rating,
            label_scores=LABEL_SCORES,
        )
        records = load_records(sme_records(), judge=judge, strict=True)
        train, held_out = split_records(list(records), test_size=args.test_size, seed=args.seed)
        optimizer = MemAlignOptimizer(
            embedding_model=args.embedding_model,
            retrieval_k=3,
            batch_token_budget=2500 if local else 16_000,  # the local model reads 4k tokens
        )
        aligned = judge.align(train, optimizer=optimizer)
        comparison = compare_judges(judge, aligned, held_out, ordinal=True)
        result = optimize_against(aligned, chat, iterations=args.iterations)
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(records)} ratings: {len(train)} to align on, {len(held_out)} held out")
    print(f"Guidelines learned from the trainer ({len(aligned.guidelines)}):")
    for number, guideline in enumerate(aligned.guidelines, start=1):
        print(f"  {number}. {guideline.text}")
    print()
    print(comparison.format())
    print(
        f"\nPrompt score with the aligned judge (excellent = 1, fair = 0.5, poor = 0): "
        f"{result.initial_eval_score:.2f} -> {result.final_eval_score:.2f}"
        f" ({'improved' if result.improved else 'unchanged'})"
    )
    print(result.optimized_prompts[0].template)
    return 0


def optimize_against(judge: Any, chat: ChatModel, *, iterations: int) -> Any:
    """Rewrite the explaining prompt so that ``judge`` rates its explanations higher."""
    prompt = register_prompt("explain_term", PROMPT)

    def predict_fn(term: str) -> str:
        text = load_prompt(prompt.uri).format(term=term)
        return chat.complete([{"role": "user", "content": text}]).text

    return optimize_prompts(
        predict_fn=predict_fn,
        train_data=[{"inputs": {"term": term}} for term in TERMS_TO_EXPLAIN],
        prompt_uris=[prompt.uri],
        optimizer=MetaPromptOptimizer(chat, max_iterations=iterations, num_examples=4),
        scorers=[judge],
    )


if __name__ == "__main__":
    raise SystemExit(main())
