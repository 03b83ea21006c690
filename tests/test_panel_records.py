"""Multi-rater records (issue 19, item 1): ratings, the resolved label, ties, loaders in
nested and long form, and the errors for bad panel data (each names the row and the fix,
and nothing is dropped without being counted)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pandas as pd
import pytest

from judgealign import (
    ConfigurationError,
    LabeledRecord,
    load_csv,
    load_dataframe,
    load_jsonl,
    load_records,
    make_judge,
)
from judgealign.judges._values import ValueSpec
from judgealign.testing import ScriptedModel


def _bool_judge() -> object:
    return make_judge(
        name="ok",
        instructions="Is {{ outputs }} correct?",
        feedback_value_type=bool,
        model=ScriptedModel([]),
    )


def _rated(*pairs: tuple[str, object]) -> list[dict[str, object]]:
    return [{"rater": rater, "label": label} for rater, label in pairs]


# -- the record type ---------------------------------------------------------------------


def test_majority_resolves_the_label_and_joins_the_rationales() -> None:
    record = LabeledRecord(
        id="r1",
        outputs="Paris",
        ratings=[
            {"rater": "alice", "label": "yes", "rationale": "correct capital"},
            {"rater": "bob", "label": "no", "rationale": "too short"},
            {"rater": "carol", "label": "yes"},
        ],
    )
    assert record.label == "yes"
    assert record.resolution == "majority"
    assert record.contested
    assert "alice" in record.rationale and "too short" in record.rationale


def test_unanimous_tie_and_given_label() -> None:
    same = LabeledRecord(id="a", outputs="x", ratings=_rated(("a", 1), ("b", 1)))
    assert (same.label, same.resolution, same.contested) == (1, "unanimous", False)
    tie = LabeledRecord(id="b", outputs="x", ratings=_rated(("a", "no"), ("b", "yes")))
    # A tie is flagged; the label is the tied one rated first, so the choice is stable.
    assert (tie.label, tie.resolution) == ("no", "tie")
    given = LabeledRecord(
        id="c", outputs="x", label="yes", ratings=_rated(("a", "no"), ("b", "no"))
    )
    assert (given.label, given.resolution) == ("yes", "given")


def test_median_is_a_declared_rule_for_ordered_labels() -> None:
    record = LabeledRecord(
        id="m", outputs="x", resolution="median", ratings=_rated(("a", 1), ("b", 5), ("c", 2))
    )
    assert (record.label, record.resolution) == (2, "median")


def test_single_expert_records_keep_their_content_hash() -> None:
    # The hash is what alignment depends on; adding the ratings field must not change it
    # for records without ratings (their stored judges would otherwise look stale).
    plain = LabeledRecord(id="x", outputs="o", label=True, rationale="r")
    import hashlib

    from judgealign.judges._records import canonical_json

    payload = {**plain.judge_fields(), "label": True, "rationale": "r"}
    assert plain.content_hash == hashlib.sha256(canonical_json(payload).encode()).hexdigest()
    paneled = LabeledRecord(id="x", outputs="o", rationale="r", ratings=_rated(("a", True)))
    assert paneled.content_hash != plain.content_hash


def test_coercion_reresolves_from_the_coerced_ratings() -> None:
    # "Yes", "y" and "no" are two votes for True once coerced; as raw text they are three
    # different labels and the first one would have won a three-way tie.
    record = LabeledRecord(
        id="a", outputs="x", ratings=_rated(("a", "no"), ("b", "Yes"), ("c", "y"))
    )
    assert record.resolution == "tie"
    coerced = record.with_label_for(ValueSpec.from_type(bool))
    assert (coerced.label, coerced.resolution) == (True, "majority")
    assert [r.label for r in coerced.ratings] == [False, True, True]


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ([{"label": "yes"}], "ratings[0] has no rater id"),
        (_rated(("alice", "yes"), ("alice", "no")), "rater 'alice' rated this record twice"),
        ([], "no ratings and no label"),
        ([{"rater": "bob"}], "ratings[0] ('bob') label"),
    ],
)
def test_bad_ratings_name_the_rating_and_the_fix(
    ratings: list[dict[str, object]], expected: str
) -> None:
    with pytest.warns(UserWarning, match="1 record"):
        result = load_records([{"id": "r", "outputs": "x", "ratings": ratings}])
    assert len(result) == 0
    assert len(result.problems) == 1
    assert expected in result.problems[0].message
    assert result.problems[0].record_id == "r"


def test_a_label_outside_the_declared_set_names_the_rater() -> None:
    judge = make_judge(
        name="grade",
        instructions="Grade {{ outputs }}.",
        feedback_value_type=Literal["good", "bad"],
        model=ScriptedModel([]),
    )
    with pytest.warns(UserWarning, match="1 record"):
        result = load_records(
            [{"id": "r", "outputs": "x", "ratings": _rated(("alice", "good"), ("bob", "meh"))}],
            judge=judge,
        )
    assert "rater 'bob'" in result.problems[0].message
    assert "'meh'" in result.problems[0].message


# -- loaders: nested JSONL, long-form CSV and DataFrame ---------------------------------


def test_jsonl_with_nested_ratings(tmp_path: Path) -> None:
    path = tmp_path / "panel.jsonl"
    path.write_text(
        '{"id": "a", "outputs": "x", "ratings": [{"rater": "al", "label": "yes"}, '
        '{"rater": "bo", "label": "yes"}]}\n'
        '{"id": "b", "outputs": "y", "label": "no"}\n'
    )
    result = load_jsonl(path, judge=_bool_judge())
    assert [(r.id, r.label, r.resolution) for r in result] == [
        ("a", True, "unanimous"),
        ("b", False, None),
    ]


LONG_CSV = """id,inputs,outputs,rater,label,rationale
a,q1,ans1,alice,yes,fine
a,,ans1,bob,no,wrong
a,q1,ans1,carol,yes,
b,q2,ans2,alice,no,
b,q2,ans2,alice,yes,
c,q3,ans3,alice,yes,
c,q3,OTHER,bob,yes,
,q4,ans4,bob,yes,
d,q5,ans5,,yes,
e,q6,ans6,bob,maybe,
"""


def test_long_form_csv_groups_rows_and_reports_every_bad_group(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text(LONG_CSV)
    with pytest.warns(UserWarning, match="4 record"):
        result = load_csv(path, judge=_bool_judge())
    by_id = {r.id: r for r in result}
    assert set(by_id) == {"a", "d"}
    panel = by_id["a"]
    assert [(r.rater, r.label) for r in panel.ratings] == [
        ("alice", True),
        ("bob", False),
        ("carol", True),
    ]
    assert panel.inputs == "q1"  # an empty cell on one row takes the other rows' value
    assert (panel.label, panel.resolution) == (True, "majority")
    problems = {p.record_id: p for p in result.problems}
    assert problems["b"].location == "lines 5, 6"
    assert "rater 'alice' rated id 'b' twice (line 5 and line 6)" in problems["b"].message
    assert "differ in 'outputs'" in problems["c"].message
    assert "give the records different ids" in problems["c"].message
    assert "has a rater but no 'id'" in problems[None].message
    assert problems[None].location == "line 9"
    assert "rater 'bob'" in problems["e"].message
    # Nothing silently dropped: 11 lines = 1 header + 3 (a) + 1 (d) + 2 + 2 + 1 + 1 rejected.
    assert len(result) + len(result.problems) == 6


def test_long_form_rows_with_and_without_a_rater_under_one_id(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "outputs": "x", "rater": "al", "label": "yes"},
        {"id": "a", "outputs": "x", "label": "no"},
    ]
    with pytest.warns(UserWarning, match="1 record"):
        result = load_records(rows)
    assert len(result) == 0
    assert "item 1 has no 'rater'" in result.problems[0].message
    with pytest.raises(ConfigurationError, match="items 0, 1"):
        load_records(rows, strict=True)


def test_long_form_dataframe_with_renamed_columns() -> None:
    frame = pd.DataFrame(
        {
            "item": ["q1", "q1", "q2", "q2"],
            "answer": ["a1", "a1", "a2", "a2"],
            "expert": ["al", "bo", "al", "bo"],
            "verdict": [1, 1, 0, 1],
        },
        index=[10, 11, 12, 13],
    )
    with pytest.warns(UserWarning, match=r"1 panel record\(s\) tied .*: q2"):
        result = load_dataframe(
            frame,
            judge=_bool_judge(),
            columns={"id": "item", "outputs": "answer", "rater": "expert", "label": "verdict"},
        )
    assert result.tied_ids == ("q2",) and "tied panels (1): q2" in result.format()
    assert [(r.id, r.label, r.resolution) for r in result] == [
        ("q1", True, "unanimous"),
        ("q2", False, "tie"),
    ]


def test_panel_records_round_trip_and_single_records_dump_as_before() -> None:
    # Aligned judges save their records with model_dump: a panel record must come back
    # whole (a tie stays flagged), and a single expert's record must dump without the
    # panel fields, so that files saved before panels existed are saved again unchanged.
    tie = LabeledRecord(id="t", outputs="x", ratings=_rated(("a", "no"), ("b", "yes")))
    again = LabeledRecord.model_validate(tie.model_dump(mode="json"))
    assert again == tie and again.resolution == "tie"
    plain = LabeledRecord(id="p", outputs="x", label=True)
    assert "ratings" not in plain.model_dump() and "resolution" not in plain.model_dump()
    assert LabeledRecord.model_validate(plain.model_dump(mode="json")) == plain


# -- MLflow traces with several experts (read through attributes: no mlflow needed) ----------


def _assessment(value: object, source: str | None, at: int, rationale: str = "") -> object:
    from types import SimpleNamespace

    return SimpleNamespace(
        name="ok",
        value=value,
        rationale=rationale,
        feedback=SimpleNamespace(value=value),
        valid=True,
        error=None,
        source=SimpleNamespace(source_type="HUMAN", source_id=source),
        last_update_time_ms=at,
    )


def _trace(*assessments: object) -> object:
    from types import SimpleNamespace

    root = SimpleNamespace(parent_id=None, inputs={"q": "2+2?"}, outputs="4")
    return SimpleNamespace(
        info=SimpleNamespace(trace_id="tr-1", assessments=list(assessments)),
        data=SimpleNamespace(spans=[root]),
    )


def test_a_trace_labelled_by_several_experts_is_one_panel_record() -> None:
    from judgealign.judges._traces import trace_label_records

    trace = _trace(
        _assessment("no", "bob", 1, "wrong"),
        _assessment("yes", "ana", 2),
        _assessment("yes", "bob", 3, "on second thought"),  # bob's later label replaces his
    )
    (row,) = trace_label_records(trace, "ok")
    result = load_records([row], judge=_bool_judge(), strict=True)
    (record,) = result
    assert [(r.rater, r.label) for r in record.ratings] == [("bob", True), ("ana", True)]
    assert (record.label, record.resolution) == (True, "unanimous")
    assert "on second thought" in record.rationale
    one_expert = trace_label_records(_trace(_assessment("no", "bob", 1)), "ok")
    assert [r.get("ratings") for r in one_expert] == [None]  # a single expert: as before


def test_a_trace_label_without_a_source_id_is_a_rating_without_a_rater() -> None:
    from judgealign.judges._traces import trace_label_records

    rows = trace_label_records(
        _trace(_assessment("no", "bob", 1), _assessment("yes", None, 2)), "ok"
    )
    with pytest.warns(UserWarning, match="1 record"):
        result = load_records(rows, judge=_bool_judge())
    assert len(result) == 0 and "has no rater id" in result.problems[0].message
