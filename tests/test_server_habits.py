"""Verdicts a real server can keep (issue 22), against FakeOpenAIServer on 127.0.0.1.

Real OpenAI-compatible servers differ from an ideal one: a grammar-based server ignores
``minimum``/``maximum``, a reply with no ``max_tokens`` runs on, some users give the full
chat-completions URL as ``base_url``, and a dead server should produce an error that
says how long we tried. :class:`judgealign.testing.Decoding` imitates the first two.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from judgealign import make_judge
from judgealign.testing import Decoding, FakeOpenAIServer

INSTRUCTIONS = "Rate {{ outputs }} as an answer to {{ inputs }} from 1 (wrong) to 5 (right)."
RECORDS = [{"inputs": f"What is {n} + {n}?", "outputs": str(2 * n)} for n in range(10)]


def judge_for(server: FakeOpenAIServer, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"feedback_value_type": int, "value_range": (1, 5), **kwargs}
    params = {"api_key": "sk-fake-key-000", **options.pop("inference_params", {})}
    return make_judge(
        name="score",
        instructions=INSTRUCTIONS,
        model="openai:/fake",
        base_url=options.pop("base_url", server.base_url),
        inference_params=params,
        **options,
    )


@pytest.fixture
def grammar_server() -> Iterator[FakeOpenAIServer]:
    """A server that enforces a schema's types and enums but not its numeric bounds."""
    with FakeOpenAIServer(decoding=Decoding(schema_bounds="ignored")) as server:
        yield server


# -- 1. integer ranges the grammar can enforce ------------------------------------------


def test_an_int_range_judge_gets_verdicts_in_range_from_a_server_that_ignores_bounds(
    grammar_server: FakeOpenAIServer,
) -> None:
    result = judge_for(grammar_server).evaluate(RECORDS, max_workers=4)

    assert result.errors == []
    assert all(1 <= value <= 5 for value in result.values)
    sent = grammar_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert sent["properties"]["result"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 5,
        "enum": [1, 2, 3, 4, 5],
        "description": "The verdict.",
    }


def test_a_range_too_wide_for_an_enum_keeps_its_bounds_and_is_still_checked(
    grammar_server: FakeOpenAIServer,
) -> None:
    judge = judge_for(grammar_server, value_range=(0, 256))  # 257 integers: past the enum bound

    feedback = judge(inputs="q", outputs="a")

    sent = grammar_server.requests[0].body["response_format"]["json_schema"]["schema"]
    assert "enum" not in sent["properties"]["result"]
    assert sent["properties"]["result"]["maximum"] == 256
    # The grammar-like server answered out of range twice: an error, never a clamped value.
    assert feedback.value is None
    assert "outside the declared range" in (feedback.error or "")
