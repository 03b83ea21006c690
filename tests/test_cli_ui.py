"""``judgealign ui``: MLflow's UI on the project's store, started offline, stopped cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import ui_support
from click.testing import CliRunner

from judgealign import ConfigurationError
from judgealign.cli import _ui as _cli_ui
from judgealign.cli._main import cli
from judgealign.cli._ui import UiServer, choose_port, resolve_store, server_environment

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_store(folder: Path) -> str:
    from judgealign.integrations.mlflow._client import StoreClient

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    StoreClient(uri).experiment_id("judgealign-ui-test")
    return uri


def test_the_server_gets_the_local_cost_map_even_when_the_user_did_not_set_it() -> None:
    env = server_environment({"PATH": "/bin", "LITELLM_LOCAL_MODEL_COST_MAP": "False"})
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true" and env["DO_NOT_TRACK"] == "true"
    assert server_environment({"DO_NOT_TRACK": "false"})["DO_NOT_TRACK"] == "false"


def test_the_server_runs_with_this_interpreter_on_the_given_store() -> None:
    server = UiServer("sqlite:////data/mlflow.db", "0.0.0.0", 5123, 1)
    assert server.command()[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert "sqlite:////data/mlflow.db" in server.command()
    assert server.url == "http://127.0.0.1:5123"


def newcomer_env() -> dict[str, str]:
    """This process's environment without what other tests may have set for MLflow (a
    tracking URI, an experiment), and without the variable ``ui`` must provide itself."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLFLOW_") and k != "LITELLM_LOCAL_MODEL_COST_MAP"
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def test_a_missing_store_is_an_error_not_a_new_empty_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "judgealign", "ui"],
        cwd=tmp_path,
        env=newcomer_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: No MLflow store at") and "judgealign demo" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_server_uri_is_not_started_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    with pytest.raises(ConfigurationError, match="is a server already"):
        resolve_store(None)


def test_a_busy_port_is_named(tmp_path: Path) -> None:
    uri = make_store(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["ui", "--backend-store-uri", uri, "--port", str(port)], standalone_mode=True
        )
    assert result.exit_code == 2
    assert "--port" in result.output and str(port) in result.output


def test_a_taken_default_port_moves_to_the_next_free_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = int(busy.getsockname()[1])
        monkeypatch.setattr(_cli_ui, "DEFAULT_PORT", taken)
        chosen = choose_port("127.0.0.1", None)
    assert taken < chosen < taken + 20
    assert f"Port {taken} is in use; using {chosen}." in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_signal", "background"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["ctrl-c", "term", "sigint-to-a-background-job"],
)
def test_ui_starts_answers_http_and_stops_with_its_workers(
    tmp_path: Path, stop_signal: int, background: bool
) -> None:
    uri = make_store(tmp_path)
    # The user's environment, without the variable that keeps MLflow's server from hanging
    # offline: the command must provide it.
    env = newcomer_env()
    port = free_port()
    started = ui_support.start(
        [sys.executable, "-m", "judgealign", "ui", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        ignore_sigint=background,
    )
    try:
        assert started.url == f"http://127.0.0.1:{port}", started.text()
        with urllib.request.urlopen(started.url, timeout=30) as page:
            assert page.status == 200
            assert b"<html" in page.read(2000).lower()
        assert uri.removeprefix("sqlite:///") in started.text()
    finally:
        code = ui_support.stop(started, stop_signal)
        left = ui_support.wait_gone(f"--port {port}")  # and killed, whatever failed
    assert code == 0, started.text()
    assert "MLflow UI stopped." in started.text()
    assert left == [], "the server outlived judgealign ui"
