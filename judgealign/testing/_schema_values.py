"""A value that satisfies a JSON schema: what the fake server's automatic replies carry.

:func:`schema_instance` covers the subset of JSON Schema that structured-output and tool
schemas use (``$ref``, ``const``, ``enum``, ``anyOf``/``oneOf``/``allOf``, the basic types
and their common bounds). The value is deterministic: the same schema always gives the
same value, so tests can compare replies exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

__all__ = ["schema_instance"]

_MAX_DEPTH = 32
"""Deeper than this (a recursive ``$ref``), a placeholder string ends the value."""

_UNDECIDED: Any = object()
"""Returned by a keyword rule that does not apply, since ``None`` is a valid value."""

_Rule = Callable[[dict[str, Any], str, dict[str, Any], int], Any]
"""A generator: ``(schema, property name, root schema, depth) -> value``."""


def schema_instance(schema: dict[str, Any], name: str = "value") -> Any:
    """A value satisfying ``schema``; strings are named after their property (``name``)."""
    return _instance(schema, name, schema)


def _instance(schema: Any, name: str, root: dict[str, Any], depth: int = 0) -> Any:
    if depth > _MAX_DEPTH or not isinstance(schema, dict):
        return f"fake {name}"
    s = cast("dict[str, Any]", schema)
    # The first keyword that decides the value wins, in the order JSON Schema users expect:
    # a reference, a fixed value, then the combinators; the type comes last.
    for rule in (_from_ref, _from_const, _from_enum, _from_branches, _from_all_of):
        value = rule(s, name, root, depth)
        if value is not _UNDECIDED:
            return value
    kind = _kind(s)
    generate = _BY_KIND.get(kind) if isinstance(kind, str) else None
    return (generate or _string_value)(s, name, root, depth)


# -- keywords that decide the value before the type --------------------------------------


def _resolve_ref(root: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#"):
        return None
    node: Any = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict):
            return None
        node = cast("dict[str, Any]", node).get(key)
    return node


def _from_ref(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    ref = s.get("$ref")
    if isinstance(ref, str):
        target = _resolve_ref(root, ref)
        if isinstance(target, dict):
            return _instance(target, name, root, depth + 1)
    return _UNDECIDED  # an unresolvable reference: the rest of the schema decides


def _from_const(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    return s.get("const", _UNDECIDED)


def _from_enum(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return cast("list[Any]", enum)[0]
    return _UNDECIDED


def _from_branches(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    """``anyOf`` (else ``oneOf``): the first branch that is not plain ``null``."""
    for key in ("anyOf", "oneOf"):
        branches = s.get(key)
        if isinstance(branches, list) and branches:
            for branch in cast("list[Any]", branches):
                if not _is_null_branch(branch):
                    return _instance(branch, name, root, depth + 1)
            return None
    return _UNDECIDED


def _is_null_branch(branch: Any) -> bool:
    return isinstance(branch, dict) and cast("dict[str, Any]", branch).get("type") == "null"


def _from_all_of(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    """``allOf``: the parts (references resolved) merged over the schema itself."""
    all_of = s.get("allOf")
    if not (isinstance(all_of, list) and all_of):
        return _UNDECIDED
    merged: dict[str, Any] = {k: v for k, v in s.items() if k != "allOf"}
    for part in cast("list[Any]", all_of):
        resolved = part
        part_ref = cast("dict[str, Any]", part).get("$ref") if isinstance(part, dict) else None
        if isinstance(part_ref, str):
            resolved = _resolve_ref(root, part_ref)
        if isinstance(resolved, dict):
            merged.update(cast("dict[str, Any]", resolved))
    return _instance(merged, name, root, depth + 1)


# -- one generator per type ---------------------------------------------------------------


def _kind(s: dict[str, Any]) -> Any:
    """The type to generate: the first non-null of a list, else inferred from keywords."""
    kind = s.get("type")
    if isinstance(kind, list):
        names = [t for t in cast("list[Any]", kind) if t != "null"]
        kind = names[0] if names else "null"
    if kind is not None:
        return kind
    if "properties" in s:
        return "object"
    if "items" in s:
        return "array"
    return "string"


def _object_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    props = s.get("properties")
    if not isinstance(props, dict):
        return {}
    return {
        str(key): _instance(sub, str(key), root, depth + 1)
        for key, sub in cast("dict[str, Any]", props).items()
    }


def _array_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    min_items = s.get("minItems")
    count = max(1, min_items) if isinstance(min_items, int) else 1
    return [_instance(s.get("items", {}), name, root, depth + 1) for _ in range(count)]


def _boolean_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    return True


def _null_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    return None


def _first_number(*values: Any) -> float | None:
    for value in values:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _bounds(s: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """``minimum``, ``exclusiveMinimum`` and ``maximum``, each None when absent or not a number."""
    return (
        _first_number(s.get("minimum")),
        _first_number(s.get("exclusiveMinimum")),
        _first_number(s.get("maximum")),
    )


def _integer_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    low, excl, high = _bounds(s)
    if low is not None:
        value: float = math.ceil(low)
    elif excl is not None:
        value = math.floor(excl) + 1
    else:
        value = 1
    if high is not None and value > high:
        value = math.floor(high)
    return int(value)


def _number_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    low, excl, high = _bounds(s)
    if low is not None:
        value = low
    elif excl is not None:
        value = excl + 0.5
    else:
        value = 0.5
    if high is not None and value > high:
        value = high
    return value


def _string_value(s: dict[str, Any], name: str, root: dict[str, Any], depth: int) -> Any:
    """``fake <name>``, padded or cut to ``minLength``/``maxLength``."""
    text = f"fake {name}"
    min_len = s.get("minLength")
    if isinstance(min_len, int) and len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    max_len = s.get("maxLength")
    if isinstance(max_len, int) and len(text) > max_len:
        text = text[: max(0, max_len)]
    return text


_BY_KIND: dict[str, _Rule] = {
    "object": _object_value,
    "array": _array_value,
    "boolean": _boolean_value,
    "null": _null_value,
    "integer": _integer_value,
    "number": _number_value,
    "string": _string_value,
}
