"""Alignment from panels (issue 19, item 4): MemAlign learns from the resolved label and
every rater's rationale, keeps contested records as such and shows them to the judge as
contested, and with panel="agreed" distils only from records the raters agree on."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from memalign_support import Brain, CountingEmbedder, batch_ids, judge_for, needs_defacto

from judgealign import (
    AlignedJudge,
    ConfigurationError,
    LabeledRecord,
    MemAlignOptimizer,
    load_jsonl,
)

SHARED_DEFACTO = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "defacto" / "defacto.jsonl"
)


def _panel_records() -> list[LabeledRecord]:
    agreed = LabeledRecord(
        id="agreed",
        inputs="The council met on Monday and approved the budget.",
        outputs="The council approved the budget.",
        ratings=[
            {"rater": "alice", "label": True, "rationale": "Supported by the first sentence."},
            {"rater": "bob", "label": True, "rationale": "Matches the article."},
        ],
    )
    split = LabeledRecord(
        id="split",
        inputs="The museum reopened after renovation; attendance is not yet known.",
        outputs="The museum reopened to record crowds.",
        ratings=[
            {"rater": "alice", "label": False, "rationale": "Record crowds are not stated."},
            {"rater": "bob", "label": True, "rationale": "Reopening is the main claim."},
            {"rater": "carol", "label": False, "rationale": "Adds an unsupported claim."},
        ],
    )
    return [agreed, split]


def _align(panel: str) -> tuple[AlignedJudge, Brain]:
    brain = Brain()
    judge = judge_for(brain.model)
    optimizer = MemAlignOptimizer(embedding_model=CountingEmbedder(), panel=panel)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # panel="agreed" warns of the contested record
        aligned = judge.align(_panel_records(), optimizer=optimizer)
    return aligned, brain


def test_distillation_sees_every_rationale_and_the_split() -> None:
    _aligned, brain = _align("all")
    (request,) = brain.requests("distill")
    assert sorted(batch_ids(request)) == ["agreed", "split"]
    text = request.last_user
    # Every rater's rationale reaches the reflection model, with the panel's split.
    assert "Record crowds are not stated." in text and "Reopening is the main claim." in text
    assert '"experts_split"' in text and '"carol": false' in text


def test_agreed_only_distils_from_the_records_the_panel_agrees_on() -> None:
    aligned, brain = _align("agreed")
    (request,) = brain.requests("distill")
    assert batch_ids(request) == ["agreed"]
    result = aligned.last_alignment
    assert result is not None
    assert any("panel='agreed'" in w and "split" in w for w in result.warnings)
    # The contested record is still stored (with its ratings) and retrievable.
    stored = {r.id: r for r in aligned.records}
    assert stored["split"].contested and len(stored["split"].ratings) == 3
    assert aligned.optimizer.settings()["panel"] == "agreed"


def test_the_judge_sees_a_contested_example_as_contested(tmp_path: Path) -> None:
    aligned, brain = _align("all")
    aligned(inputs="The museum reopened after renovation.", outputs="The museum reopened.")
    system = brain.requests("verdict")[-1].system
    assert "Contested: the experts split (alice: false, bob: true, carol: false)" in system
    assert system.count("Contested:") == 1  # the agreed example is not marked
    # Saved and loaded, the panel survives: the example is still shown as contested.
    path = aligned.save(tmp_path / "aligned.json")
    again = AlignedJudge.load(path, model=brain.model)
    assert {r.id: r.resolution for r in again.records} == {
        "agreed": "unanimous",
        "split": "majority",
    }
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["content"]["optimizer"].get("panel") is None  # the default is not written


def test_a_bad_panel_option_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="panel"):
        MemAlignOptimizer(panel="majority")  # type: ignore[arg-type]


@needs_defacto
def test_panel_alignment_on_long_defacto_records(tmp_path: Path) -> None:
    # Real, long DeFacto documents as a panel: the expert label plus two simulated raters
    # (one agreeing, one flipping every third record) in long form, loaded and aligned.
    brain = Brain()
    judge = judge_for(brain.model)
    source = list(load_jsonl(SHARED_DEFACTO, judge=judge, limit=12, strict=True))
    rows = []
    for i, record in enumerate(source):
        fields = {"id": record.id, "inputs": record.inputs, "outputs": record.outputs}
        rows.append(
            {**fields, "rater": "expert", "label": record.label, "rationale": record.rationale}
        )
        rows.append({**fields, "rater": "second", "label": record.label})
        rows.append(
            {**fields, "rater": "third", "label": record.label if i % 3 else not record.label}
        )
    path = tmp_path / "panel.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    panel = load_jsonl(path, judge=judge, strict=True)
    assert len(panel) == 12 and all(len(r.ratings) == 3 for r in panel)
    assert [r.label for r in panel] == [r.label for r in source]  # 2 of 3 keep the expert's
    optimizer = MemAlignOptimizer(embedding_model=CountingEmbedder(), panel="agreed")
    with pytest.warns(UserWarning, match="4 record"):
        aligned = judge.align(list(panel), optimizer=optimizer)
    distilled = {rid for r in brain.requests("distill") for rid in batch_ids(r)}
    assert distilled == {r.id for i, r in enumerate(source) if i % 3}
    assert len(aligned.records) == 12
