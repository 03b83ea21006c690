"""MLflow's ``gepa_kwargs``: the keys of ``gepa.optimize`` that have a GEPA option here.

``mlflow.genai.optimize.GepaPromptOptimizer(..., gepa_kwargs={...})`` passes the dict to
the ``gepa`` library. Our GEPA is its own implementation, so a key is accepted only when
it means the same thing here; any other key is refused by name instead of being ignored,
because a silently dropped setting changes a run without telling anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from judgealign import ConfigurationError

__all__ = ["GEPA_KWARGS", "gepa_options"]

GEPA_KWARGS: Mapping[str, str] = {
    "reflection_minibatch_size": "minibatch_size",
    "seed": "seed",
    "use_merge": "use_merge",
    "max_merge_invocations": "max_merge_attempts",
    "run_dir": "run_dir",
    "display_progress_bar": "progress",
    "module_selector": "component_selector",
}
"""``gepa.optimize`` keyword -> the ``GepaPromptOptimizer`` option that does the same."""

_HINTS: Mapping[str, str] = {
    "valset": "pass val_data= to optimize_prompts instead",
    "reflection_prompt_template": (
        "pass reflection_prompt= with {current_prompt} and {examples} placeholders instead"
    ),
    "max_metric_calls": "pass max_metric_calls= to GepaPromptOptimizer instead",
}


def gepa_options(gepa_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Translate ``gepa_kwargs`` into ``GepaPromptOptimizer`` option names.

    Raises:
        ConfigurationError: on a key this GEPA does not support, naming it and the
            supported keys.
    """
    if gepa_kwargs is None:
        return {}
    if not isinstance(gepa_kwargs, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(f"gepa_kwargs={gepa_kwargs!r} must be a dict or None.")
    unknown = [key for key in gepa_kwargs if key not in GEPA_KWARGS]
    if unknown:
        hints = "; ".join(f"{key}: {_HINTS[key]}" for key in unknown if key in _HINTS)
        raise ConfigurationError(
            f"gepa_kwargs has key(s) this GEPA does not support: {', '.join(map(repr, unknown))}"
            f" (judgealign implements GEPA itself rather than calling the gepa library). "
            f"Supported keys: {', '.join(GEPA_KWARGS)}" + (f". {hints}." if hints else ".")
        )
    return {GEPA_KWARGS[key]: value for key, value in gepa_kwargs.items()}
