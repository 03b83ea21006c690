"""Run every benchmark (B1-B13) and rewrite ``benchmarks/RESULTS.md``.

Each benchmark runs in its own processes (see the ``bench_*.py`` docstrings for what is
measured and how); this script collects their results, computes medians and ratios, and
writes the table. Raw results go to ``benchmarks/results.json``.

Run (from the repository root, in an environment with judgealign's dependencies plus
``dspy`` and ``gepa`` for the MLflow peers):

    python benchmarks/run_all.py            # everything, about 20 minutes on 2 cores
    python benchmarks/run_all.py --only B1,B5

B7 runs ``benchmarks/bench_local_judge.py`` with the first interpreter that can import
``llama_cpp``: this one, ``$JUDGEALIGN_LOCAL_PYTHON``, or ``/work/scratch_local/venv``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BENCH, ROOT, bench_env, machine, now

RUNS = {
    "B1": 5,
    "B2": 3,
    "B2_peer": 1,
    "B3": 3,
    "B3_peer": 3,
    "B5": 7,
    "B6": 3,
    "B6_peer": 2,
    "B9": 3,
    "B11": 3,
    "B11_peer": 2,
}
# B8 embeds every candidate view with the real MiniLM: about 5 texts/s on 2 loaded cores.
B8_SAMPLE = {"defacto": 800, "queries": 150}


def run(script: str, *args: str, python: str | None = None, timeout: float = 1800) -> dict:
    """Run one benchmark process and return the JSON it emitted."""
    command = [python or sys.executable, str(BENCH / script), *args]
    env = {**os.environ, **bench_env(tempfile.mkdtemp(prefix="jabench-")), "PYTHONPATH": str(ROOT)}
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    out = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=BENCH, timeout=timeout, check=False
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr or out.stdout)[-3000:]
        raise RuntimeError(f"{script} {' '.join(args)} failed ({out.returncode}):\n{tail}")
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return json.loads(lines[-1][len("RESULT ") :])


def b1() -> dict[str, Any]:
    impls = ["judgealign", "judgealign-litellm", "mlflow", "litellm"]
    return {
        i: run("bench_b1_call_overhead.py", "--impl", i, "--runs", str(RUNS["B1"])) for i in impls
    }


def b2() -> dict[str, Any]:
    return {
        "judgealign": run(
            "bench_b2_evaluate.py", "--impl", "judgealign", "--runs", str(RUNS["B2"])
        ),
        "mlflow": run("bench_b2_evaluate.py", "--impl", "mlflow", "--runs", str(RUNS["B2_peer"])),
    }


def b3() -> dict[str, Any]:
    store = Path(tempfile.mkdtemp(prefix="b3-store-"))
    prepared = run("bench_b3_align.py", "--impl", "mlflow", "--prepare", str(store))
    ours = [run("bench_b3_align.py", "--impl", "judgealign") for _ in range(RUNS["B3"])]
    peer = [
        run("bench_b3_align.py", "--impl", "mlflow", "--store", str(store))
        for _ in range(RUNS["B3_peer"])
    ]
    shutil.rmtree(store, ignore_errors=True)
    return {"judgealign": ours, "mlflow": peer, "prepare_s": prepared["wall_s"]}


def b4() -> dict[str, Any]:
    return run("bench_b4_retrieval.py")


def b5() -> dict[str, Any]:
    return run("bench_b5_startup.py", "--runs", str(RUNS["B5"]))


def b6() -> dict[str, Any]:
    return {
        "judgealign": [run("bench_b6_gepa.py", "--impl", "judgealign") for _ in range(RUNS["B6"])],
        "mlflow": [run("bench_b6_gepa.py", "--impl", "mlflow") for _ in range(RUNS["B6_peer"])],
    }


def _local_python() -> str | None:
    candidates = [sys.executable, os.environ.get("JUDGEALIGN_LOCAL_PYTHON", "")]
    candidates.append("/work/scratch_local/venv/bin/python")
    for python in candidates:
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import llama_cpp"], capture_output=True, check=False, timeout=120
        )
        if probe.returncode == 0:
            return python
    return None


def b7() -> dict[str, Any]:
    python = _local_python()
    script = BENCH / "bench_local_judge.py"
    if python is None or not script.exists():
        return {"skipped": "no interpreter with llama_cpp, or bench_local_judge.py missing"}
    env = {**os.environ, **bench_env(), "PYTHONPATH": str(ROOT)}
    print("$", script.name, f"(with {python})", flush=True)
    out = subprocess.run(
        [python, str(script)], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    match = re.search(r"median ([0-9.]+) s, p90 ([0-9.]+) s", out.stdout)
    calls = re.search(r"calls: (\d+)", out.stdout)
    if out.returncode != 0 or match is None:
        return {"skipped": f"bench_local_judge.py failed: {(out.stderr or out.stdout)[-500:]}"}
    return {
        "median_s": float(match.group(1)),
        "p90_s": float(match.group(2)),
        "calls": int(calls.group(1)) if calls else None,
        "python": python,
        "output": out.stdout,
    }


def b8() -> dict[str, Any]:
    return run(
        "bench_b8_view.py",
        "--defacto",
        str(B8_SAMPLE["defacto"]),
        "--queries",
        str(B8_SAMPLE["queries"]),
        timeout=5400,
    )


def b9() -> dict[str, Any]:
    if importlib.util.find_spec("pyspark") is None:
        return {"skipped": "pyspark is not installed (pip install -e '.[spark]')"}
    runs = str(RUNS["B9"])
    return {
        "spark": run("bench_b9_spark.py", "--impl", "spark", "--runs", runs),
        "inprocess": run("bench_b9_spark.py", "--impl", "inprocess", "--runs", runs),
    }


def b10() -> dict[str, Any]:
    script = "bench_b10_rate_limit.py"
    return {
        "judgealign": run(script, "--impl", "judgealign"),
        # The same run with no budget given: the rate is learnt from the 429s alone.
        "judgealign_no_budget": run(script, "--impl", "judgealign", "--client-rpm", "none"),
        "mlflow": run(script, "--impl", "mlflow"),
    }


def b11() -> dict[str, Any]:
    script = "bench_b11_dspy_gepa.py"
    return {
        "judgealign": [run(script, "--impl", "judgealign") for _ in range(RUNS["B11"])],
        "dspy": [run(script, "--impl", "dspy") for _ in range(RUNS["B11_peer"])],
    }


def b12() -> dict[str, Any]:
    return run("bench_b12_suggest.py", "--seeds", "5", timeout=3600)


def b13() -> dict[str, Any]:
    return run("bench_b13_worker_memory.py", "--examples", "100000", timeout=3600)


BENCHES = {
    "B1": b1,
    "B2": b2,
    "B3": b3,
    "B4": b4,
    "B5": b5,
    "B6": b6,
    "B7": b7,
    "B8": b8,
    "B9": b9,
    "B10": b10,
    "B11": b11,
    "B12": b12,
    "B13": b13,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=",".join(BENCHES))
    args = parser.parse_args()
    wanted = [name.strip().upper() for name in args.only.split(",") if name.strip()]
    raw_path = BENCH / "results.json"
    raw: dict[str, Any] = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    raw["machine"] = machine()
    raw["peer_available"] = {
        "dspy": importlib.util.find_spec("dspy") is not None,
        "gepa": importlib.util.find_spec("gepa") is not None,
    }
    started = time.perf_counter()
    scope = "full run" if wanted == list(BENCHES) else f"run_all --only {','.join(wanted)}"
    for name in wanted:
        print(f"== {name}", flush=True)
        # Each row keeps its own date and load: a partial re-run leaves the others as they
        # were measured, and the report must not date them by the newest run.
        stamp = {**now(), "scope": scope}
        try:
            raw[name] = BENCHES[name]()
        except Exception as exc:  # one failed benchmark must not lose the others
            raw[name] = {"error": str(exc)[-2000:]}
            print(f"  FAILED: {str(exc)[-500:]}", flush=True)
        raw[name]["measured"] = stamp
        raw_path.write_text(json.dumps(raw, indent=1, default=str))
    raw["total_s"] = time.perf_counter() - started
    raw["load_average_end"] = now()["load_average"]
    raw_path.write_text(json.dumps(raw, indent=1, default=str))
    from report import write_report

    write_report(raw, BENCH / "RESULTS.md")
    print(f"wrote {BENCH / 'RESULTS.md'} in {raw['total_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
