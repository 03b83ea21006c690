"""Embedding models reached through litellm (``openai:/text-embedding-3-small``, ...)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import (
    ConfigurationError,
    ModelCallError,
    ModelOutputError,
)
from judgealign.embeddings._protocol import (
    ESTIMATED_WINDOW,
    check_texts,
    empty_matrix,
    estimate_tokens,
    l2_normalise,
    positive_int,
)
from judgealign.models._uri import match_model_uri

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "LiteLLMEmbedder",
    "call_litellm_embed",
]


# Output sizes of well-known models, so that ``dimension`` needs no call for them.
_KNOWN_DIMENSIONS: dict[tuple[str, str], int] = {
    ("openai", "text-embedding-3-small"): 1536,
    ("openai", "text-embedding-3-large"): 3072,
    ("openai", "text-embedding-ada-002"): 1536,
}
# Input windows (tokens) of the same models; other models get ESTIMATED_WINDOW.
_KNOWN_WINDOWS: dict[tuple[str, str], int] = {
    ("openai", "text-embedding-3-small"): 8191,
    ("openai", "text-embedding-3-large"): 8191,
    ("openai", "text-embedding-ada-002"): 8191,
}
_DIMENSION_PROBE_TEXT = "dimension probe"


def call_litellm_embed(model_uri: str, texts: Sequence[str], **params: Any) -> list[list[float]]:
    """Call the litellm adapter (the seam that tests replace)."""
    from judgealign.models._litellm import litellm_embed

    return litellm_embed(model_uri, texts, **params)


class LiteLLMEmbedder:
    """Any embedding model litellm can call, such as ``openai:/text-embedding-3-small``.

    Calls go through judgealign's litellm adapter, with its retries and its network switch.
    Returned rows are L2-normalised. When ``dimension`` is not given it is taken from
    ``params["dimensions"]``, from a small table of well-known models, or else learned from
    the first reply; reading :attr:`dimension` before any call then costs one embedding call.
    The input window is ``max_tokens``, the known window of a well-known model, or else
    ``ESTIMATED_WINDOW``; tokens are estimated (three characters each), since the provider's
    tokenizer is not available locally.

    Args:
        model_uri: ``provider:/model`` or ``provider/model``.
        dimension: the expected vector length; replies of another length are an error.
        max_tokens: how many tokens the model reads per text, when it is not a known model.
        batch_size: how many texts go into one request.
        **params: passed to the adapter and on to ``litellm.embedding`` (for example
            ``api_base``, ``api_key`` or ``dimensions``).

    Raises:
        ConfigurationError: when ``model_uri`` is malformed or names a local model, or when
            ``dimension`` or ``batch_size`` is not a positive integer.
    """

    def __init__(
        self,
        model_uri: str,
        *,
        dimension: int | None = None,
        max_tokens: int | None = None,
        batch_size: int = 64,
        **params: Any,
    ) -> None:
        parsed = match_model_uri(model_uri)
        if parsed is None:
            raise ConfigurationError(
                f"Malformed embedding model URI {model_uri!r}. Use 'provider:/model' (for "
                "example 'openai:/text-embedding-3-small') or litellm's 'provider/model'."
            )
        provider, name = parsed
        if provider in ("local", "hashing"):
            raise ConfigurationError(
                f"{model_uri!r} is not a litellm embedding model; use "
                "resolve_embedder('local:/minilm') or resolve_embedder('hashing') instead."
            )
        self._uri = f"{provider}:/{name}"
        self._batch_size = positive_int(batch_size, "batch_size")
        self._params: dict[str, Any] = dict(params)
        if dimension is None:
            requested = params.get("dimensions")
            if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
                dimension = requested
            else:
                dimension = _KNOWN_DIMENSIONS.get((provider, name))
        else:
            dimension = positive_int(dimension, "dimension")
        self._dimension: int | None = dimension
        self._max_tokens = (
            _KNOWN_WINDOWS.get((provider, name), ESTIMATED_WINDOW)
            if max_tokens is None
            else positive_int(max_tokens, "max_tokens")
        )
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        """The model URI in ``provider:/model`` form."""
        return self._uri

    @property
    def max_tokens(self) -> int:
        """How many tokens of a text the model reads (known or estimated, see above)."""
        return self._max_tokens

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """An estimate (three characters per token): the provider's tokenizer is not local."""
        return estimate_tokens(check_texts(texts))

    @property
    def dimension(self) -> int:
        """The vector length (one embedding call if it is not known yet)."""
        known = self._dimension
        if known is not None:
            return known
        return int(self.embed([_DIMENSION_PROBE_TEXT]).shape[1])

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` through litellm, ``batch_size`` texts per request.

        Args:
            texts: the texts to embed.

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` with unit-norm rows.

        Raises:
            ConfigurationError: when ``texts`` is a single string or holds non-strings.
            ModelOutputError: when the model returns the wrong number of vectors or vectors
                of the wrong or inconsistent length.
            ModelCallError: when the call fails after retries (from the adapter).
        """
        import numpy as np

        items = check_texts(texts)
        if not items:
            return empty_matrix(self.dimension)
        rows: list[list[float]] = []
        for start in range(0, len(items), self._batch_size):
            chunk = items[start : start + self._batch_size]
            rows.extend(self._embed_chunk(chunk))
        widths = {len(row) for row in rows}
        if len(widths) != 1 or 0 in widths:
            raise ModelOutputError(
                f"{self._uri} returned embeddings of inconsistent or zero length: {sorted(widths)}."
            )
        width = widths.pop()
        with self._lock:
            if self._dimension is None:
                self._dimension = width
            expected = self._dimension
        if width != expected:
            requested = self._params.get("dimensions")
            fix = (
                f"the server did not honour dimensions={requested}; drop that parameter or "
                "use a model that can shorten its vectors"
                if requested
                else f"pass dimension={width} (or leave it unset) for this model"
            )
            raise ModelOutputError(
                f"{self._uri} returned {width}-dimensional embeddings, expected {expected}: {fix}."
            )
        return l2_normalise(np.asarray(rows, dtype=np.float32))

    def _embed_chunk(self, chunk: list[str]) -> list[list[float]]:
        """One request for ``chunk``; one request per text when the server cannot embed
        several texts at once (llama-cpp-python's server, for a model without pooling),
        which is then remembered as this embedder's batch size, with a warning."""
        try:
            reply = call_litellm_embed(self._uri, chunk, **self._params)
        except ModelCallError as exc:
            if exc.reason != "batch_refused" or len(chunk) == 1:
                raise
            with self._lock:
                self._batch_size = 1
            warnings.warn(
                f"{self._uri} failed to embed {len(chunk)} texts in one request ({exc}); "
                "judgealign now sends it one text per request.",
                UserWarning,
                stacklevel=3,
            )
            return [row for text in chunk for row in self._embed_chunk([text])]
        if len(reply) != len(chunk):
            raise ModelOutputError(
                f"{self._uri} returned {len(reply)} embeddings for {len(chunk)} texts."
            )
        return reply

    def __repr__(self) -> str:
        return f"LiteLLMEmbedder({self._uri!r}, dimension={self._dimension!r})"
