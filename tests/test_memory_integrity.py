"""What an aligned judge's memory reports must be true: stable guideline ids, honest
added/removed lists, a complete history, no stale vectors, no knowledge thrown away for a
formatting slip, and disagreements found by the judge as aligned so far.

Each test runs on the shipped fixture records with scripted models; the last one replays
the same checks on long DeFacto records and skips without the shared data.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from memalign_support import (
    Brain,
    CountingEmbedder,
    batch_ids,
    defacto_records,
    fixture_records,
    judge_for,
    needs_defacto,
)

from judgealign import AlignedJudge, ConfigurationError, MemAlignOptimizer
from judgealign.memalign._aligned import EXAMPLES_TITLE, GUIDELINES_TITLE
from judgealign.testing import ModelRequest


def setup(count: int, **options: Any):
    brain = Brain()
    judge = judge_for(brain.model)
    embedder = CountingEmbedder()
    optimizer = MemAlignOptimizer(embedding_model=embedder, **options)
    return brain, judge, embedder, optimizer, fixture_records(judge, count)


def quiet(call: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return call(*args, **kwargs)


def listed(request: ModelRequest) -> list[dict[str, str]]:
    """The guidelines a consolidation request offers for rewriting."""
    return json.loads(request.last_user.split("\n", 1)[1])


# -- 2. guideline ids are stable through consolidation -----------------------------------


def test_consolidation_keeps_a_guideline_the_model_kept_as_is():
    brain, judge, _, optimizer, records = setup(6, max_guidelines=5)
    aligned = quiet(judge.align, records[:3], optimizer=optimizer)
    edited = aligned.edit_guideline(aligned.guidelines[1].id, "A person's own wording.")
    before = {g.id: g for g in aligned.guidelines}

    def consolidate(request: ModelRequest) -> dict[str, Any]:
        items = listed(request)
        kept = [{"text": item["text"], "merged_ids": [item["id"]]} for item in items[:2]]
        rest = {"text": "Check names and numbers.", "merged_ids": [i["id"] for i in items[2:]]}
        return {"guidelines": [*kept, rest]}

    brain.consolidate = consolidate
    quiet(aligned.align, records[3:])
    (request,) = brain.requests("consolidate")
    kept_ids = [item["id"] for item in listed(request)[:2]]
    assert edited.id in kept_ids
    now = {g.id: g for g in aligned.guidelines}
    for guideline_id in kept_ids:
        assert now[guideline_id] == before[guideline_id]  # same id, text, origin, sources
    assert not any(g.id.endswith("-2") for g in aligned.guidelines)
    result = aligned.last_alignment
    assert result is not None
    assert not set(kept_ids) & set(result.guidelines_removed)
    assert not set(kept_ids) & set(result.guidelines_added)
    # the id a user was shown still works
    assert aligned.edit_guideline(edited.id, "Reworded again.").id == edited.id


def test_a_rewrite_that_repeats_one_of_its_guidelines_keeps_that_id():
    brain, judge, _, optimizer, records = setup(4, max_guidelines=3)
    aligned = quiet(judge.align, records[:3], optimizer=optimizer)
    first, second, third = aligned.guidelines

    def consolidate(request: ModelRequest) -> dict[str, Any]:
        items = {item["id"]: item for item in listed(request)}
        return {
            "guidelines": [
                {"text": items[first.id]["text"], "merged_ids": [first.id, second.id]},
            ]
        }

    brain.consolidate = consolidate
    quiet(aligned.align, records[3:])
    survivor = aligned.guidelines[0]
    assert survivor.id == first.id and survivor.text == first.text
    assert survivor.origin == "distilled"
    assert set(survivor.source_ids) == {*first.source_ids, *second.source_ids}
    assert third.id in {g.id for g in aligned.guidelines}  # not covered by the reply: kept
    result = aligned.last_alignment
    assert result is not None
    assert result.guidelines_removed == (second.id,)
    assert first.id in result.guidelines_merged


# -- 3. guidelines_removed lists only ids that existed before ----------------------------


def test_removed_guidelines_are_only_ids_that_existed_before_the_align():
    brain, judge, _, optimizer, records = setup(8, max_guidelines=3)

    def consolidate(request: ModelRequest) -> dict[str, Any]:
        ids = [item["id"] for item in listed(request)]
        half = len(ids) // 2
        return {
            "guidelines": [
                {"text": "Names must match the document.", "merged_ids": ids[:half]},
                {"text": "Numbers must match the document.", "merged_ids": ids[half:]},
            ]
        }

    brain.consolidate = consolidate
    aligned = quiet(judge.align, records[:4], optimizer=optimizer)  # from empty memory
    result = aligned.last_alignment
    assert result is not None and len(brain.requests("consolidate")) == 1
    assert result.guidelines_removed == ()
    assert set(result.guidelines_added) == {g.id for g in aligned.guidelines}

    existing = {g.id for g in aligned.guidelines}
    quiet(aligned.align, records[4:])  # the two old ones and four new ones are consolidated
    result = aligned.last_alignment
    assert result is not None
    assert result.guidelines_removed and set(result.guidelines_removed) <= existing
    assert set(result.guidelines_added) == {g.id for g in aligned.guidelines} - existing


# -- 4. every change lands in the history, and the history is saved ---------------------


def test_guideline_edits_are_recorded_in_history_and_saved(tmp_path: Path):
    _, judge, _, optimizer, records = setup(3)
    aligned = quiet(judge.align, records, optimizer=optimizer)
    target = aligned.guidelines[0].id
    added = aligned.add_guideline("Prefer the document over world knowledge.")
    aligned.edit_guideline(target, "Edited rule.")
    aligned.pin_guideline(target)
    aligned.pin_guideline(target, False)
    aligned.remove_guideline(added.id)
    operations = [
        (r.operation, r.guidelines_added, r.guidelines_edited, r.guidelines_removed)
        for r in aligned.history
    ]
    align_entry = aligned.history[0]
    assert operations == [
        ("align", align_entry.guidelines_added, (), ()),
        ("add_guideline", (added.id,), (), ()),
        ("edit_guideline", (), (target,), ()),
        ("pin_guideline", (), (target,), ()),
        ("unpin_guideline", (), (target,), ()),
        ("remove_guideline", (), (), (added.id,)),
    ]
    assert all(r.changed for r in aligned.history)
    assert aligned.last_alignment is align_entry  # the latest align/unalign, as documented

    loaded = AlignedJudge.load(
        aligned.save(tmp_path / "j.json"), model=Brain().model, embedder=CountingEmbedder()
    )
    assert loaded.history == aligned.history
    assert loaded.last_alignment == align_entry


def test_history_with_failures_problems_and_duplicates_round_trips(tmp_path: Path):
    brain, judge, _, optimizer, records = setup(4)

    def down(request: ModelRequest) -> Any:
        raise RuntimeError("reflection service down")

    brain.distill = down
    items: list[Any] = [r.model_dump() for r in records]
    items.append({**items[0], "label": "no" if records[0].label else "yes"})  # duplicate id
    items.append({"id": "bad", "inputs": {"document": "d"}, "outputs": "s", "label": "perhaps"})
    aligned = quiet(judge.align, items, optimizer=optimizer)
    result = aligned.last_alignment
    assert result is not None and result.failed_batches and result.problems
    assert result.duplicates
    loaded = AlignedJudge.load(
        aligned.save(tmp_path / "j.json"), model=Brain().model, embedder=CountingEmbedder()
    )
    assert loaded.history == aligned.history


def test_a_file_without_history_still_loads(tmp_path: Path):
    _, judge, _, optimizer, records = setup(2)
    aligned = quiet(judge.align, records, optimizer=optimizer)
    data = aligned.to_dict()
    del data["content"]["history"]
    from judgealign.memalign._file import _checksum  # pyright: ignore[reportPrivateUsage]

    data["checksum"] = _checksum(data["content"])
    loaded = AlignedJudge.from_dict(data, model=Brain().model, embedder=CountingEmbedder())
    assert loaded.history == () and loaded.guidelines == aligned.guidelines


# -- 5. an embedder change never meets stale vectors -------------------------------------


def emptied_judge(**options: Any):
    """A judge aligned then emptied of records; one pinned guideline (with a vector) stays."""
    brain, judge, _, optimizer, records = setup(6, **options)
    aligned = quiet(judge.align, records[:3], optimizer=optimizer)
    pinned = aligned.pin_guideline(aligned.guidelines[0].id)
    aligned.unalign([r.id for r in records[:3]])
    assert not aligned.record_ids and [g.id for g in aligned.guidelines] == [pinned.id]
    return brain, aligned, pinned, records


@pytest.mark.parametrize("dimension", [256, 128])
def test_after_every_record_is_gone_a_new_embedder_reembeds_the_guidelines(dimension: int):
    _, aligned, pinned, records = emptied_judge()
    other = CountingEmbedder(dimension, id=f"counting:/other@{dimension}")
    quiet(aligned.align, records[3:], optimizer=MemAlignOptimizer(embedding_model=other))
    assert aligned.embedder_id == other.id
    assert pinned.text in other.texts  # its old vector was not compared with new ones
    assert len(aligned.guidelines) == 4 and len(aligned.record_ids) == 3
    data = aligned.to_dict()["content"]
    assert data["embedder"] == {"id": other.id, "dimension": dimension}
    assert set(data["guideline_vectors"]) == {g.id for g in aligned.guidelines}
    feedback = aligned(inputs=records[4].inputs, outputs=records[4].outputs)
    assert feedback.metadata["retrieved_example_ids"][0] == records[4].id


def test_an_embedder_of_another_dimension_is_refused_before_any_paid_call():
    brain, judge, _, optimizer, records = setup(4)
    aligned = quiet(judge.align, records[:2], optimizer=optimizer)
    calls = len(brain.model.requests)
    same_id_other_size = CountingEmbedder(128)  # the id of the 256-dimension embedder
    with pytest.raises(ConfigurationError, match=r"dimension 256.*128"):
        aligned.align(records[2:], optimizer=MemAlignOptimizer(embedding_model=same_id_other_size))
    assert len(brain.model.requests) == calls and not same_id_other_size.calls
    assert len(aligned.record_ids) == 2


# -- 6. a guideline with unknown sources is attributed to its batch ----------------------


def test_a_guideline_citing_only_unknown_ids_is_kept_for_its_batch():
    brain, judge, _, optimizer, records = setup(6, max_records_per_batch=3, max_workers=1)
    replies = iter(
        [
            [{"text": "Rule cited properly.", "source_ids": "FIRST"}],
            [
                {"text": "Rule with a made-up source.", "source_ids": ["<record id>", "x"]},
                {"text": "Rule with no source at all.", "source_ids": []},
                {"text": "  ", "source_ids": "FIRST"},
                {"text": "rule CITED properly.", "source_ids": "FIRST"},
            ],
        ]
    )

    def distill(request: ModelRequest) -> dict[str, Any]:
        ids = batch_ids(request)
        items = [
            {
                **item,
                "source_ids": [ids[0]] if item["source_ids"] == "FIRST" else item["source_ids"],
            }
            for item in next(replies)
        ]
        return {"guidelines": items}

    brain.distill = distill
    with pytest.warns(UserWarning) as caught:
        aligned = judge.align(records, optimizer=optimizer)
    said = [str(w.message) for w in caught]
    assert any(
        "2 guideline(s) cited no record id of their batch; they were kept" in m for m in said
    )
    by_text = {g.text: g for g in aligned.guidelines}
    second_batch = tuple(r.id for r in records[3:])
    assert set(by_text) == {
        "Rule cited properly.",
        "Rule with a made-up source.",
        "Rule with no source at all.",
    }
    assert by_text["Rule with a made-up source."].source_ids == second_batch
    assert by_text["Rule with no source at all."].source_ids == second_batch
    assert by_text["Rule cited properly."].source_ids == (records[0].id, records[3].id)
    result = aligned.last_alignment
    assert result is not None and set(result.dropped_source_ids) == {"<record id>", "x"}

    aligned.unalign([r.id for r in records[3:5]])  # one record of the batch still supports them
    assert by_text["Rule with a made-up source."].id in {g.id for g in aligned.guidelines}
    aligned.unalign(records[5].id)
    assert {g.text for g in aligned.guidelines} == {"Rule cited properly."}


# -- 7. disagreements are found by the judge as aligned so far ---------------------------


def test_disagreement_mode_judges_with_the_memory_aligned_so_far():
    brain, judge, _, optimizer, records = setup(12, learn_from="disagreements", retrieval_k=3)
    # A scripted judge that says true until it has guidelines, and false once it has some.
    brain.verdict = lambda request: {
        "rationale": "scripted",
        "result": GUIDELINES_TITLE not in request.system,
    }
    first, second = records[:6], records[6:]
    aligned = quiet(judge.align, first, optimizer=optimizer)
    first_result = aligned.last_alignment
    assert first_result is not None and aligned.guidelines
    assert first_result.disagreement_ids == tuple(r.id for r in first if r.label is False)

    seen = len(brain.requests("verdict"))
    quiet(aligned.align, second)
    judged = brain.requests("verdict")[seen:]
    assert len(judged) == len(second)
    assert all(GUIDELINES_TITLE in r.system and EXAMPLES_TITLE in r.system for r in judged)
    for request in judged:  # examples come from earlier aligns, never from this batch
        assert not any(f"(id: {r.id})" in request.system for r in second)
    result = aligned.last_alignment
    assert result is not None
    # the current judge says false now, so the records it gets wrong are the true ones
    assert result.disagreement_ids == tuple(r.id for r in second if r.label is True)
    (request,) = brain.requests("distill")[1:]
    assert batch_ids(request) == list(result.disagreement_ids)


def test_a_pending_record_is_not_its_own_example_when_judged_again():
    brain, judge, _, optimizer, records = setup(6, learn_from="disagreements", retrieval_k=6)
    brain.verdict = lambda request: {"rationale": "scripted", "result": True}

    def down(request: ModelRequest) -> Any:
        raise RuntimeError("reflection service down")

    brain.distill = down
    aligned = quiet(judge.align, records[:4], optimizer=optimizer)
    pending = set(aligned.pending_record_ids)
    assert pending == {r.id for r in records[:4] if r.label is False}
    seen = len(brain.requests("verdict"))
    from memalign_support import one_guideline_per_record

    brain.distill = one_guideline_per_record
    quiet(aligned.align, records)
    for request in brain.requests("verdict")[seen:]:
        shown = {r.id for r in records if f"(id: {r.id})" in request.system}
        judged_id = next(r.id for r in records if r.outputs in request.last_user)
        assert judged_id not in shown


# -- the same checks on long real records -------------------------------------------------


@needs_defacto
def test_ids_history_and_removed_lists_hold_on_long_defacto_records(tmp_path: Path):
    brain = Brain()
    judge = judge_for(brain.model)
    records = defacto_records(judge, 40)
    optimizer = MemAlignOptimizer(
        embedding_model=CountingEmbedder(), max_guidelines=12, max_records_per_batch=5
    )

    def consolidate(request: ModelRequest) -> dict[str, Any]:
        items = listed(request)  # keep the first three as they are, merge the others by pairs
        kept = [{"text": i["text"], "merged_ids": [i["id"]]} for i in items[:3]]
        pairs = [
            {"text": f"Merged {a['id']} and {b['id']}.", "merged_ids": [a["id"], b["id"]]}
            for a, b in zip(items[3::2], items[4::2], strict=False)
        ]
        return {"guidelines": kept + pairs}

    brain.consolidate = consolidate
    aligned = quiet(judge.align, records[:20], optimizer=optimizer)
    first = aligned.last_alignment
    assert first is not None and first.guidelines_removed == ()
    assert set(first.guidelines_added) == {g.id for g in aligned.guidelines}
    shown = {g.id: g for g in aligned.guidelines}
    user = aligned.add_guideline("Dates in the summary must appear in the document.")
    kept_ids = {g.id for g in aligned.guidelines if g.origin == "distilled"}

    quiet(aligned.align, records[20:])
    second = aligned.last_alignment
    assert second is not None and len(brain.requests("consolidate")) >= 2
    before = {*shown, user.id}
    assert set(second.guidelines_removed) <= before
    now = {g.id: g for g in aligned.guidelines}
    for guideline_id in kept_ids & set(now):
        assert now[guideline_id].text == shown[guideline_id].text
    assert not any(g.id.endswith("-2") for g in aligned.guidelines)
    assert [r.operation for r in aligned.history] == ["align", "add_guideline", "align"]
    loaded = AlignedJudge.load(aligned.save(tmp_path / "j.json"), model=Brain().model)
    assert loaded.history == aligned.history


@needs_defacto
def test_disagreements_and_batch_attribution_hold_on_long_defacto_records():
    brain = Brain()
    judge = judge_for(brain.model)
    records = defacto_records(judge, 24)
    optimizer = MemAlignOptimizer(
        embedding_model=CountingEmbedder(), learn_from="disagreements", max_records_per_batch=4
    )
    brain.verdict = lambda request: {
        "rationale": "scripted",
        "result": GUIDELINES_TITLE not in request.system,
    }
    # the model garbles every id: each guideline is attributed to its whole batch
    brain.distill = lambda request: {
        "guidelines": [{"text": f"Rule for {batch_ids(request)[0]}.", "source_ids": ["<id>"]}]
    }
    aligned = quiet(judge.align, records[:12], optimizer=optimizer)
    assert aligned.guidelines and all(len(g.source_ids) >= 1 for g in aligned.guidelines)
    wrong_first = {r.id for r in records[:12] if r.label is False}
    assert {s for g in aligned.guidelines for s in g.source_ids} == wrong_first

    seen = len(brain.requests("verdict"))
    quiet(aligned.align, records[12:])
    judged = brain.requests("verdict")[seen:]
    assert len(judged) == 12 and all(EXAMPLES_TITLE in r.system for r in judged)
    assert not any(f"(id: {r.id})" in q.system for q in judged for r in records[12:])
    result = aligned.last_alignment
    assert result is not None
    assert result.disagreement_ids == tuple(r.id for r in records[12:] if r.label is True)
    aligned.unalign(sorted(wrong_first))
    assert all(set(g.source_ids).isdisjoint(wrong_first) for g in aligned.guidelines)
