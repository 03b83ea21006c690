"""Verdict value types: what a judge may return, and how raw replies are coerced to it.

A judge declares ``feedback_value_type`` as ``bool``, ``int``, ``float``, ``str`` or a
``Literal`` of strings; numeric judges may add a range. :class:`ValueSpec` is the checked
form of that declaration. It gives the JSON schema sent to the model and coerces what the
model (or an expert) returned.

Coercion rules (documented in the README, applied to model replies and to SME labels):

* ``bool``: ``True``/``False``; the strings ``true, yes, y, pass, correct, 1`` and
  ``false, no, n, fail, incorrect, 0`` in any case; the integers 1 and 0.
* ``int``: integers; floats with no fractional part; numeric strings such as ``"4"`` or
  ``"4.0"``. Booleans are rejected.
* ``float``: any finite number or numeric string. NaN and infinities are rejected.
* ``str``: any string (surrounding whitespace removed); numbers become their text.
* ``Literal[...]``: a string equal to one of the choices after trimming and ignoring case;
  the declared spelling is returned.
* A declared range ``(low, high)`` is inclusive and enforced after coercion.

What the JSON schema sends for each kind (see :meth:`ValueSpec.json_schema`): ``bool`` a
``boolean``; ``str`` a ``string``; ``Literal`` a ``string`` with an ``enum`` of the
labels; ``float`` a ``number``, with ``minimum``/``maximum`` for a range; ``int`` an
``integer``, and for a range ``minimum``/``maximum`` plus, when the range holds at most
:data:`MAX_INT_ENUM` integers, an ``enum`` of them. Grammar-based servers (llama.cpp and
the servers built on it) enforce ``enum`` but ignore ``minimum``/``maximum``, so bounds
alone let a small model answer 52 for a 1-5 score. Wider ranges keep the bounds only, so
that the schema stays small.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

from judgealign.core._errors import ConfigurationError
from judgealign.models._structured import MAX_INT_ENUM

__all__ = ["MAX_INT_ENUM", "ValueCoercionError", "ValueKind", "ValueSpec"]

ValueKind = Literal["bool", "int", "float", "str", "label"]
Verdict = bool | int | float | str

_TRUE_WORDS = frozenset({"true", "yes", "y", "pass", "correct", "1"})
_FALSE_WORDS = frozenset({"false", "no", "n", "fail", "incorrect", "0"})
_ALLOWED = "bool, int, float, str, or typing.Literal['a', 'b', ...] of strings"


class ValueCoercionError(ValueError):
    """A value could not be coerced to the declared type (the message says why)."""


@dataclass(frozen=True)
class ValueSpec:
    """The checked form of a judge's ``feedback_value_type``.

    Attributes:
        kind: the value kind.
        choices: the allowed labels for ``kind == "label"``, in declared order.
        low: inclusive lower bound for numeric kinds, if any.
        high: inclusive upper bound for numeric kinds, if any.
    """

    kind: ValueKind
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None

    @classmethod
    def from_type(
        cls, value_type: Any, value_range: tuple[float, float] | None = None
    ) -> ValueSpec:
        """Build a spec from a Python type, raising ``ConfigurationError`` when unsupported."""
        spec = cls._kind_of(value_type)
        if value_range is None:
            return spec
        if spec.kind not in ("int", "float"):
            raise ConfigurationError(
                f"value_range={value_range!r} was given for a {spec.kind} judge; a range "
                "applies only to int or float judges. Remove value_range or change "
                "feedback_value_type."
            )
        low, high = _check_range(value_range)
        if spec.kind == "int" and math.ceil(low) > math.floor(high):
            raise ConfigurationError(
                f"value_range={value_range!r} holds no integer, so an int judge could never "
                "give a valid verdict. Widen the range or use feedback_value_type=float."
            )
        return cls(kind=spec.kind, low=low, high=high)

    @classmethod
    def _kind_of(cls, value_type: Any) -> ValueSpec:
        simple: dict[Any, ValueKind] = {bool: "bool", int: "int", float: "float", str: "str"}
        if value_type in simple:
            return cls(kind=simple[value_type])
        if typing.get_origin(value_type) is Literal:
            choices = typing.get_args(value_type)
            if choices and all(isinstance(c, str) and c.strip() for c in choices):
                return cls(kind="label", choices=tuple(choices))
            raise ConfigurationError(
                f"feedback_value_type={value_type!r} must be a Literal of non-empty strings, "
                "for example Literal['good', 'fair', 'poor']."
            )
        raise ConfigurationError(
            f"feedback_value_type={value_type!r} is not supported. Use one of: {_ALLOWED}."
        )

    @property
    def python_type(self) -> Any:
        """The Python type this spec describes (a ``Literal`` for labels)."""
        if self.kind == "label":
            return Literal.__getitem__(self.choices)  # type: ignore[attr-defined]
        return {"bool": bool, "int": int, "float": float, "str": str}[self.kind]

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of the value, as sent to the model."""
        if self.kind == "label":
            return {"type": "string", "enum": list(self.choices)}
        name = {"bool": "boolean", "int": "integer", "float": "number", "str": "string"}
        schema: dict[str, Any] = {"type": name[self.kind]}
        if self.low is not None:
            schema["minimum"] = _as_number(self.low, self.kind)
        if self.high is not None:
            schema["maximum"] = _as_number(self.high, self.kind)
        allowed = self.allowed_integers()
        if allowed is not None:
            schema["enum"] = allowed
        return schema

    def allowed_integers(self) -> list[int] | None:
        """Every integer an int judge with a range of at most :data:`MAX_INT_ENUM` values
        may return, in order; ``None`` for other judges and wider ranges."""
        if self.kind != "int" or self.low is None or self.high is None:
            return None
        first, last = math.ceil(self.low), math.floor(self.high)
        if last - first + 1 > MAX_INT_ENUM:
            return None
        return list(range(first, last + 1))

    def describe(self) -> str:
        """A short human description, used in prompts and error messages."""
        if self.kind == "label":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.low is not None and self.high is not None:
            low, high = _as_number(self.low, self.kind), _as_number(self.high, self.kind)
            return f"{self.kind} from {low} to {high}"
        return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(
            self.kind, "a string"
        )

    def coerce(self, value: object) -> Verdict:
        """Return ``value`` as the declared type, or raise :class:`ValueCoercionError`."""
        result = _COERCERS[self.kind](self, value)
        if isinstance(result, (int, float)) and not isinstance(result, bool):
            self._check_bounds(result)
        return result

    def _check_bounds(self, number: float) -> None:
        if (self.low is not None and number < self.low) or (
            self.high is not None and number > self.high
        ):
            raise ValueCoercionError(
                f"{number!r} is outside the declared range; expected {self.describe()}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, inverse of :meth:`from_dict`."""
        data: dict[str, Any] = {"kind": self.kind}
        if self.choices:
            data["choices"] = list(self.choices)
        if self.low is not None or self.high is not None:
            data["range"] = [self.low, self.high]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValueSpec:
        """Rebuild a spec saved by :meth:`to_dict`."""
        kind = data.get("kind")
        if kind not in ("bool", "int", "float", "str", "label"):
            raise ConfigurationError(
                f"Saved value type kind {kind!r} is unknown; expected bool, int, float, str "
                "or label. The file may be corrupted or from a newer judgealign."
            )
        choices = tuple(str(c) for c in data.get("choices", ()))
        if kind == "label" and not choices:
            raise ConfigurationError("Saved label value type has no 'choices'.")
        bounds = data.get("range")
        low, high = (None, None) if bounds is None else _check_range(tuple(bounds))
        return cls(kind=kind, choices=choices, low=low, high=high)


def _check_range(value_range: tuple[Any, ...]) -> tuple[float, float]:
    if len(value_range) != 2:
        raise ConfigurationError(
            f"value_range={value_range!r} must be a pair (low, high), for example (1, 5)."
        )
    low, high = value_range
    numeric = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in (low, high)
    )
    if not numeric or low > high:
        raise ConfigurationError(
            f"value_range={value_range!r} must be two finite numbers with low <= high, "
            "for example (1, 5)."
        )
    return float(low), float(high)


