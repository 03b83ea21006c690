"""The model-URI grammar, one for chat models and embedders alike.

A model is named ``provider:/name`` (MLflow's form: ``openai:/gpt-4o-mini``,
``local:/smollm2``) or ``provider/name`` (litellm's form). The provider is letters,
digits, ``_`` and ``-`` (compared in lower case); the name is everything after the
separator, with no white space; it may hold further slashes (``openrouter/meta-llama/llama-3``) but
not start with one, so that a URL such as ``http://host/v1`` is never read as a model.
"""

from __future__ import annotations

import re

from judgealign.core._errors import ConfigurationError

__all__ = ["match_model_uri", "parse_model_uri"]

_URI = re.compile(r"^(?P<provider>[A-Za-z0-9_\-]+)(?::/|/)(?P<name>[^\s/]\S*)$")


def match_model_uri(uri: object) -> tuple[str, str] | None:
    """``(provider, name)`` of a well-formed model URI, else ``None``."""
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None
    if match is None:
        return None
    return match["provider"].lower(), match["name"].strip()


def parse_model_uri(uri: str) -> tuple[str, str]:
    """Split a model URI into ``(provider, model_name)``.

    Raises:
        ConfigurationError: when ``uri`` is not ``provider:/model`` or ``provider/model``.
    """
    parsed = match_model_uri(uri)
    if parsed is None:
        raise ConfigurationError(
            f"Malformed model URI {uri!r}. Use 'provider:/model' (for example "
            "'openai:/gpt-4o-mini' or 'local:/smollm2') or litellm's 'provider/model'."
        )
    return parsed
