"""The public surface: what is exported, and what importing costs."""

from __future__ import annotations

import subprocess
import sys

import judgealign
import judgealign.testing
import optimizers


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, judgealign, optimizers; "
        "print(sorted(m for m in ('litellm', 'mlflow', 'faiss', 'openai', 'onnxruntime') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_all_is_sorted_and_resolvable() -> None:
    for module in (judgealign, judgealign.testing, optimizers):
        names = module.__all__
        assert sorted(names, key=str.casefold) == sorted(names, key=str.casefold)
        assert len(set(names)) == len(names)
        for name in names:
            assert getattr(module, name) is not None


def test_core_names_are_exported() -> None:
    expected = {
        "make_judge",
        "Judge",
        "Feedback",
        "LiteLLMModel",
        "ChatModel",
        "JudgeAlignError",
        "ConfigurationError",
        "ModelError",
        "set_network_allowed",
        "resolve_model",
    }
    assert expected <= set(judgealign.__all__)
    assert {"ScriptedModel", "FunctionModel", "FakeOpenAIServer"} <= set(judgealign.testing.__all__)


def test_cli_help_answers() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "judgealign", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "judgealign" in out
