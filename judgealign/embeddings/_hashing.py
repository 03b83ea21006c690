"""The hashing embedder (``hashing:/char3-5+word@512``): scikit-learn only, no model.

It matches surface words and character n-grams, not meaning; the fallback when the local
extra is not installed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from judgealign.embeddings._protocol import (
    check_texts,
    empty_matrix,
    estimate_tokens,
    l2_normalise,
    positive_int,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "HashingEmbedder",
]


# Stands in for texts with no characters to hash, so that they still get a unit vector
# (the same one for every such text).
_EMPTY_TEXT_SENTINEL = "\u2205"


class HashingEmbedder:
    """Feature hashing of words and character n-grams: no model, no extra dependencies.

    Two scikit-learn ``HashingVectorizer`` s (``alternate_sign=False``) hash the lowercased
    words and the character 3- to 5-grams within word boundaries into ``dimension`` buckets;
    each part is L2-normalised, the parts are added with equal weight and the sum is
    normalised again. MurmurHash3 with a fixed seed makes the vectors identical across
    processes and machines. Similarity is lexical: paraphrases with different words score
    low. Thread-safe.

    Args:
        dimension: the number of hash buckets (vector length). 512 by default.

    Raises:
        ConfigurationError: when ``dimension`` is not a positive integer.
    """

    def __init__(self, dimension: int = 512) -> None:
        self._dimension = positive_int(dimension, "dimension")
        self._lock = threading.Lock()
        self._vectorizers: tuple[Any, Any] | None = None

    @property
    def id(self) -> str:
        """``hashing:/char3-5+word@<dimension>``."""
        return f"hashing:/char3-5+word@{self._dimension}"

    @property
    def dimension(self) -> int:
        """The vector length given at construction."""
        return self._dimension

    @property
    def max_tokens(self) -> None:
        """``None``: every word and n-gram of a text counts, however long it is."""
        return None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """An estimate (three characters per token); the hashing embedder has no window."""
        return estimate_tokens(check_texts(texts))

    def _get_vectorizers(self) -> tuple[Any, Any]:
        vectorizers = self._vectorizers
        if vectorizers is None:
            with self._lock:
                vectorizers = self._vectorizers
                if vectorizers is None:
                    import numpy as np

                    # scikit-learn ships no type stubs for its vectorizers.
                    sklearn_text: Any = importlib.import_module("sklearn.feature_extraction.text")
                    hashing_vectorizer: Any = sklearn_text.HashingVectorizer

                    common: dict[str, Any] = {
                        "n_features": self._dimension,
                        "alternate_sign": False,
                        "norm": "l2",
                        "lowercase": True,
                        "dtype": np.float32,
                    }
                    words = hashing_vectorizer(
                        analyzer="word", token_pattern=r"(?u)\b\w+\b", **common
                    )
                    chars = hashing_vectorizer(analyzer="char_wb", ngram_range=(3, 5), **common)
                    vectorizers = (words, chars)
                    self._vectorizers = vectorizers
        return vectorizers

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts``.

        Args:
            texts: the texts to embed. Empty or whitespace-only texts all get one fixed
                unit vector.

        Returns:
            A float32 array of shape ``(len(texts), dimension)`` with unit-norm rows.

        Raises:
            ConfigurationError: when ``texts`` is a single string or holds non-strings.
        """
        import numpy as np

        items = check_texts(texts)
        if not items:
            return empty_matrix(self._dimension)
        words, chars = self._get_vectorizers()
        documents = [text if text.strip() else _EMPTY_TEXT_SENTINEL for text in items]
        summed = words.transform(documents) + chars.transform(documents)
        dense: NDArray[np.float32] = np.asarray(summed.toarray(), dtype=np.float32)
        return l2_normalise(dense)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimension={self._dimension})"
