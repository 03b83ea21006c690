"""The examples run (with scripted models, so offline and fast)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from judgealign.testing import FunctionModel, ModelRequest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quickstart_runs(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(request: ModelRequest) -> dict[str, Any]:
        return {"rationale": "checked", "result": "Paris" in request.last_user}

    quickstart = load_example("quickstart")
    assert quickstart.main([], model=FunctionModel(answer)) == 0
    out = capsys.readouterr().out
    assert "5 records, 0 errors, 5 model calls" in out
    # The wall time is printed; the per-call figure is named as a latency, not a rate.
    assert re.search(r"5 model calls, \d+\+\d+ tokens in \d+\.\d s\n", out), out
    assert "mean latency per call" in out and "ms per call" not in out
    assert out.count(": True") == 1 and out.count(": False") == 4


def test_quickstart_reports_bad_model(capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = load_example("quickstart")
    assert quickstart.main(["--model", "not-a-uri"]) == 2
    assert "Malformed model URI" in capsys.readouterr().err
