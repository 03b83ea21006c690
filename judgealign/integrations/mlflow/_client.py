"""The one module that imports mlflow: thin, typed-at-the-edge calls into its API.

mlflow is imported on first use, never when judgealign is imported. Everything MLflow
returns is ``Any`` here (the boundary); the features built on these calls
(``_mlflow_tracker``, ``_mlflow_prompts``, ``_mlflow_judges``, ``_mlflow_feedback``) are
plain Python and never import mlflow themselves.

Where the store is: whatever tracking URI the user set (``MLFLOW_TRACKING_URI`` or
``mlflow.set_tracking_uri``); with none, MLflow's embedded default, a sqlite file
``mlflow.db`` in the working directory. judgealign never changes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from judgealign.core._errors import ConfigurationError

__all__ = [
    "StoreClient",
    "active_run",
    "as_scorer",
    "configured_tracking_uri",
    "current_experiment_id",
    "current_tracking_uri",
    "flush_traces",
    "genai_evaluate",
    "get_trace",
    "install_template_override",
    "is_mlflow_scorer",
    "load_prompt",
    "log_feedback",
    "mlflow_module",
    "register_instructions_judge",
    "register_prompt",
    "search_traces",
    "set_prompt_alias",
    "set_prompt_version_tags",
    "stored_text",
]

_lock = threading.Lock()
_scorer_class: Any = None
_original_template: Any = None


def mlflow_module() -> Any:
    """``import mlflow``, on first use.

    Raises:
        ConfigurationError: when mlflow is not installed.
    """
    try:
        return importlib.import_module("mlflow")
    except ImportError as exc:  # pragma: no cover - mlflow is a dependency
        raise ConfigurationError(
            f"The MLflow integration needs mlflow: pip install mlflow ({exc})."
        ) from exc


def configured_tracking_uri() -> str | None:
    """The tracking store the user chose, or ``None``, without importing mlflow.

    Chosen means: ``MLFLOW_TRACKING_URI`` is set; or mlflow is already imported and
    ``mlflow.set_tracking_uri`` was called; or ``mlflow.db`` (MLflow's default store) is in
    the working directory. ``None`` also when mlflow is not installed.
    """
    if importlib.util.find_spec("mlflow") is None:
        return None
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    utils = sys.modules.get("mlflow.tracking._tracking_service.utils")
    chosen = getattr(utils, "_tracking_uri", None) if utils is not None else None
    if chosen:
        return str(chosen)
    default = Path("mlflow.db")
    return f"sqlite:///{default.resolve()}" if default.is_file() else None


def current_tracking_uri() -> str:
    """The tracking URI in effect (the user's, or MLflow's local default)."""
    return str(mlflow_module().get_tracking_uri())


def current_experiment_id() -> str:
    """The experiment MLflow logs to now (``mlflow.set_experiment``, env, or default)."""
    fluent = importlib.import_module("mlflow.tracking.fluent")
    return str(fluent._get_experiment_id())  # pyright: ignore[reportPrivateUsage]


def active_run() -> tuple[str, str] | None:
    """``(run_id, experiment_id)`` of the caller's active MLflow run, if any."""
    run = mlflow_module().active_run()
    return None if run is None else (str(run.info.run_id), str(run.info.experiment_id))


# -- runs and artifacts -------------------------------------------------------------------


class StoreClient:
    """Run and artifact calls on one tracking store (an ``MlflowClient``)."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._client: Any = mlflow_module().MlflowClient(tracking_uri)

    def experiment_id(self, name: str) -> str:
        """The id of the experiment ``name``, created if missing."""
        found = self._client.get_experiment_by_name(name)
        if found is not None:
            return str(found.experiment_id)
        return str(self._client.create_experiment(name))

    def find_experiment(self, name: str) -> str | None:
        """The id of the active experiment ``name``, or ``None`` (never creates one)."""
        found = self._client.get_experiment_by_name(name)
        if found is None or str(found.lifecycle_stage) != "active":
            return None
        return str(found.experiment_id)

    def experiment_names(self) -> list[str]:
        """Every active experiment's name."""
        return [str(e.name) for e in self._client.search_experiments()]

    def record_trace(
        self,
        experiment_id: str,
        *,
        name: str,
        inputs: Any,
        outputs: Any,
        tags: Mapping[str, str],
        run_id: str | None,
    ) -> str:
        """Record a finished trace (one root span with ``inputs`` and ``outputs``) of an
        exchange that happened elsewhere, such as a labelled record; returns its id."""
        span = self._client.start_trace(
            name,
            span_type="CHAIN",
            inputs=inputs,
            tags=dict(tags),
            experiment_id=experiment_id,
            run_id=run_id,
        )
        trace_id = str(span.trace_id)
        self._client.end_trace(trace_id, outputs=outputs)
        return trace_id

    def experiment_ids(self) -> list[str]:
        """Every active experiment's id."""
        return [str(e.experiment_id) for e in self._client.search_experiments()]

    def create_run(
        self, experiment_id: str, name: str, tags: Mapping[str, str], parent_run_id: str | None
    ) -> str:
        """Create a run (a child of ``parent_run_id`` when given); returns its id."""
        all_tags = dict(tags)
        if parent_run_id is not None:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self._client.create_run(experiment_id, tags=all_tags, run_name=name)
        return str(run.info.run_id)

    def end_run(self, run_id: str, status: str) -> None:
        """Mark a run FINISHED or FAILED."""
        self._client.set_terminated(run_id, status=status)

    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] = {},
        metrics: Sequence[tuple[str, float, int, int]] = (),
        tags: Mapping[str, str] = {},
    ) -> None:
        """Log params, metrics ``(key, value, timestamp_ms, step)`` and tags in one call."""
        entities = mlflow_module().entities
        self._client.log_batch(
            run_id,
            metrics=[entities.Metric(k, v, ts, step) for k, v, ts, step in metrics],
            params=[entities.Param(k, v) for k, v in params.items()],
            tags=[entities.RunTag(k, v) for k, v in tags.items()],
            synchronous=True,
        )

    def log_text(self, run_id: str, text: str, path: str) -> None:
        """Store ``text`` as the artifact ``path``."""
        self._client.log_text(run_id, text, path)

    def log_dict(self, run_id: str, data: Mapping[str, Any], path: str) -> None:
        """Store ``data`` as the JSON artifact ``path``."""
        self._client.log_dict(run_id, dict(data), path)

    def log_figure(self, run_id: str, figure: Any, path: str) -> None:
        """Store a matplotlib figure as the image artifact ``path``."""
        self._client.log_figure(run_id, figure, path)

    def search_runs(
        self, experiment_ids: Sequence[str], filter_string: str, order_by: Sequence[str]
    ) -> list[Any]:
        """Runs matching ``filter_string``, in ``order_by`` order (at most 1000)."""
        return list(
            self._client.search_runs(
                list(experiment_ids), filter_string, order_by=list(order_by), max_results=1000
            )
        )

    def download_text(self, run_id: str, path: str, destination: str) -> str:
        """Download the artifact ``path`` of a run into ``destination``; return its text."""
        local = self._client.download_artifacts(run_id, path, destination)
        with open(local, encoding="utf-8") as handle:
            return handle.read()


