"""Crash safety: SIGKILL at random moments never leaves a torn file, and a killed GEPA run
resumes from its run directory without paying again for a metric call it had finished.

Children are forked from the test process (everything is already imported, so a child
starts in milliseconds) and killed with SIGKILL, which no handler can intercept.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from judgealign import AlignedJudge, HashingEmbedder, LabeledRecord, MemAlignOptimizer, make_judge
from judgealign.testing import FunctionModel, ModelRequest
from optimizers import GEPA, EvaluationResultRecord
from optimizers.gepa._checkpoint import STATE_FILE
from optimizers.gepa._state import prompts_key

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

REPORT: dict[str, Any] = {}


def fork(target: Callable[[], None]) -> int:
    """Run ``target`` in a forked child that never returns into pytest."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            target()
        finally:
            os._exit(0)
    return pid


def kill(pid: int) -> int:
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return status


# -- atomic saves ------------------------------------------------------------------------------


def two_aligned_judges() -> tuple[AlignedJudge, AlignedJudge]:
    """Two large-ish aligned judges (a save takes a few milliseconds) told apart by a marker."""

    def brain(request: ModelRequest) -> dict[str, Any]:
        return (
            {"guidelines": []}
            if "calibrating an automated evaluator" in request.system
            else {"result": True}
        )

    judge = make_judge(
        name="j",
        instructions="Is {{ outputs }} right for {{ inputs }}?",
        model=FunctionModel(brain),
    )
    records = [
        LabeledRecord(
            id=f"r{i}",
            inputs={"question": f"question {i} " + "context " * 40},
            outputs=f"answer {i} " * 20,
            label=i % 2 == 0,
            rationale="because " * 10,
        )
        for i in range(300)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the brain distills nothing
        old = judge.align(
            records, optimizer=MemAlignOptimizer(embedding_model=HashingEmbedder(384))
        )
    new = old.copy()
    old.add_guideline("marker: OLD")
    new.add_guideline("marker: NEW")
    new.unalign([f"r{i}" for i in range(0, 300, 3)])  # a different size, too
    return old, new


def test_sigkill_during_saves_leaves_the_old_file_or_the_new_one(tmp_path: Path) -> None:
    old, new = two_aligned_judges()
    path = tmp_path / "aligned.json"
    old.save(path)
    started = time.perf_counter()
    for _ in range(5):
        old.save(path)
        new.save(path)
    save_ms = (time.perf_counter() - started) / 10 * 1000
    rng = random.Random(20240601)
    seen: Counter[str] = Counter()

    def save_forever() -> None:
        while True:
            old.save(path)
            new.save(path)

    for _ in range(20):
        pid = fork(save_forever)
        time.sleep(rng.uniform(0.002, 0.2))
        status = kill(pid)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        loaded = AlignedJudge.load(path)  # raises on a torn or half-written file
        markers = [g.text for g in loaded.guidelines if g.text.startswith("marker:")]
        assert markers in (["marker: OLD"], ["marker: NEW"]), markers
        expected = old if markers == ["marker: OLD"] else new
        assert loaded.record_ids == expected.record_ids
        seen[markers[0]] += 1
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name != "aligned.json")
    assert all(re.fullmatch(r"\.aligned\.json\..+\.tmp", name) for name in leftovers), leftovers
    assert sum(seen.values()) == 20
    REPORT["saves"] = {
        "kills": 20,
        "torn": 0,
        "loaded": dict(seen),
        "temp_files_left": len(leftovers),
        "save_ms": round(save_ms, 1),
        "file_kb": path.stat().st_size // 1024,
    }
    # A stale temporary file from a killed writer does not disturb the next save.
    new.save(path)
    assert [g.text for g in AlignedJudge.load(path).guidelines][-1] == "marker: NEW"


# -- GEPA resume ---------------------------------------------------------------------------------

KEYWORDS = ["alpha", "beta", "gamma", "alpha", "beta", "delta", "alpha", "gamma", "beta", "eps"]
TRAIN = [
    {"inputs": {"question": f"q-{i}"}, "expectations": {"keyword": k}}
    for i, k in enumerate(KEYWORDS)
]
VAL = [
    {"inputs": {"question": f"v-{i}"}, "expectations": {"keyword": k}}
    for i, k in enumerate(KEYWORDS[:6])
]
SEED = {"main": "Answer {{question}}."}
_CURRENT = re.compile(r"Its current text:\n\n```\n(.*?)\n```", re.DOTALL)


