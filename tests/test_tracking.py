"""The tracking seam: the no-op default costs nothing, reports carry what they should (and
never a secret), and a failing tracker never breaks evaluate, align or optimize."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import pytest

import optimizers
from judgealign import (
    Feedback,
    NoOpTracker,
    TrackingWarning,
    get_tracker,
    make_judge,
    set_tracker,
    use_tracker,
)
from judgealign.core._events import announce
from judgealign.testing import FunctionModel, ModelRequest
from judgealign.tracking._events import optimization_curve, safe_params

INSTRUCTIONS = "Is {{ outputs }} the right answer to {{ inputs }}?"


class RecordingTracker:
    """Keeps every call; builds figures like a real tracker would."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.runs: list[str] = []
        self._lock = threading.Lock()

    @contextmanager
    def start_run(self, name: str, *, tags: Mapping[str, str] | None = None) -> Iterator[str]:
        with self._lock:
            self.runs.append(name)
            self.calls.append(("start", name, dict(tags or {})))
        yield name
        self.calls.append(("end", name))

    def log_params(self, params: Mapping[str, str]) -> None:
        self.calls.append(("params", dict(params)))

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        self.calls.append(("metrics", dict(metrics), step))

    def log_text(self, text: str, artifact_file: str) -> None:
        self.calls.append(("text", artifact_file, text))

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        self.calls.append(("dict", artifact_file, json.loads(json.dumps(data))))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.calls.append(("figure", artifact_file, figure()))

    def params(self) -> dict[str, str]:
        return {k: v for c in self.calls if c[0] == "params" for k, v in c[1].items()}

    def metrics(self, step: int | None = None) -> dict[str, float]:
        return {
            k: v for c in self.calls if c[0] == "metrics" and c[2] == step for k, v in c[1].items()
        }

    def artifacts(self) -> dict[str, Any]:
        return {c[1]: c[2] for c in self.calls if c[0] in ("text", "dict", "figure")}


class BrokenTracker(RecordingTracker):
    """Raises from every method."""

    def start_run(self, name: str, *, tags: Mapping[str, str] | None = None) -> Any:
        raise RuntimeError("tracking store is down")

    def log_params(self, params: Mapping[str, str]) -> None:
        raise RuntimeError("tracking store is down")


def verdict(request: ModelRequest) -> dict[str, Any]:
    return {"rationale": "checked", "result": "4" in request.last_user}


def judge() -> Any:
    return make_judge(name="correct", instructions=INSTRUCTIONS, model=FunctionModel(verdict))


LABELLED = [
    {"id": "a", "inputs": "2+2?", "outputs": "4", "label": "yes"},
    {"id": "b", "inputs": "2+2?", "outputs": "5", "label": "no"},
    {"id": "c", "inputs": "2+2?", "outputs": "four", "label": "yes"},
    {"id": "d", "inputs": "3+1?", "outputs": "4", "label": "yes"},
]


# -- the default ------------------------------------------------------------------------------


def test_the_default_tracker_is_a_no_op_and_evaluate_builds_nothing_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert isinstance(get_tracker(), NoOpTracker)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("built a report nobody will record")

    monkeypatch.setattr("judgealign.evaluation._api.agreement", forbidden)
    monkeypatch.setattr("judgealign.tracking._events._evaluation", forbidden)
    result = judge().evaluate(LABELLED)
    assert result.values == [True, False, False, True]


def test_no_op_tracking_builds_no_report(monkeypatch: pytest.MonkeyPatch) -> None:
    # What keeps tracking free when it is off: every entry point returns before building
    # a report. (How long a call takes is measured in benchmarks, not asserted here.)
    from judgealign.tracking import _events as events

    assert isinstance(get_tracker(), NoOpTracker)
    built: list[str] = []
    monkeypatch.setattr(events, "_guard", lambda report, *args: built.append(report.__name__))
    announce("evaluation", judge=None, records=[], result=[])
    announce("comparison", comparison=None)
    announce("alignment", aligned=None, result=None)
    announce("optimization", result=None, prompt_uris=[], train_size=0, val_size=0, scorer_names=[])
    assert built == []


