"""B5: start-up cost: ``import judgealign, optimizers`` and ``judgealign --help``.

Each measurement runs in a fresh interpreter, ``--runs`` times (median):

* the import, timed inside the interpreter (``time.perf_counter`` around the import);
* ``judgealign --help``, timed from outside (process start to exit). Without an installed
  console script, the equivalent of the script setuptools generates is run
  (``from judgealign._cli import main; sys.exit(main(["--help"]))``).

Peers: ``import mlflow.genai`` and ``mlflow --help``. The output also lists the
``-X importtime`` breakdown of the judgealign import (cumulative microseconds of the
heaviest modules), and measures the proposed fix: a copy of both packages in a temporary
folder whose ``__init__.py`` files are rewritten to load each public name on first use
(a module ``__getattr__`` over a name -> module table built from the current imports;
everything else in the files is kept).

Run: ``python benchmarks/bench_b5_startup.py``
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, bench_env, emit, median

IMPORT = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"
CLI = "import sys; from judgealign._cli import main; sys.exit(main(['--help']))"


LAZY_TAIL = """

def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
"""


def _env(root: Path = ROOT) -> dict[str, str]:
    return {**os.environ, **bench_env(), "PYTHONPATH": str(root)}


def import_time(module: str, root: Path = ROOT) -> float:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT.format(mod=module)],
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


def lazy_copy() -> Path:
    """Both packages in a temporary folder, with lazy ``__init__.py`` files."""
    root = Path(tempfile.mkdtemp(prefix="lazy-init-"))
    for package in ("judgealign", "optimizers"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("*.pyc"))
        init = root / package / "__init__.py"
        exports: dict[str, str] = {}
        kept: list[str] = []
        for node in ast.parse(init.read_text()).body:
            is_doc = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(package):
                exports.update({a.asname or a.name: str(node.module) for a in node.names})
            elif not is_doc and not (
                isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "__future__"
            ):
                kept.append(ast.unparse(node))
        head = f"import importlib\n\n_EXPORTS = {exports!r}\n"
        init.write_text(head + "\n".join(kept) + LAZY_TAIL)
    return root


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
    lazy = lazy_copy()
    lazy_cli = [sys.executable, "-c", CLI]
    results = {
        "import_judgealign_optimizers_s": [
            import_time("judgealign, optimizers") for _ in range(args.runs)
        ],
        "cli_help_s": [process_time(cli) for _ in range(args.runs)],
        "lazy_import_s": [import_time("judgealign, optimizers", lazy) for _ in range(args.runs)],
        "lazy_cli_help_s": [process_time(lazy_cli, lazy) for _ in range(args.runs)],
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
    shutil.rmtree(lazy, ignore_errors=True)


if __name__ == "__main__":
    main()
