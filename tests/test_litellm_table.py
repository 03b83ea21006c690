"""The direct route's answers for unlisted models, known without importing litellm, agree
with litellm's own (judgealign/models/_litellm_table.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from judgealign.models import _litellm as route_module
from judgealign.models._litellm_table import (
    PASSED_UNCHANGED,
    answered_without_litellm,
    unknown_to_litellm,
)

ROOT = Path(__file__).resolve().parents[1]

UNLISTED = [
    "fake",
    "llama-3.1-8b-instruct",
    "Qwen/Qwen2.5-7B-Instruct",
    "smollm2",
    "mistral-7b",
    "o9-custom",
    "o1-mini-2099-01-01",
    "deepseek-r1-distill",
]
PARAMS: list[dict[str, Any]] = [
    {},
    {"temperature": 0.0, "max_tokens": 4096, "seed": 7},
    {"top_p": 0.9, "stop": ["\n", "END"], "presence_penalty": 0.5, "frequency_penalty": -0.5},
    {"max_completion_tokens": 64, "logit_bias": {"50256": -100}},
]


def _litellm_plan(name: str, params: dict[str, Any]) -> tuple[dict[str, Any], Any, bool]:
    """(mapped parameters, Responses-API mode, priced) as litellm itself answers."""
    import litellm

    mapped = dict(
        litellm.utils.get_optional_params(model=name, custom_llm_provider="openai", **params)
    )
    mapped.pop("stream", None)
    extra = mapped.pop("extra_body", None) or {}
    mapped.update(extra)
    info, _ = litellm.main.responses_api_bridge_check(
        model=name, custom_llm_provider="openai", api_base="http://127.0.0.1:9/v1"
    )
    try:
        row = litellm.get_model_info(model=name, custom_llm_provider="openai")
        priced = bool(row.get("input_cost_per_token") or row.get("output_cost_per_token"))
    except Exception:
        priced = False
    return mapped, info.get("mode"), priced


@pytest.mark.parametrize("name", UNLISTED)
def test_unlisted_models_get_litellms_own_answers(name: str) -> None:
    assert set[str]().union(*PARAMS) == PASSED_UNCHANGED  # every parameter passed is checked
    for params in PARAMS:
        assert answered_without_litellm(name, params)
        mapped, mode, priced = _litellm_plan(name, params)
        assert mapped == params, (name, params)
        assert mode != "responses"
        assert not priced


def test_the_same_route_is_planned_with_and_without_litellm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan: Any = getattr(route_module, "_plan_direct_route")  # noqa: B009
    params = {"temperature": 0.0, "max_tokens": 64}
    with_litellm = plan("openai", "fake", params, "sk-test", "http://127.0.0.1:9/v1")
    monkeypatch.setattr(route_module, "_loaded_lib", lambda: None)
    without = plan("openai", "fake", params, "sk-test", "http://127.0.0.1:9/v1")
    assert with_litellm is not None and without is not None
    assert (without.url, without.model, dict(without.params)) == (
        with_litellm.url,
        with_litellm.model,
        dict(with_litellm.params),
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("gpt-4o-mini", {}),  # listed: priced
        ("o1", {}),  # listed, o-series
        ("my-gpt-5-proxy", {"max_tokens": 10}),  # litellm's gpt-5 rules act on the name
        ("ft:gpt-4o-mini:org::abc", {}),  # priced as its base model
        ("fake", {"user": "u1"}),  # litellm drops it
        ("fake", {"reasoning_effort": "low"}),
    ],
)
def test_everything_else_is_left_to_litellm(name: str, params: dict[str, Any]) -> None:
    assert not answered_without_litellm(name, params)


def test_litellm_settings_that_change_its_answers_are_respected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert unknown_to_litellm("fake")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "False")  # litellm fetches its table
    assert not unknown_to_litellm("fake")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("LITELLM_ROUTE_ALL_CHAT_OPENAI_TO_RESPONSES", "true")
    assert not unknown_to_litellm("fake")


def test_listed_openai_chat_models_are_never_answered_here() -> None:
    import litellm

    listed = [
        name
        for name, row in litellm.model_cost.items()
        if row.get("litellm_provider") == "openai" and row.get("mode") == "chat"
    ]
    assert len(listed) > 20
    assert not [name for name in listed if answered_without_litellm(name, {})]


_SCRIPT = """
import json, sys
from judgealign import make_judge
from judgealign.testing import FakeOpenAIServer
with FakeOpenAIServer() as server:
    judge = make_judge(
        name="ok", instructions="Is {{ outputs }} polite?", feedback_value_type=bool,
        model="openai:/fake", base_url=server.base_url,
        inference_params=json.loads(sys.argv[1]),
    )
    feedback = judge(outputs="Thank you.")
print(json.dumps({"value": feedback.value, "error": feedback.error,
                  "cost": (feedback.metadata or {}).get("cost_usd"),
                  "litellm": "litellm" in sys.modules}))
"""


@pytest.mark.parametrize(
    ("params", "imports_litellm"), [({"temperature": 0.0}, False), ({"user": "u1"}, True)]
)
def test_a_judge_on_an_unlisted_model_never_imports_litellm(
    params: dict[str, Any], imports_litellm: bool
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "OPENAI_API_KEY": "sk-test",
    }
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, json.dumps(params)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] is None
    assert result["value"] is not None
    assert result["cost"] is None
    assert result["litellm"] is imports_litellm
