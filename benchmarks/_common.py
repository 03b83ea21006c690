"""Shared pieces of the benchmark scripts: environment, machine facts, the fake server in a
separate process, timing helpers and the JSON result format.

The fake server runs in its own process so that its threads (JSON parsing, schema
instances, request logging) neither hold the benchmark's GIL nor show up in the
benchmark's CPU time: ``time.process_time()`` in a benchmark process is the client's own
cost.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
DEFACTO = Path(os.environ.get("JUDGEALIGN_DEFACTO", "/work/shared/data/defacto/defacto.jsonl"))


def bench_env(tmp: str | Path | None = None) -> dict[str, str]:
    """Environment variables every benchmark process runs with (offline, no telemetry)."""
    tmp = Path(tmp or tempfile.mkdtemp(prefix="jabench-"))
    return {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_MODEL_CATALOG_URI": "",
        "DSPY_CACHEDIR": str(tmp / "dspy-cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "OPENAI_API_KEY": "sk-bench-fake-key",
        "TOKENIZERS_PARALLELISM": "false",
    }


def apply_env(tmp: str | Path | None = None) -> Path:
    """Set :func:`bench_env` in this process (before litellm or mlflow is imported)."""
    env = bench_env(tmp)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    return Path(env["DSPY_CACHEDIR"]).parent


def now() -> dict[str, str]:
    """The date (UTC as the machine keeps it) and the 1/5/15-minute load average."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "load_average": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, Python and the date, for the results file."""
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory": memory,
        "cpu": model,
        "python": platform.python_version(),
        **now(),
    }


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest-rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class ServerProcess:
    """A :class:`judgealign.testing.FakeOpenAIServer` in a child process.

    Args:
        latency_s: the server's latency for chat and embedding requests.
        mode: which reply function ``_serve.py`` installs (``auto``, ``memalign``, ``gepa``).
        requests_per_minute: a request limit the server enforces (429 beyond it), or None.
    """

    def __init__(
        self, latency_s: float, mode: str = "auto", requests_per_minute: float | None = None
    ) -> None:
        self.latency_s = latency_s
        self.mode = mode
        self.requests_per_minute = requests_per_minute
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> ServerProcess:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "_serve.py"),
                str(self.latency_s),
                self.mode,
                str(self.requests_per_minute or "none"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_url(self) -> str:
        """The full chat endpoint (what MLflow's native ``base_url`` wants)."""
        return f"{self.base_url}/chat/completions"

    def control(self, action: str) -> Any:
        """``stats`` (request counters and embedded-text counts), ``log`` (time and status
        of every chat request) or ``reset``."""
        assert self._proc is not None and self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._proc.stdin.write(action + "\n")
        self._proc.stdin.flush()
        return json.loads(self._proc.stdout.readline())


@contextmanager
def cpu_and_wall() -> Iterator[dict[str, float]]:
    """Measure process CPU seconds and wall seconds of a block."""
    out: dict[str, float] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        yield out
    finally:
        out["cpu_s"] = time.process_time() - cpu
        out["wall_s"] = time.perf_counter() - wall


def repeat(runs: int, once: Callable[[int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Call ``once(run_number)`` ``runs`` times and collect what it returns."""
    return [once(n) for n in range(runs)]


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last stdout line, the way ``run_all.py`` reads it."""
    sys.stdout.flush()
    print("RESULT " + json.dumps(result, default=str), flush=True)


def load_defacto(limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` DeFacto records as judgealign record dicts."""
    records: list[dict[str, Any]] = []
    with DEFACTO.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
            if len(records) == limit:
                break
    return records
