"""The command with a real MLflow store: the demo's runs, and records read from traces."""

from __future__ import annotations

import json
from pathlib import Path

import click.testing
import mlflow
import pytest
from cli_support import demo_model, demo_rows
from mlflow.entities import AssessmentSource, AssessmentSourceType
from mlflow_support import Store, artifact_names, mlflow_store

from judgealign import AlignedJudge
from judgealign.cli import _models as _cli_models
from judgealign.cli._main import cli
from judgealign.testing import FunctionModel

__all__ = ["mlflow_store"]

LEAD = AssessmentSource(source_type=AssessmentSourceType.HUMAN, source_id="support-lead")


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> FunctionModel:
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    return model


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_demo_records_runs_and_artifacts_in_mlflow(
    scripted: FunctionModel, mlflow_store: Store, tmp_path: Path
) -> None:
    result = run("demo", "--fast", "--out", tmp_path / "d", "--embedding-model", "hashing")
    assert result.exit_code == 0, result.output
    assert f"MLflow: experiment 'judgealign-demo' at {mlflow_store.uri}" in result.stdout
    experiment = mlflow.get_experiment_by_name("judgealign-demo")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    by_name = {r.info.run_name: r for r in runs}
    demo = by_name["judgealign-demo"]
    assert demo.info.status == "FINISHED"
    assert demo.data.metrics["aligned_accuracy"] > demo.data.metrics["base_accuracy"]
    names = artifact_names(demo.info.run_id)
    assert {"report.json", "aligned_judge.json", "guidelines.txt", "agreement.png"} <= names
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == demo.info.run_id]
    operations = {r.data.tags.get("judgealign.operation") for r in children}
    assert {"evaluate", "optimize_prompts"} <= operations


def test_align_reads_expert_feedback_from_an_experiment(
    scripted: FunctionModel, mlflow_store: Store, tmp_path: Path
) -> None:
    @mlflow.trace
    def reply(message: str) -> str:
        return by_message[message]["outputs"]

    rows = demo_rows()[:12]
    by_message = {row["inputs"]["message"]: row for row in rows}
    for row in rows:
        reply(row["inputs"]["message"])
        trace_id = mlflow.get_last_active_trace_id()
        assert trace_id is not None
        mlflow.log_feedback(
            trace_id=trace_id,
            name="support_quality",
            value=row["label"],
            rationale=row["rationale"],
            source=LEAD,
        )
    name = mlflow.get_experiment(mlflow_store.experiment_id).name
    spec = tmp_path / "judge.json"
    spec.write_text(
        json.dumps(
            {"name": "support_quality", "instructions": "Is {{ outputs }} ok for {{ inputs }}?"}
        )
    )
    out = tmp_path / "aligned.json"
    options = ("--test-size", "0", "--embedding-model", "hashing", "-o", out)
    result = run("align", spec, "--experiment", name, *options)
    assert result.exit_code == 0, result.output
    assert "12 labelled records: 12 to align, 0 held out" in result.stdout
    aligned = AlignedJudge.load(out)
    assert len(aligned.record_ids) == 12 and len(aligned.guidelines) >= 1


def test_align_from_an_experiment_without_traces(
    scripted: FunctionModel, mlflow_store: Store, tmp_path: Path
) -> None:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps({"name": "q", "instructions": "Is {{ outputs }} ok?"}))
    mlflow.create_experiment("empty")
    result = click.testing.CliRunner().invoke(cli, ["align", str(spec), "--experiment", "empty"])
    assert result.exit_code == 2
    assert "error: The MLflow experiment 'empty'" in result.stderr
    assert "has no traces" in result.stderr and "Traceback" not in result.output


def test_align_from_a_missing_experiment_names_it_and_creates_nothing(
    scripted: FunctionModel, mlflow_store: Store, tmp_path: Path
) -> None:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps({"name": "q", "instructions": "Is {{ outputs }} ok?"}))
    result = click.testing.CliRunner().invoke(cli, ["align", str(spec), "--experiment", "typo"])
    assert result.exit_code == 2
    assert "error: There is no MLflow experiment 'typo'" in result.stderr
    assert "Traceback" not in result.output
    assert mlflow.get_experiment_by_name("typo") is None


def test_demo_logs_each_held_out_record_as_a_trace_with_judge_and_expert(
    scripted: FunctionModel, mlflow_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optimizers import InMemoryPromptStore
    from optimizers.prompts._auto import AutoPromptStore

    # The automatic prompt store of a new process (earlier tests registered the demo's
    # prompt in this one, which would keep it here).
    monkeypatch.setattr(
        "optimizers.prompts._registry._store", AutoPromptStore(InMemoryPromptStore())
    )
    result = run("demo", "--fast", "--out", tmp_path / "d", "--embedding-model", "hashing")
    assert result.exit_code == 0, result.output
    experiment = mlflow.get_experiment_by_name("judgealign-demo")
    assert experiment is not None
    traces = mlflow.search_traces(
        locations=[experiment.experiment_id], return_type="list", max_results=100
    )
    rows = [json.loads(line) for line in (tmp_path / "d" / "held_out_verdicts.jsonl").open()]
    assert len(traces) == len(rows) == 8
    demo_run = next(
        r
        for r in mlflow.search_runs([experiment.experiment_id], output_format="list")
        if r.info.run_name == "judgealign-demo"
    )
    by_id = {t.info.tags["judgealign.record_id"]: t for t in traces}
    for row in rows:
        trace = by_id[row["id"]]
        assert trace.info.request_metadata.get("mlflow.sourceRun") == demo_run.info.run_id
        found = {
            (a.name, str(a.source.source_type)): a.feedback.value for a in trace.info.assessments
        }
        assert found == {
            ("support_quality", "HUMAN"): row["expert"],
            ("support_quality_base", "LLM_JUDGE"): row["base"],
            ("support_quality_aligned", "LLM_JUDGE"): row["aligned"],
        }
    # Both judges are on MLflow's Judges page, named as their verdicts on the traces; the
    # aligned one's instructions carry its guidelines.
    from mlflow.genai.scorers import list_scorers

    listed = {s.name: s for s in list_scorers(experiment_id=experiment.experiment_id)}
    assert {"support_quality_base", "support_quality_aligned"} <= set(listed)
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    guidelines = [g["text"] for g in report["alignment"]["guidelines"]]
    aligned_text = listed["support_quality_aligned"].instructions
    assert aligned_text.startswith(listed["support_quality_base"].instructions)
    assert guidelines and all(text in aligned_text for text in guidelines)
    # The original and the optimized prompt are on MLflow's Prompts page (the default
    # prompt store registers there when MLflow is configured, as the demo's store is).
    optimized = (tmp_path / "d" / "optimized_prompt.txt").read_text().strip()
    assert mlflow.genai.load_prompt("prompts:/support_prompt/2").template == optimized
    versions = list(mlflow.MlflowClient().search_prompt_versions("support_prompt"))
    assert len(versions) == 2  # registered once each, not once per writer
    original = mlflow.genai.load_prompt("prompts:/support_prompt/1").template
    assert original == (tmp_path / "d" / "inputs" / "support_prompt.txt").read_text().strip()
    # The expert's labels on the traces are records the other commands can read back.
    spec = tmp_path / "d" / "inputs" / "judge.json"
    again = run(
        "align",
        spec,
        "--experiment",
        "judgealign-demo",
        "-o",
        tmp_path / "a.json",
        "--test-size",
        "0",
        "--embedding-model",
        "hashing",
    )
    assert again.exit_code == 0, again.output
    assert "8 labelled records" in again.stdout
