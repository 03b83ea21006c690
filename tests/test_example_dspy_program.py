"""examples/dspy_program.py runs end to end offline: aligned judge as the DSPy metric."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("dspy")

from judgealign.testing import FunctionModel, ModelRequest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dspy_program.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_dspy_program", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def brain(request: ModelRequest) -> Any:
    """Aligner, judge and reflection model: a rating follows the trainer's rule."""
    fmt = request.response_format or {}
    name = fmt.get("json_schema", {}).get("name", "")
    if name == "DistilledGuidelines":
        rid = request.last_user.split('"id": "', 1)[1].split('"', 1)[0]
        rule = "Without an everyday example an explanation is at best fair."
        return {"guidelines": [{"text": rule, "source_ids": [rid]}]}
    if name == "ConsolidatedGuidelines":
        return {"guidelines": []}
    if name == "Verdict":
        body = request.last_user.split("<record>", 1)[1].rsplit("</record>", 1)[0]
        output = str(json.loads(body)["outputs"])
        if "For example" in output:
            return {"rationale": "plain words and an everyday example", "result": "excellent"}
        return {"rationale": "jargon and no everyday example", "result": "fair"}
    prompt = request.last_user.split("```\n", 1)[1].split("\n```", 1)[0]
    return f"```\n{prompt} Use plain words and give an everyday example.\n```"


def test_the_example_improves_the_explain_predictor(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = example.main(["--embedding-model", "hashing"], model=FunctionModel(brain))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "Validation score (excellent = 1, fair = 0.5, poor = 0): 0.50 -> 1.00" in out
    assert "[explain] (changed)" in out and "[outline]\n" in out
    assert "For example" in out.rsplit("The optimized program on 'firewall':", 1)[1]


def test_bad_model_is_one_line_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    code = example.main(["--model", "nonsense-without-provider", "--embedding-model", "hashing"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
