"""Which records an expert should label next: :func:`suggest_labels`.

Expert labels are the scarce resource, so the records worth an expert's time are those
the judge is unsure of and that teach its memory something new. Each unlabelled record
gets two measures:

* **uncertainty**, in [0, 1]: how much the judge disagrees with itself. A jury is
  evaluated once and its members' split is the uncertainty (the share of weighted votes
  against the jury's verdict, or the spread of a mean). A single judge is evaluated
  ``samples`` times (a judge on a model URI is re-made at ``temperature`` with a seed per
  sample; another judge is sampled as it is), and the uncertainty is the share of samples
  that disagree with the most common verdict, scaled so that an even split is 1.
* **novelty**, in [0, 1]: one minus the cosine similarity to the nearest record already
  labelled (an aligned judge's memory by default, or ``labelled=``), embedded with the
  aligned judge's embedder or ``embedder=`` (default: the hashing embedder, offline).

The ranking score is ``uncertainty + novelty_weight * novelty``. Suggestions are taken in
score order, skipping a record whose similarity to one already suggested in this batch
is ``max_similarity`` or more (a near-duplicate: one label teaches both), so a batch is
diverse. Records the judge failed on every time are listed apart (``failed_ids``).
Every call the sampling made is counted in ``usage``.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.core._usage import Usage
from judgealign.judges._feedback import Feedback
from judgealign.judges._records import FIELD_NAMES, label_key
from judgealign.memalign._view import embed_view

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["LabelSuggestions", "Suggestion", "suggest_labels"]


@dataclass(frozen=True)
class Suggestion:
    """One record suggested for labelling.

    Attributes:
        id: the record's id.
        rank: its place in the batch, from 1.
        score: ``uncertainty + novelty_weight * novelty``.
        uncertainty: how much the judge disagreed with itself, in [0, 1].
        novelty: distance from the nearest labelled record, in [0, 1] (0 when nothing
            is labelled yet, so that only uncertainty ranks).
        verdicts: the sampled verdicts (or the jury members'), ``None`` for a failure.
        record: the record as given.
    """

    id: str
    rank: int
    score: float
    uncertainty: float
    novelty: float
    verdicts: tuple[Any, ...]
    record: Any


@dataclass(frozen=True)
class LabelSuggestions(Sequence[Suggestion]):
    """The suggested records, best first; iterates over them.

    Attributes:
        suggestions: the batch.
        n_candidates: unlabelled records considered.
        failed_ids: records on which the judge gave no verdict at all.
        near_duplicates: ids skipped as near-duplicates of a record already suggested.
        usage: the model calls the sampling made.
    """

    suggestions: tuple[Suggestion, ...]
    n_candidates: int
    failed_ids: tuple[str, ...]
    near_duplicates: tuple[str, ...]
    usage: Usage

    def __len__(self) -> int:
        return len(self.suggestions)

    def __getitem__(self, index: int) -> Suggestion:  # type: ignore[override]
        return self.suggestions[index]

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per suggestion, ready for labellers: the record's id and fields, an
        empty ``label`` and ``rationale`` to fill, and why it was chosen."""
        rows: list[dict[str, Any]] = []
        for item in self.suggestions:
            fields = _fields(item.record)
            rows.append(
                {
                    "id": item.id,
                    **{k: v for k, v in fields.items() if v is not None},
                    "label": None,
                    "rationale": "",
                    "suggestion": {
                        "rank": item.rank,
                        "score": round(item.score, 6),
                        "uncertainty": round(item.uncertainty, 6),
                        "novelty": round(item.novelty, 6),
                        "verdicts": list(item.verdicts),
                    },
                }
            )
        return rows


def suggest_labels(
    judge: Any,
    records: Sequence[Any],
    n: int,
    *,
    samples: int = 5,
    temperature: float = 1.0,
    labelled: Sequence[Any] | None = None,
    embedder: Any = None,
    novelty_weight: float = 0.5,
    max_similarity: float = 0.95,
    max_workers: int = 8,
    seed: int = 0,
    samplers: Sequence[Any] | None = None,
) -> LabelSuggestions:
    """Rank unlabelled records for the experts (see the module docstring).

    Args:
        judge: a judge, an aligned judge or a jury (from ``make_jury``).
        records: the unlabelled records: dicts or objects with the judge's fields and an
            ``id`` (records without one are named by position, ``"0"``, ``"1"``...).
        n: how many to suggest.
        samples: evaluations of a single judge (ignored for a jury); at least 2.
        temperature: the sampling temperature of a judge on a model URI (> 0).
        labelled: records already labelled; default: an aligned judge's memory.
        embedder: an embedder or embedder spec; default: an aligned judge's embedder,
            else the hashing embedder.
        novelty_weight: the weight of novelty against uncertainty (>= 0).
        max_similarity: two records this similar or more are near-duplicates (in (0, 1]).
        max_workers: records judged at once.
        seed: seeds the sampling and breaks ties in the ranking.
        samplers: the judges sampled, one per sample, when ``judge`` cannot be re-made
            at a temperature itself (e.g. built around a ChatModel object); default:
            ``judge`` re-made per sample. Their number replaces ``samples``.

    Returns:
        The :class:`LabelSuggestions`.

    Raises:
        ConfigurationError: bad options, no records, or ids that repeat.
    """
    sampled = list(samplers) if samplers is not None else None
    _check(
        n, samples if sampled is None else len(sampled), temperature, novelty_weight, max_similarity
    )
    ids = _ids(records)
    if sampled is None and getattr(judge, "members", None) is None:
        sampled = [_sampler(judge, temperature, seed + k) for k in range(samples)]
    verdicts, spread, usage = _uncertainty(judge, sampled, records, max_workers)
    vectors = _embed(_resolve_embedder(judge, embedder), [*records, *_memory(judge, labelled)])
    candidates, memory = vectors[: len(records)], vectors[len(records) :]
    novelty = _novelty(candidates, memory)
    failed = {i for i, row in enumerate(verdicts) if all(v is None for v in row)}
    tiebreak = random.Random(seed)
    keys = {i: tiebreak.random() for i in range(len(records))}
    order = sorted(
        (i for i in range(len(records)) if i not in failed),
        key=lambda i: (-(spread[i] + novelty_weight * novelty[i]), -novelty[i], keys[i]),
    )
    chosen, skipped = _diverse(order, candidates, n, max_similarity)
    return LabelSuggestions(
        suggestions=tuple(
            Suggestion(
                id=ids[i],
                rank=rank,
                score=spread[i] + novelty_weight * novelty[i],
                uncertainty=spread[i],
                novelty=novelty[i],
                verdicts=tuple(verdicts[i]),
                record=records[i],
            )
            for rank, i in enumerate(chosen, start=1)
        ),
        n_candidates=len(records),
        failed_ids=tuple(ids[i] for i in sorted(failed)),
        near_duplicates=tuple(ids[i] for i in skipped),
        usage=usage,
    )


def _check(
    n: object, samples: object, temperature: object, weight: object, similarity: object
) -> None:
    def whole(value: object, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def number(value: object) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)

    problems: list[str] = []
    if not whole(n, 1):
        problems.append(f"n={n!r} must be a whole number >= 1")
    if not whole(samples, 2):
        problems.append(f"samples={samples!r} must be a whole number >= 2 (a judge's spread)")
    t = number(temperature)
    if t is None or not t > 0:
        problems.append(f"temperature={temperature!r} must be > 0 (samples at 0 agree)")
    w = number(weight)
    if w is None or not w >= 0:
        problems.append(f"novelty_weight={weight!r} must be a number >= 0")
    s = number(similarity)
    if s is None or not 0 < s <= 1:
        problems.append(f"max_similarity={similarity!r} must be in (0, 1]")
    if problems:
        raise ConfigurationError("suggest_labels: " + "; ".join(problems) + ".")


def _ids(records: Sequence[Any]) -> list[str]:
    if isinstance(records, (str, bytes, Mapping)) or not len(records):
        raise ConfigurationError(
            "records must be a non-empty list of unlabelled records (dicts with the judge's "
            "fields and an id)."
        )
    ids = [_id(record, i) for i, record in enumerate(records)]
    repeated = sorted(k for k, count in Counter(ids).items() if count > 1)
    if repeated:
        raise ConfigurationError(
            f"record ids repeat: {repeated[:10]}; give every record its own id so that the "
            "experts' labels can be matched back."
        )
    return ids


def _id(record: Any, position: int) -> str:
    value = (
        cast("Mapping[str, Any]", record).get("id")
        if isinstance(record, Mapping)
        else getattr(record, "id", None)
    )
    return str(value) if value is not None else str(position)


def _fields(record: Any) -> dict[str, Any]:
    if isinstance(record, Mapping):
        data = cast("Mapping[str, Any]", record)
        return {name: data.get(name) for name in FIELD_NAMES}
    return {name: getattr(record, name, None) for name in FIELD_NAMES}


# -- uncertainty ----------------------------------------------------------------------


def _uncertainty(
    judge: Any, sampled: Sequence[Any] | None, records: Sequence[Any], workers: int
) -> tuple[list[list[Any]], list[float], Usage]:
    if sampled is None:  # a jury: one evaluation, the members' split
        result = judge.evaluate(records, max_workers=workers, progress=False)
        verdicts = [_member_values(fb) for fb in result]
        spread = [_jury_spread(fb) for fb in result]
        return verdicts, spread, cast("Usage", result.usage)
    runs = [s.evaluate(records, max_workers=workers, progress=False) for s in sampled]
    usage = Usage(calls=0)
    for run in runs:
        usage = usage + cast("Usage", run.usage)
    verdicts = [[_value(run[i]) for run in runs] for i in range(len(records))]
    spread = [_sample_spread(row) for row in verdicts]
    if not any(spread):
        warnings.warn(
            f"the judge gave the same verdict in all {len(runs)} samples of every record, so "
            "uncertainty cannot rank them (a model that ignores temperature, or a cache "
            "serving one reply); only novelty ranks. Use a jury, or a judge on a model URI.",
            UserWarning,
            stacklevel=3,
        )
    return verdicts, spread, usage


def _sampler(judge: Any, temperature: float, seed: int) -> Any:
    """``judge`` re-made at ``temperature`` with ``seed`` when it can be (a judge on a
    model URI); any other judge is sampled as it is."""
    remake = getattr(judge, "with_inference_params", None)
    if not callable(remake):
        return judge
    try:
        return remake({"temperature": temperature, "seed": seed})
    except ConfigurationError:  # a ChatModel object: its own sampling decides
        return judge


def _value(feedback: Feedback) -> Any:
    return feedback.value if feedback.ok else None


def _sample_spread(values: Sequence[Any]) -> float:
    """Share of verdicts against the most common one, scaled so an even split is 1."""
    given = [label_key(v) for v in values if v is not None]
    if len(given) < 2:
        return 0.0
    counts = Counter(given)
    against = 1.0 - max(counts.values()) / len(given)
    most = 1.0 - 1.0 / min(len(counts) if len(counts) > 1 else 2, len(given))
    return min(1.0, against / most) if most > 0 else 0.0


def _member_values(feedback: Feedback) -> list[Any]:
    jury = cast("Mapping[str, Any]", feedback.metadata.get("jury") or {})
    members = cast("list[Mapping[str, Any]]", jury.get("members") or [])
    return [m.get("value") if m.get("error") is None else None for m in members]


def _jury_spread(feedback: Feedback) -> float:
    jury = cast("Mapping[str, Any]", feedback.metadata.get("jury") or {})
    value = jury.get("disagreement")
    return float(value) if isinstance(value, (int, float)) and feedback.ok else 0.0


# -- novelty and diversity ------------------------------------------------------------


def _memory(judge: Any, labelled: Sequence[Any] | None) -> list[Any]:
    if labelled is not None:
        return list(labelled)
    return list(getattr(judge, "records", ()) or ())


def _resolve_embedder(judge: Any, embedder: Any) -> Any:
    if embedder is not None and not isinstance(embedder, str):
        return embedder
    from judgealign.embeddings._resolve import resolve_embedder

    if embedder is None:
        engine = getattr(judge, "optimizer", None)
        own = getattr(engine, "embedder", None)
        return own if own is not None else resolve_embedder("hashing")
    return resolve_embedder(embedder)


def _embed(embedder: Any, records: Sequence[Any]) -> NDArray[np.float64]:
    """One unit row per record, through the retrieval view (``fields-mean``): each field
    fitted into the embedder's window and embedded alone, the vectors averaged. One JSON
    text per record would lose the fields past the window of a long record (a DeFacto
    document fills MiniLM's 254 tokens before its summary starts), so records that differ
    only there would look like near-duplicates and equally novel."""
    import numpy as np

    def unit_rows(texts: Sequence[str]) -> NDArray[np.float32]:
        vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    fields = [{k: v for k, v in _fields(r).items() if v is not None} for r in records]
    return np.asarray(embed_view("fields-mean", fields, embedder, unit_rows), dtype=np.float64)


def _novelty(candidates: NDArray[np.float64], memory: NDArray[np.float64]) -> list[float]:
    if memory.shape[0] == 0:
        return [0.0] * candidates.shape[0]
    import numpy as np

    similarity: NDArray[np.float64] = candidates @ np.transpose(memory)
    nearest: list[float] = np.max(similarity, axis=1).tolist()
    # Vectors are float32 (about 7 digits): a record identical to one in memory comes out
    # at 1e-7, not 0, unless rounded to what the vectors can tell apart.
    return [min(1.0, max(0.0, round(1.0 - s, 6))) for s in nearest]


def _diverse(
    order: Sequence[int], vectors: NDArray[np.float64], n: int, max_similarity: float
) -> tuple[list[int], list[int]]:
    chosen: list[int] = []
    skipped: list[int] = []
    for index in order:
        if len(chosen) == n:
            break
        if chosen and float((vectors[chosen] @ vectors[index]).max()) >= max_similarity - 1e-9:
            skipped.append(index)
            continue
        chosen.append(index)
    return chosen, skipped
