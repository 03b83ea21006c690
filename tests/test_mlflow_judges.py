"""Judges and aligned judges saved in MLflow and loaded back by name and version, in this
process and in a fresh one, with identical verdicts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import mlflow
import pytest
from mlflow_support import Store, mlflow_store

from judgealign import AlignedJudge, ConfigurationError, Judge, MemAlignOptimizer, make_judge
from judgealign.mlflow_integration import list_judge_versions, load_judge, log_judge
from judgealign.testing import ChatRequest, FakeOpenAIServer, FunctionModel, ModelRequest

__all__ = ["mlflow_store"]

INSTRUCTIONS = "Is {{ outputs }} a correct answer to {{ inputs }}?"
RECORDS = [
    {"id": "r1", "inputs": "2+2?", "outputs": "4", "label": True, "rationale": "right"},
    {"id": "r2", "inputs": "2+2?", "outputs": "four", "label": True, "rationale": "words count"},
    {"id": "r3", "inputs": "2+3?", "outputs": "6", "label": False, "rationale": "wrong"},
]
PROBES = [
    {"inputs": "3+1?", "outputs": "four"},
    {"inputs": "3+1?", "outputs": "4"},
    {"inputs": "1+1?", "outputs": "3"},
]


def reply(text: str, system: str) -> dict[str, Any]:
    """Deterministic: digits pass; words pass only for an aligned judge; the rationale
    echoes what the judge was shown, so that any prompt difference would show."""
    if "calibrating" in system:
        ids = re.findall(r'"id": "([^"]+)"', text)
        return {"guidelines": [{"text": "Numbers written as words count.", "source_ids": ids}]}
    shown = re.findall(r'"outputs": "([^"]*)"', system)
    answer = re.findall(r'"outputs": "([^"]*)"', text)[-1]
    ok = answer in ("4", "2") or (answer == "four" and "written as words" in system)
    return {"rationale": f"answer {answer}; examples {shown}", "result": ok}


def server_reply(request: ChatRequest) -> dict[str, Any]:
    return reply(request.last_user, request.messages[0]["content"])


def local_reply(request: ModelRequest) -> dict[str, Any]:
    return reply(request.last_user, request.system)


def verdicts(judge: Any) -> list[tuple[Any, str]]:
    return [(f.value, f.rationale) for f in judge.evaluate(PROBES, max_workers=1)]


def test_a_judge_round_trips_by_name_and_version(mlflow_store: Store) -> None:
    judge = make_judge(name="correct", instructions=INSTRUCTIONS, model="openai:/fake")
    first = log_judge(judge, description="v1")
    edited = make_judge(
        name="correct", instructions=INSTRUCTIONS + " Be strict.", model="openai:/x"
    )
    second = log_judge(edited)
    assert (first.version, second.version) == (1, 2)
    assert first.kind == "judge" and first.experiment_id == mlflow_store.experiment_id
    assert [v.version for v in list_judge_versions("correct")] == [1, 2]
    loaded = load_judge("correct", 1)
    assert isinstance(loaded, Judge) and loaded.to_dict() == judge.to_dict()
    assert load_judge("correct").to_dict() == edited.to_dict()
    assert load_judge("correct@latest").instructions.endswith("Be strict.")
    assert load_judge("correct/1").model_uri == "openai:/fake"
    run = mlflow.get_run(first.run_id)
    assert (
        run.data.params["model"] == "openai:/fake" and run.data.tags["mlflow.note.content"] == "v1"
    )


def test_unknown_names_and_versions_are_clear_errors(mlflow_store: Store) -> None:
    with pytest.raises(ConfigurationError, match="No judge named 'nobody'"):
        load_judge("nobody")
    log_judge(make_judge(name="correct", instructions=INSTRUCTIONS, model="openai:/fake"))
    with pytest.raises(ConfigurationError, match="no version 7; versions: 1"):
        load_judge("correct", 7)
    with pytest.raises(ConfigurationError, match="letters, digits"):
        log_judge(make_judge(name="it's", instructions=INSTRUCTIONS, model="openai:/fake"))


def test_an_aligned_judge_loads_self_contained_without_traces_or_model_calls(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = FunctionModel(local_reply)
    base = make_judge(name="correct", instructions=INSTRUCTIONS, model=model)
    optimizer = MemAlignOptimizer(embedding_model="hashing", retrieval_k=2)
    aligned = base.align(RECORDS, optimizer=optimizer)
    logged = log_judge(aligned, name="correct-aligned")
    assert logged.kind == "aligned_judge"
    calls = len(model.requests)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("loading must not read traces")

    monkeypatch.setattr("judgealign.integrations.mlflow._client.get_trace", forbidden)
    monkeypatch.setattr("judgealign.integrations.mlflow._client.search_traces", forbidden)
    loaded = load_judge("correct-aligned", model=model)
    assert isinstance(loaded, AlignedJudge) and len(model.requests) == calls
    assert loaded.record_ids == ("r1", "r2", "r3")
    assert [g.text for g in loaded.guidelines] == ["Numbers written as words count."]
    assert verdicts(loaded) == verdicts(aligned)


_CHILD = """
import json, sys
import mlflow
from judgealign.mlflow_integration import load_judge
mlflow.set_tracking_uri(sys.argv[1])
probes = json.loads(sys.argv[2])
out = {}
for name in ("correct", "correct-aligned"):
    judge = load_judge(name)
    out[name] = [[f.value, f.rationale] for f in judge.evaluate(probes, max_workers=1)]
