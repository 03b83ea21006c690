"""Traces as expert feedback, verdicts written back to traces, judges in ``mlflow.genai.evaluate``.

* :func:`records_from_traces` reads HUMAN feedback named like the judge (see
  :mod:`judgealign.judges._traces` for the rule) into labelled records ready for ``align``.
* :func:`log_verdicts` attaches a judge's verdicts to traces as ``LLM_JUDGE`` feedback,
  through a tracker's single background writer; :func:`score_traces` judges traces and
  does both.
* :func:`evaluate` is ``mlflow.genai.evaluate`` that also accepts judgealign judges in
  ``scorers`` (each wrapped by :func:`as_scorer`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.mlflow import _client as _mlflow
from judgealign.judges._loaders import load_records
from judgealign.judges._records import LoadResult
from judgealign.judges._traces import expand_traces, is_trace, trace_fields

__all__ = ["as_scorer", "evaluate", "log_verdicts", "records_from_traces", "score_traces"]

TraceLike = Any
"""An MLflow ``Trace``, a trace id, or a DataFrame from ``mlflow.search_traces``."""


def as_scorer(judge: Any, *, name: str | None = None) -> Any:
    """Wrap a judge (plain or aligned) as an MLflow ``Scorer``.

    ``mlflow.genai.evaluate`` accepts only instances of its own pydantic ``Scorer`` class
    and then reads several of its attributes (``run``, ``aggregations``,
    ``is_session_level_scorer``...), so a judge is wrapped rather than passed as is; or
    call :func:`evaluate`, which wraps judges for you. The scorer's feedback carries the
    judge's value, rationale, an ``LLM_JUDGE`` source naming the model and the judge's
    metadata.
    """
    return _mlflow.as_scorer(judge, name=name)


def evaluate(*, data: Any, scorers: Sequence[Any], predict_fn: Any = None, **kwargs: Any) -> Any:
    """``mlflow.genai.evaluate``, with judgealign judges allowed among ``scorers``.

    Keep ``data`` small on the default sqlite store: MLflow writes one trace per row from
    several threads, which is slow there.
    """
    wrapped = [
        s if _mlflow.is_mlflow_scorer(s) or not _is_judge(s) else as_scorer(s) for s in scorers
    ]
    return _mlflow.genai_evaluate(data=data, predict_fn=predict_fn, scorers=wrapped, **kwargs)


def records_from_traces(
    traces: TraceLike | Iterable[TraceLike],
    *,
    judge: Any = None,
    judge_name: str | None = None,
    strict: bool = False,
) -> LoadResult:
    """Expert-labelled records from traces, ready for ``judge.align(...)``.

    Args:
        traces: ``Trace`` objects (used as given), trace ids (fetched now), or a DataFrame
            from ``mlflow.search_traces``/``evaluate(...).result_df`` (its ``trace_id``
            column, fetched now so that feedback logged since is seen).
        judge: the judge to align: its name selects the feedback, and labels are coerced
            to its value type (``"yes"`` -> ``True`` for a bool judge).
        judge_name: the feedback name, when no judge is given.
        strict: raise on any rejected record instead of reporting it.

    Returns:
        The records, with rejected ones in ``problems`` and conflicting labels resolved
        (majority, ties to the latest) in ``duplicates``.

    Raises:
        ConfigurationError: neither ``judge`` nor ``judge_name``, a trace id that does not
            exist, or no trace with feedback for the judge.
    """
    name = judge.name if judge is not None else judge_name
    if not name:
        raise ConfigurationError("records_from_traces needs judge= or judge_name=.")
    items = _as_traces(traces)
    matcher = judge if judge is not None else _Named(name)
    return load_records(expand_traces(items, matcher), judge=judge, strict=strict)


def log_verdicts(
    traces: TraceLike | Iterable[TraceLike],
    feedback: Sequence[Any],
    *,
    tracker: Any = None,
    wait: bool = True,
) -> int:
    """Attach judge verdicts to traces as ``LLM_JUDGE`` feedback assessments.

    The writes go through one background writer (``tracker``'s, or a shared
    :class:`~judgealign.mlflow_integration.MlflowTracker`), never from the caller's thread
    or a pool; that writer first flushes MLflow's asynchronous trace export, so verdicts
    on traces made a moment ago land. Feedback with an ``error`` is written as an
    assessment error.

    Args:
        traces: the traces (objects, ids or a DataFrame), one per feedback, in order.
        feedback: judgealign ``Feedback`` objects, e.g. ``judge.evaluate(...)``.
        tracker: an ``MlflowTracker`` to write through.
        wait: flush before returning (failures are warned about and kept for retry).

    Returns:
        How many assessments were queued.

    Raises:
        ConfigurationError: when the numbers of traces and feedback differ.
    """
    ids = _trace_ids(traces)
    if len(ids) != len(feedback):
        raise ConfigurationError(
            f"log_verdicts got {len(ids)} traces but {len(feedback)} feedback."
        )
    writer = tracker if tracker is not None else _default_tracker()
    for trace_id, fb in zip(ids, feedback, strict=True):
        source = fb.source
        writer.log_assessment(
            trace_id,
            name=fb.name,
            value=fb.value,
            rationale=fb.rationale,
            source_type="LLM_JUDGE",
            source_id=(source.source_id if source is not None else "") or "judgealign",
            metadata=_mlflow.metadata_text(fb.metadata),
            error=fb.error,
        )
    if wait:
        writer.flush()
    return len(ids)


def score_traces(
    judge: Any,
    traces: TraceLike | Iterable[TraceLike],
    *,
    write_back: bool = True,
    tracker: Any = None,
    max_workers: int = 8,
) -> Any:
    """Judge traces (their root inputs and outputs) and, by default, log the verdicts back.

    Returns:
        The judge's ``EvaluationResult``, one feedback per trace, in order.
    """
    items = _as_traces(traces)
    records: list[dict[str, Any]] = []
    for trace in items:
        inputs, outputs = trace_fields(trace)
        records.append({"inputs": inputs, "outputs": outputs, "trace": trace})
    result = judge.evaluate(records, max_workers=max_workers)
    if write_back:
        log_verdicts(items, list(result), tracker=tracker)
    return result


# -- helpers -----------------------------------------------------------------------------


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name
        self.variables: tuple[str, ...] = ()


_shared_lock = threading.Lock()
_shared: Any = None


def _default_tracker() -> Any:
    global _shared
    from judgealign.integrations.mlflow._tracker import MlflowTracker

    uri = _mlflow.current_tracking_uri()
    with _shared_lock:
        if _shared is None or _shared.tracking_uri != uri:
            _shared = MlflowTracker(tracking_uri=uri)
        return _shared


def _is_judge(value: object) -> bool:
    return hasattr(value, "value_spec") and hasattr(value, "model_uri") and callable(value)


def _as_traces(traces: TraceLike | Iterable[TraceLike]) -> list[Any]:
    items = _items(traces)
    if any(isinstance(item, str) for item in items):
        _mlflow.flush_traces()
    out: list[Any] = []
    for item in items:
        if isinstance(item, str):
            fetched = _mlflow.get_trace(item)
            if fetched is None:
                raise ConfigurationError(
                    f"No trace with id {item!r} in {_mlflow.current_tracking_uri()}."
                )
            out.append(fetched)
        else:
            out.append(item)
    return out


def _trace_ids(traces: TraceLike | Iterable[TraceLike]) -> list[str]:
    return [item if isinstance(item, str) else item.info.trace_id for item in _items(traces)]


def _items(traces: TraceLike | Iterable[TraceLike]) -> list[Any]:
    if is_trace(traces) or isinstance(traces, str):
        return [traces]
    columns = getattr(traces, "columns", None)
    if columns is not None and "trace_id" in columns:  # a pandas DataFrame
        frame: Any = traces
        return [str(t) for t in frame["trace_id"]]
    if isinstance(traces, Mapping):
        raise ConfigurationError(
            "traces must be Trace objects, trace ids or a DataFrame, not a dict."
        )
    return list(traces)
