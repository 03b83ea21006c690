"""What litellm would answer about an unlisted model, known without importing litellm.

Importing litellm costs seconds of CPU (about 2.5 s here, ``benchmarks/DESIGN_MEASUREMENTS.md``).
The direct route (``_litellm.py``) asks litellm three things about an ``openai:/`` model:
how its sampling parameters map, whether it must go to the Responses API, and its price.
For a model litellm's table does not list, those answers are fixed: no price and chat
completions (both are table lookups), and the plain sampling parameters pass unchanged
(litellm's name-based parameter rules are for the o-series, which must be listed, and for
names containing ``gpt``, which are left to litellm here). That is the common case of an
OpenAI-compatible server the user runs (vLLM, llama.cpp, a test server), so it is answered
here from litellm's own packaged table file, and the import waits for a call that needs
it. ``tests/test_litellm_table.py`` checks these answers against litellm itself.

The table file is the one litellm reads when ``LITELLM_LOCAL_MODEL_COST_MAP`` is true (how
judgealign imports it); with that variable set otherwise litellm fetches a newer table, so
nothing is answered here and litellm is asked, as it is for any name with a ``:``
(fine-tuned models, which litellm prices as their base model).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import cast

__all__ = ["PASSED_UNCHANGED", "TABLE_FILE", "answered_without_litellm", "unknown_to_litellm"]

TABLE_FILE = "model_prices_and_context_window_backup.json"
PASSED_UNCHANGED = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
    }
)
"""Parameters litellm sends as given to an unlisted openai model (``user``, for one, it drops)."""
_RESPONSES_SWITCH = "LITELLM_ROUTE_ALL_CHAT_OPENAI_TO_RESPONSES"


def answered_without_litellm(name: str, params: Iterable[str]) -> bool:
    """Whether litellm's direct-route answers for the openai model ``name`` called with
    ``params`` are known (the module says which): no price, chat completions, the
    parameters unchanged."""
    return (
        set(params) <= PASSED_UNCHANGED and "gpt" not in name.lower() and unknown_to_litellm(name)
    )


def unknown_to_litellm(name: str, provider: str = "openai") -> bool:
    """Whether litellm's table certainly has no row for ``provider``'s model ``name``.

    ``False`` means "listed, or cannot tell without litellm": ask litellm then.
    """
    if ":" in name or os.environ.get("LITELLM_LOCAL_MODEL_COST_MAP", "true").lower() != "true":
        return False
    if os.environ.get(_RESPONSES_SWITCH, "false").lower() == "true":
        return False  # litellm would send every openai model to the Responses API
    names = _table_names()
    if names is None:
        return False
    # Compared case-blind: a name differing from a row only in case counts as listed.
    return name.lower() not in names and f"{provider}/{name}".lower() not in names


@functools.lru_cache(maxsize=1)
def _table_names() -> frozenset[str] | None:
    """The row names of litellm's packaged table, lower-cased (``None`` when litellm or
    its table cannot be found, which leaves every answer to litellm)."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / TABLE_FILE
        try:
            rows: object = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rows, dict):
            return frozenset(str(k).lower() for k in cast("dict[str, object]", rows))
    return None
