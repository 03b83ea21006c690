"""What judgealign reports to the tracker: evaluations, agreement, alignments, optimizations.

Each ``track_*`` function opens one run on the current tracker (a child run when one is
already open), logs parameters, metrics and artifacts, and returns. With the no-op
tracker in effect it returns at once, before computing anything. Nothing here raises
into the caller: a failure becomes a :class:`~judgealign.tracking._tracker.TrackingWarning`.

Parameters never hold secrets: keys that name a secret (``api_key``, ``password``...) are
dropped, values are passed through :func:`judgealign.core._redact.redact`, and credentials in
URLs (``https://user:pass@host``) are removed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from judgealign.core._events import Event
from judgealign.core._redact import is_secret_name, redact, strip_url_credentials
from judgealign.tracking._tracker import NOOP_TRACKER, Tracker, TrackingWarning, get_tracker

__all__ = [
    "safe_params",
    "scrubbed",
    "observe",
    "optimization_curve",
]

_MAX_PARAM_CHARS = 6000  # MLflow's limit on a parameter value
_METRIC_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def safe_params(params: Mapping[str, object]) -> dict[str, str]:
    """Parameters as text, without secrets (see the module docstring); ``None`` is dropped."""
    safe: dict[str, str] = {}
    for key, value in params.items():
        if value is None or is_secret_name(key):
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
        safe[key] = redact(strip_url_credentials(text))[:_MAX_PARAM_CHARS]
    return safe


def scrubbed(value: Any) -> Any:
    """A JSON-like value with the rules of :func:`safe_params` applied to every string and
    key: secret-named keys dropped, secrets and URL credentials removed."""
    if isinstance(value, str):
        return redact(strip_url_credentials(value))
    if isinstance(value, Mapping):
        return {
            k: scrubbed(v)
            for k, v in cast("Mapping[Any, Any]", value).items()
            if not is_secret_name(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [scrubbed(v) for v in cast("Sequence[Any]", value)]
    return value


def observe(event: Event, payload: Mapping[str, Any]) -> None:
    """Turn one announcement of :mod:`judgealign.core._events` into a run of the tracker.

    Registered by ``judgealign.tracking`` when it is imported. Returns before building
    anything while the no-op tracker is in effect.
    """
    tracker = get_tracker()
    if tracker is NOOP_TRACKER:
        return
    if event == "evaluation":
        _guard(_evaluation, tracker, payload["judge"], payload["records"], payload["result"])
    elif event == "alignment":
        _guard(_alignment, tracker, payload["aligned"], payload["result"])
    elif event == "comparison":
        _guard(_comparison, tracker, payload["comparison"], "compare_judges")
    else:
        _guard(
            _optimization,
            tracker,
            payload["result"],
            payload["prompt_uris"],
            payload["train_size"],
            payload["val_size"],
            payload["scorer_names"],
        )


# -- evaluation ---------------------------------------------------------------------------


def _evaluation(tracker: Tracker, judge: Any, records: Sequence[Any], result: Any) -> None:
    name = str(judge.name)
    tags = {"judgealign.operation": "evaluate", "judgealign.judge": name}
    with tracker.start_run(f"evaluate-{name}", tags=tags):
        guidelines = _guidelines_text(judge)
        tracker.log_params(
            safe_params(
                {
                    "judge": name,
                    "model": judge.model_uri,
                    "value_type": judge.value_spec.describe(),
                    "aligned": guidelines is not None,
                    "records": len(records),
                }
            )
        )
        tracker.log_metrics(_evaluation_metrics(judge, result))
        base = getattr(judge, "base_judge", judge)
        tracker.log_dict(scrubbed(base.to_dict()), "judge.json")
        if guidelines is not None:
            tracker.log_text(guidelines, "guidelines.txt")
        report = _labelled_agreement(judge, records, result)
        if report is not None:
            _log_agreement(tracker, report, f"{name} vs experts")


def _evaluation_metrics(judge: Any, result: Any) -> dict[str, float]:
    feedback = list(result)
    scores = [judge.normalize(fb.value) for fb in feedback if fb.error is None]
    scored = [s for s in scores if s is not None]
    metrics = {
        "records": float(len(feedback)),
        "errors": float(sum(1 for fb in feedback if fb.error is not None)),
    }
    metrics["error_rate"] = metrics["errors"] / len(feedback) if feedback else 0.0
    if scored:
        metrics["mean_score"] = sum(scored) / len(scored)
        metrics[f"{_METRIC_NAME_UNSAFE.sub('_', judge.name)}/mean"] = metrics["mean_score"]
    usage = getattr(result, "usage", None)
    if usage is not None:
        metrics.update(_usage_metrics(usage))
    return metrics


def _usage_metrics(usage: Any, prefix: str = "") -> dict[str, float]:
    metrics = {
        f"{prefix}model_calls": float(usage.calls),
        f"{prefix}prompt_tokens": float(usage.prompt_tokens),
        f"{prefix}completion_tokens": float(usage.completion_tokens),
    }
    if usage.cost_usd is not None:
        metrics[f"{prefix}cost_usd"] = float(usage.cost_usd)
    return metrics


def _labelled_agreement(judge: Any, records: Sequence[Any], result: Sequence[Any]) -> Any:
    from judgealign.evaluation._api import agreement
    from judgealign.evaluation._panel import is_panel
    from judgealign.judges._memorised import is_memorised

    pairs: list[tuple[str, Any, Any, Any]] = []
    for position, (record, feedback) in enumerate(zip(records, result, strict=False)):
        label = _field(record, "label")
        if label is None:
            continue
        try:
            coerced = judge.value_spec.coerce(label)
        except Exception:  # a label the judge cannot express is not scored
            continue
        pairs.append((str(_field(record, "id") or position), coerced, feedback, record))
    if not pairs or all(not fb.ok or is_memorised(fb) for _, _, fb, _ in pairs):
        return None  # nothing held out to score (agreement would refuse)
    choices = list(judge.value_spec.choices) or None
    kept = [record for _, _, _, record in pairs]
    # Panel records (several raters each) add the judge as one more rater to the report.
    experts = kept if is_panel(kept) else [label for _, label, _, _ in pairs]
    return agreement(
        [fb for _, _, fb, _ in pairs],
        experts,
        ids=[rid for rid, _, _, _ in pairs],
        labels=choices,
        n_bootstrap=500,
    )


def _field(record: Any, name: str) -> Any:
    if isinstance(record, Mapping):
        mapping: Mapping[str, Any] = record  # pyright: ignore[reportUnknownVariableType]
        return mapping.get(name)
    return getattr(record, name, None)


# -- agreement ----------------------------------------------------------------------------


def _log_agreement(tracker: Tracker, report: Any, title: str, prefix: str = "") -> None:
    tracker.log_metrics(_agreement_metrics(report, prefix))
    tracker.log_dict(report.to_dict(), f"{prefix}agreement.json")
    tracker.log_text(report.format(), f"{prefix}agreement.txt")
    labels, confusion = tuple(report.labels), tuple(tuple(row) for row in report.confusion)

    def figure() -> Any:
        from judgealign.tracking._plots import confusion_figure

        return confusion_figure(labels, confusion, title=title)

    tracker.log_figure(figure, f"{prefix}confusion_matrix.png")
    if getattr(report, "panel", None) is not None:
        _log_panel(tracker, report.panel, title, prefix)


def _log_panel(tracker: Tracker, panel: Any, title: str, prefix: str) -> None:
    """The judge among a panel's raters: its metrics and the kappa matrix as a figure."""
    values = {
        "agreement.panel.alpha": panel.panel.alpha,
        "agreement.panel.fleiss_kappa": panel.panel.fleiss,
        "agreement.panel.raters_mean_kappa": panel.raters_mean,
        "agreement.panel.judge_mean_kappa": panel.judge_mean,
        "agreement.panel.difference": panel.difference,
        "agreement.panel.difference_ci_low": panel.difference_ci[0],
        "agreement.panel.difference_ci_high": panel.difference_ci[1],
    }
    tracker.log_metrics(_finite({f"{prefix}{k}": float(v) for k, v in values.items()}))
    names, matrix = tuple(panel.names), [list(row) for row in panel.kappa_matrix()]

    def figure() -> Any:
        from judgealign.tracking._plots import kappa_matrix_figure

        return kappa_matrix_figure(names, matrix, title=f"{title}: raters and judge")

    tracker.log_figure(figure, f"{prefix}kappa_matrix.png")


