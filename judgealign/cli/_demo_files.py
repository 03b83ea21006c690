"""What ``judgealign demo`` ships and writes: its input data and its artifacts.

Inputs live in ``judgealign/resources/demo`` (see the README there). Artifacts go to the
output folder and, when a tracker is in effect, to the demo's MLflow run:

* ``aligned_judge.json``: the aligned judge (``AlignedJudge.load`` reads it);
* ``report.json``: the whole run (split, alignment, base vs aligned, optimization);
* ``held_out_verdicts.jsonl``: each held-out record with both judges' verdicts;
* ``confusion_base.png``, ``confusion_aligned.png``, ``agreement.png``,
  ``optimization.png``: the figures;
* ``optimized_prompt.txt``: the prompt after optimization;
* ``inputs/``: a copy of the demo's data, to rerun single steps with the other commands.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from judgealign.cli._common import write_json

if TYPE_CHECKING:
    from judgealign.evaluation._comparison import JudgeComparison
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._records import LabeledRecord
    from judgealign.memalign._aligned import AlignedJudge

__all__ = [
    "DEMO_DIR",
    "FEEDBACK_FILE",
    "JUDGE_FILE",
    "PROMPT_FILE",
    "QUESTIONS_FILE",
    "Artifacts",
    "copy_inputs",
    "log_demo_run",
    "record_trace",
    "write_artifacts",
]

DEMO_DIR = Path(__file__).resolve().parents[1] / "resources" / "demo"
FEEDBACK_FILE = "support_feedback.jsonl"
JUDGE_FILE = "judge.json"
PROMPT_FILE = "support_prompt.txt"
QUESTIONS_FILE = "questions.jsonl"
_DESCRIPTIONS = {
    "aligned_judge.json": "the aligned judge (judgealign guidelines list <file>)",
    "report.json": "split, alignment, base vs aligned, optimization",
    "held_out_verdicts.jsonl": "each held-out record with both verdicts",
    "confusion_base.png": "base judge vs the expert",
    "confusion_aligned.png": "aligned judge vs the expert",
    "agreement.png": "accuracy and kappa, base vs aligned",
    "optimization.png": "each proposal: its score, or why it was rejected",
    "optimized_prompt.txt": "the prompt after optimization",
    "inputs/": "the demo's data, for the other commands",
}

FigureFactory = Callable[[], Any]


@dataclass
class Artifacts:
    """The files written, in order, and the figures (also logged to MLflow)."""

    out: Path
    files: list[str] = field(default_factory=lambda: [])
    figures: dict[str, FigureFactory] = field(default_factory=lambda: {})
    judged: list[dict[str, Any]] = field(default_factory=lambda: [])  # the verdict rows

    def lines(self) -> list[tuple[str, str]]:
        """``(file name, what it is)`` per written file."""
        return [(name, _DESCRIPTIONS.get(name, "")) for name in self.files]


def copy_inputs(out: Path) -> Path:
    """Copy the demo's data into ``out/inputs`` and return that folder."""
    target = out / "inputs"
    target.mkdir(parents=True, exist_ok=True)
    for name in (FEEDBACK_FILE, JUDGE_FILE, PROMPT_FILE, QUESTIONS_FILE):
        shutil.copyfile(DEMO_DIR / name, target / name)
    return target


def write_artifacts(
    out: Path,
    *,
    report: Mapping[str, Any],
    aligned: AlignedJudge,
    comparison: JudgeComparison,
    held_out: Sequence[LabeledRecord],
    verdicts: tuple[EvaluationResult, EvaluationResult],
    optimized_prompt: str | None,
    curve: FigureFactory | None,
) -> Artifacts:
    """Write every artifact of a demo run into ``out``."""
    from judgealign.cli._data import write_jsonl
    from judgealign.cli._plots import comparison_figure, confusion_factory, save_png

    artifacts = Artifacts(out)
    aligned.save(out / "aligned_judge.json")
    write_json(out / "report.json", report)
    artifacts.judged = _verdict_rows(held_out, *verdicts)
    write_jsonl(out / "held_out_verdicts.jsonl", artifacts.judged)
    artifacts.files += ["aligned_judge.json", "report.json", "held_out_verdicts.jsonl"]
    n = comparison.base.n_failed + comparison.base.n
    artifacts.figures = {
        "confusion_base.png": confusion_factory(comparison.base, f"Base judge vs expert (n={n})"),
        "confusion_aligned.png": confusion_factory(
            comparison.aligned, f"Aligned judge vs expert (n={n})"
        ),
        "agreement.png": lambda: comparison_figure(
            comparison, title=f"Agreement with the expert on {n} held-out records"
        ),
    }
    if curve is not None:
        artifacts.figures["optimization.png"] = curve
    for name, factory in artifacts.figures.items():
        save_png(factory, out / name)
        artifacts.files.append(name)
    if optimized_prompt is not None:
        (out / "optimized_prompt.txt").write_text(optimized_prompt + "\n", encoding="utf-8")
        artifacts.files.append("optimized_prompt.txt")
    artifacts.files.append("inputs/")
    return artifacts


