"""suggest_labels (issue 19, item 6): rank unlabelled records by the judge's uncertainty,
their distance from what is labelled, without near-duplicates in one batch."""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest

from judgealign import ConfigurationError, make_judge, make_jury, suggest_labels
from judgealign.testing import FunctionModel, ModelRequest

TOPICS = ["tax", "rain", "chess", "bread", "orbit", "violin", "glacier", "parsley"]
RECORDS = [
    {"id": f"r{i}", "inputs": f"question about {TOPICS[i]}", "outputs": f"answer {i}"}
    for i in range(len(TOPICS))
]


def _number(request: ModelRequest) -> int:
    return int(request.last_user.split("answer ")[1].split('"')[0].split("\\")[0])


def _judge(name: str, verdict: Any) -> Any:
    def reply(request: ModelRequest) -> dict[str, Any]:
        value = verdict(_number(request))
        if isinstance(value, Exception):
            raise value
        return {"rationale": "r", "result": value}

    return make_judge(
        name=name,
        instructions="Is {{ outputs }} right for {{ inputs }}?",
        feedback_value_type=bool,
        model=FunctionModel(reply, uri=f"test:/{name}"),
    )


def test_a_jury_split_ranks_first() -> None:
    jury = make_jury(
        [
            _judge("a", lambda n: True),
            _judge("b", lambda n: n not in (2, 5)),
            _judge("c", lambda n: n != 5),
        ]
    )
    result = suggest_labels(jury, RECORDS, 2, novelty_weight=0)
    assert [s.id for s in result] == ["r5", "r2"]  # 1 of 3 against, then 1 of 3 against
    assert result[0].verdicts == (True, False, False)
    assert result[0].uncertainty == pytest.approx(1 / 3)
    assert result.usage.calls == 3 * len(RECORDS)


def test_a_single_judge_is_sampled_and_its_unsure_records_rank_first() -> None:
    rng = random.Random(1)
    lock = threading.Lock()

    def coin(n: int) -> bool:
        if n in (1, 6):  # the judge is unsure of these two: a coin toss per sample
            with lock:
                return rng.random() < 0.5
        return n % 2 == 0

    result = suggest_labels(_judge("j", coin), RECORDS, 2, samples=8, novelty_weight=0)
    assert {s.id for s in result} == {"r1", "r6"}
    assert all(s.uncertainty > 0 for s in result)
    assert len(result[0].verdicts) == 8
    assert result.usage.calls == 8 * len(RECORDS)


def test_a_judge_that_never_varies_is_said_and_novelty_ranks() -> None:
    labelled = [{**RECORDS[i], "label": True} for i in range(len(RECORDS)) if i != 3]
    with pytest.warns(UserWarning, match="same verdict in all 3 samples"):
        result = suggest_labels(
            _judge("j", lambda n: True), RECORDS, 8, samples=3, labelled=labelled
        )
    # r3 is the only record unlike anything labelled (the others are labelled themselves).
    assert result[0].id == "r3"
    assert result[0].novelty > 0.05
    assert [s.novelty for s in result[1:]] == pytest.approx([0.0] * 7, abs=1e-9)
    assert all(s.uncertainty == 0 for s in result)


