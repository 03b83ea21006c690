"""The aligned-judge file: one self-contained, checksummed JSON document.

Layout::

    {
      "format": "judgealign/aligned-judge",
      "format_version": 1,
      "checksum": "sha256:<hex of the canonical JSON of content>",
      "content": {
        "base_judge": {... Judge.to_dict() ...},
        "optimizer": {... MemAlignEngine.settings() ...},
        "embedder": {"id": "...", "dimension": 384},
        "guidelines": [{"id", "text", "source_ids", "pinned", "origin"}],
        "guideline_vectors": {"<guideline id>": "<base64 little-endian float32>"},
        "records": [{"record": {... LabeledRecord ...}, "status": "distilled",
                     "vector": "<base64 little-endian float32>"}],
        "history": [{... AlignmentResult.to_dict() ...}]
      }
    }

``history`` (every change to the memory, oldest first) may be missing from files written
before it was saved; such a file loads with an empty history.

The canonical JSON is ``judgealign.judges._records.canonical_json`` (sorted keys, no spaces).
Loading needs neither the original data, nor a model call, nor a tracking server.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from judgealign.core._errors import ConfigurationError
from judgealign.embeddings._protocol import Embedder
from judgealign.embeddings._resolve import resolve_embedder
from judgealign.judges._judge import Judge
from judgealign.judges._records import LabeledRecord, canonical_json
from judgealign.memalign._engine import MemAlignEngine
from judgealign.memalign._memory import Guideline, MemoryState, StoredRecord
from judgealign.memalign._result import AlignmentResult
from judgealign.models._chat import ChatModel

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["FORMAT", "FORMAT_VERSION", "dump_aligned", "restore_aligned"]

FORMAT = "judgealign/aligned-judge"
FORMAT_VERSION = 1


def dump_aligned(
    base: Judge,
    optimizer: MemAlignEngine,
    state: MemoryState,
    history: Sequence[AlignmentResult] = (),
) -> dict[str, Any]:
    """The file content for ``base`` with ``optimizer``'s settings, ``state`` and
    ``history``."""
    content: dict[str, Any] = {
        "base_judge": base.to_dict(),
        "optimizer": optimizer.settings(),
        "embedder": _embedder_entry(optimizer, state),
        "guidelines": [g.to_dict() for g in state.guidelines],
        "guideline_vectors": {k: _encode(v) for k, v in state.guideline_vectors.items()},
        "records": [
            {
                "record": s.record.model_dump(mode="json"),
                "status": s.status,
                "vector": _encode(s.vector),
            }
            for s in state.records.values()
        ],
        "history": [result.to_dict() for result in history],
    }
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "checksum": _checksum(content),
        "content": content,
    }


def _embedder_entry(optimizer: MemAlignEngine, state: MemoryState) -> dict[str, Any]:
    dimension = state.index.dimension if state.index is not None else None
    if state.embedder_id is not None:
        return {"id": state.embedder_id, "dimension": dimension}
    spec = optimizer.embedding_model
    return {
        "id": spec if isinstance(spec, str) else getattr(spec, "id", None),
        "dimension": dimension,
    }


def restore_aligned(
    data: Mapping[str, Any],
    *,
    model: str | ChatModel | None,
    reflection_model: str | ChatModel | None,
    embedder: str | Embedder | None,
    view: Any,
    reembed: bool,
    source: str,
) -> tuple[Judge, MemAlignEngine, MemoryState, tuple[AlignmentResult, ...]]:
    """Check and decode a saved aligned judge (see the module docstring)."""
    content = _checked_content(data, source)
    try:
        base = Judge.from_dict(content["base_judge"], model=model)
        settings = dict(content["optimizer"])
        saved = dict(content["embedder"])
        guidelines = [Guideline.from_dict(g) for g in content["guidelines"]]
        entries = list(content["records"])
        history = tuple(AlignmentResult.from_dict(r) for r in content.get("history", ()))
    except (KeyError, TypeError, ValueError) as exc:
        raise _error(
            source,
            f"its content is malformed ({type(exc).__name__}: {exc})",
            "re-create the aligned judge and save it again",
        ) from None
    chosen_view = _view(settings.get("view"), view, reembed, source)
    spec = _embedder_spec(saved, embedder, reembed, source)
    optimizer = _optimizer(settings, reflection_model, spec, chosen_view, source)
    records = [_record(e, source) for e in entries]
    if reembed:  # the saved guideline vectors are dropped too: they are re-embedded when needed
        if not records:
            return base, optimizer, MemoryState().with_guidelines(guidelines), history
        vectors = optimizer.embed_records(base, [r for r, _, _ in records])
        stored = [
            StoredRecord(r, v, status) for (r, status, _), v in zip(records, vectors, strict=True)
        ]
        state = MemoryState().with_records(stored, optimizer.embedder.id)
        return base, optimizer, state.with_guidelines(guidelines), history
    dimension = saved.get("dimension")
    saved_id = saved.get("id")
    stored = [StoredRecord(r, _decode(v, dimension, source), status) for r, status, v in records]
    # The id is kept even with no record left: it names the guideline vectors' embedder.
    state = MemoryState(embedder_id=saved_id if isinstance(saved_id, str) else None)
    state = state.with_records(stored, str(saved_id))
    vectors = {
        k: _decode(v, dimension, source)
        for k, v in dict(content.get("guideline_vectors", {})).items()
    }
    return base, optimizer, state.with_guidelines(guidelines, vectors), history


def _checked_content(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    if data.get("format") != FORMAT:
        raise _error(
            source,
            f"its format is {data.get('format')!r}, not {FORMAT!r}",
            "load a plain judge with Judge.load, or pass a file written by AlignedJudge.save",
        )
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise _error(
            source,
            f"it has format_version {version!r} and this judgealign reads version {FORMAT_VERSION}",
            "upgrade judgealign to the version that wrote it, or re-run alignment and save again",
        )
    content = data.get("content")
    if not isinstance(content, dict):
        raise _error(source, "it has no content object", "restore it from a backup")
    if data.get("checksum") != _checksum(content):  # pyright: ignore[reportUnknownArgumentType]
        raise _error(
            source,
            "its integrity check failed: the content does not match its "
            "checksum, so it was modified or corrupted after it was saved",
            "restore it from a backup, or re-run alignment and save again",
        )
    return content  # pyright: ignore[reportUnknownVariableType]


def _view(saved: Any, given: Any, reembed: bool, source: str) -> Any:
    if given is None:
        if saved == "custom":
            raise _error(
                source,
                "it was aligned with a custom view function, which a file cannot hold",
                "pass the same function: AlignedJudge.load(path, view=my_view)",
            )
        return saved
    given_name = given if isinstance(given, str) else "custom"
    if given_name != saved and not reembed:
        raise _error(
            source,
            f"it was embedded with view={saved!r}, not {given_name!r}",
            "pass the saved view, or add reembed=True to re-embed the records",
        )
    return given


def _embedder_spec(
    saved: Mapping[str, Any], given: str | Embedder | None, reembed: bool, source: str
) -> str | Embedder | None:
    saved_id = saved.get("id")
    if given is None:
        return saved_id if isinstance(saved_id, str) else None
    resolved = resolve_embedder(given)
    if saved_id is not None and resolved.id != saved_id and not reembed:
        raise _error(
            source,
            f"its vectors were made by embedder {saved_id!r} and the "
            f"embedder given is {resolved.id!r}",
            f"pass embedder={saved_id!r} (or "
            "leave it out), or add reembed=True to re-embed every record with the "
            "new embedder",
        )
    dimension = saved.get("dimension")
    if not reembed and dimension is not None and resolved.dimension != dimension:
        raise _error(
            source,
            f"its vectors have dimension {dimension} and embedder "
            f"{resolved.id!r} makes {resolved.dimension}",
            "use the embedder that made them, or add reembed=True",
        )
    return resolved


def _optimizer(
    settings: Mapping[str, Any],
    reflection: str | ChatModel | None,
    embedder: str | Embedder | None,
    view: Any,
    source: str,
) -> MemAlignEngine:
    options = {k: v for k, v in settings.items() if k not in ("reflection_model", "view")}
    try:
        return MemAlignEngine(
            reflection_model=reflection
            if reflection is not None
            else settings.get("reflection_model"),
            embedding_model=embedder,
            view=view,
            **options,
        )
    except (TypeError, ConfigurationError) as exc:
        raise _error(
            source,
            f"its optimizer settings are invalid ({exc})",
            "re-create the aligned judge and save it again",
        ) from None


def _record(entry: Mapping[str, Any], source: str) -> tuple[LabeledRecord, Any, Any]:
    try:
        record = LabeledRecord.model_validate(entry["record"])
    except (KeyError, ValidationError) as exc:
        raise _error(
            source, f"a stored record is invalid ({exc})", "restore the file from a backup"
        ) from None
    status = entry.get("status", "distilled")
    if status not in ("distilled", "skipped", "pending"):
        raise _error(
            source,
            f"record {record.id!r} has unknown status {status!r}",
            "restore the file from a backup",
        )
    return record, status, entry.get("vector")


def _checksum(content: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


def _encode(vector: Any) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _decode(text: Any, dimension: Any, source: str) -> NDArray[np.float32]:
    import numpy as np

    try:
        vector = np.frombuffer(base64.b64decode(str(text), validate=True), dtype="<f4")
    except ValueError:
        raise _error(
            source, "a stored vector is not valid base64 float32", "restore the file from a backup"
        ) from None
    if dimension is not None and vector.shape != (dimension,):
        raise _error(
            source,
            f"a stored vector has {vector.size} values, not {dimension}",
            "restore the file from a backup, or load with reembed=True",
        )
    return vector.astype(np.float32)


def _error(source: str, problem: str, fix: str) -> ConfigurationError:
    return ConfigurationError(
        f"Cannot load the aligned judge from {source}: {problem}. Fix: {fix}."
    )