def test_importing_judgealign_imports_neither_mlflow_nor_matplotlib() -> None:
    code = (
        "import sys, judgealign, judgealign.mlflow_integration, optimizers;"
        "print(sorted(m for m in ('mlflow', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_use_tracker_is_per_context_and_set_tracker_is_the_process_default() -> None:
    mine, default = RecordingTracker(), RecordingTracker()
    seen: list[Any] = []
    previous = set_tracker(default)
    try:
        with use_tracker(mine):
            worker = threading.Thread(target=lambda: seen.append(get_tracker()))
            worker.start()
            worker.join()
            assert get_tracker() is mine
        assert seen == [default]  # a plain thread does not inherit the context
        assert get_tracker() is default
        with use_tracker(None):
            assert isinstance(get_tracker(), NoOpTracker)
    finally:
        set_tracker(previous)
    with pytest.raises(TypeError, match="not a tracker"):
        set_tracker(object())  # type: ignore[arg-type]


# -- what is reported ---------------------------------------------------------------------------


def test_evaluate_reports_counts_scores_and_agreement_with_labelled_records() -> None:
    tracker = RecordingTracker()
    with use_tracker(tracker):
        judge().evaluate(LABELLED)
    assert tracker.runs == ["evaluate-correct"]
    params = tracker.params()
    assert params["judge"] == "correct" and params["records"] == "4"
    metrics = tracker.metrics()
    assert metrics["records"] == 4 and metrics["errors"] == 0 and metrics["mean_score"] == 0.5
    assert metrics["correct/mean"] == 0.5  # MLflow's name for the same metric
    assert metrics["agreement.accuracy"] == 0.75  # "four" is right but judged wrong
    assert metrics["agreement.n"] == 4 and "agreement.kappa" in metrics
    artifacts = tracker.artifacts()
    assert artifacts["agreement.json"]["disagreeing_ids"] == ["c"]
    assert artifacts["agreement.json"]["confusion"] == [[1, 0], [1, 2]]
    assert artifacts["judge.json"]["instructions"] == INSTRUCTIONS
    figure = artifacts["confusion_matrix.png"]
    assert type(figure).__name__ == "Figure" and figure.axes[0].get_xlabel() == "judge"


def test_evaluate_without_labels_reports_no_agreement() -> None:
    tracker = RecordingTracker()
    with use_tracker(tracker):
        judge().evaluate([{"inputs": "2+2?", "outputs": "4"}])
    assert "agreement.accuracy" not in tracker.metrics()
    assert "agreement.json" not in tracker.artifacts()


def test_params_never_hold_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET-123")
    params = safe_params(
        {
            "api_key": "sk-live-abcdef123456",
            "password": "hunter22",
            "max_tokens": 64,
            "base_url": "https://user:pw@llm.example.com/v1",
            "note": "key is sk-test-SECRET-123",
            "headers": {"Authorization": "Bearer abcdefghijklmnop"},
            "nothing": None,
        }
    )
    text = json.dumps(params)
    for secret in ("sk-live-abcdef123456", "hunter22", "user:pw", "SECRET-123", "abcdefghijklmnop"):
        assert secret not in text
    assert params["max_tokens"] == "64"
    assert params["base_url"] == "https://llm.example.com/v1"
    assert set(params) == {"max_tokens", "base_url", "note", "headers"}


def test_a_judge_with_secret_inference_params_logs_none_of_them() -> None:
    tracker = RecordingTracker()
    leaky = make_judge(
        name="correct",
        instructions=INSTRUCTIONS,
        model=FunctionModel(verdict),
        inference_params={"api_key": "sk-abcdefgh12345", "temperature": 0},
    )
    with use_tracker(tracker):
        leaky.evaluate(LABELLED[:1])
    assert "sk-abcdefgh12345" not in json.dumps(tracker.calls, default=str)


def test_the_logged_judge_definition_loses_url_credentials() -> None:
    tracker = RecordingTracker()
    proxied = make_judge(
        name="correct",
        instructions=INSTRUCTIONS,
        model=FunctionModel(verdict),
        base_url="https://user:pa55word@proxy.example.com/v1",
    )
    with use_tracker(tracker):
        proxied.evaluate(LABELLED[:1])
    assert tracker.artifacts()["judge.json"]["base_url"] == "https://proxy.example.com/v1"
    assert "pa55word" not in json.dumps(tracker.calls, default=str)


def test_alignment_report_has_settings_changes_and_guidelines() -> None:
    from judgealign import MemAlignOptimizer

    def reflect(request: ModelRequest) -> Any:
        if "calibrating" in request.system:
            ids = re.findall(r'"id": "([^"]+)"', request.last_user)
            return {"guidelines": [{"text": "Digits only.", "source_ids": ids}]}
        return verdict(request)

    model = FunctionModel(reflect)
    base = make_judge(name="correct", instructions=INSTRUCTIONS, model=model)
    optimizer = MemAlignOptimizer(embedding_model="hashing", retrieval_k=2)
    aligned = base.align(LABELLED, optimizer=optimizer)
    tracker = RecordingTracker()
    with use_tracker(tracker):
        announce("alignment", aligned=aligned, result=aligned.last_alignment)
    assert tracker.runs == ["align-correct"]
    params = tracker.params()
    assert params["memalign.retrieval_k"] == "2" and params["embedder"].startswith("hashing")
    metrics = tracker.metrics()
    assert metrics["records_added"] == 4 and metrics["guidelines_total"] == 1
    artifacts = tracker.artifacts()
    assert "Digits only." in artifacts["guidelines.txt"]
    assert artifacts["alignment.json"]["records_added"] == ["a", "b", "c", "d"]


def test_comparison_report_has_both_judges_and_the_deltas() -> None:
    from judgealign import compare_judges

    lenient = make_judge(
        name="correct",
        instructions=INSTRUCTIONS,
        model=FunctionModel(lambda r: {"rationale": "", "result": True}),
    )
    tracker = RecordingTracker()
    with use_tracker(tracker):
        compare_judges(lenient, judge(), LABELLED, n_bootstrap=0)
    metrics = tracker.metrics()
    assert metrics["base.agreement.accuracy"] == 0.75
    assert metrics["aligned.agreement.accuracy"] == 0.75
    assert metrics["fixed"] == 1 and metrics["broken"] == 1
    assert {"base.confusion_matrix.png", "aligned.confusion_matrix.png"} <= set(tracker.artifacts())


def _optimize_letters(tracker: Any) -> Any:
    store = optimizers.InMemoryPromptStore()
    previous = optimizers.set_prompt_store(store)
    optimizers.register_prompt("task", "Reply about {{ letter }}.")

    def predict(letter: str) -> str:
        text = optimizers.load_prompt("prompts:/task/1").format(letter=letter)
        return "OK" if f"[{letter}]" in text else "NO"

    def ok(outputs: str) -> bool:
        return outputs == "OK"

    proposals = iter(["[a][b] Reply about {{ letter }}.", "[a][b][c][d] Reply about {{ letter }}."])
    model = FunctionModel(
        lambda r: {"diagnosis": "letters missing", "prompts": {"task": next(proposals)}}
    )
    try:
        with use_tracker(tracker):
            return optimizers.optimize_prompts(
                predict_fn=predict,
                train_data=[{"inputs": {"letter": c}} for c in "abcd"],
                prompt_uris=["prompts:/task/1"],
                optimizer=optimizers.MetaPromptOptimizer(model, max_iterations=2),
                scorers=[ok],
            )
    finally:
        optimizers.set_prompt_store(previous)


def test_optimize_prompts_reports_scores_per_iteration_and_the_curve() -> None:
    tracker = RecordingTracker()
    result = _optimize_letters(tracker)
    assert result.improved and result.final_eval_score == 1.0
    assert tracker.runs == ["optimize-MetaPromptOptimizer"]
    params = tracker.params()
    assert params["optimizer"] == "MetaPromptOptimizer"
    assert json.loads(params["prompt_uris"]) == ["prompts:/task/1"]
    assert params["num_training_samples"] == "4" and params["scorers"] == '["ok"]'
    metrics = tracker.metrics()
    assert metrics["initial_eval_score"] == 0.0 and metrics["final_eval_score"] == 1.0
    per_step = {c[2]: c[1] for c in tracker.calls if c[0] == "metrics" and c[2] is not None}
    assert [per_step[s]["score"] for s in sorted(per_step)] == [0.0, 0.5, 1.0]
    assert [per_step[s]["best_score"] for s in sorted(per_step)] == [0.0, 0.5, 1.0]
    artifacts = tracker.artifacts()
    assert artifacts["prompts/task.txt"] == "[a][b][c][d] Reply about {{ letter }}."
    assert artifacts["optimization_curve.png"].axes[0].get_ylabel() == "score"


def test_curve_reads_gepa_events_and_keeps_the_best_so_far() -> None:
    class Result:
        initial_eval_score = 0.2
        history: ClassVar[list[dict[str, Any]]] = [
            {"iteration": 1, "outcome": "not_better"},
            {"iteration": 2, "outcome": "accepted", "child_val": 0.6},
            {"iteration": 3, "outcome": "accepted", "child_val": 0.4},
        ]

    assert optimization_curve(Result()) == (
        [0, 1, 2, 3],
        [0.2, None, 0.6, 0.4],
        [0.2, 0.2, 0.6, 0.6],
    )


# -- failures never break the tracked operation -------------------------------------------------


def test_a_broken_tracker_warns_but_evaluate_and_optimize_complete() -> None:
    with (
        pytest.warns(TrackingWarning, match="tracking store is down"),
        use_tracker(BrokenTracker()),
    ):
        result = judge().evaluate(LABELLED)
    assert result.values == [True, False, False, True]
    with pytest.warns(TrackingWarning):
        outcome = _optimize_letters(BrokenTracker())
    assert outcome.improved and outcome.final_eval_score == 1.0


def test_a_tracker_failing_mid_report_still_returns_every_record() -> None:
    class FailsOnFigures(RecordingTracker):
        def log_figure(self, figure: Any, artifact_file: str) -> None:
            raise OSError("disk full")

    tracker = FailsOnFigures()
    with pytest.warns(TrackingWarning, match="disk full"), use_tracker(tracker):
        feedback = judge().evaluate(LABELLED)
    assert len(feedback) == 4 and all(isinstance(f, Feedback) for f in feedback)
    assert "agreement.json" in tracker.artifacts()  # what came before the failure was kept


def test_align_and_aligned_evaluate_report_through_the_tracker() -> None:
    from judgealign import MemAlignOptimizer

    tracker = RecordingTracker()
    optimizer = MemAlignOptimizer(embedding_model="hashing", retrieval_k=1)
    with use_tracker(tracker), pytest.warns(UserWarning):  # the verdict model cannot distill
        aligned = judge().align(LABELLED[:3], optimizer=optimizer)
        aligned.evaluate(LABELLED)
    assert tracker.runs == ["align-correct", "evaluate-correct"]
    assert tracker.artifacts()["alignment.json"]["records_added"] == ["a", "b", "c"]
    assert "guidelines.txt" in tracker.artifacts()
    # Only "d" is held out: the three records the judge memorised are left out.
    assert tracker.metrics()["agreement.n"] == 1 and tracker.metrics()["agreement.n_excluded"] == 3
    assert tracker.artifacts()["agreement.json"]["excluded_ids"] == ["a", "b", "c"]