def test_near_duplicates_are_skipped_and_failures_listed() -> None:
    twins = [*RECORDS, {"id": "twin", "inputs": RECORDS[5]["inputs"], "outputs": "answer 5"}]
    jury = make_jury(
        [
            _judge("a", lambda n: RuntimeError("down") if n == 0 else True),
            _judge("b", lambda n: RuntimeError("down") if n == 0 else n != 5),
        ]
    )
    result = suggest_labels(jury, twins, 3, novelty_weight=0)
    assert result[0].id == "r5"
    assert "twin" in result.near_duplicates and "twin" not in {s.id for s in result}
    assert result.failed_ids == ("r0",)
    rows = result.to_rows()
    assert rows[0]["id"] == "r5" and rows[0]["label"] is None and rows[0]["rationale"] == ""
    assert rows[0]["inputs"] == RECORDS[5]["inputs"]
    assert rows[0]["suggestion"]["rank"] == 1
    json.dumps(rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n=0"),
        ({"samples": 1}, "samples=1"),
        ({"temperature": 0}, "temperature=0"),
        ({"max_similarity": 0}, "max_similarity=0"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"n": 2, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        suggest_labels(_judge("j", lambda n: True), RECORDS, **options)


def test_repeated_ids_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="ids repeat"):
        suggest_labels(_judge("j", lambda n: True), [RECORDS[0], RECORDS[0]], 1)


def test_a_uri_judge_is_remade_with_the_sampling_params() -> None:
    judge = make_judge(
        name="j",
        instructions="Is {{ outputs }} right?",
        feedback_value_type=bool,
        model="openai:/gpt-4o-mini",
        inference_params={"max_tokens": 300},
    )
    hot = judge.with_inference_params({"temperature": 1.0, "seed": 3})
    assert hot.inference_params == {"max_tokens": 300, "temperature": 1.0, "seed": 3}
    assert hot.model_uri == judge.model_uri and judge.inference_params == {"max_tokens": 300}
    with pytest.raises(ConfigurationError, match="ChatModel object"):
        _judge("k", lambda n: True).with_inference_params({"temperature": 1.0})


def test_an_aligned_judge_on_a_uri_is_remade_with_its_memory() -> None:
    from judgealign import AlignedJudge

    base = make_judge(
        name="j",
        instructions="Is {{ outputs }} right?",
        feedback_value_type=bool,
        model="openai:/gpt-4o-mini",
    )
    aligned = AlignedJudge(base)
    hot = aligned.with_inference_params({"temperature": 0.7})
    assert isinstance(hot, AlignedJudge) and hot is not aligned
    assert hot.base_judge.inference_params == {"temperature": 0.7}
    assert hot.record_ids == aligned.record_ids and aligned.base_judge.inference_params == {}
    with pytest.raises(ConfigurationError, match="ChatModel object"):
        AlignedJudge(_judge("k", lambda n: True)).with_inference_params({"temperature": 1.0})


def test_a_uri_judge_is_sampled_at_the_temperature_through_the_real_model_path() -> None:
    from judgealign.testing import ChatRequest, FakeOpenAIServer

    seen: list[tuple[object, object]] = []

    def reply(request: ChatRequest) -> dict[str, Any]:
        seen.append((request.body.get("temperature"), request.body.get("seed")))
        record = json.loads(request.last_user.split("<record>\n")[1].split("\n</record>")[0])
        hard = record["outputs"] == "answer 3"
        seed = int(request.body.get("seed") or 0)
        return {"rationale": "r", "result": seed % 2 == 0 if hard else True}

    with FakeOpenAIServer(reply=reply) as server:
        judge = make_judge(
            name="j",
            instructions="Is {{ outputs }} right for {{ inputs }}?",
            feedback_value_type=bool,
            model="openai:/fake",
            base_url=server.base_url,
            inference_params={"api_key": "sk-fake-key-000"},
        )
        result = suggest_labels(judge, RECORDS, 1, samples=4, temperature=0.8, seed=10)
    assert result[0].id == "r3" and result[0].uncertainty == pytest.approx(1.0)
    assert sorted(set(seen)) == [(0.8, 10), (0.8, 11), (0.8, 12), (0.8, 13)]
    assert result.usage.calls == 4 * len(RECORDS) == len(seen)


class _FirstWordsEmbedder:
    """Reads only the first ``max_tokens`` words of a text, as a windowed model does; each
    distinct word gets its own dimension (no hash collisions, the same in every run)."""

    id = "test:first-words"
    dimension = 1024
    max_tokens = 20

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        rows = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for word in text.split()[: self.max_tokens]:
                row[self._slots.setdefault(word, len(self._slots))] += 1.0
        return rows


def test_long_records_that_differ_after_the_window_are_not_near_duplicates() -> None:
    # Eight long documents of the same text, each with its own short output: the judge's
    # view reads both fields, so the outputs keep them apart. One JSON text per record was
    # cut inside the document and made all eight one near-duplicate (one suggestion).
    document = " ".join(f"word{i}" for i in range(400))
    records = [
        {"id": f"d{i}", "inputs": document, "outputs": f"answer {i}"} for i in range(len(TOPICS))
    ]
    jury = make_jury([_judge("a", lambda n: True), _judge("b", lambda n: True)])
    result = suggest_labels(jury, records, 4, embedder=_FirstWordsEmbedder())
    assert len({s.id for s in result}) == 4
    assert result.near_duplicates == ()
