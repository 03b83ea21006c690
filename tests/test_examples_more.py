"""examples/custom_optimizer.py and examples/sme_ratings.py run end to end on scripted models."""

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
from optimizers import EvaluationResultRecord

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def schema_name(request: ModelRequest) -> str:
    fmt = request.response_format
    return fmt["json_schema"]["name"] if fmt else ""


def judged_output(request: ModelRequest) -> str:
    body = request.last_user.split("<record>", 1)[1].rsplit("</record>", 1)[0]
    return str(json.loads(body)["outputs"])


# -- custom_optimizer -------------------------------------------------------------------------


def coffee_model(request: ModelRequest) -> str | dict[str, Any]:
    """Numbered steps only when asked for them; the judge wants numbered steps."""
    if schema_name(request) == "Verdict":
        output = judged_output(request)
        return {"rationale": "checked for steps", "result": output.startswith("1.")}
    if "numbered steps" in request.last_user:
        return "1. Open the menu. 2. Choose Descale. 3. Follow the light."
    return "You might want to look at the manual, it depends on the model."


def test_custom_optimizer_appends_the_instruction_that_helps(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = load_example("custom_optimizer")
    model = FunctionModel(coffee_model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an improvement: no "found nothing better" warning
        assert example.main([], model=model) == 0
    out = capsys.readouterr().out
    assert "InstructionSearch: 0.00 -> 1.00" in out
    assert "kept Answer in at most three numbered steps." in out
    assert "(new version)" in out and "numbered steps.\n\nQuestion: {{ question }}" in out
    # round 1 scores all three instructions; round 2 tries the remaining two, none helps
    assert out.count("round 1:") == 3 and out.count("round 2:") == 2


def test_custom_optimizer_never_exceeds_its_search() -> None:
    example = load_example("custom_optimizer")
    scored: list[dict[str, str]] = []

    def eval_fn(prompts: dict[str, str], data: Any) -> list[Any]:
        scored.append(prompts)
        score = 1.0 if "Be friendly." in prompts["p"] else 0.0
        return [
            EvaluationResultRecord(inputs=r["inputs"], outputs="x", expectations=None, score=score)
            for r in data
        ]

    search = example.InstructionSearch(["Be brief.", "Be friendly."], max_rounds=3)
    output = search.optimize(eval_fn, [{"inputs": {"q": "a"}}], {"p": "Hi.\n\n{{ q }}"})
    assert output.optimized_prompts == {"p": "Hi. Be friendly.\n\n{{ q }}"}
    assert (output.initial_eval_score, output.final_eval_score) == (0.0, 1.0)
    assert len(scored) == 1 + 2 + 1  # original, round 1 (two), round 2 (one left)


# -- sme_ratings ---------------------------------------------------------------------------------

EXAMPLE_RULE = "Rate a correct explanation without an everyday example, or full of jargon, as fair."


def ratings_model(example: ModuleType) -> FunctionModel:
    """A naive judge (anything correct is excellent) that learns the trainer's example rule
    from the distilled guideline; an explainer that gives an example only when asked."""
    truth = {text: rating for _, text, rating, _ in example.RATINGS}
    jargon_ids = {
        f"rating-{n:02d}"
        for n, item in enumerate(example.RATINGS, start=1)
        if item[3] == example.JARGON
    }

    def answer(request: ModelRequest) -> str | dict[str, Any]:
        kind = schema_name(request)
        if kind == "DistilledGuidelines":
            shown = re.findall(r'"id": "(rating-\d\d)"', request.last_user)
            cited = [i for i in shown if i in jargon_ids]
            return {"guidelines": [{"text": EXAMPLE_RULE, "source_ids": cited}] if cited else []}
        if kind == "Verdict":
            output = judged_output(request)
            strict = EXAMPLE_RULE in request.system
            if output in truth:
                rating = truth[output]
                return {
                    "rationale": "rated",
                    "result": "excellent" if rating == "fair" and not strict else rating,
                }
            has_example = "For example" in output
            return {
                "rationale": "rated",
                "result": "excellent" if has_example or not strict else "fair",
            }
        if kind == "prompt_revision":
            return {
                "diagnosis": "No examples.",
                "prompts": {"explain_term": example.PROMPT + " Give an everyday example."},
            }
        if "everyday example" in request.last_user:
            return "It keeps unwanted traffic out. For example, like a doorman for your laptop."
        return "A network security system that filters packets by rule sets."

    return FunctionModel(answer)


def test_sme_ratings_aligns_and_optimizes(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("sme_ratings")
    model = ratings_model(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = example.main(["--embedding-model", "hashing"], model=model)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "24 ratings: 16 to align on, 8 held out" in out
    assert EXAMPLE_RULE in out
    report = out.split("Base vs aligned judge", 1)[1]
    assert "kappa (quadratic-weighted)" in report
    # the naive judge calls every jargon-heavy explanation excellent; alignment fixes them
    assert re.search(r"accuracy .* 1\.000 .* \+0\.\d{3}", report), report
    assert "Broken by alignment (0): none" in report
    assert "0.50 -> 1.00 (improved)" in out
    assert "Give an everyday example." in out


def test_sme_ratings_reports_bad_model(capsys: pytest.CaptureFixture[str]) -> None:
    example = load_example("sme_ratings")
    assert example.main(["--model", "not-a-uri"]) == 2
    assert "Malformed model URI" in capsys.readouterr().err