print(json.dumps(out))
"""


def test_logged_judges_give_identical_verdicts_in_a_fresh_process(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    with FakeOpenAIServer(reply=server_reply) as server:
        base = make_judge(
            name="correct",
            instructions=INSTRUCTIONS,
            model="openai:/fake",
            base_url=server.base_url,
        )
        aligned = base.align(
            RECORDS,
            optimizer=MemAlignOptimizer(
                reflection_model=FunctionModel(local_reply), embedding_model="hashing"
            ),
        )
        log_judge(base)
        log_judge(aligned, name="correct-aligned")
        child = subprocess.Popen(  # the fresh process loads while this one judges
            [sys.executable, "-c", _CHILD, mlflow_store.uri, json.dumps(PROBES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": _root()},
        )
        here = {"correct": verdicts(base), "correct-aligned": verdicts(aligned)}
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr[-2000:]
    assert [v for v, _ in here["correct"]] == [False, True, False]
    assert [v for v, _ in here["correct-aligned"]] == [True, True, False]
    there = json.loads(stdout.strip().splitlines()[-1])
    assert there == {k: [list(v) for v in vs] for k, vs in here.items()}


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_register_lists_base_and_aligned_judges_on_mlflows_judges_page(
    mlflow_store: Store,
) -> None:
    from mlflow.genai.scorers import get_scorer as mlflow_get_scorer
    from mlflow.genai.scorers import list_scorers

    base = make_judge(name="correct", instructions=INSTRUCTIONS, model=FunctionModel(local_reply))
    aligned = base.align(RECORDS, optimizer=MemAlignOptimizer(embedding_model="hashing"))
    base.register()
    aligned.register(name="correct_aligned")

    listed = {s.name for s in list_scorers(experiment_id=mlflow_store.experiment_id)}
    assert {"correct", "correct_aligned"} <= listed
    shown = mlflow_get_scorer(name="correct_aligned", experiment_id=mlflow_store.experiment_id)
    assert "Numbers written as words count." in shown.instructions  # the guidelines
    assert shown.instructions.startswith(INSTRUCTIONS)
    # The complete judge (memory included) is still the run that load_judge reads.
    assert load_judge("correct_aligned").record_ids == aligned.record_ids


def test_a_label_judges_verdict_type_reaches_mlflow(mlflow_store: Store) -> None:
    from typing import Literal

    from mlflow.genai.scorers import get_scorer as mlflow_get_scorer

    from judgealign.mlflow_integration import register_scorer

    judge = make_judge(
        name="tone",
        instructions="Is the tone of {{ outputs }} right?",
        model=FunctionModel(local_reply),
        feedback_value_type=Literal["good", "bad"],
    )
    assert register_scorer(judge) >= 1
    shown = mlflow_get_scorer(name="tone", experiment_id=mlflow_store.experiment_id)
    assert "good" in json.dumps(shown.model_dump(), default=str)
