"""examples/mlflow_loop.py runs end to end on a temporary store with a scripted model."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import mlflow
import pytest
from mlflow_support import Store, mlflow_store

from judgealign.testing import FunctionModel, ModelRequest

__all__ = ["mlflow_store"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mlflow_loop.py"
RIVALS = {"France": "Lyon", "Australia": "Sydney", "Canada": "Toronto", "Turkey": "Istanbul"}
RIVALS |= {"Brazil": "Rio", "Vietnam": "Ho Chi Minh"}
GUIDELINE = "Hedging between cities is not an answer, even if one is right."
BETTER = "Answer with exactly one city, the capital. Question: {{ question }}"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_mlflow_loop", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def world(capitals: dict[str, str]) -> Any:
    """Every model role: the application, the judge, the aligner and the optimizer."""

    def reply(request: ModelRequest) -> Any:
        schema = (request.response_format or {}).get("json_schema", {}).get("schema", {})
        if "calibrating" in request.system:
            ids = re.findall(r'"id": "([^"]+)"', request.last_user)
            return {"guidelines": [{"text": GUIDELINE, "source_ids": ids}]}
        if "prompts" in schema.get("properties", {}):
            return {"diagnosis": "answers hedge", "prompts": {"capital_qa": BETTER}}
        if "impartial evaluator" in request.system:
            record = json.loads(request.last_user.split("<record>\n")[1].split("\n</record>")[0])
            country = re.search(r"capital of (\w+)", json.dumps(record)).group(1)  # type: ignore[union-attr]
            answer = str(record["outputs"])
            strict = "Guidelines from experts" in request.system
            right = capitals[country] in answer and not (strict and " or " in answer)
            return {"rationale": "checked", "result": right}
        country = re.search(r"capital of (\w+)", request.last_user).group(1)  # type: ignore[union-attr]
        if country in RIVALS and "exactly one city" not in request.last_user:
            return f"{capitals[country]} or {RIVALS[country]}"
        return capitals[country]

    return reply


def test_the_mlflow_loop_improves_and_promotes(
    mlflow_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example()
    model = FunctionModel(world(example.CAPITALS))
    assert example.main([], model=model) == 0
    out = capsys.readouterr().out
    assert "1. serving prompts:/capital_qa/1 as @production" in out
    assert "3. 6 expert labels read back from the traces" in out
    assert f"- {GUIDELINE}" in out and "saved as capital_correct v1" in out
    assert "5. optimization: 0.25 -> 1.0; registered prompts:/capital_qa/2" in out
    assert "6. promoted" in out
    assert "held-out answers now: Ankara, Nairobi, Brasilia, Hanoi" in out
    assert "(failed writes: 0)" in out
    assert mlflow.genai.load_prompt("prompts:/capital_qa@production").version == 2
    experiment = mlflow.get_experiment_by_name("judgealign-mlflow-loop")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    operations = {r.data.tags.get("judgealign.operation") for r in runs}
    assert {"evaluate", "optimize_prompts"} <= operations


def test_a_bad_model_uri_is_one_line_and_exit_2(
    mlflow_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    example = load_example()
    assert example.main(["--model", "not-a-uri"]) == 2
    assert "Malformed model URI" in capsys.readouterr().err
