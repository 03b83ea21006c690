"""Which fields of a ``dspy.Example`` and a ``dspy.Prediction`` a judge reads.

A judge reads ``inputs``, ``outputs`` and ``expectations``; a DSPy metric gets an example
(inputs and labels) and the program's prediction. A :class:`FieldMap` says how one becomes
the other. Each of the three is one of:

* ``None``: the default. ``inputs``: a dict of the example's input fields (those named in
  ``with_inputs``); ``outputs``: the prediction's fields other than ``reasoning`` (the
  value alone when one field is left, else a dict); ``expectations``: a dict of the
  example's label fields (``None`` when it has none);
* a field name: that field's value alone;
* a sequence of field names: a dict of those fields;
* a callable: ``f(example) -> value`` for ``inputs`` and ``expectations``,
  ``f(prediction) -> value`` for ``outputs``.

``inputs`` and ``expectations`` name example fields, ``outputs`` prediction fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from judgealign.core._errors import ConfigurationError

__all__ = ["FieldMap", "FieldSpec", "example_keys", "is_example"]

FieldSpec = str | Sequence[str] | Callable[[Any], Any] | None
"""How to build one judge field: see the module docstring."""

_HIDDEN_OUTPUTS = frozenset({"reasoning"})


def is_example(value: object) -> bool:
    """Whether ``value`` looks like a ``dspy.Example`` (without importing dspy)."""
    return hasattr(value, "with_inputs") and hasattr(value, "labels") and hasattr(value, "toDict")


def example_keys(example: Any) -> tuple[list[str], list[str]]:
    """(input field names, label field names) of a ``dspy.Example``, in field order.

    Raises:
        ConfigurationError: when the example has no input fields set.
    """
    keys = [str(k) for k in example]
    input_keys = cast("set[str] | None", getattr(example, "_input_keys", None))
    if not input_keys:
        raise ConfigurationError(
            f"The example {_short(example)} has no input fields; mark them with "
            f"dspy.Example(...).with_inputs({', '.join(repr(k) for k in keys[:1]) or '...'})"
        )
    return [k for k in keys if k in input_keys], [k for k in keys if k not in input_keys]


@dataclass(frozen=True)
class FieldMap:
    """How a metric turns (example, prediction) into a judge's fields.

    Attributes:
        inputs: example fields for ``inputs`` (see the module docstring).
        outputs: prediction fields for ``outputs``.
        expectations: example fields for ``expectations``.
        owner: who uses the map, for error messages (e.g. ``"metric 'quality'"``).
    """

    inputs: FieldSpec = None
    outputs: FieldSpec = None
    expectations: FieldSpec = None
    owner: str = "metric"

    def __post_init__(self) -> None:
        for name in ("inputs", "outputs", "expectations"):
            spec: object = getattr(self, name)
            if spec is None or isinstance(spec, str) or callable(spec):
                continue
            if isinstance(spec, Sequence) and all(
                isinstance(n, str) for n in cast("Sequence[object]", spec)
            ):
                continue
            raise ConfigurationError(
                f"{self.owner}: {name}={spec!r} is invalid; give a field name, a list of "
                "field names, a function of the example (of the prediction for outputs), "
                "or None for the default"
            )

    def example_fields(self, example: Any) -> dict[str, Any]:
        """``inputs`` and ``expectations`` from the example alone.

        Raises:
            ConfigurationError: when ``example`` is not a ``dspy.Example`` or lacks a named
                field.
        """
        if not is_example(example):
            raise ConfigurationError(
                f"{self.owner} got {type(example).__name__} {_short(example)} as the example; "
                "it needs a dspy.Example, e.g. dspy.Example(question=..., answer=...)"
                ".with_inputs('question')"
            )
        input_keys, label_keys = example_keys(example)
        inputs = self._pick(example, self.inputs, input_keys, "inputs")
        expectations = self._pick(example, self.expectations, label_keys, "expectations")
        if self.expectations is None and not label_keys:
            expectations = None
        if expectations is not None and not isinstance(expectations, Mapping):
            raise ConfigurationError(
                f"{self.owner}: expectations must be a dict; map several fields "
                f"(expectations=[{', '.join(repr(k) for k in label_keys) or repr('answer')}]) "
                "or return a dict from a function"
            )
        return {"inputs": inputs, "expectations": expectations}

    def fields(self, example: Any, prediction: Any) -> dict[str, Any]:
        """``inputs``, ``outputs`` and ``expectations`` for one prediction.

        Raises:
            ConfigurationError: when a named field is missing from the example or the
                prediction.
        """
        fields = self.example_fields(example)
        keys = [str(k) for k in prediction] if hasattr(prediction, "keys") else []
        shown = [k for k in keys if k not in _HIDDEN_OUTPUTS] or keys
        if self.outputs is None and len(shown) == 1:
            fields["outputs"] = prediction[shown[0]]
        else:
            fields["outputs"] = self._pick(prediction, self.outputs, shown, "outputs")
        return fields

    def _pick(self, source: Any, spec: FieldSpec, default: list[str], role: str) -> Any:
        if callable(spec) and not isinstance(spec, str):
            return spec(source)
        names = default if spec is None else [spec] if isinstance(spec, str) else list(spec)
        what = "prediction" if role == "outputs" else "example"
        available = [str(k) for k in source]
        missing = [n for n in names if n not in available]
        if missing:
            raise ConfigurationError(
                f"{self.owner}: the {what} {_short(source)} has no field "
                f"{', '.join(repr(m) for m in missing)} for {role} (its fields: {available}); "
                f"add it to every {what} or map {role}= to fields it has"
            )
        if isinstance(spec, str):
            return source[spec]
        return {n: source[n] for n in names}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
