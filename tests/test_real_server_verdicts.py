"""Verdicts a real grammar-based server keeps: an int 1-5 judge on llama-cpp-python's server.

llama.cpp builds a grammar from the JSON schema that enforces an ``enum`` but not
``minimum``/``maximum``; the judge sends a small integer range as an enum (see
``judgealign.judges._values``), so every verdict SmolLM2 gives is in range. The server comes
from ``realserver_support`` (default configuration); every test skips when it is not
installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from judgealign import make_judge

if TYPE_CHECKING:
    from realserver_support import LlamaServer

pytest_plugins = ("realserver_support",)

INSTRUCTIONS = (
    "Rate from 1 (wrong) to 5 (fully correct) how well {{ outputs }} answers {{ inputs }}."
)
SHORT_RECORDS = [
    {"inputs": "What is the capital of France?", "outputs": "Paris"},
    {"inputs": "What is 2 + 2?", "outputs": "5"},
    {"inputs": "Who wrote Hamlet?", "outputs": "William Shakespeare"},
    {"inputs": "What colour is a clear daytime sky?", "outputs": "Green"},
    {"inputs": "How many legs does a spider have?", "outputs": "Eight"},
    {"inputs": "What is the boiling point of water at sea level?", "outputs": "100 degrees C"},
    {"inputs": "Which planet is closest to the Sun?", "outputs": "Jupiter"},
    {"inputs": "What is the chemical symbol for gold?", "outputs": "Au"},
    {"inputs": "How many days are in a leap year?", "outputs": "366"},
    {"inputs": "What language is spoken in Brazil?", "outputs": "Spanish"},
]


def test_an_int_1_to_5_judge_gets_10_of_10_verdicts_in_range(
    llama_server: LlamaServer, server_key: None
) -> None:
    records = SHORT_RECORDS
    judge = make_judge(
        name="score",
        instructions=INSTRUCTIONS,
        model=llama_server.model,
        base_url=llama_server.base_url,
        feedback_value_type=int,
        value_range=(1, 5),
        # Greedy decoding: the run is repeatable; the enum, not luck, keeps values in range.
        inference_params={"temperature": 0, "seed": 0},
    )

    result = judge.evaluate(records, max_workers=2)

    assert [fb.error for fb in result] == [None] * 10
    assert all(isinstance(v, int) and 1 <= v <= 5 for v in result.values), result.values