# -- traces -------------------------------------------------------------------------------


def flush_traces() -> None:
    """Wait until traces queued for asynchronous export are in the store."""
    mlflow_module().flush_trace_async_logging()


def get_trace(trace_id: str) -> Any:
    """The trace ``trace_id`` with its assessments, or ``None``."""
    return mlflow_module().get_trace(trace_id, silent=True)


def search_traces(
    *,
    experiment_ids: Sequence[str] | None,
    run_id: str | None,
    filter_string: str | None,
    max_results: int,
) -> list[Any]:
    """Traces (with assessments) matching the filters, newest first."""
    return list(
        mlflow_module().search_traces(
            # ``locations`` replaced ``experiment_ids`` (deprecated since MLflow 3.6).
            locations=list(experiment_ids) if experiment_ids else None,
            run_id=run_id,
            filter_string=filter_string,
            max_results=max_results,
            return_type="list",
        )
    )


def log_feedback(
    trace_id: str,
    *,
    name: str,
    value: Any,
    rationale: str | None,
    source_type: str,
    source_id: str,
    metadata: Mapping[str, str],
    error: str | None,
) -> None:
    """Attach one feedback assessment to a trace."""
    mlflow = mlflow_module()
    entities = mlflow.entities
    mlflow.log_feedback(
        trace_id=trace_id,
        name=name,
        value=None if error else value,
        rationale=rationale or None,
        source=entities.AssessmentSource(source_type=source_type, source_id=source_id),
        metadata=dict(metadata),
        error=None if error is None else entities.AssessmentError("JUDGE_ERROR", error),
    )


