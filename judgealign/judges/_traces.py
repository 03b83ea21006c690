"""Expert feedback on MLflow traces, read as labelled records (no mlflow import).

A trace is read through its attributes only (``trace.info.trace_id``,
``trace.info.assessments``, ``trace.data.spans``), so this module also serves the
alignment code, which must not import mlflow.

The rule, MLflow's own (``Judge.align`` with traces): an expert label is a *feedback*
assessment whose source type is ``HUMAN`` and whose name equals the judge's name (trimmed,
case-insensitive). Assessments that were overridden (``valid`` is false) or carry an
error are ignored. Each label becomes one record:

* ``id``: the trace id (so re-aligning with the same traces updates, not duplicates);
* ``inputs`` / ``outputs``: the root span's inputs and outputs (the traced function's
  arguments and return value), else the trace's request and response;
* ``expectations``: the trace's valid expectation assessments, by name (if any);
* ``trace``: ``{"request": inputs, "response": outputs}``, only for judges that use
  ``{{ trace }}``;
* ``label``, ``rationale``, ``annotator`` (the source id) and ``created_at`` (the
  assessment's last update).

Labels from two or more experts (HUMAN sources) on one trace become one panel record:
one rating per source (its latest label), the label resolved from them (see
:mod:`judgealign.judges._records`); a label whose source has no id is a rating without a
rater, reported as a problem. Several labels from one source become several records with
the same id; the loaders then keep the majority label, ties going to the latest (see
:mod:`judgealign.judges._loaders`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from judgealign.core._errors import ConfigurationError

__all__ = ["expand_traces", "is_trace", "maybe_json", "trace_fields", "trace_label_records"]


def is_trace(item: object) -> bool:
    """Whether ``item`` looks like an MLflow ``Trace`` (has ``info.trace_id``)."""
    info = getattr(item, "info", None)
    return info is not None and isinstance(getattr(info, "trace_id", None), str)


def trace_fields(trace: Any) -> tuple[Any, Any]:
    """``(inputs, outputs)`` of a trace: its root span's, else its request/response."""
    spans: Sequence[Any] = getattr(getattr(trace, "data", None), "spans", None) or ()
    for span in spans:
        if getattr(span, "parent_id", None) is None:
            return span.inputs, span.outputs
    data = getattr(trace, "data", None)
    return maybe_json(getattr(data, "request", None)), maybe_json(getattr(data, "response", None))


def trace_label_records(
    trace: Any, judge_name: str, *, with_trace: bool = False
) -> list[dict[str, Any]]:
    """The expert labels for ``judge_name`` on one trace, as record dicts."""
    wanted = judge_name.strip().casefold()
    assessments: Sequence[Any] = getattr(trace.info, "assessments", None) or ()
    usable = [a for a in assessments if _usable(a)]
    labels = [a for a in usable if _is_feedback(a) and _name(a) == wanted and _is_human(a)]
    if not labels:
        return []
    inputs, outputs = trace_fields(trace)
    expectations = {a.name: a.value for a in usable if getattr(a, "expectation", None)}
    base: dict[str, Any] = {"id": trace.info.trace_id, "inputs": inputs, "outputs": outputs}
    if expectations:
        base["expectations"] = expectations
    if with_trace:
        base["trace"] = {"request": inputs, "response": outputs}
    sources = {_source_id(a) for a in labels}
    if len(sources) > 1:  # a panel: one record, one rating per expert
        return [{**base, "ratings": _ratings(labels)}]
    return [
        {
            **base,
            "label": a.value,
            "rationale": a.rationale or "",
            "annotator": a.source.source_id or None,
            "created_at": _when(a),
        }
        for a in labels
    ]


def _source_id(assessment: Any) -> str | None:
    return getattr(getattr(assessment, "source", None), "source_id", None) or None


def _ratings(labels: Sequence[Any]) -> list[dict[str, Any]]:
    """One rating per source, its latest label (a later feedback replaces an earlier one,
    as in MLflow's UI), in the order the sources first rated."""
    floor = datetime.min.replace(tzinfo=timezone.utc)
    latest: dict[str | None, Any] = {}
    for assessment in sorted(labels, key=lambda a: _when(a) or floor):
        latest[_source_id(assessment)] = assessment
    return [
        {"rater": rater, "label": a.value, "rationale": a.rationale or ""}
        for rater, a in latest.items()
    ]


def expand_traces(items: Iterable[Any], judge: Any) -> list[Any]:
    """``items`` with every MLflow trace replaced by its expert-label records.

    Non-trace items are kept as they are, in place. ``judge`` gives the name to match
    and whether records need a ``trace`` field.

    Raises:
        ConfigurationError: when every item is a trace and none has a usable label.
    """
    out: list[Any] = []
    traces = 0
    for item in items:
        if is_trace(item):
            traces += 1
            with_trace = "trace" in getattr(judge, "variables", ())
            out += trace_label_records(item, judge.name, with_trace=with_trace)
        else:
            out.append(item)
    if traces and not out:
        raise ConfigurationError(
            f"None of the {traces} trace(s) has expert feedback for judge {judge.name!r}: "
            f"log it with mlflow.log_feedback(trace_id=..., name={judge.name!r}, value=..., "
            "rationale=..., source=AssessmentSource(source_type='HUMAN', source_id=...))."
        )
    return out


def _usable(assessment: Any) -> bool:
    return getattr(assessment, "valid", True) is not False and not getattr(
        assessment, "error", None
    )


def _is_feedback(assessment: Any) -> bool:
    return getattr(assessment, "feedback", None) is not None


def _is_human(assessment: Any) -> bool:
    source_type = getattr(getattr(assessment, "source", None), "source_type", None)
    return str(getattr(source_type, "value", source_type)).upper() == "HUMAN"


def _name(assessment: Any) -> str:
    return str(getattr(assessment, "name", "")).strip().casefold()


def _when(assessment: Any) -> datetime | None:
    stamp = getattr(assessment, "last_update_time_ms", None) or getattr(
        assessment, "create_time_ms", None
    )
    return None if stamp is None else datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)


def maybe_json(value: Any) -> Any:
    """``value`` parsed as JSON when it is a string that holds JSON, else ``value``."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
