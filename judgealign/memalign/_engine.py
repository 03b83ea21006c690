"""The engine behind ``MemAlignOptimizer``: align a judge with expert feedback through memory.

An aligned judge remembers expert feedback in two ways:

* **semantic memory**: short guidelines that a reflection model distills from the
  experts' labels and rationales, each citing the records it came from; near-duplicates
  (same text, or embedding similarity at least ``dedupe_threshold``) are merged, and the
  list is consolidated by the reflection model when it grows past ``max_guidelines``;
* **episodic memory**: the records themselves, embedded and retrieved by similarity, shown
  to the judge as examples with the experts' verdicts and rationales.

Aligning is incremental. Each record is compared with memory by id and content hash
(fields, label and rationale): new records are embedded and distilled, changed ones are
forgotten and learned again, unchanged ones cost nothing. Records whose distillation
failed earlier stay ``pending`` and are distilled again by the next ``align`` (without
re-embedding). An ``align`` that changes nothing makes no model call and no embedding.

With ``learn_from="all"`` the new records are embedded while they are distilled (the
reflection model reads labels and rationales, not vectors), so an align takes the longer
of the two rather than their sum. The price: an embedder that fails, or returns vectors of
the wrong shape, is found after the distillation requests already in flight were sent
(batches not yet sent are cancelled; memory is unchanged).

With ``learn_from="disagreements"`` guidelines are distilled only from the records that
the judge *as aligned so far* still gets wrong: the judge with the guidelines and the
examples it had before this ``align`` (on the first align, the base judge). A record is
never judged with itself, or another record of the same ``align``, as an example. The
records are embedded first, so that their vectors serve both that judgment and the
memory, and an embedder that fails does so before the judge's one call per record.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, get_args

from judgealign.core._errors import ConfigurationError, JudgeAlignError
from judgealign.core._threads import ContextThreadPool
from judgealign.embeddings._protocol import Embedder
from judgealign.embeddings._resolve import resolve_embedder, resolve_embedder_with_dimension
from judgealign.judges._field_limits import fit_fields
from judgealign.judges._loaders import read_records
from judgealign.judges._records import DuplicateRecord, LabeledRecord, RecordProblem, ties_message
from judgealign.judges._traces import expand_traces
from judgealign.memalign._distill import (
    ConsolidationOutcome,
    DistillationOutcome,
    DistillItem,
    consolidate_guidelines,
    distill_guidelines,
)
from judgealign.memalign._memory import (
    MemoryState,
    RecordStatus,
    StoredRecord,
    merge_near_duplicates,
)
from judgealign.memalign._recall import Recall
from judgealign.memalign._result import AlignmentResult, RunLog
from judgealign.memalign._view import (
    DEFAULT_VIEW,
    EmbedView,
    ViewFunction,
    check_view,
    embed_view,
    render_view,
)
from judgealign.models._chat import ChatModel
from judgealign.models._resolve import resolve_model
from judgealign.models._uri import parse_model_uri

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from judgealign.judges._judge import Judge

__all__ = [
    "AlignmentResult",
    "EmbedView",
    "LearnFrom",
    "MemAlignEngine",
    "RecordsLike",
    "render_view",
]

LearnFrom = Literal["all", "disagreements"]
PanelRule = Literal["all", "agreed"]
RecordsLike = Iterable[LabeledRecord | Mapping[str, Any]]


class MemAlignEngine:
    """Aligns judges with expert feedback through guidelines and retrieved examples.

    The first four arguments are MLflow's, in MLflow's order.

    Args:
        reflection_lm: the model that distills and consolidates guidelines: a model URI,
            a :class:`ChatModel`, or ``None`` for the judge's own model (MLflow's name;
            ``reflection_model=`` is the same).
        retrieval_k: how many similar expert records the judge sees per judgment.
        embedding_model: an embedder or embedder spec for ``resolve_embedder``; ``None``
            for the default local embedder.
        embedding_dim: the vector length. An embedder that takes one is asked for it (a
            litellm model gets ``dimensions=``, the hashing embedder that many buckets);
            any other must already produce it, else ``ConfigurationError`` on first use.
            ``None`` (the default): the embedder's own length.
        reflection_model: the same as ``reflection_lm``.
        view: what is embedded for a record and for a query: ``"fields-mean"`` (each
            judge field fitted into the embedder's window and embedded alone, vectors
            averaged), ``"fields"`` (all fields in one window), a legacy JSON view or a
            function (see ``judgealign.memalign._view``).
        panel: ``"all"`` distills from every record; ``"agreed"`` leaves out records on
            which a panel's raters split (they are still stored, and shown to the judge
            as contested examples); single experts' records always count as agreed.
        learn_from: ``"all"`` distills from every record; ``"disagreements"`` first runs
            the judge as aligned so far (its guidelines and retrieved examples from earlier
            aligns; the base judge on the first align) on the records and distills only
            from those where its verdict differs from the experts' (all records still
            become examples).
        dedupe_threshold: cosine similarity from which two guidelines count as one.
        max_guidelines: when the list grows past this, it is consolidated by the
            reflection model (pinned guidelines are kept as they are).
        batch_token_budget: estimated tokens (four characters each) per distillation
            request, prompt included.
        max_records_per_batch: at most this many records per distillation request.
        max_workers: how many reflection (or base-judge) calls run at once.
        max_example_chars: an example's record is cut to this many characters in the
            judge's prompt.

    Raises:
        ConfigurationError: an option is out of range or of the wrong kind.
    """

    def __init__(
        self,
        reflection_lm: str | ChatModel | None = None,
        retrieval_k: int = 5,
        embedding_model: str | Embedder | None = None,
        embedding_dim: int | None = None,
        *,
        reflection_model: str | ChatModel | None = None,
        view: EmbedView | ViewFunction = DEFAULT_VIEW,
        learn_from: LearnFrom = "all",
        panel: PanelRule = "all",
        dedupe_threshold: float = 0.9,
        max_guidelines: int = 30,
        batch_token_budget: int = 16_000,
        max_records_per_batch: int = 50,
        max_workers: int = 8,
        max_example_chars: int = 4_000,
    ) -> None:
        if reflection_lm is not None and reflection_model is not None:
            raise ConfigurationError(
                "Give the reflection model once: reflection_lm= (MLflow's name) or "
                "reflection_model=, not both."
            )
        reflection_model = reflection_model if reflection_lm is None else reflection_lm
        if isinstance(reflection_model, str):
            parse_model_uri(reflection_model)  # a malformed URI fails here, not mid-align
        self.reflection_model = reflection_model
        self.embedding_model = embedding_model
        self.embedding_dim = (
            None if embedding_dim is None else _count("embedding_dim", embedding_dim)
        )
        self.retrieval_k = _count("retrieval_k", retrieval_k, low=0)
        self.view: EmbedView | ViewFunction = check_view(view)
        self.learn_from: LearnFrom = _check_choice("learn_from", learn_from, LearnFrom)
        self.panel: PanelRule = _check_choice("panel", panel, PanelRule)
        self.dedupe_threshold = _check_threshold(dedupe_threshold)
        self.max_guidelines = _count("max_guidelines", max_guidelines)
        self.batch_token_budget = _count("batch_token_budget", batch_token_budget, low=500)
        self.max_records_per_batch = _count("max_records_per_batch", max_records_per_batch)
        self.max_workers = _count("max_workers", max_workers)
        self.max_example_chars = _count("max_example_chars", max_example_chars, low=100)
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._reflection: ChatModel | None = None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(retrieval_k={self.retrieval_k}, view={self.view_name!r}, "
            f"learn_from={self.learn_from!r})"
        )

    @property
    def view_name(self) -> str:
        """The view's name, or ``"custom"`` for a function."""
        return self.view if isinstance(self.view, str) else "custom"

    @property
    def embedder(self) -> Embedder:
        """The embedder, resolved on first use."""
        with self._lock:
            if self._embedder is None:
                if self.embedding_dim is None:
                    self._embedder = resolve_embedder(self.embedding_model)
                else:
                    self._embedder = resolve_embedder_with_dimension(
                        self.embedding_model, self.embedding_dim
                    )
            return self._embedder

    def reflection_model_for(self, judge: Judge) -> ChatModel:
        """The reflection model: the configured one, or ``judge``'s own model."""
        if self.reflection_model is None:
            return judge.model
        with self._lock:
            if self._reflection is None:
                self._reflection = resolve_model(self.reflection_model)
            return self._reflection

    # -- the update, used by AlignedJudge.align under its write lock ----------------------

    def update(
        self, base: Judge, state: MemoryState, records: RecordsLike
    ) -> tuple[MemoryState, AlignmentResult]:
        """Compute the memory after learning ``records``; ``state`` is not modified."""
        valid, problems, duplicates = _prepare(base, records)
        # Before any paid call: stored vectors must come from this embedder (a memory with
        # no record left drops its guideline vectors instead, to re-embed them).
        state = state.for_embedder(self.embedder)
        new, changed, unchanged = _classify(state, valid)
        pending = [
            state.records[i].record for i in unchanged if state.records[i].status == "pending"
        ]
        run = RunLog(problems=problems, duplicates=duplicates)
        tied = [r.id for r in valid if r.resolution == "tie"]
        if tied:  # a panel split evenly: said, as the loaders say it
            run.warn(ties_message(tied))
        run.result_fields.update(
            records_added=_ids(new),
            records_updated=_ids(changed),
            records_unchanged=tuple(unchanged),
        )
        if not new and not changed and not pending:
            run.warn(
                f"Nothing to align: all {len(unchanged)} record(s) are already in "
                "memory unchanged; no model was called."
            )
            return state, run.finish()
        state, removed = state.without_records(_ids(changed))
        run.result_fields["guidelines_removed"] = removed
        store, learn = [*new, *changed], [*new, *changed, *pending]
        learn, contested = self._panel_split(learn, run)
        if self.learn_from == "all":
            state = self._store_while_distilling(base, state, store, learn, run)
            return state.with_status(contested), run.finish()
        # The judge as aligned so far finds the disagreements: the memory before this
        # align's records are stored, so no record is judged with itself as an example.
        # It makes one call per record: an embedder that fails must fail before those
        # calls are paid, so the records are embedded first.
        aligned_so_far = state.without_examples(r.id for r in pending)
        if store:
            state = self._store(state, store, self.embed_records(base, store), run)
        learn, judged, state = self._disagreements(base, aligned_so_far, state, learn, run)
        outcome = self._distill(base, state, learn, run, judged=judged)
        state = self._apply_distillation(base, state, outcome, run)
        return state.with_status(contested), run.finish()

    def _panel_split(
        self, records: list[LabeledRecord], run: RunLog
    ) -> tuple[list[LabeledRecord], dict[str, RecordStatus]]:
        """With ``panel="agreed"``, the records to distill (those whose raters agree, and
        single experts' records) and the contested ones, kept as examples only."""
        if self.panel == "all":
            return records, {}
        contested = [r.id for r in records if r.contested]
        if contested:
            listed = ", ".join(contested[:5]) + ("..." if len(contested) > 5 else "")
            run.warn(
                f"{len(contested)} record(s) on which the panel's raters split ({listed}) "
                "were not distilled (panel='agreed'); they are kept as contested examples."
            )
        return [r for r in records if not r.contested], dict.fromkeys(contested, "skipped")

    def embed_texts(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` with this optimizer's embedder, checking the shape."""
        import numpy as np

        embedder = self.embedder
        vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
        if vectors.shape != (len(texts), embedder.dimension):
            raise ConfigurationError(
                f"Embedder {embedder.id!r} returned shape {vectors.shape} for {len(texts)} "
                f"texts; expected ({len(texts)}, {embedder.dimension})."
            )
        return vectors

    def embed_fields(self, fields: Sequence[Mapping[str, Any]]) -> NDArray[np.float32]:
        """Embed the view of judge fields: the same call serves records and queries."""
        return embed_view(self.view, fields, self.embedder, self.embed_texts)

    def embed_records(self, base: Judge, records: Sequence[LabeledRecord]) -> NDArray[np.float32]:
        """Embed the view of stored records."""
        return self.embed_fields([base.collect_fields(**r.judge_fields()) for r in records])

    def _store(
        self,
        state: MemoryState,
        records: Sequence[LabeledRecord],
        vectors: NDArray[np.float32],
        run: RunLog,
    ) -> MemoryState:
        run.embedded += len(records)
        stored = [
            StoredRecord(r, v, status="pending") for r, v in zip(records, vectors, strict=True)
        ]
        return state.with_records(stored, self.embedder.id)

    def _store_while_distilling(
        self,
        base: Judge,
        state: MemoryState,
        store: Sequence[LabeledRecord],
        learn: Sequence[LabeledRecord],
        run: RunLog,
    ) -> MemoryState:
        """Embed ``store`` in the background while ``learn`` is distilled.

        Distillation reads labels and rationales, not vectors, so the two overlap and an
        align costs the longer of them rather than their sum. If the embedding fails,
        batches not yet sent are cancelled and its error is raised (memory is unchanged).
        Guidelines are embedded for merging only after the records, one embedding call at
        a time.
        """
        if not store:
            return self._apply_distillation(
                base, state, self._distill(base, state, learn, run), run
            )
        failed = threading.Event()

        def on_done(done: Future[NDArray[np.float32]]) -> None:
            if done.exception() is not None:
                failed.set()

        with ContextThreadPool(max_workers=1, thread_name_prefix="judgealign-embed") as pool:
            embedding = pool.submit(self.embed_records, base, store)
            embedding.add_done_callback(on_done)
            outcome = self._distill(base, state, learn, run, cancel=failed)
            vectors = embedding.result()
        state = self._store(state, store, vectors, run)
        return self._apply_distillation(base, state, outcome, run)

    def _distill(
        self,
        base: Judge,
        state: MemoryState,
        records: Sequence[LabeledRecord],
        run: RunLog,
        *,
        judged: Mapping[str, tuple[Any, str]] | None = None,
        cancel: threading.Event | None = None,
    ) -> DistillationOutcome | None:
        if not records:
            return None
        items = [_distill_item(base, r, (judged or {}).get(r.id)) for r in records]
        outcome = distill_guidelines(
            self.reflection_model_for(base),
            items,
            instructions=base.instructions,
            verdict_type=base.value_spec.describe(),
            existing=state.guidelines,
            disagreements_only=self.learn_from == "disagreements",
            token_budget=self.batch_token_budget,
            max_items=self.max_records_per_batch,
            max_workers=self.max_workers,
            cancel=cancel,
        )
        run.usage = run.usage + outcome.usage
        run.report_distillation(outcome, len(records))
        return outcome

    def _apply_distillation(
        self, base: Judge, state: MemoryState, outcome: DistillationOutcome | None, run: RunLog
    ) -> MemoryState:
        if outcome is None:
            return state
        state = state.with_status(dict.fromkeys(outcome.distilled_ids, "distilled"))
        state = self._merge(state, list(outcome.guidelines), run)
        return self._consolidate(base, state, run)

    def _disagreements(
        self,
        base: Judge,
        memory: MemoryState,
        state: MemoryState,
        records: Sequence[LabeledRecord],
        run: RunLog,
    ) -> tuple[list[LabeledRecord], dict[str, tuple[Any, str]], MemoryState]:
        """Judge ``records`` with ``memory`` (guidelines and examples aligned so far) and
        keep those the judge still gets wrong; ``state`` holds their vectors."""
        verdicts = Recall(base, self).evaluate_embedded(
            memory,
            [base.collect_fields(**r.judge_fields()) for r in records],
            [state.records[r.id].vector for r in records],
            max_workers=self.max_workers,
        )
        run.usage = run.usage + verdicts.usage
        differ: list[LabeledRecord] = []
        judged: dict[str, tuple[Any, str]] = {}
        statuses: dict[str, RecordStatus] = {}
        failed: list[str] = []
        for record, feedback in zip(records, verdicts, strict=True):
            if not feedback.ok:
                failed.append(record.id)
            elif _same_verdict(feedback.value, record.label):
                statuses[record.id] = "skipped"
            else:
                differ.append(record)
                judged[record.id] = (feedback.value, feedback.rationale)
        if failed:
            run.warn(
                f"The judge (as aligned so far) failed on {len(failed)} record(s) "
                f"({', '.join(failed[:5])}{'...' if len(failed) > 5 else ''}); they stay "
                "pending and are retried "
                "by the next align."
            )
        if not differ and not failed:
            run.warn(
                "The judge (as aligned so far) already agrees with the experts on all "
                f"{len(records)} record(s), so no guideline was distilled "
                "(learn_from='disagreements'); they are kept as examples."
            )
        run.result_fields["disagreement_ids"] = _ids(differ)
        return differ, judged, state.with_status(statuses)

    def _merge(
        self, state: MemoryState, candidates: list[tuple[str, tuple[str, ...]]], run: RunLog
    ) -> MemoryState:
        if not candidates:
            return state
        missing = [g for g in state.guidelines if g.id not in state.guideline_vectors]
        vectors = self.embed_texts([g.text for g in missing] + [t for t, _ in candidates])
        run.embedded += len(vectors)
        known = {
            **state.guideline_vectors,
            **{g.id: v for g, v in zip(missing, vectors[: len(missing)], strict=True)},
        }
        merged, new_vectors = merge_near_duplicates(
            state.guidelines,
            known,
            candidates,
            vectors[len(missing) :],
            threshold=self.dedupe_threshold,
        )
        run.result_fields["guidelines_added"] = merged.added
        run.result_fields["guidelines_merged"] = merged.merged
        return state.with_guidelines(merged.guidelines, {**known, **new_vectors})

    def _consolidate(self, base: Judge, state: MemoryState, run: RunLog) -> MemoryState:
        if len(state.guidelines) <= self.max_guidelines:
            return state
        target = max(1, self.max_guidelines * 2 // 3)
        outcome = consolidate_guidelines(
            self.reflection_model_for(base),
            state.guidelines,
            instructions=base.instructions,
            target=target,
        )
        run.usage = run.usage + outcome.usage
        if outcome.error is not None:
            run.warn(
                f"Consolidating {len(state.guidelines)} guidelines failed "
                f"({outcome.error}); the list is kept as it is."
            )
            return state
        self._report_consolidation(state, outcome, run)
        if len(outcome.guidelines) > self.max_guidelines:
            run.warn(
                f"After consolidation there are still {len(outcome.guidelines)} "
                f"guidelines (cap {self.max_guidelines})."
            )
        return state.with_guidelines(outcome.guidelines)

    @staticmethod
    def _report_consolidation(
        state: MemoryState, outcome: ConsolidationOutcome, run: RunLog
    ) -> None:
        """Fold a consolidation into the result: a guideline added earlier in this align
        and replaced now was never there for the user, so it is neither added nor removed;
        only guidelines that existed before the align are reported removed."""
        before = {g.id for g in state.guidelines}
        final = {g.id for g in outcome.guidelines}
        added_earlier: tuple[str, ...] = run.result_fields.get("guidelines_added", ())
        merged_earlier: tuple[str, ...] = run.result_fields.get("guidelines_merged", ())
        created = [g.id for g in outcome.guidelines if g.id not in before]
        run.result_fields["guidelines_added"] = (
            *(i for i in added_earlier if i in final),
            *created,
        )
        run.result_fields["guidelines_merged"] = tuple(
            dict.fromkeys([*(i for i in merged_earlier if i in final), *outcome.absorbed])
        )
        run.result_fields["guidelines_removed"] = (
            *run.result_fields.get("guidelines_removed", ()),
            *(i for i in outcome.replaced if i not in added_earlier),
        )

    # -- persistence of settings -------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The JSON-ready settings (models by URI; a view function as ``"custom"``)."""
        reflection = self.reflection_model
        # embedding_dim only when set, so files of judges aligned without it are unchanged.
        dimension = {} if self.embedding_dim is None else {"embedding_dim": self.embedding_dim}
        return {
            **dimension,
            "reflection_model": reflection
            if isinstance(reflection, str) or reflection is None
            else reflection.uri,
            "retrieval_k": self.retrieval_k,
            "view": self.view_name,
            "learn_from": self.learn_from,
            # only when set, so files of judges aligned without panels are unchanged.
            **({"panel": self.panel} if self.panel != "all" else {}),
            "dedupe_threshold": self.dedupe_threshold,
            "max_guidelines": self.max_guidelines,
            "batch_token_budget": self.batch_token_budget,
            "max_records_per_batch": self.max_records_per_batch,
            "max_workers": self.max_workers,
            "max_example_chars": self.max_example_chars,
        }


# -- helpers ---------------------------------------------------------------------------


def _prepare(
    base: Judge, records: RecordsLike
) -> tuple[list[LabeledRecord], tuple[RecordProblem, ...], tuple[DuplicateRecord, ...]]:
    if isinstance(records, (str, bytes, Mapping)):
        raise ConfigurationError(
            "records must be a list of records (dicts or "
            "LabeledRecord), not a single string or dict."
        )
    if not isinstance(records, Iterable):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            "records must be a list of records (dicts or LabeledRecord), got "
            f"{type(records).__name__}."
        )
    items = expand_traces(records, base)  # MLflow traces become their expert labels
    if not items:
        raise ConfigurationError("align() needs at least one expert-labelled record.")
    loaded = read_records(items, judge=base)  # problems are reported in the result
    valid: list[LabeledRecord] = []
    problems = list(loaded.problems)
    for record in loaded:
        try:
            base.collect_fields(**record.judge_fields())
        except JudgeAlignError as exc:
            problems.append(RecordProblem(f"record {record.id!r}", record.id, str(exc)))
            continue
        valid.append(record)
    if not valid:
        first = f" The first problem: {problems[0]}" if problems else ""
        raise ConfigurationError(
            f"None of the {len(items)} record(s) can be used to align judge {base.name!r}.{first}"
        )
    return valid, tuple(problems), loaded.duplicates


def _classify(
    state: MemoryState, records: Sequence[LabeledRecord]
) -> tuple[list[LabeledRecord], list[LabeledRecord], list[str]]:
    new: list[LabeledRecord] = []
    changed: list[LabeledRecord] = []
    unchanged: list[str] = []
    for record in records:
        stored = state.records.get(record.id)
        if stored is None:
            new.append(record)
        elif stored.content_hash != record.content_hash:
            changed.append(record)
        else:
            unchanged.append(record.id)
    return new, changed, unchanged


def _distill_item(
    base: Judge, record: LabeledRecord, judged: tuple[Any, str] | None
) -> DistillItem:
    fields = base.collect_fields(**record.judge_fields())
    payload: dict[str, Any] = {
        "id": record.id,
        **fit_fields(fields, base.max_field_chars, judge=base.name)[0],
        "expert_verdict": record.label,
        "expert_rationale": record.rationale or "(none given)",
    }
    if record.contested:  # the experts split: the reflection model should know
        payload["experts_split"] = {r.rater: r.label for r in record.ratings}
    if judged is not None:
        payload["judge_verdict"], payload["judge_rationale"] = judged
    return DistillItem(record.id, payload)


def _same_verdict(judged: Any, label: Any) -> bool:
    if isinstance(judged, str) and isinstance(label, str):
        return judged.strip().casefold() == label.strip().casefold()
    if isinstance(judged, float) or isinstance(label, float):
        return (
            not isinstance(judged, (bool, str))
            and not isinstance(label, (bool, str))
            and math.isclose(float(judged), float(label), rel_tol=1e-9, abs_tol=1e-9)
        )
    return bool(judged == label)


def _ids(records: Sequence[LabeledRecord]) -> tuple[str, ...]:
    return tuple(r.id for r in records)


def _count(name: str, value: object, *, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigurationError(f"{name}={value!r} must be an integer >= {low}.")
    return value


def _check_threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigurationError(
            f"dedupe_threshold={value!r} must be a cosine similarity in (0, 1], e.g. 0.9."
        )
    return float(value)


def _check_choice(name: str, value: object, choices: Any) -> Any:
    allowed = get_args(choices)
    if value not in allowed:
        raise ConfigurationError(
            f"{name}={value!r} is not one of {', '.join(repr(a) for a in allowed)}."
        )
    return value
