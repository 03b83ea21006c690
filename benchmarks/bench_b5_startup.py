"""B5: start-up cost: ``import judgealign, optimizers`` and ``judgealign --help``.

Each measurement runs in a fresh interpreter, ``--runs`` times (median):

* the import, timed inside the interpreter (``time.perf_counter`` around the import);
* ``judgealign --help``, timed from outside (process start to exit). Without an installed
  console script, the equivalent of the script setuptools generates is run
  (``from judgealign.cli._main import main; sys.exit(main(["--help"]))``).

Peers: ``import mlflow.genai`` and ``mlflow --help``. The output also lists the
``-X importtime`` breakdown of the judgealign import (cumulative microseconds of the
heaviest modules). Both packages load each public name on first use, so the cost of
touching the main API (``judgealign.make_judge``, ``AlignedJudge``, ``optimize_prompts``)
is measured too: that is what a script pays before its first judge call.

Run: ``python benchmarks/bench_b5_startup.py``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, bench_env, emit, median

IMPORT = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
FIRST_USE = (
    "import time; t = time.perf_counter(); import judgealign, optimizers; "
    "judgealign.make_judge; judgealign.AlignedJudge; optimizers.optimize_prompts; "
    "print(time.perf_counter() - t)"
)
CLI = "import sys; from judgealign.cli._main import main; sys.exit(main(['--help']))"


def _env(root: Path = ROOT) -> dict[str, str]:
    return {**os.environ, **bench_env(), "PYTHONPATH": str(root)}


def import_time(module: str, root: Path = ROOT) -> float:
    return timed_code(IMPORT.format(mod=module), root)


def timed_code(code: str, root: Path = ROOT) -> float:
    """Run ``code`` in a fresh interpreter; it prints the seconds it measured."""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(root),
        check=True,
        cwd=root,
    )
    return float(out.stdout.strip().splitlines()[-1])


def process_time(command: list[str], root: Path = ROOT) -> float:
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, env=_env(root), check=True, cwd=root)
    return time.perf_counter() - start


def importtime_breakdown(module: str, top: int = 12) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) of the heaviest imports under ``module``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        cwd=ROOT,
    )
    rows: list[tuple[str, int, int]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((name, int(own), int(cumulative)))
    rows.sort(key=lambda row: row[2], reverse=True)
    return rows[:top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    script = shutil.which("judgealign", path=str(Path(sys.executable).parent))
    cli = [script, "--help"] if script else [sys.executable, "-c", CLI]
    mlflow_cli = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    mlflow_cmd = (
        [mlflow_cli, "--help"] if mlflow_cli else [sys.executable, "-m", "mlflow", "--help"]
    )
    python_start = [process_time([sys.executable, "-c", "pass"]) for _ in range(args.runs)]
    results = {
        "import_judgealign_optimizers_s": [
            import_time("judgealign, optimizers") for _ in range(args.runs)
        ],
        "cli_help_s": [process_time(cli) for _ in range(args.runs)],
        "first_use_s": [timed_code(FIRST_USE) for _ in range(args.runs)],
        "import_mlflow_genai_s": [import_time("mlflow.genai") for _ in range(args.runs)],
        "mlflow_help_s": [process_time(mlflow_cmd) for _ in range(args.runs)],
    }
    emit(
        {
            "runs": args.runs,
            "cli_command": "judgealign --help" if script else "console-script equivalent",
            "python_start_s": median(python_start),
            **{key: median(values) for key, values in results.items()},
            "samples": results,
            "breakdown": importtime_breakdown("judgealign, optimizers"),
        }
    )


if __name__ == "__main__":
    main()
