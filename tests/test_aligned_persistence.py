"""Saving and loading aligned judges: one self-contained, checked file."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from memalign_support import Brain, CountingEmbedder, fixture_records, judge_for, record_view

from judgealign import AlignedJudge, ConfigurationError, MemAlignOptimizer


def verdict_by_outputs(request: Any) -> dict[str, Any]:
    # A deterministic judge: the verdict depends on the record and on the prompt's memory.
    return {
        "rationale": f"prompt of {len(request.system)} chars",
        "result": (len(request.last_user) + len(request.system)) % 2 == 0,
    }


def aligned_judge(count: int = 16, **options: Any):
    brain = Brain(verdict=verdict_by_outputs)
    judge = judge_for(brain.model)
    embedder = CountingEmbedder()
    records = fixture_records(judge, count + 4)
    optimizer = MemAlignOptimizer(embedding_model=embedder, retrieval_k=3, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = judge.align(records[:count], optimizer=optimizer)
    aligned.add_guideline("Pinned person-written rule.", pinned=True)
    return brain, embedder, aligned, records


def test_round_trip_gives_identical_prompts_and_verdicts(tmp_path: Path):
    brain, _, aligned, records = aligned_judge()
    path = aligned.save(tmp_path / "judge.json")
    assert [p.name for p in tmp_path.iterdir()] == ["judge.json"]  # no temp file left

    reloaded_brain = Brain(verdict=verdict_by_outputs)
    loader_embedder = CountingEmbedder()
    loaded = AlignedJudge.load(path, model=reloaded_brain.model, embedder=loader_embedder)
    assert not reloaded_brain.model.requests and not loader_embedder.calls  # loading is free

    probes = records[-4:]
    before = [aligned(inputs=r.inputs, outputs=r.outputs) for r in probes]
    after = [loaded(inputs=r.inputs, outputs=r.outputs) for r in probes]
    systems_before = [r.system for r in brain.requests("verdict")[-4:]]
    systems_after = [r.system for r in reloaded_brain.requests("verdict")]
    assert systems_before == systems_after
    assert [f.value for f in before] == [f.value for f in after]
    for one, two in zip(before, after, strict=True):
        for key in ("retrieved_example_ids", "guideline_ids"):
            assert one.metadata[key] == two.metadata[key]
        assert one.metadata["retrieved_similarities"] == pytest.approx(
            two.metadata["retrieved_similarities"]
        )
    assert loaded.guidelines == aligned.guidelines
    assert loaded.records == aligned.records
    assert loaded.optimizer.retrieval_k == 3


def test_file_is_self_contained_json_with_vectors_and_embedder(tmp_path: Path):
    _, embedder, aligned, records = aligned_judge(6)
    data = json.loads(aligned.save(tmp_path / "j.json").read_text("utf-8"))
    assert data["format"] == "judgealign/aligned-judge" and data["format_version"] == 1
    assert data["checksum"].startswith("sha256:")
    content = data["content"]
    assert content["embedder"] == {"id": embedder.id, "dimension": embedder.dimension}
    assert content["base_judge"]["instructions"] == aligned.base_judge.instructions
    stored = content["records"]
    assert [s["record"]["id"] for s in stored] == [r.id for r in records[:6]]
    assert stored[0]["record"]["rationale"] == records[0].rationale
    assert isinstance(stored[0]["vector"], str)
    assert {g["id"] for g in content["guidelines"]} == {g.id for g in aligned.guidelines}


def test_reloaded_judge_aligns_incrementally(tmp_path: Path):
    _, _, aligned, records = aligned_judge(8)
    path = aligned.save(tmp_path / "j.json")
    brain = Brain()
    embedder = CountingEmbedder()
    loaded = AlignedJudge.load(path, model=brain.model, embedder=embedder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.align(records[:10])  # 8 unchanged, 2 new
    result = loaded.last_alignment
    assert result is not None and len(result.records_unchanged) == 8
    assert len(result.records_added) == 2 and len(brain.requests("distill")) == 1
    # guideline vectors were saved too: only the 2 records and the new guidelines embedded
    assert embedder.calls[0] == record_view(*records[8:10])


def test_loading_without_an_embedder_resolves_the_saved_id_lazily(tmp_path: Path):
    brain = Brain()
    judge = judge_for(brain.model)
    records = fixture_records(judge, 4)
    optimizer = MemAlignOptimizer(embedding_model="hashing:/128")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aligned = judge.align(records, optimizer=optimizer)
    loaded = AlignedJudge.load(aligned.save(tmp_path / "j.json"), model=brain.model)
    assert loaded.embedder_id == "hashing:/char3-5+word@128"
    feedback = loaded(inputs=records[1].inputs, outputs=records[1].outputs)
    assert feedback.metadata["retrieved_example_ids"][0] == records[1].id


def edit_file(path: Path, change: Any) -> None:
    data = json.loads(path.read_text("utf-8"))
    change(data)
    path.write_text(json.dumps(data), "utf-8")


def test_corrupted_content_fails_the_integrity_check(tmp_path: Path):
    _, _, aligned, _ = aligned_judge(4)
    path = aligned.save(tmp_path / "j.json")
    edit_file(path, lambda d: d["content"]["guidelines"][0].update(text="Tampered."))
    with pytest.raises(ConfigurationError, match=r"j\.json.*integrity check failed.*Fix:"):
        AlignedJudge.load(path, model=Brain().model)


def test_truncated_file_is_reported_as_invalid_json(tmp_path: Path):
    _, _, aligned, _ = aligned_judge(4)
    path = aligned.save(tmp_path / "j.json")
    path.write_text(path.read_text("utf-8")[:500], "utf-8")
    with pytest.raises(ConfigurationError, match=r"j\.json.*not valid JSON"):
        AlignedJudge.load(path)


def test_wrong_version_and_wrong_format_are_explained(tmp_path: Path):
    _, _, aligned, _ = aligned_judge(4)
    path = aligned.save(tmp_path / "j.json")
    edit_file(path, lambda d: d.update(format_version=99))
    with pytest.raises(ConfigurationError, match=r"format_version 99.*reads version 1"):
        AlignedJudge.load(path)
    plain = aligned.base_judge.save(tmp_path / "plain.json")
    with pytest.raises(ConfigurationError, match=r"plain\.json.*Judge\.load"):
        AlignedJudge.load(plain)
    with pytest.raises(ConfigurationError, match="does not exist"):
        AlignedJudge.load(tmp_path / "missing.json")


def test_embedder_mismatch_is_refused_unless_reembedding(tmp_path: Path):
    _, _, aligned, records = aligned_judge(6)
    path = aligned.save(tmp_path / "j.json")
    other = CountingEmbedder(128, id="counting:/other@128")
    with pytest.raises(
        ConfigurationError,
        match=r"counting:/hashing@256.*counting:/other@128"
        r".*reembed=True",
    ):
        AlignedJudge.load(path, model=Brain().model, embedder=other)
    same_id_wrong_size = CountingEmbedder(64)
    with pytest.raises(ConfigurationError, match="dimension 256"):
        AlignedJudge.load(path, model=Brain().model, embedder=same_id_wrong_size)

    loaded = AlignedJudge.load(path, model=Brain().model, embedder=other, reembed=True)
    assert other.calls == [record_view(*records[:6])]  # every record, once
    assert loaded.embedder_id == other.id and loaded.guidelines == aligned.guidelines
    feedback = loaded(inputs=records[2].inputs, outputs=records[2].outputs)
    assert feedback.metadata["retrieved_example_ids"][0] == records[2].id


def test_custom_view_must_be_supplied_again(tmp_path: Path):
    def view(fields: Any) -> str:
        return str(fields["outputs"])

    _, _, aligned, records = aligned_judge(4, view=view)
    path = aligned.save(tmp_path / "j.json")
    with pytest.raises(ConfigurationError, match=r"custom view function.*view=my_view"):
        AlignedJudge.load(path, model=Brain().model, embedder=CountingEmbedder())
    loaded = AlignedJudge.load(path, model=Brain().model, embedder=CountingEmbedder(), view=view)
    feedback = loaded(inputs=records[0].inputs, outputs=records[0].outputs)
    assert feedback.metadata["retrieved_example_ids"][0] == records[0].id


def test_a_bad_vector_is_reported(tmp_path: Path):
    _, _, aligned, _ = aligned_judge(4)
    path = aligned.save(tmp_path / "j.json")

    def break_vector(data: dict[str, Any]) -> None:
        data["content"]["records"][0]["vector"] = "AAAAAA=="
        from judgealign.memalign._file import _checksum  # keep the checksum valid

        data["checksum"] = _checksum(data["content"])

    edit_file(path, break_vector)
    with pytest.raises(ConfigurationError, match="stored vector has 1 values, not 256"):
        AlignedJudge.load(path, model=Brain().model)


def test_save_overwrites_atomically(tmp_path: Path):
    _, _, aligned, records = aligned_judge(4)
    path = aligned.save(tmp_path / "j.json")
    aligned.unalign(records[0].id)
    aligned.save(path)
    loaded = AlignedJudge.load(path, model=Brain().model, embedder=CountingEmbedder())
    assert records[0].id not in loaded.record_ids
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.json"]