def _agreement_metrics(report: Any, prefix: str) -> dict[str, float]:
    values: dict[str, float] = {
        "agreement.n": report.n,
        "agreement.n_failed": report.n_failed,
        "agreement.n_excluded": getattr(report, "n_excluded", 0),
        "agreement.accuracy": report.accuracy,
        "agreement.kappa": report.kappa,
        "agreement.accuracy_ci_low": report.accuracy_ci[0],
        "agreement.accuracy_ci_high": report.accuracy_ci[1],
    }
    for label, metrics in report.per_label.items():
        key = _METRIC_NAME_UNSAFE.sub("_", str(label))
        values[f"agreement.f1.{key}"] = metrics.f1
        values[f"agreement.recall.{key}"] = metrics.recall
    return _finite({f"{prefix}{k}": float(v) for k, v in values.items()})


def _comparison(tracker: Tracker, comparison: Any, name: str) -> None:
    with tracker.start_run(name, tags={"judgealign.operation": "compare_judges"}):
        _log_agreement(tracker, comparison.base, "base judge vs experts", "base.")
        _log_agreement(tracker, comparison.aligned, "aligned judge vs experts", "aligned.")
        tracker.log_metrics(
            _finite(
                {
                    "accuracy_delta": comparison.accuracy_delta,
                    "kappa_delta": comparison.kappa_delta,
                    "fixed": float(len(comparison.fixed_ids)),
                    "broken": float(len(comparison.broken_ids)),
                }
            )
        )
        tracker.log_dict(comparison.to_dict(), "comparison.json")


