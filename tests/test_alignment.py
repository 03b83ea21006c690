"""MemAlign alignment on the shipped fixture records (long multi-paragraph documents among
them), with scripted models and a counting embedder; DeFacto runs skip without the data.

Each test names the invariant it checks; none touches the network or a real model.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from memalign_support import (
    Brain,
    CountingEmbedder,
    batch_ids,
    fixture_records,
    judge_for,
    record_view,
)

from judgealign import AlignedJudge, ConfigurationError, LabeledRecord, MemAlignOptimizer
from judgealign.memalign._aligned import EXAMPLES_TITLE, GUIDELINES_TITLE
from judgealign.memalign._distill import estimate_tokens
from judgealign.memalign._optimizer import render_view


def setup(count: int = 20, **options: Any):
    brain = Brain()
    judge = judge_for(brain.model)
    embedder = CountingEmbedder()
    optimizer = MemAlignOptimizer(embedding_model=embedder, **options)
    records = fixture_records(judge, count)
    return brain, judge, embedder, optimizer, records


def quiet_align(target: Any, records: Any, optimizer: Any = None) -> AlignedJudge:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if optimizer is not None:
            return target.align(records, optimizer=optimizer)
        return target.align(records)


# -- semantic memory --------------------------------------------------------------------


def test_guidelines_cite_only_ids_of_aligned_records():
    brain, judge, _, optimizer, records = setup(20)

    def distill(request):
        ids = batch_ids(request)
        return {
            "guidelines": [
                {
                    "text": "Named people must appear in the document with the same role.",
                    "source_ids": [ids[0], "defacto-invented-9999"],
                },
                {"text": "Numbers in the summary must match the document.", "source_ids": ids[1:3]},
                {"text": "A rule with no real source.", "source_ids": ["nope"]},
            ]
        }

    brain.distill = distill
    with pytest.warns(UserWarning) as caught:
        aligned = judge.align(records, optimizer=optimizer)
    assert any("unknown record id" in str(w.message) for w in caught)
    known = {r.id for r in records}
    assert aligned.guidelines, "guidelines were distilled"
    for guideline in aligned.guidelines:
        assert guideline.source_ids and set(guideline.source_ids) <= known
    result = aligned.last_alignment
    assert result is not None
    assert "defacto-invented-9999" in result.dropped_source_ids
    unsourced = next(g for g in aligned.guidelines if g.text == "A rule with no real source.")
    assert unsourced.source_ids == tuple(r.id for r in records)  # its batch: all 20 records
    assert any("attributed to all the records of their batch" in w for w in result.warnings)


def test_distillation_prompt_shows_real_ids_labels_and_rationales():
    brain, judge, _, optimizer, records = setup(6)
    aligned = judge.align(records, optimizer=optimizer)
    (request,) = brain.requests("distill")
    assert batch_ids(request) == [r.id for r in records]
    assert records[0].rationale[:40] in request.last_user
    assert '"expert_verdict": true' in request.last_user
    assert INSTRUCTION_SNIPPET in request.system
    assert len(aligned.guidelines) == 6


INSTRUCTION_SNIPPET = "factually consistent with the document"


def test_batches_respect_the_token_budget_and_run_concurrently():
    budget = 4_000
    brain, judge, _, optimizer, records = setup(
        30, batch_token_budget=budget, max_records_per_batch=4
    )
    # Each request waits (briefly) until another one is in flight too: only batches that
    # really run at the same time get past the wait, so a sequential loop records 1.
    in_flight, most = [0], [0]
    lock, overlap = threading.Lock(), threading.Event()
    inner = brain.distill

    def distill(request):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            if in_flight[0] >= 2:
                overlap.set()
        overlap.wait(timeout=2)
        try:
            return inner(request)
        finally:
            with lock:
                in_flight[0] -= 1

    brain.distill = distill
    aligned = judge.align(records, optimizer=optimizer)
    requests = brain.requests("distill")
    assert len(requests) > 1
    covered = [rid for r in requests for rid in batch_ids(r)]
    assert sorted(covered) == sorted(r.id for r in records)  # each record exactly once
    for request in requests:
        assert len(batch_ids(request)) <= 4
        if len(batch_ids(request)) > 1:
            assert estimate_tokens(request.system + request.last_user) <= budget
    assert len(aligned.guidelines) == 30
    assert most[0] >= 2, "distillation batches never ran at the same time"


def test_semantic_dedupe_merges_near_duplicates_and_their_sources():
    brain, judge, _, optimizer, records = setup(8, max_records_per_batch=4)
    texts = iter(
        [
            [
                "A summary must not add facts that are absent from the document.",
                "Dates and numbers in the summary must match the document exactly.",
            ],
            [
                "A summary must not add facts absent from the document.",
                "a summary must NOT add facts that are absent from the document.",
            ],
        ]
    )

    def distill(request):
        ids = batch_ids(request)
        return {
            "guidelines": [{"text": t, "source_ids": [ids[i]]} for i, t in enumerate(next(texts))]
        }

    brain.distill = distill
    optimizer.max_workers = 1  # batches in order, so the merge target is known
    aligned = judge.align(records, optimizer=optimizer)
    assert [g.text for g in aligned.guidelines] == [
        "A summary must not add facts that are absent from the document.",
        "Dates and numbers in the summary must match the document exactly.",
    ]
    merged = aligned.guidelines[0]
    assert merged.source_ids == (records[0].id, records[4].id, records[5].id)
    result = aligned.last_alignment
    assert result is not None and result.guidelines_merged == (merged.id,)


def test_consolidation_merges_past_the_cap_and_keeps_pinned_and_sources():
    brain, judge, _, optimizer, records = setup(6, max_guidelines=5)
    aligned = quiet_align(judge, records[:3], optimizer)
    pinned = aligned.pin_guideline(aligned.guidelines[0].id)

    def consolidate(request):
        import json

        listed = json.loads(request.last_user.split("\n", 1)[1])
        ids = [item["id"] for item in listed]
        assert pinned.id not in ids  # pinned guidelines are not up for rewriting
        return {
            "guidelines": [
                {"text": "Check every entity and number.", "merged_ids": ids[:-1]},
                {"text": "Invented merge.", "merged_ids": ["g-unknown"]},
            ]
        }

    brain.consolidate = consolidate
    quiet_align(aligned, records[3:])
    assert len(brain.requests("consolidate")) == 1
    texts = [g.text for g in aligned.guidelines]
    assert aligned.guidelines[0] == pinned
    assert "Check every entity and number." in texts and "Invented merge." not in texts
    rewritten = next(g for g in aligned.guidelines if g.origin == "consolidated")
    assert set(rewritten.source_ids) == {r.id for r in records[1:5]}
    assert len(aligned.guidelines) == 3  # pinned, rewritten, one uncovered guideline kept


def test_failed_batch_is_retried_once_then_reported_and_retried_next_align():
    brain, judge, embedder, optimizer, records = setup(6)
    attempts: list[int] = []

    def failing(request):
        attempts.append(1)
        raise RuntimeError("reflection service down")

    brain.distill = failing
    with pytest.warns(UserWarning, match="failed twice"):
        aligned = judge.align(records, optimizer=optimizer)
    result = aligned.last_alignment
    assert result is not None and len(attempts) == 2
    (failed,) = result.failed_batches
    assert failed.record_ids == tuple(r.id for r in records)
    assert "reflection service down" in failed.error
    assert len(aligned.records) == 6 and not aligned.guidelines
    assert set(aligned.pending_record_ids) == {r.id for r in records}

    embedder.reset()
    from memalign_support import one_guideline_per_record

    brain.distill = one_guideline_per_record
    quiet_align(aligned, records)
    assert embedder.calls == [[g.text for g in aligned.guidelines]]  # no record re-embedded
    assert len(aligned.guidelines) == 6 and not aligned.pending_record_ids


def test_one_transient_failure_is_absorbed_by_the_retry():
    brain, judge, _, optimizer, records = setup(4)
    calls: list[int] = []
    inner = brain.distill

    def flaky(request):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("connection reset")
        return inner(request)

    brain.distill = flaky
    aligned = judge.align(records, optimizer=optimizer)
    result = aligned.last_alignment
    assert result is not None and not result.failed_batches
    assert len(aligned.guidelines) == 4


def test_no_usable_guideline_is_a_warning_and_in_the_result():
    brain, judge, _, optimizer, records = setup(5)
    brain.distill = lambda request: {"guidelines": []}
    with pytest.warns(UserWarning, match="no usable guideline"):
        aligned = judge.align(records, optimizer=optimizer)
    result = aligned.last_alignment
    assert result is not None and result.records_added and not result.guidelines_added


def test_disagreement_mode_distills_only_where_the_base_judge_differs():
    brain, judge, _, optimizer, records = setup(12, learn_from="disagreements")
    brain.verdict = lambda request: {"rationale": "seems fine", "result": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = judge.align(records, optimizer=optimizer)
    disagreeing = [r.id for r in records if r.label is False]
    assert disagreeing and len(disagreeing) < len(records)
    (request,) = brain.requests("distill")
    assert batch_ids(request) == disagreeing
    assert '"judge_verdict": true' in request.last_user
    assert "seems fine" in request.last_user
    result = aligned.last_alignment
    assert result is not None and result.disagreement_ids == tuple(disagreeing)
    assert len(brain.requests("verdict")) == len(records)
    assert len(aligned.records) == len(records)  # agreeing records are still examples
    sources = {s for g in aligned.guidelines for s in g.source_ids}
    assert sources == set(disagreeing)


# -- episodic memory and the aligned prompt ---------------------------------------------


def test_aligned_prompt_order_and_feedback_metadata():
    brain, judge, _, optimizer, records = setup(15, retrieval_k=3)
    aligned = quiet_align(judge, records[:12], optimizer)
    probe = records[12]
    feedback = aligned(inputs=probe.inputs, outputs=probe.outputs)
    assert feedback.ok and feedback.value is True
    system = brain.requests("verdict")[-1].system
    positions = [
        system.index(part)
        for part in (
            "## Evaluation instructions",
            f"## {GUIDELINES_TITLE}",
            f"## {EXAMPLES_TITLE}",
            "## Output",
        )
    ]
    assert positions == sorted(positions)
    guideline_part = system[positions[1] : positions[2]]
    for number, guideline in enumerate(aligned.guidelines, start=1):
        assert f"\n{number}. {guideline.text}" in guideline_part
    retrieved = feedback.metadata["retrieved_example_ids"]
    assert len(retrieved) == 3 and set(retrieved) <= {r.id for r in records[:12]}
    example_part = system[positions[2] : positions[3]]
    offsets = [example_part.index(f"(id: {rid})") for rid in retrieved]
    assert offsets == sorted(offsets)  # most similar first
    similarities = feedback.metadata["retrieved_similarities"]
    assert similarities == sorted(similarities, reverse=True)
    first = next(r for r in records if r.id == retrieved[0])
    assert first.rationale.replace("</", "<\\/")[:60] in example_part
    assert feedback.metadata["guideline_ids"] == [g.id for g in aligned.guidelines]
    assert probe.outputs in brain.requests("verdict")[-1].last_user


def test_retrieval_embeds_the_same_view_for_records_and_queries():
    _, judge, embedder, optimizer, records = setup(5)
    aligned = quiet_align(judge, records, optimizer)
    assert embedder.calls[0] == record_view(*records)
    embedder.reset()
    feedback = aligned(inputs=records[2].inputs, outputs=records[2].outputs)
    assert embedder.calls == [record_view(records[2])]
    assert feedback.metadata["retrieved_example_ids"][0] == records[2].id
    assert feedback.metadata["retrieved_similarities"][0] == pytest.approx(1.0, abs=1e-5)


def test_custom_view_function_is_used_for_both_sides():
    brain = Brain()
    judge = judge_for(brain.model)
    embedder = CountingEmbedder()
    optimizer = MemAlignOptimizer(
        embedding_model=embedder, view=lambda fields: "SUMMARY: " + str(fields["outputs"])
    )
    records = fixture_records(judge, 3)
    aligned = quiet_align(judge, records, optimizer)
    aligned(inputs=records[0].inputs, outputs="anything")
    assert [t.startswith("SUMMARY: ") for t in embedder.texts].count(False) == 3  # guidelines
    assert "SUMMARY: anything" in embedder.texts
    assert render_view("outputs", {"inputs": 1, "outputs": "x"}) == '{"outputs":"x"}'


def test_evaluate_embeds_all_queries_in_one_call_and_isolates_bad_records():
    _, judge, embedder, optimizer, records = setup(10)
    aligned = quiet_align(judge, records[:6], optimizer)
    embedder.reset()
    batch = [{"inputs": r.inputs, "outputs": r.outputs} for r in records[6:]] + [{"inputs": 1}]
    result = aligned.evaluate(batch, max_workers=4)
    assert embedder.calls == [record_view(*records[6:])]  # the 4 good queries, one call
    assert [fb.ok for fb in result] == [True] * 4 + [False]
    assert "outputs" in (result[4].error or "")
    assert all(len(fb.metadata["retrieved_example_ids"]) == 5 for fb in result[:4])


def test_an_empty_aligned_judge_behaves_like_its_base():
    brain, judge, embedder, optimizer, records = setup(1)
    aligned = AlignedJudge(judge, optimizer=optimizer)
    feedback = aligned(inputs=records[0].inputs, outputs=records[0].outputs)
    assert feedback.metadata["retrieved_example_ids"] == [] and not embedder.calls
    system = brain.requests("verdict")[-1].system
    assert GUIDELINES_TITLE not in system and EXAMPLES_TITLE not in system
    assert aligned.name == judge.name and aligned.value_spec == judge.value_spec
    assert aligned.normalize(True) == 1.0 and aligned.model_uri == judge.model_uri


# -- incremental alignment, forgetting, editing -----------------------------------------


def test_records_are_embedded_while_they_are_distilled():
    # Distillation does not need the vectors, so it does not wait for them: the embedder
    # here blocks until a distillation request arrives, which sequential code never lets
    # happen (it would time out and the assertion below would fail).
    brain, judge, embedder, optimizer, records = setup(12, max_records_per_batch=4)
    distilling = threading.Event()
    inner_distill, inner_embed = brain.distill, embedder.embed
    overlapped: list[bool] = []

    def distill(request):
        distilling.set()
        return inner_distill(request)

    def embed(texts):
        if list(texts) == record_view(*records):  # not the guidelines' batch
            overlapped.append(distilling.wait(timeout=3))
        return inner_embed(texts)

    brain.distill, embedder.embed = distill, embed
    aligned = judge.align(records, optimizer=optimizer)
    assert overlapped == [True]
    assert embedder.calls[0] == record_view(*records)  # records, then guidelines
    assert aligned.pending_record_ids == ()  # statuses set after the records were stored
    assert len(aligned.guidelines) == 12


def test_second_align_with_ten_new_records_embeds_those_ten_and_distills_once():
    brain, judge, embedder, optimizer, records = setup(30)
    aligned = quiet_align(judge, records[:20], optimizer)
    embedder.reset()
    distills_before = len(brain.requests("distill"))
    same = quiet_align(aligned, records)  # 20 unchanged + 10 new
    assert same is aligned
    record_texts = set(record_view(*records))
    embedded_records = [t for t in embedder.texts if t in record_texts]
    assert embedded_records == record_view(*records[20:])
    assert len(brain.requests("distill")) - distills_before == 1
    result = aligned.last_alignment
    assert result is not None
    assert result.records_added == tuple(r.id for r in records[20:])
    assert len(result.records_unchanged) == 20 and len(aligned.records) == 30


def test_unchanged_records_cost_no_model_call_and_no_embedding():
    brain, judge, embedder, optimizer, records = setup(10)
    aligned = quiet_align(judge, records, optimizer)
    embedder.reset()
    requests_before = len(brain.model.requests)
    with pytest.warns(UserWarning, match="Nothing to align"):
        aligned.align([r.model_dump() for r in records])
    assert len(brain.model.requests) == requests_before and not embedder.calls
    result = aligned.last_alignment
    assert result is not None and not result.changed and result.usage.calls == 0


def test_changed_record_is_reembedded_and_its_old_guideline_replaced():
    brain, judge, embedder, optimizer, records = setup(5)
    aligned = quiet_align(judge, records, optimizer)
    old = next(g for g in aligned.guidelines if g.source_ids == (records[1].id,))
    changed = records[1].model_copy(
        update={"label": not records[1].label, "rationale": "Second look: it is wrong."}
    )
    embedder.reset()
    quiet_align(aligned, [changed])
    assert embedder.calls[0] == record_view(changed)
    result = aligned.last_alignment
    assert result is not None and result.records_updated == (changed.id,)
    assert old.id in result.guidelines_removed
    stored = next(r for r in aligned.records if r.id == changed.id)
    assert stored.label == changed.label and stored.rationale == changed.rationale
    assert batch_ids(brain.requests("distill")[-1]) == [changed.id]


def test_unalign_removes_retrieval_and_sole_source_guidelines():
    brain, judge, _, optimizer, records = setup(8)

    def distill(request):
        ids = batch_ids(request)
        return {
            "guidelines": [
                {"text": "Rule only from the first record.", "source_ids": [ids[0]]},
                {"text": "Rule from the first and second.", "source_ids": ids[:2]},
                {"text": "Rule from the rest.", "source_ids": ids[2:]},
            ]
        }

    brain.distill = distill
    aligned = quiet_align(judge, records, optimizer)
    target = records[0]
    kept = aligned.add_guideline("Person-written rule.")
    before = aligned(inputs=target.inputs, outputs=target.outputs)
    assert before.metadata["retrieved_example_ids"][0] == target.id

    aligned.unalign([target.id])
    after = aligned(inputs=target.inputs, outputs=target.outputs)
    assert target.id not in after.metadata["retrieved_example_ids"]
    assert target.id not in aligned.record_ids
    texts = {g.text: g for g in aligned.guidelines}
    assert "Rule only from the first record." not in texts
    assert texts["Rule from the first and second."].source_ids == (records[1].id,)
    assert kept.id in {g.id for g in aligned.guidelines}
    system = brain.requests("verdict")[-1].system
    assert "Rule only from the first record." not in system and target.id not in system
    result = aligned.last_alignment
    assert result is not None and result.records_removed == (target.id,)

    with pytest.warns(UserWarning) as caught:
        aligned.unalign(["not-there"])
    assert [str(w.message).split(" ")[0] for w in caught] == ["1", "Nothing"]


def test_guideline_editing_api_and_pins_surviving_unalign():
    _, judge, _, optimizer, records = setup(3)
    aligned = quiet_align(judge, records, optimizer)
    first = aligned.guidelines[0]
    edited = aligned.edit_guideline(first.id, "Edited rule text.")
    assert edited.id == first.id and edited.source_ids == first.source_ids
    aligned.pin_guideline(first.id)
    added = aligned.add_guideline(
        "Prefer the document over world knowledge.", source_ids=[records[2].id]
    )
    assert added.origin == "user" and aligned.guidelines[-1] == added
    removed = aligned.remove_guideline(aligned.guidelines[1].id)
    assert removed.id not in {g.id for g in aligned.guidelines}
    aligned.unalign([r.id for r in records])
    ids = {g.id for g in aligned.guidelines}
    assert first.id in ids  # pinned: kept, with no sources left
    assert next(g for g in aligned.guidelines if g.id == first.id).source_ids == ()
    assert added.id not in ids  # its only source is gone
    with pytest.raises(ConfigurationError, match="No guideline has id"):
        aligned.edit_guideline("g-missing", "x")
    with pytest.raises(ConfigurationError, match="not in memory"):
        aligned.add_guideline("x", source_ids=["nope"])
    with pytest.raises(ConfigurationError, match="non-empty"):
        aligned.add_guideline("   ")


def test_copy_is_independent():
    _, judge, _, optimizer, records = setup(4)
    aligned = quiet_align(judge, records, optimizer)
    twin = aligned.copy()
    aligned.unalign([records[0]])  # a record object works as well as its id
    assert records[0].id in twin.record_ids and records[0].id not in aligned.record_ids


def test_optimizer_align_updates_an_aligned_judge_in_place():
    _, judge, _, optimizer, records = setup(6)
    aligned = quiet_align(judge, records[:3], optimizer)
    again = optimizer.align(aligned, records[3:])
    assert again is aligned and len(aligned.records) == 6


def test_a_different_embedder_or_view_cannot_be_mixed_in():
    _, judge, _, optimizer, records = setup(4)
    aligned = quiet_align(judge, records[:2], optimizer)
    other = MemAlignOptimizer(embedding_model=CountingEmbedder(id="counting:/other"))
    with pytest.raises(ConfigurationError, match="counting:/other"):
        aligned.align(records[2:], optimizer=other)
    by_inputs = MemAlignOptimizer(embedding_model=optimizer.embedder, view="inputs")
    with pytest.raises(ConfigurationError, match="view"):
        aligned.align(records[2:], optimizer=by_inputs)


def test_bad_records_are_reported_not_fatal_unless_all_are_bad():
    _, judge, _, optimizer, records = setup(3)
    items: list[Any] = [r.model_dump() for r in records]
    items.append(
        {"id": "bad-label", "inputs": {"document": "d"}, "outputs": "s", "label": "perhaps"}
    )
    items.append({"id": "no-outputs", "inputs": {"document": "d"}, "label": "yes"})
    with pytest.warns(UserWarning, match="2 record"):
        aligned = judge.align(items, optimizer=optimizer)
    result = aligned.last_alignment
    assert result is not None and len(aligned.records) == 3
    assert {p.record_id for p in result.problems} == {"bad-label", "no-outputs"}
    with pytest.raises(ConfigurationError, match="None of the 1 record"):
        judge.align(items[-1:], optimizer=optimizer)
    with pytest.raises(ConfigurationError, match="at least one"):
        judge.align([], optimizer=optimizer)


def test_options_are_validated_early():
    with pytest.raises(ConfigurationError, match="retrieval_k"):
        MemAlignOptimizer(retrieval_k=-1)
    with pytest.raises(ConfigurationError, match="dedupe_threshold"):
        MemAlignOptimizer(dedupe_threshold=1.5)
    with pytest.raises(ConfigurationError, match="learn_from"):
        MemAlignOptimizer(learn_from="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="view"):
        MemAlignOptimizer(view="everything")  # type: ignore[arg-type]


def test_reflection_model_defaults_to_the_judge_model_and_can_be_separate():
    brain = Brain()
    reflection = Brain()
    judge = judge_for(brain.model)
    records = fixture_records(judge, 3)
    optimizer = MemAlignOptimizer(
        reflection_model=reflection.model, embedding_model=CountingEmbedder()
    )
    quiet_align(judge, records, optimizer)
    assert len(reflection.requests("distill")) == 1 and not brain.requests("distill")


# -- concurrency ------------------------------------------------------------------------


def test_32_judging_threads_and_a_writer_lose_nothing():
    _, judge, _, optimizer, records = setup(60, max_guidelines=500)
    aligned = quiet_align(judge, records[:20], optimizer)
    errors: list[BaseException] = []
    feedback_seen: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(33)
    done = threading.Event()

    def judge_loop(worker: int) -> None:
        start.wait()
        count = 0
        while not done.is_set() or count < 5:
            probe = records[(worker + count) % len(records)]
            try:
                fb = aligned(inputs=probe.inputs, outputs=probe.outputs)
                assert fb.ok, fb.error
                with lock:
                    feedback_seen.append(fb)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            count += 1

    def writer() -> None:
        try:
            for first in range(20, 60, 10):
                aligned.align(records[first : first + 10])
                aligned.add_guideline(f"Manual rule {first}.")
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=judge_loop, args=(i,)) for i in range(32)]
    writer_thread = threading.Thread(target=lambda: (start.wait(), writer()))
    for thread in [*threads, writer_thread]:
        thread.start()
    for thread in [*threads, writer_thread]:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    assert set(aligned.record_ids) == {r.id for r in records}
    operations = [r.operation for r in aligned.history]
    assert operations.count("align") == 5 and operations.count("add_guideline") == 4
    manual = [g for g in aligned.guidelines if g.text.startswith("Manual rule")]
    assert len(manual) == 4
    distilled_sources = {s for g in aligned.guidelines for s in g.source_ids}
    assert distilled_sources == {r.id for r in records}
    known_ids = {r.id for r in records}
    for fb in feedback_seen:
        assert set(fb.metadata["retrieved_example_ids"]) <= known_ids
        assert len(fb.metadata["retrieved_example_ids"]) == 5
    assert len(feedback_seen) >= 32 * 5


def test_concurrent_writers_are_serialised():
    _, judge, _, optimizer, records = setup(40, max_guidelines=500)
    aligned = AlignedJudge(judge, optimizer=optimizer)
    chunks = [records[i : i + 5] for i in range(0, 40, 5)]
    # catch_warnings is process-wide, so the threads call align directly (no warning is due)
    threads = [threading.Thread(target=aligned.align, args=(chunk,)) for chunk in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(aligned.records) == 40 and len(aligned.guidelines) == 40


# -- packaging --------------------------------------------------------------------------


def test_importing_judgealign_does_not_import_faiss():
    code = "import sys, judgealign; print('faiss' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_records_can_be_labeled_record_objects_or_dicts():
    _, judge, _, optimizer, _ = setup(1)
    aligned = quiet_align(
        judge,
        [
            LabeledRecord(
                id="x1",
                inputs={"document": "The sky is blue."},
                outputs="The sky is blue.",
                label="yes",
                rationale="Matches.",
            ),
            {
                "id": "x2",
                "inputs": {"document": "Rain today."},
                "outputs": "Sun today.",
                "label": "no",
                "rationale": "Contradicts.",
            },
        ],
        optimizer,
    )
    assert [r.label for r in aligned.records] == [True, False]
