"""MlflowTracker on a real (temporary sqlite) store: what lands where, one writer thread,
nothing waits on the store, and failed writes are reported and kept, never dropped."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow_support import Store, artifact_names, mlflow_store, runs_by_operation

from judgealign import TrackingWarning, make_judge, use_tracker
from judgealign.integrations.mlflow import _client as _mlflow
from judgealign.mlflow_integration import MlflowTracker, use_mlflow_tracking
from judgealign.testing import FunctionModel, ModelRequest

__all__ = ["mlflow_store"]

LABELLED = [
    {"id": "a", "inputs": "2+2?", "outputs": "4", "label": True},
    {"id": "b", "inputs": "2+2?", "outputs": "5", "label": False},
    {"id": "c", "inputs": "2+2?", "outputs": "four", "label": True},
]


def verdict(request: ModelRequest) -> dict[str, Any]:
    return {"rationale": "checked", "result": "4" in request.last_user}


def judge() -> Any:
    return make_judge(
        name="correct",
        instructions="Is {{ outputs }} the answer to {{ inputs }}?",
        model=FunctionModel(verdict),
    )


def test_evaluate_lands_in_mlflow_with_params_metrics_and_artifacts(mlflow_store: Store) -> None:
    with use_mlflow_tracking() as tracker:
        judge().evaluate(LABELLED)
    assert tracker.failures == 0
    (run,) = runs_by_operation(mlflow_store)["evaluate"]
    assert run.info.status == "FINISHED" and run.info.run_name == "evaluate-correct"
    assert run.data.params["judge"] == "correct" and run.data.params["records"] == "3"
    assert run.data.metrics["agreement.accuracy"] == pytest.approx(2 / 3)
    assert run.data.metrics["errors"] == 0
    names = artifact_names(run.info.run_id)
    assert {"agreement.json", "agreement.txt", "confusion_matrix.png", "judge.json"} <= names
    png = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="confusion_matrix.png"
    )
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_callers_never_wait_for_a_slow_store(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _mlflow.StoreClient.create_run

    def slow(self: Any, *args: Any) -> str:
        time.sleep(2.5)
        return original(self, *args)

    monkeypatch.setattr(_mlflow.StoreClient, "create_run", slow)
    tracker = MlflowTracker()
    with use_tracker(tracker):
        started = time.perf_counter()
        result = judge().evaluate(LABELLED)
        elapsed = time.perf_counter() - started
    assert len(result) == 3 and elapsed < 1.5  # the store takes 2.5 s to create the run
    assert tracker.flush(timeout=30)
    assert runs_by_operation(mlflow_store)["evaluate"][0].data.metrics["records"] == 3


def test_one_writer_thread_does_every_store_call_and_batches_them(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[str] = set()
    batches: list[int] = []
    for method in ("create_run", "end_run", "log_batch", "log_text"):
        original = getattr(_mlflow.StoreClient, method)

        def spy(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            threads.add(threading.current_thread().name)
            if "metrics" in kwargs:
                batches.append(len(kwargs["metrics"]))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(_mlflow.StoreClient, method, spy)
    tracker = MlflowTracker(batch_window_s=0.2)

    def work(worker: int) -> None:
        with tracker.start_run(f"worker-{worker}"):
            for step in range(25):
                tracker.log_metrics({"value": float(step)}, step=step)
            tracker.log_text("done", "note.txt")

    pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert tracker.flush(timeout=30)
    assert threads == {"judgealign-mlflow"}
    assert sum(batches) == 8 * 25 and len(batches) <= 8 * 4  # about one call per run per batch
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs([mlflow_store.experiment_id], output_format="list")
    assert len(runs) == 8
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "value")
        assert sorted(m.step for m in history) == list(range(25))


def test_failed_writes_are_counted_warned_kept_and_retried(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = {"on": True}
    original = _mlflow.StoreClient.log_batch

    def flaky(self: Any, *args: Any, **kwargs: Any) -> None:
        if broken["on"]:
            raise OSError("database is locked (token sk-abcdef123456)")
        original(self, *args, **kwargs)

    monkeypatch.setattr(_mlflow.StoreClient, "log_batch", flaky)
    tracker = MlflowTracker(retries=1, batch_window_s=0.0)
    with use_tracker(tracker):
        result = judge().evaluate(LABELLED)  # returns every record regardless
    assert result.values == [True, False, False]
    with pytest.warns(TrackingWarning, match="tracking write"):
        tracker.flush(timeout=30)
    assert tracker.failures >= 2  # the params and the metrics batches
    assert all("sk-abcdef123456" not in e for e in tracker.errors)
    assert {op.kind for op in tracker.writer.failed} == {"params", "metrics"}
    (run,) = runs_by_operation(mlflow_store)["evaluate"]
    assert "records" not in run.data.metrics  # not written yet, but kept
    broken["on"] = False
    assert tracker.retry_failed() >= 2
    assert tracker.flush(timeout=30) and not tracker.writer.failed
    (run,) = runs_by_operation(mlflow_store)["evaluate"]
    assert run.data.metrics["records"] == 3 and run.data.params["judge"] == "correct"


def test_runs_nest_under_the_callers_active_mlflow_run(mlflow_store: Store) -> None:
    tracker = MlflowTracker()
    with mlflow.start_run(run_name="my-experiment") as outer, use_tracker(tracker):
        judge().evaluate(LABELLED[:1])
        with tracker.start_run("mine") as mine:
            tracker.log_metrics({"x": 1.0})
            with tracker.start_run("inner") as inner:
                tracker.log_metrics({"y": 2.0})
    tracker.flush(timeout=30)
    client = mlflow.MlflowClient()
    evaluate_run = runs_by_operation(mlflow_store)["evaluate"][0]
    assert evaluate_run.data.tags["mlflow.parentRunId"] == outer.info.run_id
    assert client.get_run(mine.wait() or "").data.tags["mlflow.parentRunId"] == outer.info.run_id
    inner_run = client.get_run(inner.wait() or "")
    assert inner_run.data.tags["mlflow.parentRunId"] == mine.run_id
    assert inner_run.data.metrics == {"y": 2.0}


def test_logging_outside_a_run_goes_to_one_implicit_run_closed_by_close(
    mlflow_store: Store,
) -> None:
    tracker = MlflowTracker()
    tracker.log_params({"a": "1"})
    tracker.log_metrics({"m": 0.5})
    tracker.close()
    (run,) = mlflow.search_runs([mlflow_store.experiment_id], output_format="list")
    assert run.info.run_name == "judgealign" and run.info.status == "FINISHED"
    assert run.data.params == {"a": "1"} and run.data.metrics == {"m": 0.5}


def test_a_named_experiment_is_created_on_the_writer(mlflow_store: Store) -> None:
    with use_mlflow_tracking("judge-runs"):
        judge().evaluate(LABELLED[:1])
    experiment = mlflow.get_experiment_by_name("judge-runs")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id], output_format="list")
    assert [r.info.run_name for r in runs] == ["evaluate-correct"]


def test_a_dead_store_never_breaks_optimize_or_alignment_reports(
    mlflow_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import optimizers
    from judgealign import MemAlignOptimizer
    from judgealign.core._events import announce

    def dead(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("tracking server unreachable")

    for method in ("create_run", "log_batch", "log_text", "log_dict", "log_figure", "end_run"):
        monkeypatch.setattr(_mlflow.StoreClient, method, dead)
    previous = optimizers.set_prompt_store(optimizers.InMemoryPromptStore())
    optimizers.register_prompt("task", "Reply about {{ letter }}.")

    def predict(letter: str) -> str:
        text = optimizers.load_prompt("prompts:/task/1").format(letter=letter)
        return "OK" if f"[{letter}]" in text else "NO"

    proposal = {"diagnosis": "d", "prompts": {"task": "[a][b] Reply about {{ letter }}."}}
    tracker = MlflowTracker(retries=0, batch_window_s=0.0)
    try:
        with use_tracker(tracker):
            result = optimizers.optimize_prompts(
                predict_fn=predict,
                train_data=[{"inputs": {"letter": c}} for c in "abcd"],
                prompt_uris=["prompts:/task/1"],
                optimizer=optimizers.MetaPromptOptimizer(
                    FunctionModel(lambda r: proposal), max_iterations=1
                ),
                scorers=[lambda outputs: outputs == "OK"],
            )
            with pytest.warns(UserWarning, match="distillation"):  # judge() cannot distill
                aligned = judge().align(
                    LABELLED, optimizer=MemAlignOptimizer(embedding_model="hashing")
                )
            announce("alignment", aligned=aligned, result=aligned.last_alignment)
    finally:
        optimizers.set_prompt_store(previous)
    assert result.improved and result.final_eval_score == 0.5
    assert len(aligned.record_ids) == 3
    with pytest.warns(TrackingWarning, match=r"tracking write\(s\) failed; they are kept"):
        tracker.flush(timeout=30)
    assert any("tracking server unreachable" in e for e in tracker.errors)
    kinds = {op.kind for op in tracker.writer.failed}
    assert {"create_run", "params", "metrics", "text", "figure", "end_run"} <= kinds


_DEFAULT_STORE_CHILD = """
import judgealign
from judgealign import make_judge
from judgealign.mlflow_integration import use_mlflow_tracking
from judgealign.testing import FunctionModel
judge = make_judge(name="j", instructions="Is {{ outputs }} ok?",
                   model=FunctionModel(lambda r: {"rationale": "", "result": True}))
with use_mlflow_tracking() as tracker:
    judge.evaluate([{"outputs": "x"}])
print(tracker.tracking_uri, tracker.failures)
"""


def test_with_no_tracking_uri_set_runs_go_to_mlflows_default_in_the_working_directory(
    tmp_path: Path,
) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_TRACKING", "MLFLOW_EXP"))
    }
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    child = subprocess.run(
        [sys.executable, "-c", _DEFAULT_STORE_CHILD],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    uri, failures = child.stdout.split()[-2:]
    assert uri == f"sqlite:///{tmp_path}/mlflow.db" and failures == "0"
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        names = [r[0] for r in db.execute("select name from runs")]
    assert names == ["evaluate-j"]
