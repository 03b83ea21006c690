"""``AlignedJudge``: a judge that consults the memory of expert feedback on every call.

What a judgment sends (guidelines, then retrieved examples) is rendered by
:mod:`judgealign.memalign._recall`; the file format is :mod:`judgealign.memalign._file`.

Concurrency: the memory is an immutable snapshot (:class:`MemoryState`). A judgment reads
the current snapshot once and uses it throughout, so it takes no lock. Changes (``align``,
``unalign``, guideline edits) are serialised by a re-entrant lock, computed on the side,
and published with one assignment: a judgment sees the memory before or after a change,
never half of one, and a change never loses another.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from judgealign.core._caller import caller_stacklevel
from judgealign.core._errors import ConfigurationError
from judgealign.core._events import announce
from judgealign.core._files import atomic_write_text
from judgealign.core._usage import Usage
from judgealign.embeddings._protocol import Embedder
from judgealign.judges._batch import EvaluationResult, batch_records, run_batch
from judgealign.judges._extensions import register_judge
from judgealign.judges._feedback import Feedback
from judgealign.judges._judge import Judge, records_or_traces
from judgealign.judges._records import LabeledRecord
from judgealign.judges._traces import is_trace
from judgealign.judges._wrapped import WrappedJudge
from judgealign.memalign._engine import MemAlignEngine, RecordsLike
from judgealign.memalign._memory import Guideline, MemoryState, new_guideline_id
from judgealign.memalign._recall import EXAMPLES_TITLE, GUIDELINES_TITLE, Recall
from judgealign.memalign._result import AlignmentResult, Operation
from judgealign.models._chat import ChatModel, Message
from judgealign.models.rate_limit import RateLimit, use_rate_limit

if TYPE_CHECKING:
    pass

__all__ = ["EXAMPLES_TITLE", "GUIDELINES_TITLE", "AlignedJudge"]  # titles: see _recall


class AlignedJudge(WrappedJudge):
    """A judge aligned with expert feedback; call it exactly like a :class:`Judge`.

    Made by ``judge.align(records)`` or ``MemAlignOptimizer(...).align(judge, records)``.
    Its feedback metadata names the expert records shown (``retrieved_example_ids``, with
    ``retrieved_similarities``) and the guidelines used (``guideline_ids``). A judged record
    that is in memory (same id, or the same fields the judge reads) is marked with
    ``memorised_record_id``: agreement leaves such records out (see :meth:`memorised`).

    Memory changes happen in place: :meth:`align`, :meth:`unalign` and the guideline
    methods update this judge (use :meth:`copy` first to keep the old one). Each change is
    recorded in :attr:`history`; an ``align`` or ``unalign`` that changed nothing says so
    with a warning and in its :class:`AlignmentResult`.

    Args:
        base: the judge to align.
        optimizer: the optimizer whose settings (embedder, view, ``retrieval_k``...) this
            judge uses; the default settings of ``MemAlignOptimizer()`` by default.
        state: an existing memory (used when loading).
        history: the changes that made ``state`` (used when loading).
    """

    def __init__(
        self,
        base: Judge,
        *,
        optimizer: MemAlignEngine | None = None,
        state: MemoryState | None = None,
        history: Sequence[AlignmentResult] = (),
    ) -> None:
        if not isinstance(base, Judge):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                f"AlignedJudge wraps a Judge made by make_judge; got {type(base).__name__}."
            )
        super().__init__(base)
        self._optimizer = optimizer or MemAlignEngine()
        self._state = state or MemoryState()
        self._lock = threading.RLock()
        self._history: list[AlignmentResult] = list(history)
        self._recall = Recall(base, self._optimizer)

    def __repr__(self) -> str:
        state = self._state
        return (
            f"AlignedJudge(name={self.name!r}, model={self.model_uri!r}, "
            f"guidelines={len(state.guidelines)}, records={len(state.records)})"
        )

    # -- the Judge surface -----------------------------------------------------------

    @property
    def instructions(self) -> str:
        """The base judge's instructions followed by the guidelines, as MLflow's aligned
        judge shows them (the retrieved examples are chosen per call, so they are not here).

        The base instructions alone are ``base_judge.instructions``.
        """
        base = self.base_judge.instructions
        lines = [f"- {g.text}" for g in self.guidelines]
        return base if not lines else base + "\n\nGuidelines:\n" + "\n".join(lines)

    @property
    def usage(self) -> Usage:
        """Tokens, cost and latency of every call the base judge made (alignment's
        reflection calls are in each :class:`AlignmentResult`)."""
        return self.base_judge.usage

    def score_fields(self, fields: Mapping[str, Any]) -> Feedback:
        """Judge already-checked fields against the current memory."""
        return self._recall.score_fields(self._state, fields)

    def evaluate(
        self,
        records: Iterable[Any],
        *,
        max_workers: int = 8,
        progress: bool | None = None,
        rate_limit: RateLimit | None = None,
    ) -> EvaluationResult:
        """Judge many records concurrently against one memory snapshot.

        The records' retrieval texts are embedded in one batch first. A malformed record
        or a failed model call comes back as a feedback with ``error``. ``rate_limit``
        paces the verdict calls as in :meth:`Judge.evaluate`.
        """
        items = batch_records(records, max_workers)
        state = self._state
        jobs = self._recall.jobs(state, items)
        with use_rate_limit(rate_limit):
            result = run_batch(
                lambda job: self._recall.run_job(state, job),
                jobs,
                name=self.name,
                max_workers=max_workers,
                progress=progress,
            )
        announce("evaluation", judge=self, records=items, result=result)
        return result

    def evaluate_embedded(
        self,
        fields: Sequence[Mapping[str, Any]],
        vectors: Sequence[Any],
        *,
        max_workers: int = 8,
    ) -> EvaluationResult:
        """Judge checked ``fields`` whose retrieval vectors are already known (one row of
        ``vectors`` each, made with this judge's embedder and view): no embedding call.

        Alignment's disagreement mode uses it to judge records, embedded once for memory,
        with the memory aligned so far.
        """
        return self._recall.evaluate_embedded(self._state, fields, vectors, max_workers=max_workers)

    def build_messages(self, fields: Mapping[str, Any]) -> list[Message]:
        """The chat messages this judge would send for ``fields`` (retrieval included)."""
        return self._recall.build_messages(self._state, fields)

    def memorised(self, records: Iterable[Any]) -> list[str | None]:
        """Which of ``records`` this judge holds in memory: for each, the id of the stored
        expert record it repeats, else ``None``.

        A record is held when its own ``id`` is a stored record's id, or when the fields
        the judge reads are a stored record's (whatever its id). Such a record retrieves
        itself with the expert's verdict, so it is no held-out evidence: ``agreement``,
        ``compare_judges`` and ``judgealign report`` leave it out. A record whose fields
        cannot be read matches by id only.
        """
        return self._recall.memorised(self._state, records)

    # -- memory: reading -------------------------------------------------------------

    @property
    def optimizer(self) -> MemAlignEngine:
        """The optimizer whose settings this judge uses."""
        return self._optimizer

    @property
    def guidelines(self) -> tuple[Guideline, ...]:
        """The guidelines, in the order the judge sees them."""
        return self._state.guidelines

    @property
    def records(self) -> tuple[LabeledRecord, ...]:
        """The expert records in memory, in the order they were stored."""
        return tuple(s.record for s in self._state.records.values())

    @property
    def record_ids(self) -> tuple[str, ...]:
        """The ids of the expert records in memory."""
        return tuple(self._state.records)

    @property
    def pending_record_ids(self) -> tuple[str, ...]:
        """Records whose distillation failed; the next ``align`` retries them."""
        return tuple(k for k, v in self._state.records.items() if v.status == "pending")

    @property
    def embedder_id(self) -> str | None:
        """The id of the embedder that made the stored vectors."""
        return self._state.embedder_id

    @property
    def history(self) -> tuple[AlignmentResult, ...]:
        """Every change to this judge's memory, oldest first: each ``align`` and
        ``unalign``, and each guideline added, edited, pinned, unpinned or removed (see
        :attr:`AlignmentResult.operation`). Saved with the judge and loaded back."""
        with self._lock:
            return tuple(self._history)

    @property
    def last_alignment(self) -> AlignmentResult | None:
        """The latest ``align`` or ``unalign`` result (guideline edits are skipped)."""
        with self._lock:
            for result in reversed(self._history):
                if result.operation in ("align", "unalign"):
                    return result
            return None

    def copy(self) -> AlignedJudge:
        """An independent aligned judge with the same memory (later changes to one do not
        affect the other). Memory is immutable, so this copies nothing large."""
        with self._lock:
            return AlignedJudge(
                self.base_judge, optimizer=self._optimizer, state=self._state, history=self._history
            )

    def with_inference_params(self, params: Mapping[str, Any]) -> AlignedJudge:
        """An aligned judge with this memory whose base judge's model calls add ``params``
        (e.g. a temperature and a seed, to sample its verdicts).

        Raises:
            ConfigurationError: the base judge runs on a ChatModel object (see
                :meth:`Judge.with_inference_params`).
        """
        with self._lock:
            return AlignedJudge(
                self.base_judge.with_inference_params(params),
                optimizer=self._optimizer,
                state=self._state,
                history=self._history,
            )

    # -- memory: changing ------------------------------------------------------------

    def align(
        self,
        records: RecordsLike | None = None,
        optimizer: MemAlignEngine | None = None,
        *,
        traces: RecordsLike | None = None,
        rate_limit: RateLimit | None = None,
    ) -> AlignedJudge:
        """Learn new or changed expert records, in place; returns this judge.

        Unchanged records (same id and content) cost nothing. With ``optimizer``, its
        settings are used and kept; its embedder and view must match the stored vectors.
        ``traces=`` is MLflow's keyword for ``records``. ``rate_limit`` paces every chat
        call the alignment makes, in whatever thread (see :meth:`Judge.align`).

        Raises:
            ConfigurationError: no usable record, records given twice, or an incompatible
                optimizer.
        """
        records = cast("RecordsLike", records_or_traces(records, traces))
        with self._lock:
            chosen = optimizer or self._optimizer
            if chosen is not self._optimizer and self._state.records:
                _check_same_view(self._optimizer, chosen)
            with use_rate_limit(rate_limit):
                state, result = chosen.update(self.base_judge, self._state, records)
            if chosen is not self._optimizer:
                self._optimizer = chosen
                self._recall = Recall(self.base_judge, chosen)
            self._state = state
            self._history.append(result)
        announce("alignment", aligned=self, result=result)
        return self

    def unalign(
        self,
        ids: str | Iterable[str | LabeledRecord | Mapping[str, Any]] | None = None,
        *,
        traces: Iterable[Any] | None = None,
    ) -> AlignedJudge:
        """Forget expert records, in place; returns this judge.

        The records are no longer retrieved, and every guideline whose sources were all
        forgotten is removed (pinned guidelines and guidelines a person added without
        sources are kept). Unknown ids are reported with a warning.

        Args:
            ids: record ids, or the records themselves (objects or dicts with an ``id``,
                MLflow traces).
            traces: MLflow's keyword (``unalign(traces=...)``) for the same argument.
        """
        ids = cast("str | Iterable[Any]", records_or_traces(ids, traces, "unalign"))
        items = [ids] if isinstance(ids, str) else list(ids)
        wanted = list(dict.fromkeys(_record_id(item) for item in items))
        with self._lock:
            unknown = [i for i in wanted if i not in self._state.records]
            state, removed = self._state.without_records(wanted)
            notes: list[str] = []
            if unknown:
                notes.append(
                    f"{len(unknown)} id(s) are not in memory and were ignored: {unknown[:5]}"
                )
            if len(unknown) == len(wanted):
                notes.append("Nothing to unalign; memory is unchanged.")
            for note in notes:
                warnings.warn(note, UserWarning, stacklevel=caller_stacklevel())
            result = AlignmentResult(
                operation="unalign",
                records_removed=tuple(i for i in wanted if i not in unknown),
                guidelines_removed=removed,
                warnings=tuple(notes),
            )
            self._state = state
            self._history.append(result)
        announce("alignment", aligned=self, result=result)
        return self

    def add_guideline(
        self, text: str, *, pinned: bool = False, source_ids: Sequence[str] = ()
    ) -> Guideline:
        """Add a guideline written by a person, at the end of the list.

        Args:
            text: the guideline.
            pinned: keep it through consolidation and ``unalign``.
            source_ids: ids of stored records it is based on (optional). A guideline with
                no source is never removed by ``unalign``.

        Raises:
            ConfigurationError: empty text or an id that is not in memory.
        """
        with self._lock:
            state = self._state
            unknown = [s for s in source_ids if s not in state.records]
            if unknown:
                raise ConfigurationError(
                    f"source_ids {unknown} are not in memory; known "
                    f"record ids include {list(state.records)[:5]}."
                )
            guideline = Guideline(
                id=new_guideline_id(_check_text(text), (g.id for g in state.guidelines)),
                text=text.strip(),
                source_ids=tuple(dict.fromkeys(source_ids)),
                pinned=pinned,
                origin="user",
            )
            self._state = state.with_guidelines((*state.guidelines, guideline))
            self._history.append(
                AlignmentResult(operation="add_guideline", guidelines_added=(guideline.id,))
            )
            return guideline

    def edit_guideline(self, guideline_id: str, text: str) -> Guideline:
        """Replace a guideline's text (its id, sources and pin are kept)."""
        with self._lock:
            old = self._state.guideline(guideline_id)
            edited = replace(old, text=_check_text(text))
            self._replace_guideline(edited, drop_vector=True)
            self._record_edit("edit_guideline", old, edited)
            return edited

    def pin_guideline(self, guideline_id: str, pinned: bool = True) -> Guideline:
        """Pin (or unpin) a guideline; pinned ones survive consolidation and ``unalign``."""
        with self._lock:
            old = self._state.guideline(guideline_id)
            edited = replace(old, pinned=pinned)
            self._replace_guideline(edited, drop_vector=False)
            self._record_edit("pin_guideline" if pinned else "unpin_guideline", old, edited)
            return edited

    def remove_guideline(self, guideline_id: str) -> Guideline:
        """Remove a guideline; returns it."""
        with self._lock:
            state = self._state
            gone = state.guideline(guideline_id)
            self._state = state.with_guidelines(
                [g for g in state.guidelines if g.id != guideline_id]
            )
            self._history.append(
                AlignmentResult(operation="remove_guideline", guidelines_removed=(gone.id,))
            )
            return gone

    # -- persistence -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A self-contained, JSON-ready description: the base judge, the settings, the
        guidelines, the records and their vectors, with a checksum (layout documented in
        ``judgealign/memalign/_file.py``)."""
        from judgealign.memalign._file import dump_aligned

        with self._lock:
            return dump_aligned(self.base_judge, self._optimizer, self._state, self._history)

    def register(self, name: str | None = None, experiment_id: str | None = None) -> AlignedJudge:
        """Save this aligned judge, memory included, to MLflow as the next version of
        ``name`` (MLflow's ``scorer.register``); ``mlflow_integration.get_scorer`` loads it.

        Args:
            name: the registered name; the judge's name by default.
            experiment_id: the experiment; the current one by default.

        Returns:
            This judge.
        """
        register_judge(self, name=name, experiment_id=experiment_id)
        return self

    def save(self, path: str | Path) -> Path:
        """Write the judge, its memory and its vectors to one JSON file, atomically."""
        text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return atomic_write_text(path, text)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        model: str | ChatModel | None = None,
        reflection_model: str | ChatModel | None = None,
        embedder: str | Embedder | None = None,
        view: Any = None,
        reembed: bool = False,
        source: str = "the given data",
    ) -> AlignedJudge:
        """Rebuild an aligned judge from :meth:`to_dict`; options as in :meth:`load`."""
        from judgealign.memalign._file import restore_aligned

        base, optimizer, state, history = restore_aligned(
            data,
            model=model,
            reflection_model=reflection_model,
            embedder=embedder,
            view=view,
            reembed=reembed,
            source=source,
        )
        return cls(base, optimizer=optimizer, state=state, history=history)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        model: str | ChatModel | None = None,
        reflection_model: str | ChatModel | None = None,
        embedder: str | Embedder | None = None,
        view: Any = None,
        reembed: bool = False,
    ) -> AlignedJudge:
        """Load a judge written by :meth:`save`. No model call, no original data needed.

        Args:
            path: the file.
            model: overrides the saved judging model (URI or :class:`ChatModel`).
            reflection_model: overrides the saved reflection model, for later ``align``.
            embedder: the embedder to use; by default the saved embedder id is resolved on
                first use. One whose id differs from the saved one is refused unless
                ``reembed`` is true.
            view: the view function, required when the judge was aligned with one.
            reembed: re-embed every stored record with ``embedder`` (and ``view``).

        Raises:
            ConfigurationError: the file is missing, corrupted, of another format or
                version, or does not match ``embedder``; the message names the file and
                the fix.
        """
        from judgealign.judges._judge import read_json_file

        data = read_json_file(path)
        return cls.from_dict(
            data,
            model=model,
            reflection_model=reflection_model,
            embedder=embedder,
            view=view,
            reembed=reembed,
            source=f"file {str(Path(path))!r}",
        )

    # -- internals -------------------------------------------------------------------

    def _record_edit(self, operation: Operation, old: Guideline, new: Guideline) -> None:
        # An edit that changes nothing is still an event, but lists no edited id.
        edited = () if new == old else (new.id,)
        self._history.append(AlignmentResult(operation=operation, guidelines_edited=edited))

    def _replace_guideline(self, edited: Guideline, *, drop_vector: bool) -> None:
        state = self._state
        items = [edited if g.id == edited.id else g for g in state.guidelines]
        vectors = {
            k: v for k, v in state.guideline_vectors.items() if not (drop_vector and k == edited.id)
        }
        self._state = replace(state, guidelines=tuple(items), guideline_vectors=vectors)


def _record_id(item: str | LabeledRecord | Mapping[str, Any]) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, LabeledRecord):
        return item.id
    if is_trace(item):
        info: Any = getattr(item, "info")  # noqa: B009 - a trace's attributes are untyped here
        return cast(str, info.trace_id)
    if isinstance(item, Mapping) and item.get("id") is not None:  # pyright: ignore[reportUnnecessaryIsInstance]
        return str(item["id"])
    raise ConfigurationError(f"unalign() takes record ids or records with an id; got {item!r}.")


def _check_text(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError("A guideline needs non-empty text.")
    return text.strip()


def _check_same_view(current: MemAlignEngine, new: MemAlignEngine) -> None:
    if current.view_name != new.view_name or (
        current.view_name == "custom" and current.view is not new.view
    ):
        raise ConfigurationError(
            f"The memory was embedded with view={current.view_name!r}; an optimizer with "
            f"view={new.view_name!r} would retrieve by different text. Use the same view, "
            "or reload with AlignedJudge.load(..., view=..., reembed=True)."
        )
