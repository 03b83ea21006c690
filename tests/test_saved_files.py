"""Files written by an earlier version still load (fixtures in tests/data/v1).

The fixtures were written by the code before the restructure into subpackages; see
tests/data/v1/README.md. A format change that breaks them fails here.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import optimizers
from judgealign import AlignedJudge, Judge
from judgealign.testing import FunctionModel, ModelRequest

V1 = Path(__file__).parent / "data" / "v1"


def _verdicts(request: ModelRequest) -> Any:
    return {"result": "yes" if "Paris" in request.last_user else "no", "rationale": "checked"}


def test_a_v1_judge_loads_and_judges() -> None:
    data = json.loads((V1 / "judge_v1.json").read_text(encoding="utf-8"))
    assert (data["format"], data["format_version"]) == ("judgealign/judge", 1)
    judge = Judge.from_dict(data, model=FunctionModel(_verdicts))
    assert judge.name == "faithful" and judge.value_spec.choices == ("yes", "no")
    assert judge.to_dict() == data | {"model": judge.to_dict()["model"]}
    feedback = judge(inputs={"article": "Paris"}, outputs="Paris is a city.")
    assert feedback.value == "yes"


def test_a_v1_aligned_judge_loads_with_its_memory_and_history() -> None:
    data = json.loads((V1 / "aligned_v1.json").read_text(encoding="utf-8"))
    assert (data["format"], data["format_version"]) == ("judgealign/aligned-judge", 1)
    aligned = AlignedJudge.load(V1 / "aligned_v1.json", model=FunctionModel(_verdicts))
    assert aligned.record_ids == ("r1", "r2", "r3")
    assert [g.text for g in aligned.guidelines] == [
        "A summary that adds a fact not in the article is not faithful."
    ]
    content = data["content"]
    assert [g.id for g in aligned.guidelines] == [g["id"] for g in content["guidelines"]]
    assert len(aligned.history) == len(content["history"]) >= 1
    assert aligned.optimizer.retrieval_k == 2
    feedback = aligned(inputs={"article": "Paris is in France."}, outputs="Paris, France.")
    assert feedback.ok and feedback.metadata["retrieved_example_ids"]
    # Saved again by today's code, memory and history are the same document.
    again = aligned.to_dict()["content"]
    for key in ("guidelines", "guideline_vectors", "records", "history", "embedder"):
        assert again[key] == content[key], key


def test_a_v1_gepa_run_resumes_without_new_metric_calls(tmp_path: Path) -> None:
    run_dir = tmp_path / "gepa_run"
    shutil.copytree(V1 / "gepa_run", run_dir)
    previous = optimizers.set_prompt_store(optimizers.InMemoryPromptStore())
    calls: list[str] = []
    try:
        optimizers.register_prompt("task", "Answer about {{ topic }}.")

        def predict(topic: str) -> str:
            calls.append(topic)
            return optimizers.load_prompt("prompts:/task/1").format(topic=topic)

        def reflect(request: ModelRequest) -> str:
            return "```\nAnswer carefully and briefly about {{ topic }}.\n```"

        result = optimizers.optimize_prompts(
            predict_fn=predict,
            train_data=[{"inputs": {"topic": t}} for t in "abcd"],
            prompt_uris=["prompts:/task/1"],
            optimizer=optimizers.GepaPromptOptimizer(
                reflection_model=FunctionModel(reflect),
                max_metric_calls=24,
                run_dir=str(run_dir),
                seed=0,
            ),
            scorers=[lambda outputs: "carefully" in outputs],
        )
    finally:
        optimizers.set_prompt_store(previous)
    assert result.details["resumed"] is True
    # One call: the check on the first record that predict_fn reads the target prompt
    # (documented in optimize_prompts); every metric call was journalled by the old run.
    assert calls == ["a"]
    assert result.details["metric_calls_used"] <= 24
    assert re.search(r"carefully", result.optimized_prompts[0].template)
    assert result.final_eval_score == 1.0
