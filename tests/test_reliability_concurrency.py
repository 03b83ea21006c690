"""Concurrency: 32 threads judge with one aligned judge while others add expert feedback.

Nothing is lost (every call returns its feedback, every record aligned is in memory), no
exception escapes, and every judgment saw one consistent memory snapshot.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

from judgealign import (
    AlignedJudge,
    Feedback,
    HashingEmbedder,
    LabeledRecord,
    MemAlignOptimizer,
    make_judge,
)
from judgealign.testing import ChatRequest, FakeOpenAIServer, FunctionModel, ModelRequest

_IDS = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)
REPORT: dict[str, Any] = {}


def brain(request: ModelRequest | ChatRequest) -> dict[str, Any]:
    time.sleep(0.001)  # let the threads interleave
    text = request.system if isinstance(request, ModelRequest) else request.text
    if "calibrating an automated evaluator" in text:  # a distillation request
        ids = _IDS.findall(request.last_user)
        return {"guidelines": [{"text": f"Rule from {rid}.", "source_ids": [rid]} for rid in ids]}
    return {"rationale": "ok", "result": True}


def batch(start: int, count: int, tag: str = "r") -> list[LabeledRecord]:
    return [
        LabeledRecord(
            id=f"{tag}{i:04d}",
            inputs={"q": f"question {i}"},
            outputs=f"answer {i}",
            label=i % 2 == 0,
        )
        for i in range(start, start + count)
    ]


def run_threads(targets: list[Callable[[], None]]) -> list[BaseException]:
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(targets))

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                barrier.wait()
                target()
            except BaseException as exc:
                with lock:
                    errors.append(exc)

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def aligned_judge(model: Any) -> AlignedJudge:
    judge = make_judge(
        name="ok", instructions="Is {{ outputs }} right for {{ inputs }}?", model=model
    )
    optimizer = MemAlignOptimizer(
        embedding_model=HashingEmbedder(128),
        retrieval_k=3,
        dedupe_threshold=1.0,
        max_records_per_batch=5,
        max_guidelines=500,  # the scripted brain does not consolidate
    )
    return judge.align(batch(0, 10), optimizer=optimizer)


def test_32_judges_and_two_writers_lose_nothing() -> None:
    model = FunctionModel(brain)
    aligned = aligned_judge(model)
    per_thread, writes = 15, 8
    results: list[list[Feedback]] = [[] for _ in range(32)]
    batch_results: list[int] = []
    added: list[str] = [r.id for r in aligned.records]
    added_lock = threading.Lock()

    def judge_thread(n: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(per_thread):
                results[n].append(aligned(inputs={"q": f"probe {n}-{i}"}, outputs=f"answer {i}"))
            evaluated = aligned.evaluate(
                [{"inputs": {"q": f"batch {n}"}, "outputs": "x"}] * 4, max_workers=2
            )
            assert all(fb.ok for fb in evaluated)
            with added_lock:
                batch_results.append(len(evaluated))

        return run

    def writer(tag: str) -> Callable[[], None]:
        def run() -> None:
            for w in range(writes):
                records = batch(w * 5, 5, tag)
                aligned.align(records)
                with added_lock:
                    added.extend(r.id for r in records)
                if w % 3 == 0:
                    aligned.add_guideline(f"Writer {tag} note {w}.")

        return run

    started = time.perf_counter()
    errors = run_threads([judge_thread(n) for n in range(32)] + [writer("a"), writer("b")])
    elapsed = time.perf_counter() - started
    assert errors == [], errors

    feedback = [fb for thread in results for fb in thread]
    assert len(feedback) == 32 * per_thread and sum(batch_results) == 32 * 4
    assert all(fb.ok and fb.error is None for fb in feedback)
    every_id = set(added)
    assert set(aligned.record_ids) == every_id and len(every_id) == 10 + 2 * writes * 5
    assert not aligned.pending_record_ids
    operations = [r.operation for r in aligned.history]
    assert operations.count("align") == 1 + 2 * writes
    assert operations.count("add_guideline") == 2 * len(range(0, writes, 3))
    sources = {s for g in aligned.guidelines for s in g.source_ids}
    assert sources == every_id, "every aligned record produced its guideline"
    assert sum(g.origin == "user" for g in aligned.guidelines) == 2 * len(range(0, writes, 3))
    guideline_ids = {g.id for g in aligned.guidelines}
    for fb in feedback:
        retrieved = fb.metadata["retrieved_example_ids"]
        assert 1 <= len(retrieved) <= 3 and set(retrieved) <= every_id
        assert set(fb.metadata["guideline_ids"]) <= guideline_ids
    REPORT["threaded"] = {
        "judging_threads": 32,
        "writer_threads": 2,
        "judgments": len(feedback) + sum(batch_results),
        "records_aligned_concurrently": 2 * writes * 5,
        "lost": 0,
        "seconds": round(elapsed, 2),
    }


def test_concurrent_judging_over_http_while_aligning() -> None:
    with FakeOpenAIServer(latency_s=0.002, reply=brain) as server:
        judge = make_judge(
            name="ok",
            instructions="Is {{ outputs }} right for {{ inputs }}?",
            model="openai:/fake",
            base_url=server.base_url,
            inference_params={"api_key": "sk-fake-concurrency"},
        )
        optimizer = MemAlignOptimizer(
            embedding_model=HashingEmbedder(128), retrieval_k=2, max_records_per_batch=4
        )
        aligned = judge.align(batch(0, 4), optimizer=optimizer)
        outcomes: list[Feedback] = []
        lock = threading.Lock()

        def judge_thread() -> None:
            for i in range(6):
                fb = aligned(inputs={"q": f"q{i}"}, outputs="a")
                with lock:
                    outcomes.append(fb)

        def writer() -> None:
            for w in range(1, 5):
                aligned.align(batch(w * 4, 4))

        errors = run_threads([judge_thread] * 32 + [writer])
    assert errors == []
    assert len(outcomes) == 32 * 6 and all(fb.ok for fb in outcomes)
    assert len(aligned.record_ids) == 20 and not aligned.pending_record_ids
    REPORT["http"] = {"judging_threads": 32, "judgments": len(outcomes), "records": 20, "lost": 0}
