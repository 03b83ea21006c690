"""``{{ variable }}`` handling shared by every optimizer: a candidate prompt may never
drop, rename or add a template variable."""

from __future__ import annotations

import re

__all__ = ["format_template", "repair_template", "template_variables"]

_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def template_variables(template: str) -> set[str]:
    """The variable names in ``template`` (``{{x}}`` and ``{{ x }}`` alike)."""
    return set(_VARIABLE.findall(template))


def repair_template(original: str, candidate: str) -> str | None:
    """Return ``candidate`` made consistent with ``original``'s variables, or ``None``.

    Spacing variants are normalised to the original's spelling. A candidate that adds a
    variable the original does not have, or loses one, is rejected (``None``): silently
    inventing or dropping inputs would change what the prompt means.
    """
    wanted = template_variables(original)
    found = template_variables(candidate)
    if found != wanted:
        return None
    spelling = {m.group(1): m.group(0) for m in _VARIABLE.finditer(original)}
    return _VARIABLE.sub(lambda m: spelling[m.group(1)], candidate)


def format_template(template: str, values: dict[str, object]) -> str:
    """Substitute ``values`` into ``template``; every variable must be given.

    Substitution is one pass, so a value that itself contains ``{{ x }}`` is not expanded.
    """
    missing = template_variables(template) - set(values)
    if missing:
        raise KeyError(f"missing values for template variable(s): {', '.join(sorted(missing))}")
    return _VARIABLE.sub(lambda m: str(values[m.group(1)]), template)
