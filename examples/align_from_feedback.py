"""Align a judge with expert feedback and compare it with the base judge on held-out records.

By default the script writes a small feedback file of its own (32 answers to "what is the
capital of ...?" questions, labelled by an imaginary geography teacher who rejects answers
that hedge between cities), splits it into train and held-out records, aligns a judge on
the train part with MemAlign (distilled guidelines plus retrieved examples), and prints the
agreement of the base and the aligned judge on the held-out part.

    python examples/align_from_feedback.py
    python examples/align_from_feedback.py --model openai:/gpt-4o-mini
    python examples/align_from_feedback.py --data ../shared/data/defacto/defacto.jsonl \\
        --limit 200 --instructions "Is the summary {{ outputs }} factually consistent \\
        with the document in {{ inputs }}?"

Any JSONL of records with ``id``, ``inputs``, ``outputs``, ``label`` (yes/no) and
``rationale`` works with ``--data``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from judgealign import (
    ChatModel,
    JudgeAlignError,
    MemAlignOptimizer,
    compare_judges,
    load_jsonl,
    make_judge,
    split_records,
)

SAMPLE_FILE = "capital_feedback.jsonl"
SAMPLE_INSTRUCTIONS = (
    "Decide whether {{ outputs }} correctly answers the question in {{ inputs }}. "
    "Answer true if the answer is correct, false otherwise."
)
GENERIC_INSTRUCTIONS = (
    "Decide whether {{ outputs }} is an acceptable response to {{ inputs }}, as the "
    "experts who labelled these records would. Answer true or false."
)
HEDGE = "Hedging between several cities is not an answer, even if one of them is right."

# (country, answer, expert label, expert rationale): written for this example.
SAMPLE = [
    ("Australia", "Canberra.", "yes", "Correct capital, stated plainly."),
    ("Australia", "Sydney.", "no", "Sydney is the largest city; the capital is Canberra."),
    ("Canada", "Ottawa, in Ontario.", "yes", "Correct, and the added detail is accurate."),
    ("Canada", "It's either Toronto or Ottawa.", "no", HEDGE),
    ("Brazil", "Brasília.", "yes", "Correct."),
    (
        "Brazil",
        "Rio de Janeiro was the capital until 1960; today it is Brasília.",
        "yes",
        "Gives the current capital; the historical note is accurate context.",
    ),
    ("Turkey", "Istanbul.", "no", "Istanbul is the largest city; the capital is Ankara."),
    ("Turkey", "Ankara.", "yes", "Correct."),
    (
        "Switzerland",
        "Bern, officially the 'federal city'.",
        "yes",
        "Correct, with an accurate nuance about its official status.",
    ),
    (
        "Switzerland",
        "Zurich or Geneva, probably Zurich.",
        "no",
        "Wrong (it is Bern) and hedged between two cities.",
    ),
    ("Nigeria", "Abuja.", "yes", "Correct."),
    ("Nigeria", "Lagos.", "no", "Lagos was the capital until 1991; it is now Abuja."),
    ("Morocco", "Rabat.", "yes", "Correct."),
    (
        "Morocco",
        "Casablanca, I think.",
        "no",
        "Casablanca is the largest city; Rabat is the "
        "capital. A tentative wrong answer is still wrong.",
    ),
    ("New Zealand", "Wellington.", "yes", "Correct."),
    ("New Zealand", "Auckland or Wellington.", "no", HEDGE),
    ("Vietnam", "Hanoi.", "yes", "Correct."),
    (
        "Vietnam",
        "Ho Chi Minh City.",
        "no",
        "Ho Chi Minh City is the largest city; the capital is Hanoi.",
    ),
    ("Pakistan", "Islamabad.", "yes", "Correct."),
    ("Pakistan", "Karachi or Islamabad, one of the two.", "no", HEDGE),
    (
        "Myanmar",
        "Naypyidaw, which replaced Yangon as the capital in 2006.",
        "yes",
        "Correct, with accurate history.",
    ),
    ("Myanmar", "Yangon.", "no", "Yangon was the capital until 2006; it is Naypyidaw."),
    (
        "South Africa",
        "It has three: Pretoria (executive), Cape Town (legislative) and Bloemfontein (judicial).",
        "yes",
        "This is the precise answer for South Africa, not a hedge: each city has a named role.",
    ),
    ("Kazakhstan", "Astana.", "yes", "Correct."),
    ("Kazakhstan", "Almaty or Astana.", "no", HEDGE),
    (
        "Tanzania",
        "Dodoma is the official capital, though many offices are in Dar es Salaam.",
        "yes",
        "Names the official capital clearly; the remark about offices is accurate.",
    ),
    (
        "Côte d'Ivoire",
        "Abidjan.",
        "no",
        "Abidjan is the economic capital; the official capital is Yamoussoukro.",
    ),
    ("Côte d'Ivoire", "Yamoussoukro.", "yes", "Correct."),
    ("Germany", "Berlin, or maybe Bonn.", "no", HEDGE),
    ("Germany", "Berlin.", "yes", "Correct."),
    ("Japan", "Tokyo.", "yes", "Correct."),
    ("Japan", "Kyoto or Tokyo.", "no", HEDGE),
]


def write_sample(path: Path) -> Path:
    """Write the built-in feedback file and return its path."""
    lines = [
        json.dumps(
            {
                "id": f"capital-{n:02d}",
                "inputs": {"question": f"What is the capital of {country}?"},
                "outputs": answer,
                "label": label,
                "rationale": rationale,
                "annotator": "geography-teacher",
            },
            ensure_ascii=False,
        )
        for n, (country, answer, label, rationale) in enumerate(SAMPLE)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sample_folder(out: Path | None) -> Path:
    """``out`` (created if missing), else a new temporary folder: never the working folder,
    which is often a clone of this repository."""
    if out is None:
        return Path(tempfile.mkdtemp(prefix="judgealign-example-"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        help=f"a JSONL of labelled records (default: write {SAMPLE_FILE} to --out and use it)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the built-in sample file (default: a new temporary folder)",
    )
    parser.add_argument("--limit", type=int, help="use only the first N records of --data")
    parser.add_argument(
        "--instructions", help="the judge's instructions (with {{ inputs }} and {{ outputs }})"
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    parser.add_argument(
        "--reflection-model", help="the model that distills guidelines (default: the judge's model)"
    )
    parser.add_argument(
        "--embedding-model",
        help="an embedder, e.g. hashing or "
        "openai:/text-embedding-3-small (default: the local embedder)",
    )
    parser.add_argument("--retrieval-k", type=int, default=5)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--save", type=Path, help="save the aligned judge to this file")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Align a judge on the train split and print base vs aligned held-out agreement."""
    args = parse_args(argv)
    data = args.data or write_sample(sample_folder(args.out) / SAMPLE_FILE)
    instructions = args.instructions or (
        SAMPLE_INSTRUCTIONS if args.data is None else GENERIC_INSTRUCTIONS
    )
    try:
        judge = make_judge(
            name="expert_agreement", instructions=instructions, model=model or args.model
        )
        records = load_jsonl(data, judge=judge, limit=args.limit)
        train, held_out = split_records(list(records), test_size=args.test_size, seed=args.seed)
        optimizer = MemAlignOptimizer(
            reflection_model=args.reflection_model,
            embedding_model=args.embedding_model,
            retrieval_k=args.retrieval_k,
            max_workers=args.workers,
        )
        aligned = judge.align(train, optimizer=optimizer)
        comparison = compare_judges(judge, aligned, held_out, max_workers=args.workers)
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{len(records)} records from {data} ({len(records.problems)} rejected): "
        f"{len(train)} to align, {len(held_out)} held out; judge model {judge.model_uri}"
    )
    result = aligned.last_alignment
    if result is not None:
        print(result.format())
    print(f"\n{len(aligned.guidelines)} guidelines:")
    for number, guideline in enumerate(aligned.guidelines, start=1):
        print(f"  {number}. {guideline.text}  [from {', '.join(guideline.source_ids)}]")
    print()
    print(comparison.format())
    if args.save is not None:
        print(f"\naligned judge saved to {aligned.save(args.save)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
