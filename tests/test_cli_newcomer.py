"""What a newcomer saw that was noise or a wrong hint (issue 20, item 5), each fixed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import click.testing
import pytest
from cli_support import demo_model

from judgealign.cli import _models as _cli_models
from judgealign.cli._main import cli

REPO = Path(__file__).resolve().parents[1]
SPEC = {"name": "ok", "instructions": "Is {{ outputs }} fine?"}
KEYS = ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL")


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args])


def only_error_line(result: click.testing.Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def options_of(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in getattr(param, "opts", [])}


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "judge.json"
    path.write_text(json.dumps(SPEC), encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["demo", "judge"])
def test_missing_key_hint_names_only_what_the_command_accepts(
    command: str, spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "d.jsonl"
    data.write_text('{"outputs": "hi", "label": "yes"}\n')
    args = {"demo": ["--out", tmp_path / "o"], "judge": [spec, data]}[command]
    result = run(command, *args, "--model", "openai:/gpt-4o-mini")
    line = only_error_line(result)
    assert "set OPENAI_API_KEY" in line and "OPENAI_API_BASE" in line
    group = cli
    assert isinstance(group, click.Group)
    accepted = options_of(group.commands[command])
    named = set(re.findall(r"(--[a-z][a-z-]+)", line))
    assert named <= accepted, f"{command} has no {named - accepted}: {line}"
    # Nothing was started: no MLflow store appeared in the working folder.
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_csv_without_map_is_told_about_map_not_columns(spec: Path, tmp_path: Path) -> None:
    data = tmp_path / "labelled.csv"
    data.write_text("question,answer,verdict\nWhat is 2+2?,4,yes\n", encoding="utf-8")
    line = only_error_line(run("report", spec, data))
    assert "--map inputs=question" in line and "columns=" not in line
    assert "answer, question, verdict" in line


def test_broken_yaml_is_one_error_line_with_the_position(tmp_path: Path) -> None:
    spec = tmp_path / "judge.yaml"
    spec.write_text('name: x\ninstructions: "Is {{ outputs }} ok?\n', encoding="utf-8")
    data = tmp_path / "d.jsonl"
    data.write_text('{"outputs": "hi", "label": "yes"}\n')
    line = only_error_line(run("judge", spec, data))
    assert "is not valid YAML" in line and "line 2, column 15" in line


def test_guideline_count_is_singular_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    from judgealign import AlignedJudge, make_judge

    path = tmp_path / "aligned.json"
    AlignedJudge(make_judge(name="q", instructions="Is {{ outputs }} ok?", model=model)).save(path)
    result = run("guidelines", "add", path, "Never promise a delivery date.")
    assert result.exit_code == 0, result.output
    assert f"{path} now has 1 guideline\n" in result.stdout


def _fresh_python(
    code: str, cwd: Path, env_extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(cwd))}
    env.update({"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), **env_extra})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_importing_judgealign_keeps_litellm_offline_for_mlflow_too(tmp_path: Path) -> None:
    # mlflow.genai.evaluate imports litellm itself; without the variable litellm fetches
    # its cost map and prints "fetch attempt failed" warnings offline.
    code = """
        import os, judgealign
        print(os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP"))
    """
    done = _fresh_python(code, tmp_path, {})
    assert done.stdout.strip() == "True", done.stderr
    done = _fresh_python(code, tmp_path, {"LITELLM_LOCAL_MODEL_COST_MAP": "False"})
    assert done.stdout.strip() == "False", done.stderr  # the user's choice wins


@pytest.mark.slow
def test_demo_output_has_no_mlflow_info_lines(tmp_path: Path) -> None:
    code = """
        from cli_support import demo_model
        from judgealign.cli import _models as _cli_models
        model = demo_model()
        _cli_models.make_model = lambda uri, **_: model
        from judgealign.cli._main import main
        raise SystemExit(main(["demo", "--fast", "--embedding-model", "hashing"]))
    """
    done = _fresh_python(code, tmp_path, {"MLFLOW_DISABLE_TELEMETRY": "true"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "mlflow.db").is_file()  # a fresh store was created ...
    assert " INFO " not in done.stdout + done.stderr  # ... without MLflow's INFO lines


def test_the_next_hint_repeats_the_command_as_the_user_typed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from judgealign.cli._output import invoked_as

    program = tmp_path / "venv" / "bin" / "judgealign"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # the venv is not activated
    assert invoked_as("venv/bin/judgealign") == "venv/bin/judgealign"
    assert invoked_as("/x/judgealign/__main__.py") == "python -m judgealign"
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")  # activated
    assert invoked_as(str(program)) == "judgealign"
    assert invoked_as("judgealign") == "judgealign"


def test_demo_next_hint_uses_invoked_as(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)
    monkeypatch.setattr(sys, "argv", ["venv/bin/judgealign"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    out = tmp_path / "d"
    result = run("demo", "--fast", "--no-mlflow", "--out", out, "--embedding-model", "hashing")
    assert result.exit_code == 0, result.output
    assert f"Next: venv/bin/judgealign guidelines list {out}/aligned_judge.json" in result.stdout


def test_align_leaves_the_warning_filters_as_it_found_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker thread inside catch_warnings while align records warnings, and leaving it
    # after align's own block ends, restores what it saw on entry: it must not be a
    # process-wide "always" (that printed ResourceWarnings at exit after every align).
    import threading
    import warnings

    model = demo_model()
    workers: list[threading.Thread] = []

    finished = threading.Event()

    def linger() -> None:
        with warnings.catch_warnings():
            finished.wait(60)  # leaves the block only after align has left its own

    def make(uri: str, **_: object) -> object:
        return model

    original = model.complete

    def complete(*args: object, **kwargs: object) -> object:
        if not workers:
            workers.append(threading.Thread(target=linger))
            workers[0].start()
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "complete", complete)
    monkeypatch.setattr(_cli_models, "make_model", make)
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps(SPEC), encoding="utf-8")
    data = REPO / "judgealign" / "resources" / "demo" / "support_feedback.jsonl"
    before = list(warnings.filters)
    result = run(
        "align",
        spec,
        data,
        "--limit",
        "6",
        "--test-size",
        "0",
        "-o",
        tmp_path / "a.json",
        "--embedding-model",
        "hashing",
    )
    finished.set()
    for worker in workers:
        worker.join()
    after = list(warnings.filters)
    warnings.filters[:] = before  # never leak into other tests, whatever happened
    assert result.exit_code == 0, result.output
    assert workers, "the scripted model was never called during align"
    assert not any(f[0] == "always" and f[2] is Warning for f in after), after[:3]
