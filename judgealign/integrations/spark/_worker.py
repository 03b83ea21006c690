"""What runs in each executor's Python worker: rebuild the judge once, judge a task's
batches with a thread pool under the task's share of the rate limit, and keep every
verdict in a per-executor cache so that a retried task (or a second action on the same
result) does not pay for rows it already judged.

Nothing here imports pyspark; pandas arrives with the batches Spark hands to the UDF.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from judgealign.judges._feedback import Feedback
from judgealign.judges._judge import Judge
from judgealign.memalign._aligned import AlignedJudge
from judgealign.models.rate_limit import RateLimit

__all__ = ["RESULT_FIELDS", "TaskSettings", "judge_batches", "payload_of", "rebuild_judge"]

# The struct's fields, in order; the value's Spark type depends on the judge.
RESULT_FIELDS = (
    "value",
    "rationale",
    "error",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cost_usd",
    "latency_ms",
    "cached",
    "memorised_record_id",
)
_KINDS = ("judge", "aligned")
_WAVES_PER_CHUNK = 32
_JUDGES_KEPT = 2
_judges: dict[str, Any] = {}
_judges_lock = threading.Lock()
# Cache files older than this are removed when a new run opens its cache (runs are
# distinguished by id, so an old file is never read again).
_STALE_S = 24 * 3600.0


@dataclass(frozen=True)
class TaskSettings:
    """Everything a task needs besides the judge (small; travels with the UDF).

    Attributes:
        judge_key: the judge definition's digest: the worker's judge cache key.
        run_id: identifies one ``evaluate_spark`` call; the verdict cache is per run.
        variables: the template variables the UDF's arguments carry, in order.
        concurrency: records judged at once in one task.
        requests_per_minute: this task's share of the request limit, if any.
        tokens_per_minute: this task's share of the token limit, if any.
        cache_dir: where executors keep verdict caches (``None``: the temp directory).
    """

    judge_key: str
    run_id: str
    variables: tuple[str, ...]
    concurrency: int
    requests_per_minute: float | None
    tokens_per_minute: float | None
    cache_dir: str | None


def payload_of(judge: Judge | AlignedJudge) -> tuple[bytes, str]:
    """The judge's saved definition as bytes, and its digest."""
    kind = "aligned" if isinstance(judge, AlignedJudge) else "judge"
    text = json.dumps({"kind": kind, "data": judge.to_dict()}, separators=(",", ":"))
    raw = text.encode("utf-8")
    return raw, hashlib.sha256(raw).hexdigest()


def rebuild_judge(payload: bytes, key: str) -> Judge | AlignedJudge:
    """The judge of ``payload``, built once per Python worker (later tasks reuse it).

    A worker keeps the last few judges only: an aligned judge with a large memory holds
    its records and vectors, and a long-lived worker may serve many jobs."""
    with _judges_lock:
        judge = _judges.pop(key, None)
        if judge is None:
            saved = json.loads(payload.decode("utf-8"))
            kind, data = saved["kind"], saved["data"]
            assert kind in _KINDS, kind
            judge = AlignedJudge.from_dict(data) if kind == "aligned" else Judge.from_dict(data)
            while len(_judges) >= _JUDGES_KEPT:
                _judges.pop(next(iter(_judges)))  # the least recently used
        _judges[key] = judge  # (re)inserted last: most recently used
        return judge


def judge_batches(
    payload: bytes, settings: TaskSettings, batches: Iterator[Sequence[Any]]
) -> Iterator[dict[str, list[Any]]]:
    """Judge one task's batches; each batch is one column of JSON text per variable (the
    cell ``{"v": <value>}``), each result the struct's columns."""
    judge = rebuild_judge(payload, settings.judge_key)
    limit = (
        RateLimit(settings.requests_per_minute, settings.tokens_per_minute)
        if settings.requests_per_minute or settings.tokens_per_minute
        else None
    )
    with _VerdictCache.open(settings) as cache:
        for columns in batches:
            yield _judge_batch(judge, settings, limit, cache, columns)


