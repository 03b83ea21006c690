"""Verdict value types: declaration checks and coercion rules."""

from __future__ import annotations

import math
from typing import Literal

import pytest

from judgealign import ConfigurationError
from judgealign.judges._values import MAX_INT_ENUM, ValueCoercionError, ValueSpec


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), ("True", True), ("yes", True), (" No ", False), (0, False), ("pass", True)],
)
def test_bool_coercion(raw: object, expected: bool) -> None:
    assert ValueSpec.from_type(bool).coerce(raw) is expected


@pytest.mark.parametrize("raw", ["banana", 2, None, 0.5, [True]])
def test_bool_rejects(raw: object) -> None:
    with pytest.raises(ValueCoercionError):
        ValueSpec.from_type(bool).coerce(raw)


def test_int_coercion_and_range() -> None:
    spec = ValueSpec.from_type(int, (1, 5))
    assert spec.coerce("4") == 4
    assert spec.coerce(3.0) == 3
    assert spec.json_schema() == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "enum": [1, 2, 3, 4, 5],
    }
    for bad in ("4.5", 6, 0, True, "x"):
        with pytest.raises(ValueCoercionError):
            spec.coerce(bad)


def test_int_ranges_are_sent_as_enums_up_to_the_bound_and_as_bounds_beyond() -> None:
    assert ValueSpec.from_type(int, (0.5, 3.5)).json_schema()["enum"] == [1, 2, 3]
    assert len(ValueSpec.from_type(int, (1, MAX_INT_ENUM)).json_schema()["enum"]) == MAX_INT_ENUM
    wide = ValueSpec.from_type(int, (0, MAX_INT_ENUM)).json_schema()
    assert wide == {"type": "integer", "minimum": 0, "maximum": MAX_INT_ENUM}
    assert "enum" not in ValueSpec.from_type(float, (1, 5)).json_schema()
    assert "enum" not in ValueSpec.from_type(int).json_schema()


def test_an_int_range_holding_no_integer_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"value_range=\(0.2, 0.8\) holds no integer"):
        ValueSpec.from_type(int, (0.2, 0.8))


def test_float_rejects_nan_and_inf() -> None:
    spec = ValueSpec.from_type(float)
    assert spec.coerce("0.25") == 0.25
    for bad in (math.nan, "inf", float("-inf")):
        with pytest.raises(ValueCoercionError):
            spec.coerce(bad)


def test_label_matches_case_insensitively_and_returns_declared_spelling() -> None:
    spec = ValueSpec.from_type(Literal["Good", "Fair", "Poor"])
    assert spec.coerce(" fair ") == "Fair"
    assert spec.json_schema() == {"type": "string", "enum": ["Good", "Fair", "Poor"]}
    with pytest.raises(ValueCoercionError, match="allowed label"):
        spec.coerce("okay")


@pytest.mark.parametrize(
    ("value_type", "value_range", "match"),
    [
        (dict, None, "not supported"),
        (list[str], None, "not supported"),
        (Literal[1, 2], None, "Literal of non-empty strings"),
        (bool, (1, 5), "applies only to int or float"),
        (int, (5, 1), "low <= high"),
        (int, (1, math.inf), "finite"),
        (float, (1,), "pair"),
    ],
)
def test_bad_declarations_are_rejected(value_type: object, value_range: object, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ValueSpec.from_type(value_type, value_range)  # type: ignore[arg-type]


def test_round_trip_through_dict() -> None:
    for spec in (
        ValueSpec.from_type(int, (1, 5)),
        ValueSpec.from_type(Literal["a", "b"]),
        ValueSpec.from_type(str),
    ):
        assert ValueSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigurationError, match="unknown"):
        ValueSpec.from_dict({"kind": "complex"})
