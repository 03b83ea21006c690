"""Shared doubles for the alignment tests: a counting embedder and a scripted reflection
model that tells distillation, consolidation and judging requests apart."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from judgealign import HashingEmbedder, Judge, LabeledRecord, load_jsonl, make_judge
from judgealign.memalign._view import DEFAULT_VIEW, view_texts
from judgealign.testing import FunctionModel, ModelRequest

DEFACTO = Path(__file__).resolve().parents[2] / "shared" / "data" / "defacto" / "defacto.jsonl"
# Our own records (fictional news articles, some of them long and multi-paragraph, each
# with consistent and inconsistent summaries): the core tests run on these, so they never
# depend on the shared data being next to the repository.
FIXTURE = Path(__file__).resolve().parent / "data" / "memalign_records.jsonl"
needs_defacto = pytest.mark.skipif(not DEFACTO.is_file(), reason=f"{DEFACTO} not found")
INSTRUCTIONS = (
    "Is the summary in {{ outputs }} factually consistent with the document in {{ inputs }}? "
    "Answer true when every claim of the summary is supported by the document."
)
_ID_LINE = re.compile(r'^ "id": "([^"]+)",?$', re.MULTILINE)


class CountingEmbedder:
    """A HashingEmbedder that records every text it embeds (thread-safe)."""

    def __init__(self, dimension: int = 256, *, id: str = "counting:/hashing@256") -> None:
        self._inner = HashingEmbedder(dimension)
        self._id = id
        self._lock = threading.Lock()
        self.calls: list[list[str]] = []

    @property
    def id(self) -> str:
        return self._id

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        return self._inner.embed(texts)

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [t for call in self.calls for t in call]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()


def schema_name(request: ModelRequest) -> str:
    fmt = request.response_format
    return fmt["json_schema"]["name"] if fmt else ""


def batch_ids(request: ModelRequest) -> list[str]:
    """The record ids shown in a distillation request."""
    return _ID_LINE.findall(request.last_user)


def distinct_text(seed: str) -> str:
    """A guideline text no other seed's text resembles (random-looking words)."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return "Rule " + " ".join(digest[i : i + 8] for i in range(0, 40, 8)) + "."


def one_guideline_per_record(request: ModelRequest) -> dict[str, Any]:
    """Distillation reply: one distinct guideline for each record, citing it."""
    return {
        "guidelines": [
            {"text": distinct_text(rid), "source_ids": [rid]} for rid in batch_ids(request)
        ]
    }


class Brain:
    """A FunctionModel brain: answers each request kind with a replaceable function."""

    def __init__(
        self,
        *,
        distill: Callable[[ModelRequest], Any] = one_guideline_per_record,
        consolidate: Callable[[ModelRequest], Any] | None = None,
        verdict: Callable[[ModelRequest], Any] | None = None,
    ) -> None:
        self.distill = distill
        self.consolidate = consolidate or (lambda r: {"guidelines": []})
        self.verdict = verdict or (lambda r: {"rationale": "looks consistent", "result": True})
        self.model = FunctionModel(self)

    def __call__(self, request: ModelRequest) -> Any:
        name = schema_name(request)
        if name == "DistilledGuidelines":
            return self.distill(request)
        if name == "ConsolidatedGuidelines":
            return self.consolidate(request)
        return self.verdict(request)

    def requests(self, kind: str) -> list[ModelRequest]:
        wanted = {
            "distill": "DistilledGuidelines",
            "consolidate": "ConsolidatedGuidelines",
            "verdict": "Verdict",
        }[kind]
        return [r for r in self.model.requests if schema_name(r) == wanted]


def judge_for(model: Any) -> Judge:
    return make_judge(name="consistency", instructions=INSTRUCTIONS, model=model)


def fixture_records(judge: Judge, count: int, *, start: int = 0) -> list[LabeledRecord]:
    """``count`` records of the shipped fixture from line ``start``, labels coerced."""
    loaded = load_jsonl(FIXTURE, judge=judge, limit=start + count, strict=True)
    records = list(loaded.records[start : start + count])
    assert len(records) == count, f"the fixture has only {len(records)} records from {start}"
    return records


def defacto_records(judge: Judge, count: int, *, start: int = 0) -> list[LabeledRecord]:
    """``count`` DeFacto records from line ``start``, labels coerced for ``judge``."""
    loaded = load_jsonl(DEFACTO, judge=judge, limit=start + count, strict=True)
    return list(loaded.records[start : start + count])


def record_view(*records: LabeledRecord) -> list[str]:
    """The texts the default view embeds for ``records`` (``judge_for``'s judge, a
    CountingEmbedder), in order: one per judge field of each record.

    The judge's instructions name ``outputs`` first, so its fields come in that order.
    """
    embedder = CountingEmbedder()
    return [
        text
        for record in records
        for text in view_texts(
            DEFAULT_VIEW, {"outputs": record.outputs, "inputs": record.inputs}, embedder
        )
    ]
