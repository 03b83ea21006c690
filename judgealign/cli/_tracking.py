"""The seam between the ``judgealign`` command and MLflow.

The command never imports mlflow. :func:`make_tracker` returns judgealign's
``MlflowTracker`` (looked up by name, so the command still works, and says why, in a build
without the MLflow integration); :func:`tracking` puts it in effect with
``judgealign.tracking._tracker.use_tracker``, so the library's own reporting (evaluations,
alignments, optimizations) lands in MLflow, and closes it at the end. Tests replace
:func:`make_tracker` with an in-memory tracker.

:func:`records_from_experiment` reads expert feedback logged on an experiment's traces,
through the MLflow integration's trace reader.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from judgealign.judges._records import LoadResult

__all__ = ["TrackingTarget", "make_tracker", "records_from_experiment", "tracking"]

_INTEGRATION = "judgealign.mlflow_integration"
_CLOSE_TIMEOUT_S = 180.0  # creating a fresh sqlite store runs MLflow's migrations


@dataclass(frozen=True)
class TrackingTarget:
    """A tracker to report to, or why there is none.

    Attributes:
        tracker: an object with the ``judgealign.tracking._tracker.Tracker`` methods, or ``None``.
        where: where the runs go (a tracking URI), or why nothing is recorded.
    """

    tracker: Any
    where: str


def make_tracker(experiment: str) -> TrackingTarget:
    """An MLflow tracker for ``experiment`` on the configured store
    (``MLFLOW_TRACKING_URI``, else MLflow's local store in the working directory)."""
    try:
        integration = importlib.import_module(_INTEGRATION)
    except ImportError as exc:
        return TrackingTarget(None, f"not recorded: the MLflow integration is unavailable ({exc})")
    tracker = integration.MlflowTracker(experiment)
    return TrackingTarget(tracker, f"experiment {experiment!r} at {_tracking_uri()}")


@contextmanager
def tracking(target: TrackingTarget) -> Iterator[Any]:
    """Put ``target``'s tracker in effect inside the block (yields it, or ``None``), then
    wait until everything is written."""
    if target.tracker is None:
        yield None
        return
    from judgealign.tracking._tracker import use_tracker

    try:
        with use_tracker(target.tracker):
            yield target.tracker
    finally:
        close = getattr(target.tracker, "close", None) or getattr(target.tracker, "flush", None)
        if callable(close):
            close(timeout=_CLOSE_TIMEOUT_S)


def records_from_experiment(name: str, *, judge: Any, limit: int | None = None) -> LoadResult:
    """Expert feedback on the traces of the MLflow experiment ``name``, as records.

    An expert label is HUMAN feedback named like the judge (MLflow's rule; see
    ``judgealign.mlflow_integration.records_from_traces``).

    Raises:
        ConfigurationError: the integration is unavailable, or no trace carries feedback.
    """
    from judgealign.core._errors import ConfigurationError

    try:
        mlflow_api = importlib.import_module("judgealign.integrations.mlflow._client")
        integration = importlib.import_module(_INTEGRATION)
    except ImportError as exc:
        raise ConfigurationError(
            f"Reading records from an MLflow experiment is not available in this build ({exc}); "
            "export the records to JSONL and pass the file instead."
        ) from None
    store = mlflow_api.StoreClient(mlflow_api.current_tracking_uri())
    experiment_id = store.find_experiment(name)
    if experiment_id is None:  # never create it: reading must not write to the store
        known = ", ".join(repr(n) for n in sorted(store.experiment_names())) or "none"
        raise ConfigurationError(
            f"There is no MLflow experiment {name!r} at {store.tracking_uri} (experiments "
            f"there: {known}); check the name, or set MLFLOW_TRACKING_URI to the store "
            "that holds it."
        )
    traces = mlflow_api.search_traces(
        experiment_ids=[experiment_id], run_id=None, filter_string=None, max_results=limit or 5000
    )
    if not traces:
        raise ConfigurationError(
            f"The MLflow experiment {name!r} at {store.tracking_uri} has no traces; log traces "
            "with expert feedback first (mlflow.log_feedback with a HUMAN source)."
        )
    return integration.records_from_traces(traces, judge=judge)


def _tracking_uri() -> str:
    try:
        from judgealign.integrations.mlflow._client import current_tracking_uri

        return current_tracking_uri()
    except Exception:  # only shown to the user: never fail the command for it
        return "MLflow's configured store"