# -- judges as scorers ----------------------------------------------------------------------


def is_mlflow_scorer(value: object) -> bool:
    """Whether ``value`` is already an MLflow ``Scorer``."""
    scorers = importlib.import_module("mlflow.genai.scorers")
    return isinstance(value, scorers.Scorer)


def as_scorer(judge: Any, *, name: str | None = None) -> Any:
    """An MLflow ``Scorer`` that runs ``judge`` (a Judge or an AlignedJudge).

    In ``mlflow.genai.evaluate`` it receives each row's ``inputs``, ``outputs``,
    ``expectations`` and ``trace`` and returns an MLflow ``Feedback`` with the judge's
    value, rationale, an ``LLM_JUDGE`` source naming the model, and the judge's metadata
    (tokens, cost, retrieved example ids...) as text. A judge error becomes the
    feedback's ``error``. Numeric and boolean judges get the ``mean`` aggregation.
    """
    numeric = judge.value_spec.kind in ("bool", "int", "float")
    scorer = _judge_scorer_class()(
        name=name or judge.name,
        description=getattr(judge, "description", None),
        aggregations=["mean"] if numeric else [],
    )
    scorer._judge = judge  # pyright: ignore[reportPrivateUsage]
    return scorer


def _judge_scorer_class() -> Any:
    global _scorer_class
    with _lock:
        if _scorer_class is None:
            _scorer_class = _define_scorer_class()
        return _scorer_class


def _define_scorer_class() -> Any:
    from pydantic import PrivateAttr

    base: Any = importlib.import_module("mlflow.genai.scorers").Scorer

    class JudgeScorer(base):  # pyright: ignore[reportUntypedBaseClass]
        """An MLflow scorer backed by a judgealign judge (made by ``as_scorer``)."""

        _judge: Any = PrivateAttr(default=None)

        def __call__(
            self,
            *,
            inputs: Any = None,
            outputs: Any = None,
            expectations: Any = None,
            trace: Any = None,
        ) -> Any:
            judge = self._judge
            uses = set(judge.variables)
            try:
                feedback = judge(
                    inputs=inputs,
                    outputs=outputs,
                    expectations=expectations if "expectations" in uses else None,
                    trace=trace if "trace" in uses or inputs is None else None,
                )
            except Exception as exc:  # misuse on one row becomes that row's error
                return _to_mlflow_feedback(self.name, judge.model_uri, None, "", {}, str(exc))
            return _to_mlflow_feedback(
                self.name,
                judge.model_uri,
                feedback.value,
                feedback.rationale,
                feedback.metadata,
                feedback.error,
            )

    return JudgeScorer


def _to_mlflow_feedback(
    name: str, model_uri: str, value: Any, rationale: str, metadata: Mapping[str, Any], error: Any
) -> Any:
    entities = mlflow_module().entities
    return entities.Feedback(
        name=name,
        value=None if error else value,
        rationale=rationale or None,
        source=entities.AssessmentSource(source_type="LLM_JUDGE", source_id=model_uri),
        metadata=metadata_text(metadata),
        error=None if error is None else entities.AssessmentError("JUDGE_ERROR", str(error)),
    )