# -- alignment ----------------------------------------------------------------------------


def _alignment(tracker: Tracker, aligned: Any, result: Any) -> None:
    name = str(aligned.name)
    tags = {"judgealign.operation": "align", "judgealign.judge": name}
    with tracker.start_run(f"align-{name}", tags=tags):
        settings = {f"memalign.{k}": v for k, v in aligned.optimizer.settings().items()}
        tracker.log_params(
            safe_params(
                {
                    "judge": name,
                    "model": aligned.model_uri,
                    "embedder": aligned.embedder_id,
                    **settings,
                }
            )
        )
        tracker.log_metrics(_alignment_metrics(aligned, result))
        tracker.log_text(_guidelines_text(aligned) or "(no guidelines)\n", "guidelines.txt")
        tracker.log_text(result.format(), "alignment.txt")
        tracker.log_dict(_result_dict(result), "alignment.json")


def _alignment_metrics(aligned: Any, result: Any) -> dict[str, float]:
    counts = {
        key: float(len(getattr(result, key)))
        for key in (
            "records_added",
            "records_updated",
            "records_removed",
            "records_unchanged",
            "guidelines_added",
            "guidelines_merged",
            "guidelines_removed",
            "failed_batches",
            "problems",
        )
    }
    counts["guidelines_total"] = float(len(aligned.guidelines))
    counts["records_total"] = float(len(aligned.record_ids))
    counts["records_pending"] = float(len(aligned.pending_record_ids))
    counts["texts_embedded"] = float(result.texts_embedded)
    return {**counts, **_usage_metrics(result.usage)}


def _result_dict(result: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        f.name: getattr(result, f.name) for f in dataclasses.fields(result) if f.name != "usage"
    }
    return json.loads(json.dumps(data, default=str))


def _guidelines_text(judge: Any) -> str | None:
    guidelines = getattr(judge, "guidelines", None)
    if guidelines is None:
        return None
    lines = [
        f"{i}. [{g.id}] {g.text}" + (f"  (from {', '.join(g.source_ids)})" if g.source_ids else "")
        for i, g in enumerate(guidelines, start=1)
    ]
    return "\n".join(lines) + "\n" if lines else "(no guidelines)\n"


# -- optimization -------------------------------------------------------------------------