def log_demo_run(
    tracker: Any, report: Mapping[str, Any], aligned: AlignedJudge, artifacts: Artifacts
) -> None:
    """Log the demo's own artifacts to the current MLflow run (the library already
    reported the evaluations and the optimization as child runs)."""
    from judgealign.tracking._events import safe_params

    tracker.log_params(safe_params(report["settings"]))
    comparison = report["comparison"]
    metrics = {
        "base_accuracy": comparison["base"]["accuracy"],
        "aligned_accuracy": comparison["aligned"]["accuracy"],
        "base_kappa": comparison["base"]["kappa"],
        "aligned_kappa": comparison["aligned"]["kappa"],
        "guidelines": len(aligned.guidelines),
        "model_calls": report["usage"]["model_calls"],
    }
    optimization: Mapping[str, Any] = report.get("optimization") or {}
    for key in ("initial_score", "final_score"):
        if optimization.get(key) is not None:
            metrics[f"prompt_{key}"] = optimization[key]
    tracker.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
    tracker.log_dict(dict(report), "report.json")
    tracker.log_dict(aligned.to_dict(), "aligned_judge.json")
    guidelines = "\n".join(f"{i}. {g.text}" for i, g in enumerate(aligned.guidelines, 1))
    tracker.log_text(guidelines or "(no guidelines)", "guidelines.txt")
    for name, factory in artifacts.figures.items():
        tracker.log_figure(factory, name)
    register = getattr(tracker, "register_scorer", None)
    if callable(register):  # MLflow's "Judges" page lists both, named as on the traces
        register(aligned.base_judge, name=f"{aligned.name}_base")
        register(aligned, name=f"{aligned.name}_aligned")
    log_traces = getattr(tracker, "log_record_trace", None)
    if callable(log_traces):
        for row in artifacts.judged:
            log_traces(**record_trace(aligned.name, row))


def record_trace(judge_name: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """A held-out record as an MLflow trace: the expert's label as ``HUMAN`` feedback named
    like the judge (so ``judgealign align --experiment`` reads it back) and both judges'
    verdicts as ``LLM_JUDGE`` feedback, ``<judge>_base`` and ``<judge>_aligned``."""

    def verdict(role: str) -> dict[str, Any]:
        error = row[f"{role}_error"]
        return {
            "name": f"{judge_name}_{role}",
            "value": row[role],
            "rationale": None if error else row[f"{role}_rationale"],
            "source_type": "LLM_JUDGE",
            "source_id": f"judgealign {role} judge",
            "metadata": {"judge": judge_name, "role": role},
            "error": error,
        }

    expert: dict[str, Any] = {
        "name": judge_name,
        "value": row["expert"],
        "rationale": row["expert_rationale"],
        "source_type": "HUMAN",
        "source_id": row.get("annotator") or "expert",
        "metadata": {},
        "error": None,
    }
    return {
        "name": judge_name,
        "inputs": row["inputs"]
        if isinstance(row["inputs"], Mapping)
        else {"inputs": row["inputs"]},
        "outputs": row["outputs"],
        "tags": {"judgealign.record_id": str(row["id"]), "judgealign.split": "held_out"},
        "assessments": [expert, verdict("base"), verdict("aligned")],
    }


def _verdict_rows(
    records: Sequence[LabeledRecord], base: EvaluationResult, aligned: EvaluationResult
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for record, before, after in zip(records, base, aligned, strict=True):
        rows.append(
            {
                "id": record.id,
                "inputs": record.inputs,
                "outputs": record.outputs,
                "expert": record.label,
                "expert_rationale": record.rationale,
                "annotator": record.annotator,
                "base": before.value,
                "base_rationale": before.rationale or before.error,
                "base_error": before.error,
                "aligned": after.value,
                "aligned_rationale": after.rationale or after.error,
                "aligned_error": after.error,
                "retrieved_example_ids": after.metadata.get("retrieved_example_ids"),
            }
        )
    return rows
