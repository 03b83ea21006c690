"""Interoperability: judgealign against a real OpenAI-compatible server it did not write.

The server is llama-cpp-python's ``llama_cpp.server`` serving SmolLM2-135M (see
``realserver_support``); every test skips when it is not installed.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realserver_support import LlamaServer

# The fixtures (llama_server, server_key) live in realserver_support, shared with other suites.
pytest_plugins = ("realserver_support",)


def test_server_fixture_serves_the_model(llama_server: LlamaServer) -> None:
    with urllib.request.urlopen(f"{llama_server.base_url}/models", timeout=10) as reply:
        models = json.loads(reply.read())
    assert [m["id"] for m in models["data"]] == ["smollm2"]
