"""Judges and aligned judges saved in MLflow, loaded back by name and version.

The convention: every :func:`log_judge` creates one MLflow run (in the current or the
given experiment) that holds the judge's single self-contained JSON file as the artifact
``judge/judge.json`` (a plain judge's ``to_dict()``) or ``judge/aligned_judge.json`` (an
aligned judge's whole memory: guidelines, expert records and their vectors). The run's
tags name it: ``judgealign.judge_name``, ``judgealign.judge_version`` (1, 2, ... per
name) and ``judgealign.judge_kind``. :func:`load_judge` finds the run by those tags in any
experiment and rebuilds the judge from the file alone: no trace is fetched, no model is
called, nothing is re-embedded.

Why runs and not only MLflow's scorer registry: that registry stores MLflow's own scorer
classes, and its aligned-judge entries keep only trace ids, re-fetched and re-embedded on
load. A run artifact keeps everything, works on every tracking store, and its params and
tags make the judge visible in the MLflow UI. So that MLflow's "Judges" page lists the
judge as well, :func:`register_scorer` registers MLflow's own instructions judge with the
same instructions (an aligned judge's include its guidelines; the retrieved examples, which
are memory rather than instructions, cannot be carried), model and verdict type;
``judge.register()`` does both (:func:`register_judge`).

Versions are numbered by counting earlier versions of the name under a lock, so they are
unique within a process; two processes logging the same name at the same instant could
pick the same number (loading then takes the most recent run).
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Literal, cast

from judgealign.core._errors import ConfigurationError
from judgealign.core._redact import redact
from judgealign.integrations.mlflow import _client as _mlflow
from judgealign.tracking._events import safe_params

__all__ = [
    "LoggedJudge",
    "get_scorer",
    "list_judge_versions",
    "load_judge",
    "log_judge",
    "register_judge",
    "register_scorer",
]

_NAME_TAG = "judgealign.judge_name"
_VERSION_TAG = "judgealign.judge_version"
_KIND_TAG = "judgealign.judge_kind"
_NAME = re.compile(r"^[A-Za-z0-9_.\- ]+$")
_lock = threading.Lock()


@dataclass(frozen=True)
class LoggedJudge:
    """One saved version of a judge.

    Attributes:
        name: the registered name.
        version: its version number (1, 2, ...).
        kind: ``"judge"`` or ``"aligned_judge"``.
        run_id: the MLflow run holding the file.
        experiment_id: the run's experiment.
        artifact_path: the file's path inside the run's artifacts.
    """

    name: str
    version: int
    kind: str
    run_id: str
    experiment_id: str
    artifact_path: str


def log_judge(
    judge: Any,
    *,
    name: str | None = None,
    experiment: str | None = None,
    description: str | None = None,
    experiment_id: str | None = None,
) -> LoggedJudge:
    """Save ``judge`` (plain or aligned) to MLflow as the next version of ``name``.

    This writes synchronously (it is a save, not per-record work) and raises on failure.

    Args:
        judge: a ``Judge`` or an ``AlignedJudge``.
        name: the registered name; the judge's own name by default.
        experiment: the experiment's name (created if missing); the current one if omitted.
        description: a note shown as the run's description.
        experiment_id: the experiment's id, instead of ``experiment``.

    Raises:
        ConfigurationError: on a name other than letters, digits, spaces, ``_ . -``.
    """
    name = _check_name(name or judge.name)
    kind = "aligned_judge" if hasattr(judge, "base_judge") else "judge"
    path = f"judge/{kind}.json"
    store = _mlflow.StoreClient(_mlflow.current_tracking_uri())
    if experiment and experiment_id:
        raise ConfigurationError("Give experiment= (a name) or experiment_id=, not both.")
    if experiment:
        experiment_id = store.experiment_id(experiment)
    experiment_id = experiment_id or _mlflow.current_experiment_id()
    with _lock:
        version = 1 + max((v.version for v in _versions(store, name)), default=0)
        tags = {_NAME_TAG: name, _VERSION_TAG: str(version), _KIND_TAG: kind}
        if description:
            tags["mlflow.note.content"] = description
        run_id = store.create_run(experiment_id, f"judge-{name}-v{version}", tags, None)
    status = "FAILED"
    try:
        store.log_dict(run_id, judge.to_dict(), path)
        store.log_batch(run_id, params=safe_params(_summary(judge)))
        status = "FINISHED"
    finally:
        store.end_run(run_id, status)
    return LoggedJudge(name, version, kind, run_id, experiment_id, path)


def register_scorer(
    judge: Any,
    *,
    name: str | None = None,
    experiment_id: str | None = None,
    tracking_uri: str | None = None,
) -> int:
    """List ``judge`` on MLflow's "Judges" page (its scorer registry); returns the version.

    What is registered is MLflow's own instructions judge: ``judge.instructions`` (for an
    aligned judge, the base instructions followed by its guidelines), its model URI and
    its verdict type. Retrieved examples are not part of it; the complete judge is what
    :func:`log_judge` saves.

    Args:
        judge: a ``Judge`` or an ``AlignedJudge``.
        name: the registered name; the judge's own name by default.
        experiment_id: the experiment; the current one by default.
        tracking_uri: the store; the current tracking URI by default.
    """
    uri = tracking_uri or _mlflow.current_tracking_uri()
    return _mlflow.register_instructions_judge(
        uri,
        experiment_id or _mlflow.current_experiment_id(),
        name=_check_name(name or judge.name),
        instructions=str(judge.instructions),
        model=str(judge.model_uri),
        value_type=_verdict_type(judge.value_spec),
        description=getattr(judge, "description", None),
    )


def register_judge(judge: Any, *, name: str | None, experiment_id: str | None) -> LoggedJudge:
    """``judge.register()``: save the judge as a run (:func:`log_judge`), then list it on
    MLflow's "Judges" page (:func:`register_scorer`).

    The run is the judge (it raises on failure); the listing is a view of it, so a store
    that cannot hold scorers gets a warning instead of an error.
    """
    logged = log_judge(judge, name=name, experiment_id=experiment_id)
    try:
        register_scorer(judge, name=logged.name, experiment_id=logged.experiment_id)
    except Exception as exc:  # the saved run is complete without the listing
        warnings.warn(
            f"Judge {logged.name!r} was saved (run {logged.run_id}) but not listed on "
            f"MLflow's Judges page: {type(exc).__name__}: {redact(str(exc))}",
            UserWarning,
            stacklevel=3,
        )
    return logged


def _verdict_type(spec: Any) -> Any:
    """The ``feedback_value_type`` MLflow's ``make_judge`` takes for a judge's verdicts."""
    if spec.kind == "label":
        choices: tuple[str, ...] = tuple(spec.choices)
        return cast(Any, Literal)[choices]  # Literal["a", "b", ...] built from the labels
    return {"bool": bool, "int": int, "float": float, "str": str}[spec.kind]


def load_judge(
    name: str,
    version: int | str | None = None,
    *,
    model: Any = None,
    embedder: Any = None,
    experiment_id: str | None = None,
) -> Any:
    """Load a judge saved by :func:`log_judge` (or ``judge.register``).

    Args:
        name: the registered name, optionally with the version: ``"correct/3"`` or
            ``"correct@latest"``.
        version: the version; ``None`` or ``"latest"`` for the newest.
        model: overrides the saved judging model.
        embedder: for aligned judges, the embedder to use (see ``AlignedJudge.load``).
        experiment_id: look only in this experiment (by default: every experiment).

    Returns:
        A ``Judge`` or an ``AlignedJudge``, as it was saved.

    Raises:
        ConfigurationError: no such name or version, or an unreadable file.
    """
    name, version = _split(name, version)
    logged = _find(name, version, experiment_id)
    store = _mlflow.StoreClient(_mlflow.current_tracking_uri())
    with tempfile.TemporaryDirectory(prefix="judgealign-judge-") as folder:
        text = store.download_text(logged.run_id, logged.artifact_path, folder)
    data = json.loads(text)
    source = f"MLflow judge {name!r} version {logged.version}"
    if logged.kind == "aligned_judge":
        from judgealign.memalign._aligned import AlignedJudge

        return AlignedJudge.from_dict(data, model=model, embedder=embedder, source=source)
    from judgealign.judges._judge import Judge

    return Judge.from_dict(data, model=model)


def list_judge_versions(name: str) -> list[LoggedJudge]:
    """Every saved version of ``name``, oldest first, across experiments."""
    store = _mlflow.StoreClient(_mlflow.current_tracking_uri())
    return sorted(_versions(store, _check_name(name)), key=lambda v: v.version)


def get_scorer(*, name: str, experiment_id: str | None = None, version: int | None = None) -> Any:
    """MLflow's ``get_scorer``: the judge registered as ``name`` (aligned judges with their
    memory), the latest version unless ``version`` is given.

    Raises:
        ConfigurationError: no such name or version (in that experiment).
    """
    return load_judge(name, version, experiment_id=experiment_id)


def _find(name: str, version: int | None, experiment_id: str | None = None) -> LoggedJudge:
    versions = list_judge_versions(name)
    if experiment_id is not None:
        versions = [v for v in versions if v.experiment_id == str(experiment_id)]
    if not versions:
        where = f" in experiment {experiment_id}" if experiment_id is not None else ""
        raise ConfigurationError(
            f"No judge named {name!r} was registered{where} (judge.register() or log_judge())."
        )
    if version is None:
        return versions[-1]
    matching = [v for v in versions if v.version == version]
    if not matching:
        known = ", ".join(str(v.version) for v in versions)
        raise ConfigurationError(f"Judge {name!r} has no version {version}; versions: {known}.")
    return matching[-1]


def _versions(store: _mlflow.StoreClient, name: str) -> list[LoggedJudge]:
    runs = store.search_runs(
        store.experiment_ids(),
        f"tags.`{_NAME_TAG}` = '{name}' and attributes.status = 'FINISHED'",
        ["attributes.start_time ASC"],
    )
    found: list[LoggedJudge] = []
    for run in runs:
        tags = run.data.tags
        kind = tags.get(_KIND_TAG, "judge")
        found.append(
            LoggedJudge(
                name=name,
                version=int(tags[_VERSION_TAG]),
                kind=kind,
                run_id=str(run.info.run_id),
                experiment_id=str(run.info.experiment_id),
                artifact_path=f"judge/{kind}.json",
            )
        )
    return found


def _summary(judge: Any) -> dict[str, object]:
    summary: dict[str, object] = {
        "judge": judge.name,
        "model": judge.model_uri,
        "value_type": judge.value_spec.describe(),
    }
    if hasattr(judge, "base_judge"):
        summary["guidelines"] = len(judge.guidelines)
        summary["expert_records"] = len(judge.record_ids)
        summary["embedder"] = judge.embedder_id
    return summary


def _split(name: str, version: int | str | None) -> tuple[str, int | None]:
    if version is None and "@" in name:
        name, version = name.split("@", 1)
    elif version is None and "/" in name:
        name, version = name.rsplit("/", 1)
    if version is None or version == "latest":
        return _check_name(name), None
    if isinstance(version, int) or version.isdigit():
        return _check_name(name), int(version)
    raise ConfigurationError(f"version={version!r} must be a number or 'latest'.")


def _check_name(name: str) -> str:
    if not _NAME.match(str(name).strip()):
        raise ConfigurationError(
            f"Judge name {name!r} for MLflow must use letters, digits, spaces, '_', '.' or '-'."
        )
    return name.strip()