def metadata_text(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Assessment metadata as text, as MLflow stores it (non-strings as JSON)."""
    return {
        str(k): v if isinstance(v, str) else json.dumps(v, default=str)
        for k, v in metadata.items()
        if v is not None
    }


def genai_evaluate(**kwargs: Any) -> Any:
    """``mlflow.genai.evaluate(**kwargs)``."""
    return importlib.import_module("mlflow.genai").evaluate(**kwargs)


# -- scorer registry (MLflow's "Judges" page) ----------------------------------------------


def register_instructions_judge(
    tracking_uri: str,
    experiment_id: str,
    *,
    name: str,
    instructions: str,
    model: str,
    value_type: Any,
    description: str | None = None,
) -> int:
    """Register MLflow's own instructions judge in the scorer registry; returns its version.

    The store is named explicitly (not MLflow's global tracking URI), so a tracker that
    writes to another store registers there.
    """
    judges = importlib.import_module("mlflow.genai.judges")
    registry = importlib.import_module("mlflow.genai.scorers.registry")
    judge = judges.make_judge(
        name=name,
        instructions=instructions,
        model=model,
        feedback_value_type=value_type,
        description=description,
    )
    store = registry._get_scorer_store(tracking_uri)
    version = store.register_scorer(experiment_id, judge)
    return int(getattr(version, "scorer_version", version) or 0)


# -- prompt registry ------------------------------------------------------------------------


def register_prompt(
    name: str,
    template: str,
    *,
    commit_message: str | None,
    tags: Mapping[str, str],
    response_format: Any = None,
    model_config: Mapping[str, Any] | None = None,
) -> Any:
    """Register ``template`` as the next version of the prompt ``name``."""
    genai = importlib.import_module("mlflow.genai")
    return genai.register_prompt(
        name=name,
        template=template,
        commit_message=commit_message,
        tags=dict(tags) or None,
        response_format=response_format,
        model_config=None if model_config is None else dict(model_config),
    )


def load_prompt(name: str, *, version: int | None, alias: str | None) -> Any:
    """The prompt at ``version``, at ``alias`` or the latest, bypassing MLflow's cache."""
    genai = importlib.import_module("mlflow.genai")
    if version is not None:
        uri = f"prompts:/{name}/{version}"
    else:
        uri = f"prompts:/{name}@{alias or 'latest'}"
    return genai.load_prompt(uri, link_to_model=False, cache_ttl_seconds=0)


def set_prompt_alias(name: str, alias: str, version: int) -> None:
    """Point ``alias`` of the prompt ``name`` at ``version``."""
    importlib.import_module("mlflow.genai").set_prompt_alias(name, alias, version)


def set_prompt_version_tags(name: str, version: int, tags: Mapping[str, str]) -> None:
    """Set tags on one prompt version."""
    genai = importlib.import_module("mlflow.genai")
    for key, value in tags.items():
        genai.set_prompt_version_tag(name, version, key, value)


def install_template_override(lookup: Callable[[str], str | None]) -> None:
    """Make ``PromptVersion.template`` return ``lookup(name)`` whenever it is not ``None``.

    This is how a candidate reaches a ``predict_fn`` written the MLflow way
    (``mlflow.genai.load_prompt(...).format(...)``): MLflow formats from ``.template``,
    however and whenever the prompt was loaded. The property is replaced once for the
    process, but ``lookup`` answers per context (it reads context variables), so two
    threads evaluating different candidates each see their own. Idempotent.
    """
    global _original_template
    cls: Any = importlib.import_module("mlflow.entities.model_registry.prompt_version")
    prompt_version = cls.PromptVersion
    with _lock:
        if _original_template is not None:
            return
        original = prompt_version.__dict__["template"]

        def template(self: Any) -> Any:
            text = lookup(self.name)
            if text is None:
                return original.fget(self)
            if self.is_text_prompt:
                return text
            try:  # chat prompts travel as JSON text (MLflow's convention)
                return json.loads(text)
            except ValueError:
                return original.fget(self)

        prompt_version.template = property(template, doc=original.__doc__)
        _original_template = original


def stored_text(prompt_version: Any) -> str:
    """A prompt version's registered text, never a swapped-in candidate (chat prompts as
    JSON text)."""
    with _lock:
        original = _original_template
    value = original.fget(prompt_version) if original is not None else prompt_version.template
    return value if isinstance(value, str) else json.dumps(value)