def _as_number(value: float, kind: str) -> float | int:
    return int(value) if kind == "int" and float(value).is_integer() else value


def _coerce_bool(_spec: ValueSpec, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
    raise ValueCoercionError(f"{value!r} is not a boolean; expected true or false")


def _parse_number(value: object) -> float:
    if isinstance(value, bool):
        raise ValueCoercionError(f"{value!r} is a boolean, not a number")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueCoercionError(f"{value!r} is not a number") from None
    else:
        raise ValueCoercionError(f"{value!r} is not a number")
    if not math.isfinite(number):
        raise ValueCoercionError(f"{value!r} is not a finite number")
    return number


def _coerce_int(_spec: ValueSpec, value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = _parse_number(value)
    if not number.is_integer():
        raise ValueCoercionError(f"{value!r} is not a whole number")
    return int(number)


def _coerce_float(_spec: ValueSpec, value: object) -> float:
    return _parse_number(value)


def _coerce_str(_spec: ValueSpec, value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)):
        return str(value)
    raise ValueCoercionError(f"{value!r} is not a string")


def _coerce_label(spec: ValueSpec, value: object) -> str:
    if isinstance(value, str):
        wanted = value.strip().casefold()
        for choice in spec.choices:
            if choice.strip().casefold() == wanted:
                return choice
    raise ValueCoercionError(f"{value!r} is not an allowed label; expected {spec.describe()}")


_COERCERS: dict[str, Any] = {
    "bool": _coerce_bool,
    "int": _coerce_int,
    "float": _coerce_float,
    "str": _coerce_str,
    "label": _coerce_label,
}
