"""``MlflowTracker``: the :class:`~judgealign.tracking._tracker.Tracker` that records to MLflow.

Nothing a caller does waits on the tracking store. ``start_run`` and every ``log_*``
queue an operation and return; one :class:`~judgealign.tracking._writer.BackgroundWriter` thread
creates the runs, merges the parameters and metrics queued for a run into one
``log_batch`` call, writes artifacts (figures are drawn on that thread) and ends the
runs. A failed write is retried, then kept (``failed``, ``retry_failed()``), counted
(``failures``) and reported by a warning at the next :meth:`MlflowTracker.flush`;
tracking never raises into judging, aligning or optimizing.

Runs: a run started inside another run of this tracker (in the same context) is its
child; a run started while the caller has an active MLflow run
(``with mlflow.start_run():``) is a child of that run. Calls made outside any run go to
one run per tracker named ``judgealign``, ended by :meth:`MlflowTracker.close`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from judgealign.integrations.mlflow import _client as _mlflow
from judgealign.integrations.mlflow._judges import register_scorer
from judgealign.tracking._tracker import FigureFactory
from judgealign.tracking._writer import BackgroundWriter, Failure, WriteOp

__all__ = ["MlflowTracker", "RunHandle"]

_PARAMS_PER_BATCH = 100
_METRICS_PER_BATCH = 1000
_ARTIFACT_KINDS = ("text", "dict", "figure", "assessment", "scorer")


class RunHandle:
    """A run this tracker started; its MLflow id is known once the writer created it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._created = threading.Event()
        self._run_id: str | None = None
        self.experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"RunHandle(name={self.name!r}, run_id={self._run_id!r})"

    @property
    def run_id(self) -> str | None:
        """The MLflow run id, or ``None`` while the run is not created (or failed)."""
        return self._run_id

    def wait(self, timeout: float | None = 30.0) -> str | None:
        """Wait for the run to be created; returns its id (``None`` on timeout)."""
        self._created.wait(timeout)
        return self._run_id

    def _set(self, run_id: str, experiment_id: str) -> None:
        self._run_id, self.experiment_id = run_id, experiment_id
        self._created.set()


