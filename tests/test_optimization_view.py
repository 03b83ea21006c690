"""The optimization view lists every proposal, scored or rejected and why (table, JSON, plot)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from judgealign import Feedback
from judgealign.cli._optimization_view import proposals
from judgealign.cli._optimize import echo_optimization, optimization_summary
from judgealign.cli._plots import curve_factory
from judgealign.testing import ScriptedModel
from optimizers import (
    InMemoryPromptStore,
    MetaPromptOptimizer,
    load_prompt,
    optimize_prompts,
    register_prompt,
    set_prompt_store,
)

ORIGINAL = "Reply about {{ letter }}."


def knowing(letters: str) -> str:
    return "".join(f"[{c}]" for c in letters) + " " + ORIGINAL


def reply(template: str) -> dict[str, Any]:
    return {"diagnosis": "letters are missing", "prompts": {"task": template}}


def predict(letter: str) -> str:
    text = load_prompt("prompts:/task/1").format(letter=letter)
    return "OK" if f"[{letter}]" in text else "NO"


def correct(outputs: str) -> Feedback:
    return Feedback(name="correct", value=outputs == "OK")


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    previous = set_prompt_store(InMemoryPromptStore())
    register_prompt("task", ORIGINAL)
    yield
    set_prompt_store(previous)


@pytest.fixture
def metaprompt_result() -> Any:
    model = ScriptedModel(
        [
            reply("[a][b] Reply."),  # loses {{ letter }}: rejected before scoring
            reply(knowing("abcd")),  # 4 of 8: a new best
            reply(knowing("a")),  # 1 of 8: scored, not better
        ]
    )
    return optimize_prompts(
        predict_fn=predict,
        train_data=[{"inputs": {"letter": c}} for c in "abcdefgh"],
        prompt_uris=["prompts:/task/1"],
        optimizer=MetaPromptOptimizer(model, max_iterations=3),
        scorers=[correct],
        enable_tracking=False,
    )


def test_every_metaprompt_proposal_is_listed_with_its_outcome(metaprompt_result: Any) -> None:
    rows = [(p.step, p.score, p.best, p.outcome) for p in proposals(metaprompt_result)]
    assert rows == [
        (0, 0.0, 0.0, "original"),
        (1, None, 0.0, "rejected"),
        (2, 0.5, 0.5, "new best"),
        (3, 0.125, 0.5, "not better"),
    ]
    rejected = proposals(metaprompt_result)[1]
    assert rejected.reason == "template variables changed: 'task' lost {{ letter }}"


def test_json_table_and_plot_show_the_rejected_proposal(
    metaprompt_result: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    summary = optimization_summary(metaprompt_result, ORIGINAL)
    curve = json.loads(json.dumps(summary))["curve"]
    assert [p["step"] for p in curve] == [0, 1, 2, 3]
    assert curve[1]["score"] is None and "letter" in curve[1]["reason"]
    echo_optimization(summary, records=8)
    table = capsys.readouterr().out
    assert "rejected: template variables changed: 'task' lost {{ letter }}" in table
    assert "not better: did not beat the best so far" in table
    for step in ("0", "1", "2", "3"):
        assert any(line.split()[:1] == [step] for line in table.splitlines()), table
    factory = curve_factory(metaprompt_result, "score")
    assert factory is not None
    axes = factory().axes[0]
    drawn = sum(len(c.get_offsets()) for c in axes.collections)
    assert drawn == 4  # the original, two scored proposals and one cross for the rejection
    labels = [t.get_text() for t in axes.texts]
    assert labels == ["'task' lost {{ letter }}"], labels


def test_gepa_rejections_carry_their_detail() -> None:
    result = SimpleNamespace(
        initial_eval_score=0.25,
        details={
            "history": [
                {"iteration": 1, "kind": "reflection", "outcome": "template_variables"},
                {"iteration": 2, "kind": "reflection", "outcome": "not_better"},
                {"iteration": 3, "kind": "reflection", "outcome": "accepted", "child_val": 0.75},
                {"iteration": 4, "kind": "reflection", "outcome": "skipped_perfect"},
            ],
            "rejected_candidates": [
                {
                    "iteration": 1,
                    "reason": "template_variables",
                    "detail": "template variables changed: lost ['question'], added none",
                },
                {"iteration": 2, "reason": "not_better", "detail": "minibatch sum 1 vs 2"},
            ],
        },
    )
    rows = [(p.step, p.score, p.best, p.outcome, p.reason) for p in proposals(result)]
    assert rows == [
        (0, 0.25, 0.25, "original", ""),
        (1, None, 0.25, "rejected", "template variables changed: lost ['question'], added none"),
        (2, None, 0.25, "not better", "minibatch sum 1 vs 2"),
        (3, 0.75, 0.75, "new best", ""),
        (4, None, 0.75, "rejected", "the parent already scored perfectly on the minibatch"),
    ]
