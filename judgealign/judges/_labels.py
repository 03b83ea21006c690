"""Labels as the agreement metrics see them, and reading fields off labelled records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from judgealign.core._errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "MISSING",
    "Label",
    "RawLabel",
    "Weighting",
    "is_number",
    "normalize_label",
    "record_field",
]

Label = bool | int | str
"""A label after normalization: integral floats such as ``3.0`` become ``3``."""

RawLabel = bool | int | float | str
Weighting = Literal["none", "quadratic"]

MISSING = object()
"""What :func:`record_field` returns for a record without the field."""


def normalize_label(value: object, where: str) -> Label:
    """``value`` as a :data:`Label`; ``where`` names it in the error when it is not one."""
    import numpy as np

    if isinstance(value, np.generic):  # numpy scalars, e.g. from a pandas column
        value = cast("np.generic[Any]", value).item()
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigurationError(
        f"{where} has the value {value!r}, which is not a label. Agreement needs bool, int, "
        "str, or floats with whole values such as 3.0; round or bin continuous scores first."
    )


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def record_field(record: object, name: str) -> object:
    """``record[name]`` for mappings, else ``record.name``; :data:`MISSING` when absent."""
    if isinstance(record, Mapping):
        return cast("Mapping[str, object]", record).get(name, MISSING)
    return getattr(record, name, MISSING)
