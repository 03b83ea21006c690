"""Quickstart: make a judge and evaluate a few records.

Runs offline on the embedded model by default (``local:/smollm2``, from the ``local``
extra); ``--model`` takes any litellm model URI, e.g. ``openai:/gpt-4o-mini``.

    python examples/quickstart.py
    python examples/quickstart.py --model openai:/gpt-4o-mini
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from judgealign import ChatModel, JudgeAlignError, make_judge

RECORDS = [
    {"inputs": {"question": "What is the capital of France?"}, "outputs": "Paris."},
    {"inputs": {"question": "What is 12 times 12?"}, "outputs": "124"},
    {"inputs": {"question": "Who wrote Hamlet?"}, "outputs": "William Shakespeare wrote it."},
    {
        "inputs": {"question": "What is the boiling point of water at sea level in C?"},
        "outputs": "100 degrees Celsius.",
    },
    {"inputs": {"question": "How many legs does a spider have?"}, "outputs": "Six."},
]

INSTRUCTIONS = (
    "Decide whether {{ outputs }} is a factually correct answer to the question in "
    "{{ inputs }}. Answer true if it is correct, false otherwise."
)


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Build a judge, evaluate the sample records and print one line per verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    args = parser.parse_args(argv)
    try:
        judge = make_judge(name="correctness", instructions=INSTRUCTIONS, model=model or args.model)
        started = time.perf_counter()
        results = judge.evaluate(RECORDS, max_workers=4)
        wall_s = time.perf_counter() - started
    except JudgeAlignError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"judge {judge.name!r} on {judge.model_uri}")
    for record, feedback in zip(RECORDS, results, strict=True):
        verdict = feedback.value if feedback.error is None else f"ERROR {feedback.error}"
        print(f"- {record['inputs']['question']!r} -> {record['outputs']!r}: {verdict}")
        if feedback.rationale:
            print(f"    rationale: {feedback.rationale[:160]}")
    usage = results.usage
    print(
        f"{len(results)} records, {len(results.errors)} errors, {usage.calls} model calls, "
        f"{usage.prompt_tokens}+{usage.completion_tokens} tokens in {wall_s:.1f} s"
    )
    # Calls overlap (four workers), so their latencies add up to more than the wall time;
    # the embedded model runs one call at a time, so its latency includes the wait.
    print(f"mean latency per call {usage.latency_ms / max(usage.calls, 1):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
