"""Wall time of one judge call on the embedded local model (``local:/smollm2``).

Loads SmolLM2 once, then sends 20 judge requests (the judge's real system prompt, a
different record each time, the boolean verdict schema) through
:func:`judgealign.models._local.local_chat_completion` and prints the median and p90 wall time,
the load time, and the machine it ran on.

Run: ``python benchmarks/bench_local_judge.py [--calls N] [--max-tokens N]``
(needs ``judgealign[local]``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judgealign import make_judge
from judgealign.models import _local

QUESTIONS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("What is 2 + 2?", "2 + 2 = 5."),
    ("Who wrote Hamlet?", "William Shakespeare wrote Hamlet."),
    ("What is the boiling point of water at sea level?", "It boils at 50 degrees Celsius."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What gas do plants absorb from the air?", "Plants absorb oxygen and release nitrogen."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet."),
    ("In which year did World War II end?", "World War II ended in 1945."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Ag."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
]

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "Why, in a few sentences."},
        "result": {"type": "boolean", "description": "The verdict."},
    },
    "required": ["rationale", "result"],
    "additionalProperties": False,
}


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or the platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation."""
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def main() -> None:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    if not _local.is_available(_local.SMOLLM2):
        sys.exit(f"The local model is not installed. {_local.INSTALL_COMMAND}")

    judge = make_judge(
        name="correctness",
        instructions=(
            "Decide whether the answer in {{ outputs }} correctly answers the question in "
            "{{ inputs }}. Judge factual accuracy only; ignore style and length."
        ),
        model="local:/smollm2",
    )
    print(f"python {platform.python_version()}, llama-cpp-python {version('llama-cpp-python')}")
    print(f"cpu: {cpu_model()}")
    print(
        f"cores: {os.cpu_count()} (usable {len(os.sched_getaffinity(0))}), "
        f"llama.cpp threads: {_local._n_threads()}, "  # pyright: ignore[reportPrivateUsage]
        f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"model: {_local.resolve_gguf(_local.SMOLLM2)}")
    print(f"load: {_local.load_seconds():.3f} s")

    times: list[float] = []
    cpu_times: list[float] = []
    prompt_tokens: list[int] = []
    completion_tokens: list[int] = []
    verdicts: list[bool] = []
    for i in range(args.calls):
        question, answer = QUESTIONS[i % len(QUESTIONS)]
        record = {"inputs": {"question": question, "attempt": i}, "outputs": answer}
        messages = [dict(m) for m in judge.build_messages(record)]
        started, cpu_started = time.perf_counter(), time.process_time()
        reply = _local.local_chat_completion(
            _local.SMOLLM2, messages, json_schema=VERDICT_SCHEMA, max_tokens=args.max_tokens
        )
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
        verdict = json.loads(reply["choices"][0]["message"]["content"])
        verdicts.append(bool(verdict["result"]))
        prompt_tokens.append(reply["usage"]["prompt_tokens"])
        completion_tokens.append(reply["usage"]["completion_tokens"])

    print(
        f"calls: {len(times)}, max_tokens: {args.max_tokens}, "
        f"prompt tokens (median): {statistics.median(prompt_tokens):.0f}, "
        f"completion tokens (median/max): {statistics.median(completion_tokens):.0f}/"
        f"{max(completion_tokens)}"
    )
    print(
        f"judge call wall time: median {statistics.median(times):.3f} s, "
        f"p90 {percentile(times, 0.9):.3f} s, first {times[0]:.3f} s, "
        f"min {min(times):.3f} s, max {max(times):.3f} s"
    )
    # CPU seconds of this process per call: the work itself, less sensitive than wall time
    # to other load on the machine (llama.cpp runs on this process's threads).
    print(
        f"process CPU per call: median {statistics.median(cpu_times):.3f} s, "
        f"max {max(cpu_times):.3f} s"
    )
    print(
        f"all {len(times)} replies parsed; verdicts true/false: "
        f"{sum(verdicts)}/{len(verdicts) - sum(verdicts)}"
    )
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
