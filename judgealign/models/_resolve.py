"""Turning what the user passed as ``model=`` into a :class:`ChatModel`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from judgealign.core._errors import ConfigurationError
from judgealign.models._chat import ChatModel
from judgealign.models._litellm import LiteLLMModel, default_model_uri

__all__ = ["resolve_model"]


def resolve_model(
    model: str | ChatModel | None,
    *,
    params: Mapping[str, Any] | None = None,
    base_url: str | None = None,
) -> ChatModel:
    """Resolve a model URI, a :class:`ChatModel` or ``None`` (``JUDGEALIGN_MODEL``).

    Args:
        model: ``provider:/name``, ``provider/name``, ``local:/smollm2``, a ChatModel, or
            ``None`` for the ``JUDGEALIGN_MODEL`` environment variable.
        params: extra completion parameters for URI models.
        base_url: the endpoint root for URI models.

    Raises:
        ConfigurationError: on a malformed URI, no model and no ``JUDGEALIGN_MODEL``, or a
            value of the wrong type.
    """
    if model is None or isinstance(model, str):
        uri = model if model is not None else default_model_uri()
        return LiteLLMModel(uri, api_base=base_url, params=dict(params or {}))
    if isinstance(model, ChatModel):  # pyright: ignore[reportUnnecessaryIsInstance]
        return model
    raise ConfigurationError(
        f"model={model!r} must be a model URI string such as 'openai:/gpt-4o-mini', a "
        "ChatModel, or None (to use JUDGEALIGN_MODEL)."
    )