def _optimization(
    tracker: Tracker,
    result: Any,
    prompt_uris: Sequence[str],
    train_size: int,
    val_size: int,
    scorer_names: Sequence[str],
) -> None:
    tags = {"judgealign.operation": "optimize_prompts"}
    with tracker.start_run(f"optimize-{result.optimizer_name}", tags=tags):
        tracker.log_params(
            safe_params(
                {
                    "optimizer": result.optimizer_name,
                    "prompt_uris": list(prompt_uris),
                    "num_prompts": len(prompt_uris),
                    "num_training_samples": train_size,
                    "num_validation_samples": val_size,
                    "scorers": list(scorer_names),
                }
            )
        )
        tracker.log_metrics(_optimization_metrics(result))
        steps, scores, best = optimization_curve(result)
        for step, score, top in zip(steps, scores, best, strict=True):
            point = {"best_score": top} if score is None else {"score": score, "best_score": top}
            tracker.log_metrics(point, step=step)
        for prompt in result.optimized_prompts:
            tracker.log_text(prompt.stored_template, f"prompts/{prompt.name}.txt")
        tracker.log_dict({"history": _jsonable(result.history)}, "history.json")
        if steps:
            title = f"{result.optimizer_name}: score per iteration"

            def figure() -> Any:
                from judgealign.tracking._plots import curve_figure

                return curve_figure(steps, scores, best, title=title)

            tracker.log_figure(figure, "optimization_curve.png")


def _optimization_metrics(result: Any) -> dict[str, float]:
    metrics: dict[str, float] = {"improved": 1.0 if result.improved else 0.0}
    for key in ("initial_eval_score", "final_eval_score"):
        value = getattr(result, key)
        if value is not None:
            metrics[key] = float(value)
        for scorer, score in getattr(result, f"{key}_per_scorer").items():
            metrics[f"{key}.{_METRIC_NAME_UNSAFE.sub('_', scorer)}"] = float(score)
    calls = result.details.get("metric_calls")
    if isinstance(calls, int):
        metrics["metric_calls"] = float(calls)
    return _finite(metrics)


def optimization_curve(result: Any) -> tuple[list[int], list[float | None], list[float]]:
    """Steps, each step's candidate score (``None`` if not scored) and the best so far.

    Step 0 is the original prompts. Later steps come from the optimizer's history:
    items (dicts or objects with ``to_dict``) with an ``iteration`` and a ``score``
    (metaprompt) or an accepted candidate's ``child_val`` (GEPA).
    """
    points: dict[int, float | None] = {}
    if result.initial_eval_score is not None:
        points[0] = float(result.initial_eval_score)
    for position, item in enumerate(result.history, start=1):
        raw: Any = item.to_dict() if hasattr(item, "to_dict") else item
        if not isinstance(raw, Mapping):
            continue
        entry: Mapping[str, Any] = raw  # pyright: ignore[reportUnknownVariableType]
        step = entry.get("iteration", position)
        score = entry.get("score", entry.get("child_val"))
        if isinstance(step, int) and (step not in points or points[step] is None):
            points[step] = float(score) if isinstance(score, (int, float)) else None
    steps = sorted(points)
    scores = [points[s] for s in steps]
    best: list[float] = []
    for score in scores:
        previous = best[-1] if best else -math.inf
        best.append(max(previous, score) if score is not None else previous)
    keep = [i for i, b in enumerate(best) if b != -math.inf]
    return [steps[i] for i in keep], [scores[i] for i in keep], [best[i] for i in keep]


def _jsonable(value: Any) -> Any:
    items = [v.to_dict() if hasattr(v, "to_dict") else v for v in value]
    return json.loads(json.dumps(items, default=str))


# -- plumbing -----------------------------------------------------------------------------


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def _guard(report: Callable[..., None], *args: Any) -> None:
    try:
        report(*args)
    except Exception as exc:  # tracking must never break the tracked operation
        warnings.warn(
            f"Tracking failed and was skipped ({type(exc).__name__}: {redact(str(exc))}); "
            "the operation itself completed.",
            TrackingWarning,
            stacklevel=5,  # _guard, observe, announce, the operation, its caller
        )
