"""Labelled records: validation, label vocabulary rules, loaders, duplicate resolution."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from judgealign import (
    ConfigurationError,
    LabeledRecord,
    load_dataframe,
    load_jsonl,
    load_records,
    make_judge,
)
from judgealign.testing import ScriptedModel


def bool_judge():
    return make_judge(
        name="ok", instructions="Is {{ outputs }} right for {{ inputs }}?", model=ScriptedModel()
    )


def label_judge():
    return make_judge(
        name="quality",
        instructions="Rate {{ outputs }}.",
        model=ScriptedModel(),
        feedback_value_type=Literal["good", "fair", "poor"],
    )


def rec(rid: str | None, label, **extra):
    data = {"inputs": {"q": "2+2"}, "outputs": "4", "label": label, **extra}
    if rid is not None:
        data["id"] = rid
    return data


# -- the record type --------------------------------------------------------------------


def test_content_hash_covers_fields_label_and_rationale_but_not_annotator():
    a = LabeledRecord(id="a", inputs="x", outputs="y", label=True, rationale="r", annotator="ann-1")
    assert a.content_hash == a.model_copy(update={"annotator": "ann-2"}).content_hash
    assert a.content_hash != a.model_copy(update={"label": False}).content_hash
    assert a.content_hash != a.model_copy(update={"rationale": "other"}).content_hash
    assert a.content_hash != a.model_copy(update={"outputs": "z"}).content_hash


def test_record_is_frozen_and_rejects_unknown_fields():
    record = LabeledRecord(id="a", outputs="y", label="good")
    with pytest.raises(ValidationError):
        record.label = "bad"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        LabeledRecord(id="a", outputs="y", label="good", colour="red")  # type: ignore[call-arg]


# -- label vocabulary -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes", True),
        ("No", False),
        ("PASS", True),
        ("incorrect", False),
        (1, True),
        (False, False),
        (" true ", True),
    ],
)
def test_bool_judge_maps_the_documented_vocabulary(raw, expected):
    loaded = load_records([rec("a", raw)], judge=bool_judge())
    assert loaded.ok
    assert loaded[0].label is expected


def test_unmappable_label_is_rejected_with_a_clear_problem():
    with pytest.warns(UserWarning, match="rejected"):
        loaded = load_records([rec("a", "maybe"), rec("b", "yes")], judge=bool_judge())
    assert [r.id for r in loaded] == ["b"]
    (problem,) = loaded.problems
    assert problem.location == "item 0" and problem.record_id == "a"
    assert "'maybe'" in problem.message and "true or false" in problem.message
    assert "label_map" in problem.message


def test_label_map_translates_before_coercion():
    loaded = load_records(
        [rec("a", "Useful"), rec("b", "not useful at all")],
        judge=label_judge(),
        label_map={"useful": "good", "Not useful at all": "poor"},
    )
    assert [r.label for r in loaded] == ["good", "poor"]


def test_literal_labels_match_case_insensitively_and_keep_declared_spelling():
    loaded = load_records([rec("a", "GOOD"), rec("b", " Fair ")], judge=label_judge())
    assert [r.label for r in loaded] == ["good", "fair"]


def test_ranged_int_judge_rejects_out_of_range_labels():
    judge = make_judge(
        name="score",
        instructions="Score {{ outputs }}.",
        model=ScriptedModel(),
        feedback_value_type=int,
        value_range=(1, 5),
    )
    with pytest.warns(UserWarning):
        loaded = load_records([rec("a", "4"), rec("b", 9), rec("c", "four")], judge=judge)
    assert [(r.id, r.label) for r in loaded] == [("a", 4)]
    assert {p.record_id for p in loaded.problems} == {"b", "c"}


def test_without_a_judge_labels_are_kept_as_given():
    loaded = load_records([rec("a", "yes")])
    assert loaded[0].label == "yes"


def test_strict_raises_listing_the_problems():
    with pytest.raises(ConfigurationError, match=r"item 1 \(id 'b'\).*'maybe'"):
        load_records([rec("a", "yes"), rec("b", "maybe")], judge=bool_judge(), strict=True)


def test_missing_label_and_missing_fields_are_problems():
    with pytest.warns(UserWarning):
        loaded = load_records(
            [{"id": "a", "outputs": "x"}, {"id": "b", "label": "yes"}, "not a dict"]
        )
    assert len(loaded) == 0
    messages = [p.message for p in loaded.problems]
    assert "label" in messages[0]
    assert "none of the judge fields" in messages[1]
    assert "got str" in messages[2]


def test_missing_id_is_derived_from_content_and_stable():
    first = load_records([rec(None, "yes")])[0]
    again = load_records([rec(None, "no")])[0]
    assert first.id.startswith("rec-") and first.id == again.id


# -- duplicates -------------------------------------------------------------------------


def test_majority_label_wins_and_the_duplicate_is_reported():
    with pytest.warns(UserWarning, match=r"id 'a' appears 3 times .* kept True \(majority\)"):
        loaded = load_records(
            [
                rec("a", "yes", rationale="r1"),
                rec("a", "no", rationale="r2"),
                rec("a", "YES", rationale="r3"),
            ],
            judge=bool_judge(),
        )
    (record,) = loaded
    assert record.label is True and record.rationale == "r3"  # latest of the majority
    (dup,) = loaded.duplicates
    assert dup.rule == "majority" and dup.kept_label is True
    assert dup.locations == ("item 0", "item 1", "item 2")


def test_tie_goes_to_the_latest_by_position():
    with pytest.warns(UserWarning, match=r"kept False \(latest\)"):
        loaded = load_records([rec("a", "yes"), rec("a", "no")], judge=bool_judge())
    assert loaded[0].label is False
    assert loaded.duplicates[0].rule == "latest"


def test_tie_goes_to_the_latest_created_at_before_position():
    with pytest.warns(UserWarning, match="2 id"):
        loaded = load_records(
            [
                rec("a", "yes", created_at="2024-05-02T10:00:00Z"),
                rec("a", "no", created_at="2024-05-01T10:00:00Z"),
                rec("b", "no", created_at="2024-05-01T10:00:00"),
                rec("b", "yes"),
            ],
            judge=bool_judge(),
        )
    assert loaded[0].label is True  # newer timestamp beats later position
    assert loaded[1].label is False  # a dated label beats an undated one


def test_identical_duplicates_are_merged_silently_and_field_differences_reported():
    same = load_records([rec("a", "yes"), rec("a", "yes")], judge=bool_judge())
    assert len(same) == 1 and not same.duplicates
    with pytest.warns(UserWarning, match="fields or rationales differ"):
        differ = load_records([rec("a", "yes"), rec("a", "yes", outputs="5")], judge=bool_judge())
    assert differ.duplicates[0].rule == "unanimous" and differ.duplicates[0].fields_differ
    assert differ[0].outputs == "5"


# -- loaders ----------------------------------------------------------------------------


def test_jsonl_reports_bad_lines_by_number(tmp_path: Path):
    path = tmp_path / "feedback.jsonl"
    lines = [
        json.dumps(rec("a", "yes")),
        "",
        "{not json",
        json.dumps(rec("c", "perhaps")),
        json.dumps(rec("d", "no")),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="2 record"):
        loaded = load_jsonl(path, judge=bool_judge())
    assert [r.id for r in loaded] == ["a", "d"]
    assert [(p.location, p.record_id) for p in loaded.problems] == [
        ("line 3", None),
        ("line 4", "c"),
    ]
    assert "not valid JSON" in loaded.problems[0].message
    assert "2 records loaded, 2 rejected" in loaded.format()


def test_jsonl_limit_and_unreadable_file(tmp_path: Path):
    path = tmp_path / "f.jsonl"
    path.write_text("\n".join(json.dumps(rec(str(i), "yes")) for i in range(5)), "utf-8")
    assert len(load_jsonl(path, limit=2)) == 2
    with pytest.raises(ConfigurationError, match="Cannot read records"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_dataframe_with_column_mapping():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "qid": ["q1", "q2", "q3"],
            "question": ["2+2?", "capital of France?", "3*3?"],
            "answer": ["4", "Lyon", "9"],
            "human_verdict": ["yes", "no", "unsure"],
            "why": ["right", None, "?"],
        },
        index=[10, 11, 12],
    )
    with pytest.warns(UserWarning):
        loaded = load_dataframe(
            frame,
            judge=bool_judge(),
            columns={
                "id": "qid",
                "inputs": ["question"],
                "outputs": "answer",
                "label": "human_verdict",
                "rationale": "why",
            },
        )
    assert [(r.id, r.inputs, r.outputs, r.label, r.rationale) for r in loaded] == [
        ("q1", {"question": "2+2?"}, "4", True, "right"),
        ("q2", {"question": "capital of France?"}, "Lyon", False, ""),
    ]
    (problem,) = loaded.problems
    assert problem.location == "row 12" and problem.record_id == "q3"


def test_column_mapping_is_checked():
    with pytest.raises(ConfigurationError, match="unknown key"):
        load_records([], columns={"verdict": "x"})
    with pytest.raises(ConfigurationError, match="one column name"):
        load_records([], columns={"label": ["a", "b"]})


def test_loaded_records_do_not_warn_when_clean():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = load_records([rec("a", True)], judge=bool_judge())
    assert loaded.ok


def test_defacto_loads_every_record_with_bool_labels(shared_data: Path):
    loaded = load_jsonl(shared_data / "defacto" / "defacto.jsonl", judge=bool_judge(), strict=True)
    assert len(loaded) == 2561 and not loaded.duplicates
    assert sum(r.label is True for r in loaded) == 740
    assert all(r.rationale for r in loaded)
    assert isinstance(loaded[0].inputs, dict) and "document" in loaded[0].inputs


def test_expertqa_ordinal_labels_map_onto_a_literal_judge(shared_data: Path):
    judge = make_judge(
        name="useful",
        instructions="Is {{ outputs }} useful for {{ inputs }}?",
        model=ScriptedModel(),
        feedback_value_type=Literal["useful", "partial", "useless"],
    )
    loaded = load_jsonl(
        shared_data / "expertqa" / "expertqa.jsonl",
        judge=judge,
        strict=True,
        label_map={
            "Useful": "useful",
            "Partially useful": "partial",
            "Not useful at all": "useless",
        },
    )
    assert len(loaded) == 478
    assert {r.label for r in loaded} <= {"useful", "partial", "useless"}
