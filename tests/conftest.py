"""Test-session setup: offline by construction.

* Environment variables keep litellm and MLflow from phoning home.
* An audit hook refuses every socket connection to a non-loopback address, so a test that
  would reach the internet fails loudly instead of hanging or passing by luck.
* judgealign's own switch forbids real network model calls, and retry waits are zeroed.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-cache-"))
os.environ.pop("JUDGEALIGN_MODEL", None)

import judgealign
from judgealign.testing import no_retry_waits

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BLOCKED: list[str] = []


def _is_loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _network_guard(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_loopback(host):
            BLOCKED.append(str(address))
            raise ConnectionRefusedError(f"test network guard: outside connection to {address}")


sys.addaudithook(_network_guard)
judgealign.set_network_allowed(False)


@pytest.fixture(autouse=True)
def _fast_retries() -> Iterator[None]:
    with no_retry_waits(timeout_s=10.0):
        yield


@pytest.fixture
def shared_data() -> Path:
    """The shared third-party data folder; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


_REPORTING_MODULES = (
    "test_reliability_concurrency",
    "test_reliability_crash",
    "test_reliability_faults",
)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show what the reliability tests measured (their ``REPORT`` dicts), when they ran.

    The measurements are a report, not a test: each check on them lives in the test that
    produced them.
    """
    import json

    for name in _REPORTING_MODULES:
        report = getattr(sys.modules.get(name), "REPORT", None)
        if report:
            terminalreporter.write_line(f"{name}: {json.dumps(report, default=str)}")


@pytest.fixture(autouse=True)
def _fresh_negotiation() -> Iterator[None]:
    """Each test starts with no structured-output rung or context window remembered."""
    from judgealign.judges._judge import CONTEXT_WINDOWS
    from judgealign.models._structured import forget_structured_rungs

    forget_structured_rungs()
    CONTEXT_WINDOWS.forget()
    yield
