"""Interoperability: judgealign against a real OpenAI-compatible server it did not write.

The server is llama-cpp-python's ``llama_cpp.server`` serving SmolLM2-135M on 127.0.0.1
(see ``realserver_support``), in its default configuration unless a test says otherwise:
a 2,048-token context, no embeddings, ``response_format`` limited to ``text`` and
``json_object`` (a ``json_schema`` request is answered with HTTP 500). Every test skips
when the server is not installed; the DeFacto ones also skip without the shared data.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

from judgealign import (
    LabeledRecord,
    MemAlignOptimizer,
    ModelCallError,
    RetryPolicy,
    get_default_retry_policy,
    make_judge,
    set_default_retry_policy,
)
from judgealign.models._structured import structured_rung

if TYPE_CHECKING:
    from realserver_support import LlamaServer

# The fixtures (llama_server, server_key) live in realserver_support, shared with other suites.
pytest_plugins = ("realserver_support",)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("server_key", "patient_retries")]

INSTRUCTIONS = "Is the summary {{ outputs }} factually consistent with the document {{ inputs }}?"
DOCUMENT = (
    "The council approved the new library on Tuesday. Construction starts in May and the "
    "building should open in two years, the mayor said."
)


@pytest.fixture(params=["direct", "litellm"])
def route(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "litellm":
        monkeypatch.setenv("JUDGEALIGN_DIRECT_HTTP", "0")
    return str(request.param)


@pytest.fixture
def patient_retries() -> Iterator[None]:
    """Long timeouts (the suite shortens them to 10 s) and real backoff. The server answers
    one request at a time on the CPU; on a busy machine a judge prompt can take minutes,
    and a request given up on would still hold the queue. The backoff lets a restarting
    server be waited for."""
    previous = get_default_retry_policy()
    set_default_retry_policy(
        RetryPolicy(
            max_attempts=8, base_delay_s=0.5, max_delay_s=4.0, timeout_s=600.0, deadline_s=3600.0
        )
    )
    yield
    set_default_retry_policy(previous)


def judge_on(server: LlamaServer, value_type: Any = bool, **kwargs: Any) -> Any:
    return make_judge(
        name="consistent",
        instructions=INSTRUCTIONS,
        model=server.model,
        base_url=server.base_url,
        feedback_value_type=value_type,
        **kwargs,
    )


def test_server_fixture_serves_the_model(llama_server: LlamaServer) -> None:
    with urllib.request.urlopen(f"{llama_server.base_url}/models", timeout=10) as reply:
        models = json.loads(reply.read())
    assert [m["id"] for m in models["data"]] == ["smollm2"]


def test_bool_judge_negotiates_json_object_on_both_routes(
    llama_server: LlamaServer, route: str
) -> None:
    judge = judge_on(llama_server)
    fb = judge(inputs=DOCUMENT, outputs="The library opens in two years.")
    assert fb.error is None and isinstance(fb.value, bool), fb.error
    assert structured_rung(judge.model) == "json_object"


@pytest.mark.parametrize(
    ("value_type", "value_range", "check"),
    [
        (str, None, lambda v: isinstance(v, str) and v != ""),
        (Literal["yes", "no"], None, lambda v: v in ("yes", "no")),
    ],
    ids=["str", "literal"],
)
def test_every_verdict_type_gets_a_value(
    llama_server: LlamaServer, value_type: Any, value_range: Any, check: Any
) -> None:
    judge = judge_on(llama_server, value_type, value_range=value_range)
    fb = judge(inputs=DOCUMENT, outputs="The library opens in two years.")
    assert fb.error is None and check(fb.value), fb.error


@pytest.mark.parametrize(
    ("value_type", "value_range"), [(int, (1, 5)), (float, (0.0, 1.0))], ids=["int", "float"]
)
def test_ranged_judges_get_values_or_name_the_range(
    llama_server: LlamaServer, value_type: Any, value_range: Any
) -> None:
    # llama.cpp's grammar ignores a schema's minimum/maximum (an int range is also sent as
    # an enum, which it enforces; a float range cannot be): a verdict out of range is
    # repaired once, else reported; never clamped into range.
    judge = judge_on(llama_server, value_type, value_range=value_range)
    fb = judge(inputs=DOCUMENT, outputs="The library opens in two years.")
    low, high = value_range
    in_range = isinstance(fb.value, value_type) and low <= fb.value <= high
    assert in_range or "outside the declared range" in (fb.error or ""), fb.error


def test_a_document_longer_than_the_window_is_cut_to_fit_it(
    llama_server: LlamaServer, route: str
) -> None:
    long_document = " ".join([DOCUMENT] * 120)  # about 5,000 tokens: past the 2,048 window
    judge = judge_on(llama_server)
    with pytest.warns(UserWarning, match="2,048-token context window"):
        fb = judge(inputs=long_document, outputs="The library opens in two years.")
    assert fb.error is None and isinstance(fb.value, bool), fb.error
    assert fb.metadata["truncated_fields"] == ["inputs"]


def labelled(count: int) -> list[LabeledRecord]:
    claims = ["The library opens in two years.", "The library opened on Tuesday."]
    return [
        LabeledRecord(id=f"r{i}", inputs=DOCUMENT, outputs=claims[i % 2], label=i % 2 == 0)
        for i in range(count)
    ]


def embedder_for(server: LlamaServer) -> Any:
    from judgealign import LiteLLMEmbedder

    return LiteLLMEmbedder(server.model, api_base=server.base_url)


def test_default_server_refuses_embeddings_with_the_fix(llama_server: LlamaServer) -> None:
    from memalign_support import Brain

    # Only the embeddings come from the server: the judge and reflection are scripted.
    brain = Brain()
    judge = make_judge(name="consistent", instructions=INSTRUCTIONS, model=brain.model)
    optimizer = MemAlignOptimizer(
        reflection_model=brain.model, embedding_model=embedder_for(llama_server)
    )
    started = time.monotonic()
    with pytest.raises(ModelCallError, match="--embedding true") as info:
        optimizer.align(judge, labelled(4))
    assert info.value.attempts == 1 and time.monotonic() - started < 60


@pytest.mark.timeout(1800)
def test_alignment_with_the_embeddings_of_a_server_started_with_embedding() -> None:
    from memalign_support import Brain
    from realserver_support import running_llama_server

    with running_llama_server("--embedding", "true") as server:
        embedder = embedder_for(server)
        # It answers one text with per-token vectors, and fails a batch of two
        # ("llama_decode returned -1"): the embedder pools, and sends texts one by one.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vectors = embedder.embed(["The council approved the library.", "Rain in May."])
            same = embedder.embed(["The council approved the library."])
            brain = Brain()
            judge = make_judge(name="consistent", instructions=INSTRUCTIONS, model=brain.model)
            optimizer = MemAlignOptimizer(reflection_model=brain.model, embedding_model=embedder)
            aligned = optimizer.align(judge, labelled(4))
            fb = aligned(inputs=DOCUMENT, outputs="The library opens in two years.")
        said = " ".join(str(w.message) for w in caught)
    assert "one vector per token" in said and "one text per request" in said
    assert vectors.shape[0] == 2 and vectors.shape[1] == embedder.dimension > 0
    assert float(vectors[0] @ same[0]) == pytest.approx(1.0, abs=1e-5)
    assert fb.error is None and fb.metadata["retrieved_example_ids"], fb.metadata


@pytest.mark.timeout(1800)
def test_a_server_killed_and_restarted_mid_batch_loses_no_record() -> None:
    from realserver_support import running_llama_server

    with running_llama_server() as server:
        judge = judge_on(server)
        records = [{"inputs": DOCUMENT, "outputs": f"Claim number {i}."} for i in range(4)]
        restarted = threading.Event()

        def crash_after_first_answer() -> None:
            deadline = time.monotonic() + 300
            while 'POST /v1/chat/completions HTTP/1.1" 200' not in server.log_text():
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            server.kill()
            time.sleep(1.0)
            server.start()
            restarted.set()

        killer = threading.Thread(target=crash_after_first_answer, daemon=True)
        killer.start()
        result = judge.evaluate(records, max_workers=1)
        killer.join(timeout=120)
    assert restarted.is_set()
    assert result.errors == [], [fb.error for fb in result]
    assert all(isinstance(v, bool) for v in result.values)


def defacto(shared_data: Path, count: int) -> list[dict[str, Any]]:
    lines = (shared_data / "defacto" / "defacto.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines[:count]]
    return [{"id": r["id"], "inputs": r["inputs"], "outputs": r["outputs"]} for r in rows]


@pytest.mark.timeout(3600)  # 20 judge prompts of ~700 tokens on a CPU-bound server
def test_twenty_defacto_records_get_values(
    llama_server: LlamaServer, route: str, shared_data: Path
) -> None:
    judge = judge_on(llama_server)
    result = judge.evaluate(defacto(shared_data, 20), max_workers=1)
    assert result.errors == [], [fb.error for fb in result if fb.error]
    assert all(isinstance(v, bool) for v in result.values)