def _judge_batch(
    judge: Judge | AlignedJudge,
    settings: TaskSettings,
    limit: RateLimit | None,
    cache: _VerdictCache,
    columns: Sequence[Any],
) -> dict[str, list[Any]]:
    records = [_record(settings.variables, cells) for cells in zip(*columns, strict=True)]
    keys = [_record_key(settings.judge_key, record) for record in records]
    rows: list[dict[str, Any] | None] = list(cache.get_many(keys))
    todo = [i for i, row in enumerate(rows) if row is None]
    # Judged and cached chunk by chunk: a task that dies loses at most one chunk's
    # verdicts, and a chunk is long enough (32 waves of calls) that waiting for its
    # slowest call costs little.
    size = settings.concurrency * _WAVES_PER_CHUNK
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        result = judge.evaluate(
            [records[i] for i in chunk],
            max_workers=settings.concurrency,
            progress=False,
            rate_limit=limit,
        )
        fresh = [_row(feedback) for feedback in result]
        cache.put_many(
            [(keys[i], row) for i, row in zip(chunk, fresh, strict=True) if row["error"] is None]
        )
        for i, row in zip(chunk, fresh, strict=True):
            rows[i] = row
    done = [row for row in rows if row is not None]
    return {name: [row[name] for row in done] for name in RESULT_FIELDS}


def _record(variables: Sequence[str], cells: Sequence[Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, cell in zip(variables, cells, strict=True):
        record[name] = None if cell is None else json.loads(cell).get("v")
    return record


def _record_key(judge_key: str, record: Mapping[str, Any]) -> str:
    text = json.dumps(record, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{judge_key}\n{text}".encode()).hexdigest()


def _row(feedback: Feedback) -> dict[str, Any]:
    meta = feedback.metadata
    return {
        "value": feedback.value,
        "rationale": feedback.rationale if feedback.error is None else None,
        "error": feedback.error,
        "model": meta.get("model"),
        "prompt_tokens": int(meta.get("prompt_tokens", 0)),
        "completion_tokens": int(meta.get("completion_tokens", 0)),
        "cost_usd": meta.get("cost_usd"),
        "latency_ms": float(meta.get("latency_ms", 0.0)),
        "cached": False,
        # An aligned judge's verdict on a record it holds is no held-out evidence.
        "memorised_record_id": meta.get("memorised_record_id"),
    }


class _VerdictCache:
    """Verdicts of one run on one executor, in a SQLite file every Python worker of the
    executor shares (a retried task may land in another worker process)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    @contextlib.contextmanager
    def open(cls, settings: TaskSettings) -> Iterator[_VerdictCache]:
        folder = Path(settings.cache_dir or os.path.join(tempfile.gettempdir(), "judgealign-spark"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{settings.run_id}.sqlite"
        if not path.exists():
            _remove_stale(folder)
        db = sqlite3.connect(str(path), timeout=60.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # A cache: losing its last writes to a power cut costs a re-judged row, while
            # a sync per write would cost milliseconds per verdict.
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, row TEXT)")
            yield cls(db)
        finally:
            db.close()

    def get_many(self, keys: Sequence[str]) -> list[dict[str, Any] | None]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, row FROM verdicts WHERE key IN ({marks})"
            for key, row in self._db.execute(query, chunk):
                found[key] = {**json.loads(row), "cached": True}
        return [found.get(key) for key in keys]

    def put_many(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if rows:  # one transaction per batch (autocommit would commit every row)
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT OR REPLACE INTO verdicts (key, row) VALUES (?, ?)",
                    [(key, json.dumps(row)) for key, row in rows],
                )


def _remove_stale(folder: Path) -> None:
    cutoff = time.time() - _STALE_S
    for old in folder.glob("*.sqlite*"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()
