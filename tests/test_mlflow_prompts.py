"""MLflow's prompt registry behind optimize_prompts: URI forms, candidates reaching
``mlflow.genai.load_prompt`` per thread, tags on optimized versions, and promotion only
when held-out scores improve."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import mlflow
import pytest
from mlflow_support import Store, mlflow_store

import optimizers
from judgealign import ConfigurationError
from judgealign.mlflow_integration import MlflowPromptStore, RegistryPrompt, promote_if_improved

__all__ = ["mlflow_store"]

ORIGINAL = "Reply about {{ letter }}."
BETTER = "[a][b][c][d] Reply about {{ letter }}."
WORSE = "[a] Reply about {{ letter }}."
DATA = [{"inputs": {"letter": c}} for c in "abcd"]


def predict_fn(letter: str) -> str:
    """Written the MLflow way: answers OK for a letter only if the prompt lists it."""
    text = mlflow.genai.load_prompt("prompts:/task@production").format(letter=letter)
    return "OK" if f"[{letter}]" in text else "NO"


def ok(outputs: str) -> bool:
    return outputs == "OK"


class Propose(optimizers.BasePromptOptimizer):
    """Proposes one fixed candidate and lets optimize_prompts measure it."""

    def __init__(self, template: str) -> None:
        self.template = template

    def optimize(
        self,
        eval_fn: Any,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
    ) -> optimizers.PromptOptimizerOutput:
        return optimizers.PromptOptimizerOutput(optimized_prompts={"task": self.template})


@pytest.fixture
def store(mlflow_store: Store) -> Iterator[MlflowPromptStore]:
    prompts = MlflowPromptStore()
    previous = optimizers.set_prompt_store(prompts)
    first = prompts.register("task", ORIGINAL, commit_message="first")
    prompts.set_alias("task", "production", first.version or 0)
    try:
        yield prompts
    finally:
        optimizers.set_prompt_store(previous)


def test_the_store_loads_versions_aliases_and_latest(store: MlflowPromptStore) -> None:
    second = store.register("task", BETTER, commit_message="second", tags={"by": "me"})
    assert second == RegistryPrompt("task", BETTER, 2, "second", {"by": "me"}, ())
    assert store.load("task", version=1).stored_template == ORIGINAL
    assert store.load("task", alias="production").version == 1
    assert store.load("task").version == 2 == store.load("task", alias="latest").version
    assert optimizers.load_prompt("prompts:/task@production").format(letter="a") == "Reply about a."
    for kwargs in ({"version": 9}, {"alias": "nope"}):
        with pytest.raises(ConfigurationError, match="Cannot load prompt 'task'"):
            store.load("task", **kwargs)
    with pytest.raises(ConfigurationError):
        store.load("missing")
    assert store.alias_version("task", "nope") is None


@pytest.mark.parametrize(
    "uri", ["prompts:/task/1", "prompts:/task@production", "prompts:/task@latest"]
)
def test_optimize_prompts_reads_any_uri_form_and_registers_a_tagged_version(
    store: MlflowPromptStore, uri: str
) -> None:
    result = optimizers.optimize_prompts(
        predict_fn=predict_fn,
        train_data=DATA,
        prompt_uris=[uri],
        optimizer=Propose(BETTER),
        scorers=[ok],
        max_workers=4,
    )
    assert result.improved and (result.initial_eval_score, result.final_eval_score) == (0.0, 1.0)
    (prompt,) = result.optimized_prompts
    assert (prompt.version, prompt.stored_template) == (2, BETTER)
    registered = mlflow.genai.load_prompt("prompts:/task/2")
    assert registered.template == BETTER
    assert registered.tags["judgealign.optimizer"] == "Propose"
    assert registered.tags["judgealign.scorers"] == "ok"
    assert float(registered.tags["judgealign.initial_score"]) == 0.0
    assert float(registered.tags["judgealign.final_score"]) == 1.0
    assert mlflow.genai.load_prompt("prompts:/task@production").version == 1  # not promoted


def test_no_improvement_registers_nothing(store: MlflowPromptStore) -> None:
    with pytest.warns(optimizers.PromptOptimizationWarning):
        result = optimizers.optimize_prompts(
            predict_fn=predict_fn,
            train_data=DATA,
            prompt_uris=["prompts:/task@production"],
            optimizer=Propose(ORIGINAL.replace("Reply", "Answer")),
            scorers=[ok],
        )
    assert not result.improved
    assert store.load("task").version == 1


def test_each_thread_sees_its_own_candidate_through_mlflow_load_prompt(
    store: MlflowPromptStore,
) -> None:
    barrier = threading.Barrier(3)
    seen: dict[str, set[str]] = {}

    def worker(name: str, template: str | None) -> None:
        texts: set[str] = set()
        if template is None:
            for _ in range(20):
                barrier.wait()
                texts.add(mlflow.genai.load_prompt("prompts:/task/1").format(letter="x"))
        else:
            with optimizers.candidate_prompts({"task": template}) as usage:
                for _ in range(20):
                    barrier.wait()
                    texts.add(mlflow.genai.load_prompt("prompts:/task/1").format(letter="x"))
                    texts.add(optimizers.load_prompt("prompts:/task@production").template)
            assert usage.accessed == {"task"}
        seen[name] = texts

    threads = [
        threading.Thread(target=worker, args=("better", BETTER)),
        threading.Thread(target=worker, args=("worse", WORSE)),
        threading.Thread(target=worker, args=("none", None)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen["better"] == {"[a][b][c][d] Reply about x.", BETTER}
    assert seen["worse"] == {"[a] Reply about x.", WORSE}
    assert seen["none"] == {"Reply about x."}
    assert mlflow.genai.load_prompt("prompts:/task/1").template == ORIGINAL


# -- promotion ----------------------------------------------------------------------------------


def test_a_worse_candidate_is_not_promoted_and_says_why(store: MlflowPromptStore) -> None:
    store.set_alias("task", "production", store.register("task", BETTER).version or 0)
    worse = store.register("task", WORSE)
    decision = promote_if_improved(
        worse, alias="production", data=DATA, predict_fn=predict_fn, scorers=[ok], store=store
    )
    assert not decision.promoted
    assert (decision.baseline_score, decision.candidate_score) == (1.0, 0.25)
    assert decision.baselines == {"task": 2} and decision.candidates == {"task": 3}
    assert "not above" in decision.reason
    assert store.load("task", alias="production").version == 2
    assert store.load("task", version=3).tags["judgealign.promotion.production"] == "rejected"


def test_a_better_candidate_is_promoted_with_its_scores_as_tags(store: MlflowPromptStore) -> None:
    better = store.register("task", BETTER)
    decision = promote_if_improved(
        "prompts:/task/2", alias="production", data=DATA, predict_fn=predict_fn, scorers=[ok]
    )
    assert decision.promoted and decision.evidence == "held_out"
    assert store.load("task", alias="production").version == better.version
    tags = store.load("task", version=2).tags
    assert tags["judgealign.heldout_score"] == "1" and tags["judgealign.baseline_score"] == "0"


def test_min_improvement_and_reported_scores(store: MlflowPromptStore) -> None:
    result = optimizers.optimize_prompts(
        predict_fn=predict_fn,
        train_data=DATA,
        prompt_uris=["prompts:/task@production"],
        optimizer=Propose("[a][b] Reply about {{ letter }}."),
        scorers=[ok],
    )
    assert (result.initial_eval_score, result.final_eval_score) == (0.0, 0.5)
    refused = promote_if_improved(result, alias="production", min_improvement=0.6)
    assert not refused.promoted and refused.evidence == "reported"
    accepted = promote_if_improved(result, alias="production")
    assert accepted.promoted and store.load("task", alias="production").version == 2


def test_without_evidence_or_version_promotion_refuses_to_guess(store: MlflowPromptStore) -> None:
    same = promote_if_improved("prompts:/task/1", alias="production", store=store)
    assert not same.promoted and same.evidence == "none"
    store.register("task", BETTER)
    with pytest.raises(ConfigurationError, match="needs evidence"):
        promote_if_improved("prompts:/task/2", alias="production", store=store)
    with pytest.raises(ConfigurationError, match="must name a version"):
        promote_if_improved("prompts:/task@production", store=store)
    first = promote_if_improved("prompts:/task/1", alias="staging", store=store)
    assert first.promoted and first.reason == "there is no baseline version to beat"