class MlflowTracker:
    """Records judgealign runs, parameters, metrics and artifacts in MLflow.

    Args:
        experiment: the experiment name (created if missing); ``None`` for the experiment
            MLflow uses now (``mlflow.set_experiment``, ``MLFLOW_EXPERIMENT_NAME``...).
        tracking_uri: the store; ``None`` for the one in effect now (the user's, or
            MLflow's local default ``sqlite:///mlflow.db`` in the working directory).
        batch_window_s: how long the writer waits to gather operations into one batch.
        retries: how many times a failed write is retried before it is kept as failed.
    """

    def __init__(
        self,
        experiment: str | None = None,
        *,
        tracking_uri: str | None = None,
        batch_window_s: float = 0.05,
        retries: int = 2,
    ) -> None:
        self.tracking_uri = tracking_uri or _mlflow.current_tracking_uri()
        self._experiment_name = experiment
        self._experiment_id = None if experiment else _mlflow.current_experiment_id()
        self._client: _mlflow.StoreClient | None = None
        self._stack: ContextVar[tuple[RunHandle, ...]] = ContextVar("mlflow_runs", default=())
        self._implicit: RunHandle | None = None
        self._lock = threading.Lock()
        self.writer = BackgroundWriter(
            self._perform, name="judgealign-mlflow", batch_window_s=batch_window_s, retries=retries
        )

    def __repr__(self) -> str:
        return f"MlflowTracker(tracking_uri={self.tracking_uri!r}, failures={self.failures})"

    # -- the Tracker protocol --------------------------------------------------------

    @contextmanager
    def start_run(self, name: str, *, tags: Mapping[str, str] | None = None) -> Iterator[RunHandle]:
        """A new run (a child of the enclosing one); yields its :class:`RunHandle`."""
        stack = self._stack.get()
        parent: RunHandle | str | None = stack[-1] if stack else None
        experiment = None
        if parent is None and (active := _mlflow.active_run()) is not None:
            parent, experiment = active
        handle = RunHandle(name)
        payload = {
            "name": name,
            "tags": dict(tags or {}),
            "parent": parent,
            "experiment": experiment,
        }
        self.writer.submit(WriteOp("create_run", handle, payload))
        token = self._stack.set((*stack, handle))
        status = "FAILED"
        try:
            yield handle
            status = "FINISHED"
        finally:
            self._stack.reset(token)
            self.writer.submit(WriteOp("end_run", handle, {"status": status}))

    def log_params(self, params: Mapping[str, str]) -> None:
        """Queue parameters of the current run."""
        if params:
            self.writer.submit(WriteOp("params", self._current(), {"params": dict(params)}))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        """Queue metrics of the current run (timestamped now)."""
        if metrics:
            payload = {"metrics": dict(metrics), "step": step or 0, "time": _now_ms()}
            self.writer.submit(WriteOp("metrics", self._current(), payload))

    def log_text(self, text: str, artifact_file: str) -> None:
        """Queue a text artifact."""
        self.writer.submit(WriteOp("text", self._current(), {"text": text, "path": artifact_file}))

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Queue a JSON artifact."""
        payload = {"data": dict(data), "path": artifact_file}
        self.writer.submit(WriteOp("dict", self._current(), payload))

    def log_figure(self, figure: FigureFactory, artifact_file: str) -> None:
        """Queue a figure; it is drawn on the writer thread."""
        payload = {"figure": figure, "path": artifact_file}
        self.writer.submit(WriteOp("figure", self._current(), payload))

    # -- beyond the protocol ---------------------------------------------------------

    def log_assessment(self, trace_id: str, **fields: Any) -> None:
        """Queue a feedback assessment on a trace (see ``log_verdicts``)."""
        self.writer.submit(WriteOp("assessment", None, {"trace_id": trace_id, **fields}))

    def log_record_trace(
        self,
        *,
        name: str,
        inputs: Any,
        outputs: Any,
        tags: Mapping[str, str],
        assessments: Sequence[Mapping[str, Any]],
    ) -> None:
        """Queue a trace of one judged record, in the current run's experiment and linked
        to that run, with ``assessments`` (``log_feedback`` fields: the expert's label as
        ``HUMAN``, each judge's verdict as ``LLM_JUDGE``) on it, so that MLflow's trace
        and review pages show judge and expert side by side."""
        payload = {
            "name": name,
            "inputs": inputs,
            "outputs": outputs,
            "tags": dict(tags),
            "assessments": [dict(a) for a in assessments],
        }
        self.writer.submit(WriteOp("trace", self._current(), payload))

    def register_scorer(self, judge: Any, *, name: str) -> None:
        """Queue listing ``judge`` on MLflow's "Judges" page, in the current run's
        experiment (see :func:`judgealign.mlflow_integration.register_scorer`)."""
        payload = {"judge": judge, "name": name}
        self.writer.submit(WriteOp("scorer", self._current(), payload))

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait until everything queued is written; warns about new failures.

        Returns:
            ``False`` if ``timeout`` passed first.
        """
        return self.writer.flush(timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """End the implicit run (if any), flush, and stop the writer thread."""
        with self._lock:
            implicit, self._implicit = self._implicit, None
        if implicit is not None:
            self.writer.submit(WriteOp("end_run", implicit, {"status": "FINISHED"}))
        return self.writer.close(timeout)

    def retry_failed(self) -> int:
        """Queue the failed writes again; returns how many."""
        return self.writer.retry_failed()

    @property
    def failures(self) -> int:
        """How many writes failed for good so far."""
        return self.writer.failures

    @property
    def errors(self) -> list[str]:
        """The latest failure messages (secrets redacted)."""
        return self.writer.errors

    @property
    def current_run(self) -> RunHandle | None:
        """The innermost run started by this tracker in this context."""
        stack = self._stack.get()
        return stack[-1] if stack else None

    # -- internals -------------------------------------------------------------------

    def _current(self) -> RunHandle:
        stack = self._stack.get()
        if stack:
            return stack[-1]
        with self._lock:
            if self._implicit is None:
                self._implicit = RunHandle("judgealign")
                payload: dict[str, Any] = {
                    "name": "judgealign",
                    "tags": {},
                    "parent": None,
                    "experiment": None,
                }
                self.writer.submit(WriteOp("create_run", self._implicit, payload))
            return self._implicit

    def _store(self) -> _mlflow.StoreClient:
        if self._client is None:
            self._client = _mlflow.StoreClient(self.tracking_uri)
        return self._client

    def _resolve_experiment(self) -> str:
        if self._experiment_id is None:
            assert self._experiment_name is not None
            self._experiment_id = self._store().experiment_id(self._experiment_name)
        return self._experiment_id

    def _perform(self, batch: Sequence[WriteOp]) -> list[Failure]:
        """The writer's sink, in phases: create runs (in queue order, so parents come
        first), one ``log_batch`` per run for all its params and metrics, artifacts and
        assessments, then end runs. Each run's own operations keep their order."""
        if any(op.kind == "assessment" for op in batch):
            _mlflow.flush_traces()  # feedback on a trace not exported yet would fail
        grouped: dict[int, list[WriteOp]] = {}
        for op in batch:
            if op.kind in ("params", "metrics"):
                grouped.setdefault(id(op.target), []).append(op)
        failures = self._each([op for op in batch if op.kind == "create_run"])
        failures += self._record_traces([op for op in batch if op.kind == "trace"])
        failures += self._flush_groups(grouped)
        failures += self._each([op for op in batch if op.kind in _ARTIFACT_KINDS])
        return failures + self._each([op for op in batch if op.kind == "end_run"])

    def _record_traces(self, ops: Sequence[WriteOp]) -> list[Failure]:
        """Create the traces, export them once, then attach their assessments (feedback
        on a trace that is not exported yet would fail)."""
        if not ops:
            return []
        failures: list[Failure] = []
        made: list[tuple[WriteOp, str]] = []
        for op in ops:
            if "trace_id" in op.payload:  # a retried batch: the trace exists already
                made.append((op, op.payload["trace_id"]))
                continue
            try:
                handle, payload = op.target, op.payload
                trace_id = self._store().record_trace(
                    handle.experiment_id or self._resolve_experiment(),
                    name=payload["name"],
                    inputs=payload["inputs"],
                    outputs=payload["outputs"],
                    tags=payload["tags"],
                    run_id=handle.run_id,
                )
                op.payload["trace_id"] = trace_id
                made.append((op, trace_id))
            except Exception as exc:
                failures.append(Failure(op, exc))
        if made:
            _mlflow.flush_traces()
        for op, trace_id in made:
            try:
                for assessment in op.payload["assessments"][op.payload.get("logged", 0) :]:
                    _mlflow.log_feedback(trace_id, **assessment)
                    op.payload["logged"] = op.payload.get("logged", 0) + 1
            except Exception as exc:
                failures.append(Failure(op, exc))
        return failures

    def _each(self, ops: Sequence[WriteOp]) -> list[Failure]:
        failures: list[Failure] = []
        for op in ops:
            try:
                self._perform_one(op)
            except Exception as exc:
                failures.append(Failure(op, exc))
        return failures

    def _flush_groups(self, grouped: Mapping[int, list[WriteOp]]) -> list[Failure]:
        failures: list[Failure] = []
        for ops in grouped.values():
            try:
                self._log_batch(_run_id(ops[0].target), ops)
            except Exception as exc:
                failures += [Failure(op, exc) for op in ops]
        return failures

    def _log_batch(self, run_id: str, ops: Sequence[WriteOp]) -> None:
        params: dict[str, str] = {}
        metrics: list[tuple[str, float, int, int]] = []
        for op in ops:
            if op.kind == "params":
                params.update(op.payload["params"])
            else:
                step, stamp = op.payload["step"], op.payload["time"]
                metrics += [(k, float(v), stamp, step) for k, v in op.payload["metrics"].items()]
        items = list(params.items())
        store = self._store()
        while items or metrics:
            chunk, items = dict(items[:_PARAMS_PER_BATCH]), items[_PARAMS_PER_BATCH:]
            part, metrics = metrics[:_METRICS_PER_BATCH], metrics[_METRICS_PER_BATCH:]
            store.log_batch(run_id, params=chunk, metrics=part)

    def _perform_one(self, op: WriteOp) -> None:
        store, payload = self._store(), op.payload
        if op.kind == "create_run":
            self._create_run(op.target, payload)
        elif op.kind == "end_run":
            store.end_run(_run_id(op.target), payload["status"])
        elif op.kind == "text":
            store.log_text(_run_id(op.target), payload["text"], payload["path"])
        elif op.kind == "dict":
            store.log_dict(_run_id(op.target), payload["data"], payload["path"])
        elif op.kind == "figure":
            figure = payload["figure"]()
            store.log_figure(_run_id(op.target), figure, payload["path"])
        elif op.kind == "assessment":
            _mlflow.log_feedback(**payload)
        elif op.kind == "scorer":
            experiment = op.target.experiment_id or self._resolve_experiment()
            register_scorer(
                payload["judge"],
                name=payload["name"],
                experiment_id=experiment,
                tracking_uri=store.tracking_uri,
            )
        else:  # pragma: no cover - every kind above is produced by this class
            raise ValueError(f"unknown tracking operation {op.kind!r}")

    def _create_run(self, handle: RunHandle, payload: Mapping[str, Any]) -> None:
        if handle.run_id is not None:
            return  # a retried batch: the run exists already
        parent = payload["parent"]
        if isinstance(parent, RunHandle):
            parent_id, experiment = _run_id(parent), parent.experiment_id
        else:
            parent_id, experiment = parent, payload["experiment"]
        experiment = experiment or self._resolve_experiment()
        tags = {"judgealign.tracker": "MlflowTracker", **payload["tags"]}
        run_id = self._store().create_run(experiment, payload["name"], tags, parent_id)
        handle._set(run_id, experiment)  # pyright: ignore[reportPrivateUsage]


def _run_id(handle: RunHandle) -> str:
    if handle.run_id is None:
        raise RuntimeError(f"the run {handle.name!r} was not created (an earlier write failed)")
    return handle.run_id


def _now_ms() -> int:
    return int(time.time() * 1000)
