"""How the ``judgealign`` command gets its models: :func:`make_model`, and call counting.

Every command builds every model (judge, reflection, application) through
:func:`make_model`, looked up as ``_cli_models.make_model`` at call time, so a test can
replace that one function (``monkeypatch.setattr``) and drive any command offline with a
``judgealign.testing.FunctionModel``.

Before a model is built, :func:`check_model_ready` catches the two set-up mistakes that
would otherwise surface as a failed call per record: the local model without its extra,
and a hosted provider without its API key.

Each model is wrapped in a ``MeteredModel`` that adds every call's usage (failed calls
included) to the session's :class:`CallCounter`, which feeds the progress bar and the
closing summary.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from judgealign.core._usage import ZERO_USAGE, Usage

if TYPE_CHECKING:
    from judgealign.models._chat import ChatModel

__all__ = [
    "DEFAULT_MODEL",
    "CallCounter",
    "check_model_ready",
    "default_model_uri",
    "make_model",
]

DEFAULT_MODEL = "local:/smollm2"
"""The model used when neither ``--model``, a judge file nor ``JUDGEALIGN_MODEL`` names one."""

# The environment variables litellm reads for the most common hosted providers.
_KEY_ENV: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "openrouter": ("OPENROUTER_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY"),
    "fireworks_ai": ("FIREWORKS_AI_API_KEY", "FIREWORKS_API_KEY"),
}
_BASE_ENV: dict[str, tuple[str, ...]] = {"openai": ("OPENAI_API_BASE", "OPENAI_BASE_URL")}


def default_model_uri() -> str:
    """``JUDGEALIGN_MODEL`` when set, else the embedded local model."""
    return os.environ.get("JUDGEALIGN_MODEL", "").strip() or DEFAULT_MODEL


def make_model(
    uri: str, *, params: Mapping[str, Any] | None = None, base_url: str | None = None
) -> ChatModel:
    """Build the model named by ``uri`` after checking that it can run.

    Args:
        uri: ``provider:/name`` or ``provider/name`` (``local:/smollm2``,
            ``openai:/gpt-4o-mini``...).
        params: completion parameters (``max_tokens``, ``temperature``...).
        base_url: an OpenAI-compatible endpoint root.

    Raises:
        ConfigurationError: a malformed URI or a missing API key.
        MissingExtraError: a local model without the ``local`` extra.
    """
    from judgealign.models._resolve import resolve_model

    check_model_ready(uri, base_url=base_url)
    return resolve_model(uri, params=params, base_url=base_url)


def check_model_ready(uri: str, *, base_url: str | None = None) -> None:
    """Fail early, with the fix, when ``uri`` cannot work on this machine."""
    from judgealign.core._errors import ConfigurationError
    from judgealign.models._uri import parse_model_uri

    provider, name = parse_model_uri(uri)
    if provider == "local":
        _check_local(name)
        return
    if base_url or any(os.environ.get(v) for v in _BASE_ENV.get(provider, ())):
        return
    names = _KEY_ENV.get(provider, ())
    if names and not any(os.environ.get(v) for v in names):
        # The server hint names the variable, which every command reads (not every
        # command has --base-url: demo does not).
        bases = _BASE_ENV.get(provider, ())
        server = f"; for an OpenAI-compatible server set {bases[0]} instead" if bases else ""
        raise ConfigurationError(
            f"Model {uri!r} needs an API key: set {names[0]} (export {names[0]}=...)"
            f"{server}; for offline use pass --model {DEFAULT_MODEL}."
        )


def _check_local(name: str) -> None:
    try:
        from judgealign.models import _local
    except ImportError:  # a build without the embedded-model support
        return
    builtin = name.strip().lstrip("/").lower() == _local.SMOLLM2
    if not _local.is_available(_local.SMOLLM2 if builtin else None):
        shown = _local.SMOLLM2 if builtin else name.strip()
        raise _local.LocalExtraMissingError(shown, weights=builtin)


class CallCounter:
    """The session's model usage: every call of every model, and a listener per call.

    Models are wrapped in a ``MeteredModel`` that adds each call's usage here (failed
    calls count, with what they cost); the listener feeds the progress bar.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = ZERO_USAGE
        self._listener: Callable[[], None] | None = None

    @property
    def total(self) -> Usage:
        """The usage of every call so far."""
        with self._lock:
            return self._total

    @property
    def calls(self) -> int:
        """Calls finished so far."""
        return self.total.calls

    def listen(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener()`` after every later call (``None`` stops)."""
        with self._lock:
            self._listener = listener

    def add(self, usage: Usage) -> None:
        """Record one finished call's usage."""
        with self._lock:
            self._total = self._total + usage
            listener = self._listener
        if listener is not None:
            listener()
