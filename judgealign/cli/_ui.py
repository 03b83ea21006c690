"""``judgealign ui``: MLflow's UI on the project's tracking store, started so that it works.

``mlflow ui`` started by hand hangs offline: its job runner imports litellm, whose
model-cost-map download thread deadlocks with MLflow's import hooks when there is no
network. judgealign sets ``LITELLM_LOCAL_MODEL_COST_MAP`` only inside its own process, so
this command starts MLflow's server as a child process with that variable (and MLflow's
telemetry off), waits until it answers, prints the URL and stops the whole process group
on Ctrl-C or SIGTERM.

The store is the one every other command writes to (``MLFLOW_TRACKING_URI``, else
``mlflow.db`` in the working directory); the server's own log goes to a temporary file and
is shown only when it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

from judgealign.cli._output import echo
from judgealign.core._errors import ConfigurationError

__all__ = [
    "DEFAULT_PORT",
    "UiServer",
    "choose_port",
    "server_environment",
    "store_path",
    "ui_command",
]

# Forced (not defaulted): the cost-map download is what hangs MLflow's server offline.
_FORCED_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
# Defaulted: a user who wants MLflow's telemetry can still say so.
_DEFAULT_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
DEFAULT_PORT = 5000  # MLflow's own default
_PORTS_TRIED = 20
_STOP_GRACE_S = 20.0
_LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class UiServer:
    """How to start MLflow's server: the store, the address and the worker count."""

    store_uri: str
    host: str
    port: int
    workers: int

    @property
    def url(self) -> str:
        """The address to open in a browser (loopback when listening on every interface)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def command(self) -> list[str]:
        """``python -m mlflow server ...`` with this interpreter (the one judgealign runs in)."""
        return [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            self.store_uri,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]


@click.command("ui")
@click.option(
    "--backend-store-uri",
    "store_uri",
    metavar="URI",
    help="The tracking store to browse (default: $MLFLOW_TRACKING_URI, else mlflow.db in "
    "the working directory, where judgealign demo writes).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help=f"Port to listen on (default: {DEFAULT_PORT}, or the next free one when it is taken).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Server processes (one is plenty for one person).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=180.0,
    show_default=True,
    help="Seconds to wait for the server to answer before giving up.",
)
def ui_command(
    store_uri: str | None, host: str, port: int | None, workers: int, timeout: float
) -> None:
    """Open MLflow's UI on the runs, traces, judges and prompts judgealign logged.

    Starts MLflow's tracking server on the store the other commands write to, prints its
    URL, and runs until Ctrl-C (or SIGTERM), which stops the server and its workers.
    """
    server = UiServer(resolve_store(store_uri), host, choose_port(host, port), workers)
    with tempfile.TemporaryDirectory(prefix="judgealign-ui-") as folder:
        log_path = Path(folder) / "mlflow-server.log"
        with _running(server, log_path) as process:
            _wait_until_ready(server, process, log_path, timeout)
            echo(f"MLflow UI: {server.url}")
            echo(f"  store   {server.store_uri}", indent=0)
            echo("  Ctrl-C stops it.")
            sys.stdout.flush()
            _serve_until_stopped(process, log_path)
    echo("MLflow UI stopped.")


def resolve_store(store_uri: str | None) -> str:
    """The store to browse: ``store_uri``, else the tracking URI the library writes to.

    Raises:
        ConfigurationError: the store is a server already (nothing to start), or a sqlite
            store that does not exist (the UI would show an empty, new database).
    """
    uri = store_uri or os.environ.get("MLFLOW_TRACKING_URI") or _library_tracking_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        raise ConfigurationError(
            f"The tracking store {uri} is a server already: open it in a browser, or pass "
            "--backend-store-uri sqlite:///path/to/mlflow.db to browse a local store."
        )
    path = store_path(uri)
    if path is not None and not path.exists():
        raise ConfigurationError(
            f"No MLflow store at {path}: run `judgealign demo` first, run `judgealign ui` in "
            "the folder where you ran it, or name the store with --backend-store-uri "
            "sqlite:///path/to/mlflow.db."
        )
    return uri


def store_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store (relative paths from the working directory)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :]).expanduser()


def server_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus what MLflow's server needs to start offline and stay quiet."""
    env = {**_DEFAULT_ENV, **base, **_FORCED_ENV}
    return env


def _library_tracking_uri() -> str:
    from judgealign.integrations.mlflow._client import current_tracking_uri

    return current_tracking_uri()


def choose_port(host: str, port: int | None) -> int:
    """``port`` if it is free; with none given, :data:`DEFAULT_PORT` or the next free port
    after it (5000 is often taken, by another server or by the OS).

    Raises:
        ConfigurationError: the port asked for is taken, or no port near the default is free.
    """
    if port is not None:
        problem = _bind_problem(host, port)
        if problem:
            raise ConfigurationError(
                f"Cannot listen on {host}:{port} ({problem}): another server uses it; pass "
                "--port with a free port, or leave --port out to take the next free one."
            )
        return port
    for candidate in range(DEFAULT_PORT, DEFAULT_PORT + _PORTS_TRIED):
        if not _bind_problem(host, candidate):
            if candidate != DEFAULT_PORT:
                echo(f"Port {DEFAULT_PORT} is in use; using {candidate}.")
            return candidate
    raise ConfigurationError(
        f"Ports {DEFAULT_PORT}-{DEFAULT_PORT + _PORTS_TRIED - 1} on {host} are all in use; "
        "pass --port with a free port."
    )


def _bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, or ``""`` when it can."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host if host != "::" else "0.0.0.0", port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return ""


@contextmanager
def _running(server: UiServer, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server in its own process group; stop that whole group on the way out."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment(os.environ),
            # Its own group: the server forks uvicorn workers and a job runner, and a
            # terminal's Ctrl-C must reach us first so that we stop all of them in order.
            start_new_session=True,
        )
    try:
        with _stop_signals():
            yield process
    except KeyboardInterrupt:
        pass
    finally:
        _stop_group(process)


@contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP stop the UI.

    SIGINT is handled explicitly too: a job started with ``&`` by a non-interactive shell
    inherits SIGINT ignored, and Python then never raises KeyboardInterrupt for it.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    handled = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, interrupt) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's process group, then SIGKILL what is left after a grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + _STOP_GRACE_S
        while time.monotonic() < deadline and _group_alive(process):
            time.sleep(0.2)
        if not _group_alive(process):
            break
    process.wait()


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap the leader, so that a zombie does not count as alive
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - a member we cannot signal still exists
        return True
    return True


def _wait_until_ready(
    server: UiServer, process: subprocess.Popen[bytes], log_path: Path, timeout: float
) -> None:
    echo(f"Starting MLflow's UI on {server.store_uri} ...")
    sys.stdout.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ConfigurationError(_failure("MLflow's server exited", process, log_path))
        if _answers(server.url + "/health"):
            return
        time.sleep(0.5)
    raise ConfigurationError(
        _failure(f"MLflow's server did not answer within {timeout:.0f} s", process, log_path)
        + "\nRaise --timeout on a busy machine."
    )


def _serve_until_stopped(process: subprocess.Popen[bytes], log_path: Path) -> None:
    while process.poll() is None:
        time.sleep(0.5)
    raise ConfigurationError(_failure("MLflow's server stopped by itself", process, log_path))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def _failure(what: str, process: subprocess.Popen[bytes], log_path: Path) -> str:
    code = process.poll()
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    tail = "\n".join(lines[-_LOG_TAIL_LINES:]) or "(no output)"
    status = "" if code is None else f" (exit code {code})"
    return f"{what}{status}. Its last output:\n{tail}"