def reflector() -> FunctionModel:
    """Adds the most-requested missing keyword (deterministic)."""

    def reply(request: ModelRequest) -> str:
        match = _CURRENT.search(request.last_user)
        assert match
        missing = Counter(re.findall(r"MISSING keyword <(\w+)>", request.last_user))
        if not missing:
            return f"```\n{match.group(1)} Be concise.\n```"
        keyword = sorted(missing.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        return f"```\n{match.group(1)} Mention {keyword}.\n```"

    return FunctionModel(reply)


class LoggingEval:
    """The keyword eval_fn. Each finished call appends one line per record to ``log``
    (``<prompts key> <question>``) with a single write; ``die_at`` SIGKILLs the process at
    the start of that call; ``delay_s`` slows every record down."""

    def __init__(self, log: Path, *, die_at: int | None = None, delay_s: float = 0.0) -> None:
        self.log, self.die_at, self.delay_s, self.calls = log, die_at, delay_s, 0

    def __call__(
        self, prompts: dict[str, str], dataset: Sequence[dict[str, Any]]
    ) -> list[EvaluationResultRecord]:
        self.calls += 1
        if self.calls == self.die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        results = []
        for record in dataset:
            time.sleep(self.delay_s)
            keyword = record["expectations"]["keyword"]
            hit = keyword in prompts["main"]
            results.append(
                EvaluationResultRecord(
                    inputs=record["inputs"],
                    outputs="x",
                    expectations=record["expectations"],
                    score=float(hit),
                    rationales={"judge": "ok" if hit else f"MISSING keyword <{keyword}>"},
                    individual_scores={"judge": float(hit)},
                )
            )
        key = prompts_key(prompts)
        lines = "".join(f"{key} {r['inputs']['question']}\n" for r in dataset)
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return results


def run_gepa(eval_fn: LoggingEval, run_dir: Path | None) -> Any:
    optimizer = GEPA(
        reflector(), max_metric_calls=60, minibatch_size=3, run_dir=run_dir, progress=False
    )
    return optimizer.optimize(eval_fn, TRAIN, dict(SEED), val_data=VAL)


def logged(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def checkpointed(run_dir: Path) -> set[str]:
    """The (prompts key, question) pairs whose results the checkpoint holds."""
    lines = (run_dir / STATE_FILE).read_text().splitlines()
    entries = []
    for number, line in enumerate(lines):
        try:
            entries.append(json.loads(line))
        except ValueError:
            assert number == len(lines) - 1, "only the last line can be torn by a kill"
    return {
        f"{entry['key']} {entry['record']['inputs']['question']}"
        for entry in entries
        if entry["kind"] == "cache"
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, int]:
    log = tmp_path_factory.mktemp("reference") / "log"
    result = run_gepa(LoggingEval(log), None)
    return result, len(logged(log))


@pytest.mark.parametrize("die_at", [1, 2, 3, 5, 8, 13])
def test_gepa_killed_mid_run_resumes_without_repeating_a_finished_metric_call(
    tmp_path: Path, die_at: int, reference: tuple[Any, int]
) -> None:
    expected, expected_calls = reference
    run_dir, log = tmp_path / "run", tmp_path / "log"
    pid = fork(lambda: run_gepa(LoggingEval(log, die_at=die_at), run_dir))
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    before = logged(log)
    assert len(before) == len(set(before))
    if before:
        assert checkpointed(run_dir) == set(before), "every finished call is on disk"

    resumed = run_gepa(LoggingEval(log), run_dir)
    after = logged(log)
    repeated = [pair for pair, n in Counter(after).items() if n > 1]
    assert repeated == [], f"paid twice: {repeated}"
    assert len(after) == resumed.details["metric_calls_used"] == expected_calls
    assert resumed.details["resumed"] is bool(before)
    assert resumed.optimized_prompts == expected.optimized_prompts
    assert resumed.details["candidates"] == expected.details["candidates"]
    REPORT.setdefault("gepa_kills", []).append(
        {"died_at_call": die_at, "finished_before": len(before), "repeated": 0}
    )


def test_gepa_killed_at_a_random_moment_loses_at_most_the_call_in_flight(
    tmp_path: Path, reference: tuple[Any, int]
) -> None:
    _, expected_calls = reference
    rng = random.Random(7)
    mid_run = 0
    for attempt in range(3):
        run_dir, log = tmp_path / f"run{attempt}", tmp_path / f"log{attempt}"
        pid = fork(lambda: run_gepa(LoggingEval(log, delay_s=0.004), run_dir))  # noqa: B023
        time.sleep(rng.uniform(0.05, 0.25))
        kill(pid)
        before = logged(log)
        mid_run += 0 < len(before) < expected_calls
        saved = checkpointed(run_dir) if (run_dir / STATE_FILE).exists() else set()
        assert saved <= set(before)
        in_flight = set(before) - saved  # finished by eval_fn, killed before the checkpoint
        assert len(in_flight) <= len(VAL), in_flight

        resumed = run_gepa(LoggingEval(log), run_dir)
        resumed_pairs = logged(log)[len(before) :]
        assert not saved & set(resumed_pairs), "a checkpointed result was paid for again"
        assert len(set(resumed_pairs) & set(before)) == len(set(resumed_pairs) & in_flight)
        assert resumed.details["metric_calls_used"] == len(set(logged(log)))
        REPORT.setdefault("gepa_random_kills", []).append(
            {"finished_before": len(before), "checkpointed": len(saved), "redone": len(in_flight)}
        )
    assert mid_run > 0, "no kill landed mid-run, so nothing was tested"
