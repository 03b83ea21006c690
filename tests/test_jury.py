"""Juries (issue 19, item 5): make_jury votes by majority, mean or weights, keeps each
member's feedback, counts every member's calls, and is taken wherever a judge is."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest

import optimizers
from judgealign import (
    ConfigurationError,
    Jury,
    agreement,
    load_records,
    make_judge,
    make_jury,
    member_agreement,
)
from judgealign.evaluation._members import members_table
from judgealign.testing import FunctionModel, ModelRequest

RECORDS = [{"id": f"r{i}", "inputs": f"q{i}", "outputs": f"answer {i}"} for i in range(6)]


def _judge(name: str, verdict: Any, value_type: Any = bool, **options: Any) -> Any:
    """A judge whose verdict on a record is ``verdict(record number)``."""

    def reply(request: ModelRequest) -> dict[str, Any] | str:
        number = int(request.last_user.split("answer ")[1].split('"')[0].split("\\")[0])
        value = verdict(number)
        if isinstance(value, Exception):
            raise value
        return {"rationale": f"{name} on {number}", "result": value}

    return make_judge(
        name=name,
        instructions="Is {{ outputs }} right for {{ inputs }}?",
        feedback_value_type=value_type,
        model=FunctionModel(reply, uri=f"test:/{name}"),
        **options,
    )


def test_majority_keeps_every_member_and_counts_every_call() -> None:
    jury = make_jury(
        [
            _judge("a", lambda n: n % 2 == 0),
            _judge("b", lambda n: n < 3),
            _judge("c", lambda n: True),
        ]
    )
    result = jury.evaluate(RECORDS)
    assert result.values == [True, True, True, False, True, False]
    first = result[0]
    members = first.metadata["jury"]["members"]
    assert [m["name"] for m in members] == ["a", "b", "c"]
    assert [m["value"] for m in members] == [True, True, True]
    assert members[1]["rationale"] == "b on 0"
    assert result[3].metadata["jury"]["disagreement"] == pytest.approx(
        2 / 3 - 1 / 3 + 1 / 3 - 1 / 3
    )
    assert result.usage.calls == 3 * len(RECORDS)  # each member's call is paid for
    assert first.metadata["model_calls"] == 3
    assert jury.usage.calls == 3 * len(RECORDS)
    json.dumps(first.metadata)  # the metadata stays JSON (MLflow stores it)


def test_a_tie_is_flagged_and_failed_members_are_left_out() -> None:
    jury = make_jury(
        [
            _judge("a", lambda n: True),
            _judge("b", lambda n: False),
            _judge("c", lambda n: RuntimeError("down") if n == 0 else False),
        ]
    )
    one = jury(inputs="q0", outputs="answer 0")
    assert one.value is True  # a 1-1 tie goes to the label voted first
    assert one.metadata["jury"]["tied"] is True
    assert one.metadata["jury"]["members"][2]["error"]
    two = jury(inputs="q1", outputs="answer 1")
    assert (two.value, two.metadata["jury"]["tied"]) == (False, False)


def test_every_member_failing_is_an_error_naming_each() -> None:
    jury = make_jury(
        [_judge("a", lambda n: ValueError("x")), _judge("b", lambda n: ValueError("y"))]
    )
    feedback = jury.evaluate(RECORDS[:1])[0]
    assert feedback.value is None
    assert feedback.error is not None and "a:" in feedback.error and "b:" in feedback.error


def test_mean_of_scores_and_weighted_votes() -> None:
    scores = make_jury(
        [
            _judge("a", lambda n: 2, int, value_range=(1, 5)),
            _judge("b", lambda n: 5, int, value_range=(1, 5)),
        ],
        rule="mean",
        weights={"a": 2, "b": 1},
    )
    feedback = scores(inputs="q", outputs="answer 1")
    assert feedback.value == pytest.approx(3.0)
    assert (scores.value_spec.kind, scores.value_spec.low, scores.value_spec.high) == (
        "float",
        1.0,
        5.0,
    )
    assert scores.normalize(3.0) == pytest.approx(0.5)
    weighted = make_jury(
        [_judge("a", lambda n: True), _judge("b", lambda n: False), _judge("c", lambda n: False)],
        rule=[3, 1, 1],
    )
    assert weighted(inputs="q", outputs="answer 1").value is True


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: make_jury([_judge("a", lambda n: True)]), "two or more judges"),
        (lambda: make_jury([_judge("a", bool), _judge("a", bool)]), "distinct names"),
        (
            lambda: make_jury([_judge("a", lambda n: True), _judge("b", lambda n: 1, int)]),
            "one value type",
        ),
        (
            lambda: make_jury(
                [
                    _judge("a", lambda n: "x", Literal["x", "y"]),
                    _judge("b", lambda n: "x", Literal["x", "y"]),
                ],
                rule="mean",
            ),
            "rule='majority' for labels",
        ),
        (
            lambda: make_jury([_judge("a", bool), _judge("b", bool)], rule={"a": 1}),
            "missing \\['b'\\]",
        ),
        (lambda: make_jury([_judge("a", bool), _judge("b", bool)], rule="vote"), "'majority'"),
    ],
)
def test_misuse_is_refused_with_the_fix(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_a_jury_goes_where_a_judge_goes() -> None:
    jury = make_jury([_judge("a", lambda n: n < 3), _judge("b", lambda n: n < 3)], name="panel")
    assert isinstance(jury, Jury) and jury.name == "panel"
    labelled = load_records(
        [{**r, "label": "yes" if i < 3 else "no"} for i, r in enumerate(RECORDS)], judge=jury
    )
    result = jury.evaluate(labelled)
    report = agreement(result.feedback, [r.label for r in labelled], n_bootstrap=0)
    assert report.accuracy == 1.0
    side = member_agreement(result.feedback, [r.label for r in labelled], n_bootstrap=0)
    assert list(side) == ["panel", "a", "b"]
    assert "panel" in members_table(side)
    evaluate = optimizers.make_eval_fn(lambda n: f"answer {n}", [jury])
    scored = evaluate({}, [{"inputs": {"n": 1}}, {"inputs": {"n": 4}}])
    assert [r.score for r in scored] == [1.0, 0.0]
    assert scored[0].rationales["panel"].startswith("majority of 2 of 2 members")


def test_a_jury_is_a_judge_by_protocol() -> None:
    from judgealign import SupportsJudging

    jury: SupportsJudging = make_jury([_judge("a", lambda n: True), _judge("b", lambda n: True)])
    assert jury.collect_fields(inputs="q", outputs="answer 1") == {
        "inputs": "q",
        "outputs": "answer 1",
    }
    described = jury.to_dict()
    assert described["rule"] == "majority"
    assert [m["name"] for m in described["members"]] == ["a", "b"]
    json.dumps(described)
    with pytest.raises(ConfigurationError):
        jury.collect_fields(inputs="q")  # the members read outputs
