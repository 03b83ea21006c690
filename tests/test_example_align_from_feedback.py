"""examples/align_from_feedback.py runs end to end against a scripted model."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from judgealign.testing import FunctionModel, ModelRequest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "align_from_feedback.py"
CAPITALS = {
    "Australia": "Canberra",
    "Canada": "Ottawa",
    "Brazil": "Brasília",
    "Turkey": "Ankara",
    "Switzerland": "Bern",
    "Nigeria": "Abuja",
    "Morocco": "Rabat",
    "New Zealand": "Wellington",
    "Vietnam": "Hanoi",
    "Pakistan": "Islamabad",
    "Myanmar": "Naypyidaw",
    "South Africa": "Pretoria",
    "Kazakhstan": "Astana",
    "Tanzania": "Dodoma",
    "Côte d'Ivoire": "Yamoussoukro",
    "Germany": "Berlin",
    "Japan": "Tokyo",
}
RULE = "Answers that hedge between two or more cities are wrong, even if one of them is right."


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_align_from_feedback", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def shown_records(text: str) -> list[dict[str, Any]]:
    body = text.split("<records>\n", 1)[1].rsplit("</records>", 1)[0]
    decoder, position, found = json.JSONDecoder(), 0, []
    while (start := body.find("{", position)) != -1:
        obj, position = decoder.raw_decode(body, start)
        found.append(obj)
    return found


def answer(request: ModelRequest) -> dict[str, Any]:
    """A naive judge that learns the hedging rule only from its prompt."""
    kind = request.response_format["json_schema"]["name"] if request.response_format else ""
    if kind == "DistilledGuidelines":
        hedges = [
            r["id"] for r in shown_records(request.last_user) if "Hedging" in r["expert_rationale"]
        ]
        return {"guidelines": [{"text": RULE, "source_ids": hedges}] if hedges else []}
    country = re.search(r"capital of ([^?]+)\?", request.last_user)
    output = re.search(r'"outputs": "([^"]*)"', request.last_user)
    assert country and output
    correct = CAPITALS[country.group(1)] in output.group(1)
    hedged = " or " in output.group(1)
    strict = "hedge between two or more cities" in request.system
    verdict = correct and not (strict and hedged)
    return {"rationale": "checked the capital", "result": verdict}


def test_example_aligns_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    example = load_example()
    model = FunctionModel(answer)
    saved = tmp_path / "aligned.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = example.main(["--embedding-model", "hashing", "--save", str(saved)], model=model)
    out = capsys.readouterr().out
    assert code == 0, out
    # The sample goes to a temporary folder, never the working folder (often the clone).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aligned.json"]
    assert "capital_feedback.jsonl" in out and saved.is_file()
    assert "32 records" in out and "22 to align, 10 held out" in out
    assert RULE in out
    assert "Base vs aligned judge" in out
    report = out.split("Base vs aligned judge", 1)[1]
    # The naive base judge accepts hedged answers; the distilled rule fixes exactly those.
    # The seeded stratified split holds out one hedged answer (capital-28) among ten.
    assert re.search(r"accuracy .* 0\.900 .* 1\.000 .* \+0\.100", report), report
    assert "Fixed by alignment (1): capital-28" in report
    assert "Broken by alignment (0)" in report


def test_example_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example()
    missing = tmp_path / "missing.jsonl"
    assert example.main(["--data", str(missing)], model=FunctionModel(answer)) == 2
    assert "Cannot read records" in capsys.readouterr().err


def test_example_writes_its_sample_to_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    example = load_example()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        argv = ["--embedding-model", "hashing", "--out", "sample"]
        code = example.main(argv, model=FunctionModel(answer))
    assert code == 0, capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]
    assert (tmp_path / "sample" / "capital_feedback.jsonl").is_file()
