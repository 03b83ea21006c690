"""The ``{{ variable }}`` grammar, one for judges' instructions and prompts alike.

A variable is written ``{{ name }}`` (inner spaces optional); a name starts with a letter
or ``_`` and goes on with letters, digits, ``_`` and ``.``. Substitution is one pass, so
a value that itself contains ``{{ x }}`` is never expanded. Judges also look at every
``{{ ... }}`` placeholder, well-formed or not, to name the ones they cannot fill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "VARIABLE",
    "format_template",
    "placeholders",
    "repair_template",
    "single_brace",
    "template_variables",
]

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
"""A well-formed variable; group 1 is its name."""

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")


def template_variables(template: str) -> set[str]:
    """The variable names in ``template`` (``{{x}}`` and ``{{ x }}`` alike)."""
    return set(VARIABLE.findall(template))


def placeholders(template: str) -> list[str]:
    """Every ``{{ ... }}`` in ``template``, well-formed or not, in order of first use."""
    seen: list[str] = []
    for name in _PLACEHOLDER.findall(template):
        if name not in seen:
            seen.append(name)
    return seen


def format_template(template: str, values: Mapping[str, object]) -> str:
    """Substitute ``values`` into ``template`` in one pass; every variable must be given.

    Raises:
        KeyError: when a variable has no value.
    """
    missing = template_variables(template) - set(values)
    if missing:
        raise KeyError(f"missing values for template variable(s): {', '.join(sorted(missing))}")
    return VARIABLE.sub(lambda m: str(values[m.group(1)]), template)


def single_brace(template: str) -> str:
    """``template`` with each ``{{ variable }}`` written ``{variable}`` (``str.format`` style,
    what MLflow's ``PromptVersion.to_single_brace_format`` returns)."""
    return VARIABLE.sub(lambda m: "{" + m.group(1) + "}", template)


def repair_template(original: str, candidate: str) -> str | None:
    """``candidate`` with ``original``'s spelling of each variable, or ``None``.

    A candidate that adds a variable the original does not have, or loses one, is
    rejected (``None``): silently inventing or dropping inputs would change what the
    prompt means. Spacing variants (``{{x}}`` for ``{{ x }}``) are respelled.
    """
    if template_variables(candidate) != template_variables(original):
        return None
    spelling = {m.group(1): m.group(0) for m in VARIABLE.finditer(original)}
    return VARIABLE.sub(lambda m: spelling[m.group(1)], candidate)
