"""B13: peak memory of an executor's Python worker holding an aligned judge of 100,000
stored examples.

The parent builds an aligned judge whose memory holds N short records with 384-dimension
float32 vectors (random unit vectors: the vectors' content does not change their size)
and writes what ``evaluate_spark`` broadcasts: its saved definition (``payload_of``).
Then, for the aligned judge and for the plain judge it was built from, a fresh process
runs the executor's code path (``judgealign.integrations.spark._worker.judge_batches``,
which rebuilds the judge from the payload and judges a batch of 8 rows, retrieval
included, against the fake server) and reports its peak RSS (``VmHWM``). The
difference is what the memory costs a worker; Spark's own worker process adds the same
to both.

Run: ``python benchmarks/bench_b13_worker_memory.py --examples 100000``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ServerProcess, apply_env, emit

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
DIMENSION = 384


def build_payloads(examples: int, base_url: str, folder: Path) -> dict[str, Any]:
    import numpy as np

    from judgealign import (
        AlignedJudge,
        HashingEmbedder,
        LabeledRecord,
        MemAlignOptimizer,
        make_judge,
    )
    from judgealign.integrations.spark._worker import payload_of
    from judgealign.memalign._memory import MemoryState, StoredRecord

    judge = make_judge(
        name="correct", instructions=INSTRUCTIONS, model="openai:/fake", base_url=base_url
    )
    embedder = HashingEmbedder(DIMENSION)
    optimizer = MemAlignOptimizer(embedding_model=embedder, retrieval_k=5)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((examples, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    stored = [
        StoredRecord(
            LabeledRecord(
                id=f"r{i}",
                inputs=f"What is {i} + {i}?",
                outputs=f"The sum is {2 * i}.",
                label=i % 2 == 0,
                rationale=f"The expert checked the sum of record {i}.",
            ),
            vectors[i],
        )
        for i in range(examples)
    ]
    state = MemoryState().with_records(stored, embedder.id)
    aligned = AlignedJudge(judge, optimizer=optimizer, state=state)
    sizes = {}
    for name, which in (("aligned", aligned), ("plain", judge)):
        payload, key = payload_of(which)
        (folder / f"{name}.bin").write_bytes(payload)
        (folder / f"{name}.key").write_text(key)
        sizes[name] = len(payload)
    return {"payload_bytes": sizes}


def child(folder: Path, name: str) -> None:
    """The executor's code path in a fresh process; prints peak RSS in MiB."""
    from judgealign.integrations.spark._worker import TaskSettings, judge_batches

    payload = (folder / f"{name}.bin").read_bytes()
    key = (folder / f"{name}.key").read_text()
    settings = TaskSettings(
        judge_key=key,
        run_id=f"b13-{name}-{time.time_ns()}",
        variables=("inputs", "outputs"),
        concurrency=8,
        requests_per_minute=None,
        tokens_per_minute=None,
        cache_dir=str(folder / "cache"),
    )
    rows = [
        (json.dumps({"v": f"What is {i} + 1?"}), json.dumps({"v": f"It is {i + 1}."}))
        for i in range(8)
    ]
    start = time.perf_counter()
    batches = [list(column) for column in zip(*rows, strict=True)]
    (result,) = list(judge_batches(payload, settings, iter([batches])))
    wall = time.perf_counter() - start
    errors = sum(1 for e in result["error"] if e is not None)
    print(json.dumps({"peak_mib": _peak_rss_mib(), "errors": errors, "wall_s": wall}))


def _peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``). Not ``ru_maxrss``: Linux carries the
    parent's peak into a child across fork and exec, which would report the parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "NAME"))
    args = parser.parse_args()
    apply_env()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return
    folder = Path(tempfile.mkdtemp(prefix="b13-"))
    with ServerProcess(0.0) as server:
        out = build_payloads(args.examples, server.base_url, folder)
        for name in ("plain", "aligned"):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(folder), name],
                capture_output=True,
                text=True,
                check=True,
            )
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    out.update(examples=args.examples, dimension=DIMENSION)
    emit(out)


if __name__ == "__main__":
    main()
