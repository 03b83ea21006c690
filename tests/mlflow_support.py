"""Shared setup for the MLflow tests: a fresh sqlite store per test, made fast.

Creating an MLflow sqlite database runs every schema migration (about 4 s), so one empty
database is made per session and each test gets a copy of the file, in its own temporary
directory, with its own experiment whose artifacts live in that directory too.
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Export traces synchronously: with MLflow's asynchronous export, every
# mlflow.flush_trace_async_logging() costs one to three seconds, even when idle.
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")


@dataclass(frozen=True)
class Store:
    """One test's tracking store."""

    root: Path
    uri: str
    experiment_id: str
    artifacts: Path

    def text_dump(self) -> str:
        """Every row of every table as text, and every file below ``root`` (gunzipped)."""
        parts = [_dump_sqlite(self.root / "mlflow.db")]
        for path in sorted(self.root.rglob("*")):
            if path.is_file() and path.name != "mlflow.db":
                data = path.read_bytes()
                if data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                parts.append(f"== {path}\n" + data.decode("utf-8", errors="replace"))
        return "\n".join(parts)


def _dump_sqlite(path: Path) -> str:
    lines: list[str] = []
    with sqlite3.connect(path) as connection:
        tables = [
            r[0] for r in connection.execute("select name from sqlite_master where type='table'")
        ]
        for table in tables:
            for row in connection.execute(f'select * from "{table}"'):
                cells = [
                    gzip.decompress(c).decode("utf-8", "replace")
                    if isinstance(c, bytes) and c[:2] == b"\x1f\x8b"
                    else c.decode("utf-8", "replace")
                    if isinstance(c, bytes)
                    else str(c)
                    for c in row
                ]
                lines.append(f"{table}: " + " | ".join(cells))
    return "\n".join(lines)


@functools.cache
def _template_db() -> Path:
    """An empty, migrated database, made once per test session."""
    import mlflow

    folder = Path(tempfile.mkdtemp(prefix="mlflow-template-"))
    from mlflow.tracking._tracking_service import utils

    previous = utils._tracking_uri  # pyright: ignore[reportPrivateUsage]
    mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
    try:
        mlflow.MlflowClient().search_experiments()  # runs the migrations
    finally:
        utils._tracking_uri = previous  # pyright: ignore[reportPrivateUsage]
    return folder / "mlflow.db"


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A fresh sqlite store in ``tmp_path`` (also the working directory), with an experiment."""
    import mlflow

    shutil.copy(_template_db(), tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ALIAS_PROMPT_CACHE_TTL_SECONDS", "0")
    # mlflow.set_experiment writes MLFLOW_EXPERIMENT_ID and a module global; both are put
    # back after the test so that no later test inherits an experiment of a deleted store.
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.setattr("mlflow.tracking.fluent._active_experiment_id", None)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # Restored as it was (usually unset), not as the URI it resolved to: a URI left set
    # tells judgealign that the user chose MLflow (the default prompt store then uses it).
    monkeypatch.setattr("mlflow.tracking._tracking_service.utils._tracking_uri", None)
    mlflow.set_tracking_uri(uri)
    artifacts = tmp_path / "artifacts"
    experiment_id = mlflow.create_experiment(
        f"test-{uuid.uuid4().hex[:8]}", artifact_location=artifacts.as_uri()
    )
    mlflow.set_experiment(experiment_id=experiment_id)
    try:
        yield Store(tmp_path, uri, experiment_id, artifacts)
    finally:
        mlflow.flush_trace_async_logging()


def runs_by_operation(store: Store) -> dict[str, list[Any]]:
    """The store's runs grouped by their ``judgealign.operation`` tag."""
    import mlflow

    grouped: dict[str, list[Any]] = {}
    for run in mlflow.search_runs([store.experiment_id], output_format="list"):
        grouped.setdefault(run.data.tags.get("judgealign.operation", ""), []).append(run)
    return grouped


def artifact_names(run_id: str) -> set[str]:
    """Every artifact path of a run (recursively)."""
    client = __import__("mlflow").MlflowClient()
    names: set[str] = set()
    pending = [""]
    while pending:
        folder = pending.pop()
        for info in client.list_artifacts(run_id, folder or None):
            (pending.append(info.path) if info.is_dir else names.add(info.path))
    return names
