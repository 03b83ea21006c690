"""The ``judgealign`` command: judge, report, align, guidelines, optimize (scripted models).

Every command builds its models through ``judgealign.cli._models.make_model``; the
``scripted`` fixture replaces it with the demo's scripted model (``cli_support``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import click.testing
import pytest
from cli_support import PATH_RULE, RULES, demo_model, demo_rows

from judgealign import AlignedJudge
from judgealign.cli import _models as _cli_models
from judgealign.cli._main import cli, main
from judgealign.testing import FunctionModel

ROOT = Path(__file__).resolve().parents[1]
SPEC = {
    "name": "support_quality",
    "instructions": "Is the reply {{ outputs }} acceptable for the message {{ inputs }}?",
    "feedback_value_type": "bool",
}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> FunctionModel:
    """Every model the command builds is the demo's scripted model."""
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    return model


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def write_records(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    return {"spec": spec, "data": write_records(tmp_path / "records.jsonl", demo_rows())}


# -- help ---------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in ("demo", "judge", "report", "align", "guidelines", "optimize"):
        assert f"  {command} " in result.stdout


def test_main_returns_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "judgealign, version" in capsys.readouterr().out
    assert main(["judge"]) == 2  # missing arguments: click's usage error


def test_help_imports_nothing_heavy() -> None:
    # --help's speed is measured in benchmarks (B5); here, what makes it slow must not load.
    code = (
        "import sys; from judgealign.cli._main import main; code = main(['--help']); "
        "heavy = [m for m in ('litellm', 'mlflow', 'matplotlib', 'numpy', 'tqdm', 'yaml', "
        "'pydantic', 'judgealign.memalign._aligned') if m in sys.modules]; print('HEAVY', heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "HEAVY []" in out


# -- judge --------------------------------------------------------------------------------


def test_judge_prints_verdicts_and_agreement(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "verdicts.jsonl"
    result = run("judge", files["spec"], files["data"], "--limit", "11", "--output", out)
    assert result.exit_code == 0, result.output
    assert "Judging 11 records" in result.stdout
    assert "id     verdict  expert  rationale" in result.stdout
    assert "Agreement with SME labels: 11 scored, 0 failed" in result.stdout
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"nd-{n:02d}" for n in range(1, 12)]
    assert {r["value"] for r in rows} <= {True, False}
    assert len(scripted.requests) == 11


def test_judge_reads_csv_with_column_map(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    import csv

    data = tmp_path / "flat.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", "message", "reply"])
        for row in demo_rows()[:4]:
            writer.writerow([row["id"], row["inputs"]["message"], row["outputs"]])
    result = run(
        "judge",
        files["spec"],
        data,
        "--map",
        "id=key",
        "--map",
        "inputs=message",
        "--map",
        "outputs=reply",
    )
    assert result.exit_code == 0, result.output
    assert "Judging 4 records" in result.stdout and "nd-04" in result.stdout
    assert "Agreement" not in result.stdout  # no labels, no agreement
    assert '"message": "I deleted a file by accident' in scripted.requests[0].last_user


def test_judge_reads_a_yaml_spec(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    spec = tmp_path / "judge.yaml"
    spec.write_text(
        "name: tone\ninstructions: Is {{ outputs }} polite?\nfeedback_value_type: [polite, rude]\n",
        encoding="utf-8",
    )
    data = write_records(tmp_path / "plain.jsonl", [{"outputs": "Thanks!"}, {"outputs": "No."}])
    scripted_labels = FunctionModel(lambda r: {"rationale": "ok", "result": "polite"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_cli_models, "make_model", lambda uri, **_: scripted_labels)
        result = run("judge", spec, data)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("polite") == 2


def test_yaml_spec_without_pyyaml_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, Path], tmp_path: Path
) -> None:
    spec = tmp_path / "judge.yml"
    spec.write_text("name: x\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "yaml", None)
    result = run("judge", spec, files["data"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: Reading the YAML judge spec")
    assert "pip install pyyaml" in result.stderr


# -- report -------------------------------------------------------------------------------


def test_report_writes_json_and_png(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    report, plot = tmp_path / "report.json", tmp_path / "confusion.png"
    result = run(
        "report",
        files["spec"],
        files["data"],
        "--json",
        report,
        "--plot",
        plot,
        "--bootstrap",
        "200",
    )
    assert result.exit_code == 0, result.output
    assert "Confusion matrix (rows = SME, columns = judge)" in result.stdout
    data = json.loads(report.read_text())
    assert data["agreement"]["n"] == 60 and data["judge"] == "support_quality"
    # The naive judge accepts every reply that breaks a house rule (25 of them).
    assert data["agreement"]["accuracy"] == pytest.approx(35 / 60)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 1000


# -- align and guidelines -------------------------------------------------------------------


def test_align_then_edit_guidelines(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    aligned_file, report = tmp_path / "aligned.json", tmp_path / "align_report.json"
    options = ("--report", report, "--embedding-model", "hashing", "--test-size", "0.3")
    result = run("align", files["spec"], files["data"], "-o", aligned_file, *options)
    assert result.exit_code == 0, result.output
    assert "60 labelled records: 42 to align, 18 held out" in result.stdout
    assert (
        "Base vs aligned judge" in result.stdout
        and "Broken by alignment (0): none" in result.stdout
    )
    summary = json.loads(report.read_text())
    assert summary["comparison"]["aligned"]["accuracy"] == 1.0
    assert not set(summary["records"]["train"]) & set(summary["records"]["held_out"])
    aligned = AlignedJudge.load(aligned_file)
    assert {g.text for g in aligned.guidelines} == set(RULES.values())

    listed = run("guidelines", "list", aligned_file)
    assert listed.exit_code == 0 and "5 guidelines, 42 expert records" in listed.stdout
    added = run("guidelines", "add", aligned_file, "Replies must be under 80 words.", "--pin")
    assert added.exit_code == 0, added.output
    new_id = added.stdout.split("added ", 1)[1].split(":", 1)[0]
    assert run("guidelines", "edit", aligned_file, new_id, "Keep replies short.").exit_code == 0
    assert run("guidelines", "pin", aligned_file, new_id, "--unpin").exit_code == 0
    reloaded = AlignedJudge.load(aligned_file)
    assert (
        reloaded.guidelines[-1].text == "Keep replies short." and not reloaded.guidelines[-1].pinned
    )
    first = reloaded.guidelines[0].id
    assert run("guidelines", "remove", aligned_file, first).exit_code == 0
    as_json = json.loads(run("guidelines", "list", aligned_file, "--json").stdout)
    assert len(as_json) == 5 and first not in {g["id"] for g in as_json}
    history = AlignedJudge.load(aligned_file).history  # each command's edit, in the file
    assert [
        (r.operation, r.guidelines_added + r.guidelines_edited + r.guidelines_removed)
        for r in history[1:]
    ] == [
        ("add_guideline", (new_id,)),
        ("edit_guideline", (new_id,)),
        ("unpin_guideline", (new_id,)),
        ("remove_guideline", (first,)),
    ]

    missing = run("guidelines", "remove", aligned_file, "g-nope")
    assert missing.exit_code == 2 and missing.stderr.startswith(
        "error: No guideline has id 'g-nope'"
    )


def test_align_on_an_aligned_file_learns_only_new_records(
    scripted: FunctionModel, files: dict[str, Path], tmp_path: Path
) -> None:
    aligned_file = tmp_path / "aligned.json"
    options = ("--limit", "20", "--test-size", "0", "--embedding-model", "hashing")
    first = run("align", files["spec"], files["data"], "-o", aligned_file, *options)
    assert first.exit_code == 0, first.output
    calls = len(scripted.requests)
    again = run(
        "align",
        aligned_file,
        files["data"],
        "-o",
        aligned_file,
        "--limit",
        "20",
        "--test-size",
        "0",
    )
    assert again.exit_code == 0, again.output
    assert "warning: Nothing to align" in again.stdout and "Nothing to align" not in again.stderr
    assert len(scripted.requests) == calls  # no model call for unchanged records


def test_align_needs_data_or_experiment(files: dict[str, Path]) -> None:
    result = run("align", files["spec"])
    assert result.exit_code == 2
    assert result.stderr == "error: Give either a DATA file or --experiment NAME (not both).\n"


# -- optimize -------------------------------------------------------------------------------


def test_optimize_improves_the_prompt(scripted: FunctionModel, tmp_path: Path) -> None:
    aligned_file = tmp_path / "aligned.json"
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    data = write_records(tmp_path / "records.jsonl", demo_rows())
    assert (
        run(
            "align",
            spec,
            data,
            "-o",
            aligned_file,
            "--test-size",
            "0",
            "--embedding-model",
            "hashing",
        ).exit_code
        == 0
    )
    prompt = tmp_path / "reply.txt"
    prompt.write_text("Answer the customer: {{ message }}", encoding="utf-8")
    questions = write_records(
        tmp_path / "q.jsonl", [{"message": "How do I cancel?"}, {"message": "Refund?"}]
    )
    out = tmp_path / "opt"
    result = run(
        "optimize", prompt, questions, "--judge", aligned_file, "--iterations", "2", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "score on 2 records: 0.000 -> 1.000 (improved)" in result.stdout
    assert PATH_RULE in (out / "optimized_prompt.txt").read_text()
    summary = json.loads((out / "optimization.json").read_text())
    assert summary["improved"] and summary["prompt_uri"].startswith("prompts:/reply/")
    assert (out / "optimization.png").read_bytes()[:4] == b"\x89PNG"


def test_optimize_rejects_a_prompt_without_variables(
    files: dict[str, Path], tmp_path: Path
) -> None:
    prompt = tmp_path / "p.txt"
    prompt.write_text("Be nice.", encoding="utf-8")
    result = run("optimize", prompt, files["data"], "--judge", files["spec"])
    assert result.exit_code == 2 and "has no {{ variable }}" in result.stderr
