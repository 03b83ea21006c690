"""Judging a batch: records in, one feedback per record out (in order), and what it cost.

One bad record, or one crash while scoring it, becomes an error feedback for that record;
the batch always completes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from judgealign.core._errors import (
    ConfigurationError,
)
from judgealign.core._redact import redact
from judgealign.core._threads import ContextThreadPool
from judgealign.core._usage import Usage
from judgealign.judges._feedback import Feedback
from judgealign.judges._rendering import TEMPLATE_VARIABLES


@dataclass(frozen=True)
class EvaluationResult(Sequence[Feedback]):
    """The feedback of a batch, in record order, and what the batch cost."""

    feedback: tuple[Feedback, ...]
    usage: Usage

    def __len__(self) -> int:
        return len(self.feedback)

    def __getitem__(self, index: int) -> Feedback:  # type: ignore[override]
        return self.feedback[index]

    @property
    def errors(self) -> list[int]:
        """Positions of records that came back with an error."""
        return [i for i, fb in enumerate(self.feedback) if fb.error is not None]

    @property
    def values(self) -> list[Any]:
        """The verdicts, ``None`` where a record failed."""
        return [fb.value for fb in self.feedback]


def run_batch(
    score: Callable[[Any], Feedback],
    items: Sequence[Any],
    *,
    name: str,
    max_workers: int,
    progress: bool | None,
) -> EvaluationResult:
    """Score ``items`` with a thread pool, preserving order; a crash in ``score`` for one
    item becomes an error feedback for that item."""

    def safe(item: Any) -> Feedback:
        try:
            return score(item)
        except Exception as exc:  # one bad record must not abort the batch
            return Feedback(name=name, error=redact(f"{type(exc).__name__}: {exc}"))

    show = progress if progress is not None else (len(items) >= 50 and sys.stderr.isatty())
    with ContextThreadPool(max_workers=max(1, min(max_workers, len(items) or 1))) as pool:
        # Each item runs in a copy of the caller's context, so that what the caller set
        # there (a rate limit, judgealign.models.rate_limit) reaches the pool's threads.
        futures = [pool.submit(safe, item) for item in items]
        results: Iterable[Feedback] = (future.result() for future in futures)
        if show:
            from tqdm import tqdm

            results = tqdm(results, total=len(items), desc="judging", unit="record")
        feedback = tuple(results)
    usage = Usage(calls=0)
    for fb in feedback:
        usage = usage + usage_from_metadata(fb.metadata)
    return EvaluationResult(feedback=feedback, usage=usage)


def batch_records(records: object, max_workers: object) -> list[Any]:
    """The records of an ``evaluate`` call as a list, after checking the arguments.

    Raises:
        ConfigurationError: ``records`` is not iterable, or ``max_workers`` is not an
            integer >= 1.
    """
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ConfigurationError(f"max_workers={max_workers!r} must be an integer >= 1.")
    records = table_rows(records)
    kind = type(records).__name__
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
        raise ConfigurationError(
            "records must be an iterable of records (dicts with inputs, outputs, ...), "
            f"got {kind}; wrap a single record in a list."
        )
    return list(cast(Iterable[Any], records))


def table_rows(records: object) -> object:
    """An MLflow ``EvaluationDataset`` or a pandas DataFrame as a list of row dicts (its
    ``inputs``/``outputs``/``expectations`` columns); anything else as it is.

    Iterating a DataFrame would give its column names, not its rows.
    """
    to_df = getattr(records, "to_df", None)
    if callable(to_df):  # MLflow's EvaluationDataset
        records = to_df()
    to_dict = getattr(records, "to_dict", None)
    if callable(to_dict) and hasattr(records, "columns"):  # a pandas DataFrame
        return cast("list[Any]", to_dict(orient="records"))
    return records


def record_fields(record: Any) -> dict[str, Any]:
    """Pull the judge fields out of a mapping or an object with those attributes."""
    if isinstance(record, Mapping):
        mapping = cast(Mapping[str, Any], record)
        get: Callable[[str], Any] = lambda key: mapping.get(key)  # noqa: E731
    elif any(hasattr(record, v) for v in TEMPLATE_VARIABLES):
        get = lambda key: getattr(record, key, None)  # noqa: E731
    else:
        raise ConfigurationError(
            f"A record must be a dict with keys among {', '.join(TEMPLATE_VARIABLES)}; got "
            f"{type(record).__name__}."
        )
    return {v: get(v) for v in TEMPLATE_VARIABLES}


def record_label(record: Any, position: int) -> str:
    """How error messages name a record: its position in the batch, and its id if any."""
    ident: Any = (
        cast(Mapping[str, Any], record).get("id")
        if isinstance(record, Mapping)
        else getattr(record, "id", None)
    )
    named = f" (id {ident!r})" if isinstance(ident, (str, int)) and ident != "" else ""
    return f"record {position}{named}"


def usage_metadata(model_uri: str, usage: Usage) -> dict[str, Any]:
    """The usage keys of every judge feedback's metadata (zeros when no call was made)."""
    return {
        "model": model_uri,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost_usd": usage.cost_usd,
        "latency_ms": round(usage.latency_ms, 3),
        "model_calls": usage.calls,
    }


def usage_from_metadata(metadata: Mapping[str, Any]) -> Usage:
    if "prompt_tokens" not in metadata:
        return Usage(calls=0)
    return Usage(
        prompt_tokens=int(metadata["prompt_tokens"]),
        completion_tokens=int(metadata["completion_tokens"]),
        cost_usd=metadata.get("cost_usd"),
        latency_ms=float(metadata.get("latency_ms", 0.0)),
        calls=int(metadata.get("model_calls", 1)),
    )
