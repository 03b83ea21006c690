"""examples/optimize_with_aligned_judge.py runs end to end against a scripted model.

One :class:`FunctionModel` plays every role. As a classifier it gives the bare expected
answer only when the prompt holds :data:`KEYWORD`, and otherwise wraps the answer in a
sentence. As a judge it is naive (a reply that contains the expected answer passes) until
its prompt carries the guideline :data:`RULE`, which it distills from the expert verdicts
that complain about extra text. As a reflection model it proposes a template with the
keyword. So the initial prompt scores 0 under the aligned judge and the proposal scores 1.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from judgealign.testing import FunctionModel, ModelRequest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "optimize_with_aligned_judge.py"
BBH = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbh" / "bbh_prompt_opt.jsonl"
KEYWORD = "Reply with the answer alone"
IMPROVED = f"{KEYWORD}, exactly as the options spell it, and nothing else.\n\n{{{{ question }}}}"
RULE = "Only a reply that is the expected answer alone counts; any extra text makes it wrong."
SCORES = re.compile(r"initial (\d\.\d{3}) -> final (\d\.\d{3})")


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_optimize_with_judge", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def schema_name(request: ModelRequest) -> str:
    fmt = request.response_format
    return fmt["json_schema"]["name"] if fmt else ""


def shown_records(text: str) -> list[dict[str, Any]]:
    body = text.split("<records>\n", 1)[1].rsplit("</records>", 1)[0]
    decoder, position = json.JSONDecoder(), 0
    found: list[dict[str, Any]] = []
    while (start := body.find("{", position)) != -1:
        obj, position = decoder.raw_decode(body, start)
        found.append(obj)
    return found


def verdict(request: ModelRequest) -> dict[str, Any]:
    body = request.last_user.split("<record>\n", 1)[1].rsplit("\n</record>", 1)[0]
    record = json.loads(body)
    reply = str(record["outputs"]).strip().removesuffix(".").casefold()
    expected = str(record["expectations"]["expected_response"]).casefold()
    if RULE in request.system:
        return {"rationale": "bare answer required", "result": reply == expected}
    return {"rationale": "contains the answer", "result": expected in reply}


def scripted_model(answers: dict[str, str]) -> FunctionModel:
    """The model of every role; ``answers`` maps each question to its expected answer."""

    def predict(prompt: str) -> str:
        answer = next(a for q, a in answers.items() if q in prompt)
        return answer if KEYWORD in prompt else f"Looking at this, I would say {answer}."

    def reply(request: ModelRequest) -> str | dict[str, Any]:
        kind = schema_name(request)
        if kind == "DistilledGuidelines":
            cited = [
                r["id"]
                for r in shown_records(request.last_user)
                if re.search(r"sentence|extra text", r.get("expert_rationale", ""))
            ]
            return {"guidelines": [{"text": RULE, "source_ids": cited}] if cited else []}
        if kind == "ConsolidatedGuidelines":
            return {"guidelines": []}
        if "impartial evaluator" in request.system:
            return verdict(request)
        if "You are refining one prompt" in request.last_user:  # GEPA's reflection
            return f"A sharper prompt:\n```\n{IMPROVED}\n```"
        if request.system.startswith("You are a prompt engineer"):  # metaprompt
            return {"diagnosis": "replies carry extra words", "prompts": {"classify": IMPROVED}}
        return predict(request.last_user)

    return FunctionModel(reply)


Run = Callable[[list[str], dict[str, str]], tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run the example in ``tmp_path`` with the scripted model; return (code, out, err)."""
    monkeypatch.chdir(tmp_path)
    example = load_example()

    def go(argv: list[str], answers: dict[str, str]) -> tuple[int, str, str]:
        model = scripted_model(answers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = example.main(["--embedding-model", "hashing", *argv], model=model)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return go


def held_out(out: str) -> dict[str, tuple[float, float]]:
    """The held-out table: metric -> (initial, optimized)."""
    table = out.split("Held-out accuracy", 1)[1]
    rows = re.findall(r"^\s+(exact match|aligned judge)\s+(\d\.\d{3})\s+(\d\.\d{3})$", table, re.M)
    return {name: (float(a), float(b)) for name, a, b in rows}


def sample_answers() -> dict[str, str]:
    example = load_example()
    return {message: label for message, label in example.SAMPLE_TASK}


@pytest.mark.parametrize("optimizer", ["gepa", "metaprompt"])
def test_builtin_task_improves_on_held_out(run: Run, tmp_path: Path, optimizer: str) -> None:
    code, out, err = run(["--optimizer", optimizer], sample_answers())
    assert code == 0, out + err
    assert "support_tickets.jsonl" in out
    assert list(tmp_path.iterdir()) == []  # the sample went to a temporary folder
    assert "24 records" in out and "16 to optimize on, 8 held out" in out
    assert "Looking at this, I would say" in out  # the sample reply to the weak prompt
    assert "aligned on 12 expert verdicts" in out and RULE in out
    scores = SCORES.search(out)
    assert scores, out
    assert float(scores[2]) > float(scores[1])
    assert "registered the better prompt as prompts:/classify/" in out
    assert KEYWORD in out.split("Optimized template:", 1)[1]
    table = held_out(out)
    assert table == {"exact match": (0.0, 1.0), "aligned judge": (0.0, 1.0)}, out


def test_bbh_extract_runs(run: Run) -> None:
    if not BBH.is_file():
        pytest.skip(f"{BBH} is not available")
    answers: dict[str, str] = {}
    for line in BBH.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["inputs"]["task"] == "snarks":
            answers[record["inputs"]["question"]] = record["label"]
    argv = ["--data", str(BBH), "--task", "snarks", "--limit", "12", "--max-metric-calls", "30"]
    code, out, err = run(argv, answers)
    assert code == 0, out + err
    assert "12 records" in out and "8 to optimize on, 4 held out" in out
    assert "derived from the training records" in out
    scores = SCORES.search(out)
    assert scores and float(scores[2]) > float(scores[1]), out
    table = held_out(out)
    assert table["exact match"][1] > table["exact match"][0], out


def test_errors_are_one_line_on_stderr(run: Run, tmp_path: Path) -> None:
    code, _, err = run(["--data", str(tmp_path / "missing.jsonl")], {})
    assert code == 2
    assert err.startswith("error: Cannot read records") and err.count("\n") == 1
    code, _, err = run(["--prompt", "Classify this."], sample_answers())
    assert code == 2 and "{{ question }}" in err


def test_sample_files_go_to_the_named_out_folder(run: Run, tmp_path: Path) -> None:
    code, out, err = run(["--optimizer", "metaprompt", "--out", "sample"], sample_answers())
    assert code == 0, out + err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]
    written = sorted(p.name for p in (tmp_path / "sample").iterdir())
    assert written == ["support_feedback.jsonl", "support_tickets.jsonl"]
