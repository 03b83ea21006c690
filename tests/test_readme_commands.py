"""Every shell command in the README runs as written, after the set-up command.

The set-up (``python3 -m venv .venv && ... pip install ...``) is what ``.ci/run`` runs from
nothing; this suite does not rebuild a virtual environment. It runs every other command of
the README in document order, in a copy of the clone's layout (symlinks, so that the
demo's ``judgealign-demo/``, ``mlflow.db`` and ``mlruns/`` land in a temporary folder and
not in the repository), with the environment a user has after the set-up: a plain
``PATH``, ``HOME``, the README's ``source .venv/bin/activate``, and nothing else (no
``LITELLM_LOCAL_MODEL_COST_MAP``, no MLflow settings). A command fails the test when it
exits non-zero; ``judgealign ui`` must print its URL, answer HTTP and stop on Ctrl-C.

One more variable is passed: ``PYTHONPATH`` naming this checkout. In CI it changes nothing
(the venv's editable install is this checkout); in a git worktree that shares another
checkout's venv, it makes the commands run this checkout's code, as the tests do.

Marked ``slow`` (about six minutes on two cores, most of it the demo on the embedded
model): it is the only check that the newcomer's path works end to end, so CI runs it;
select it out locally with ``-m "not slow"``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import readme_commands
import ui_support
from readme_commands import Command

REPO = Path(__file__).resolve().parents[1]
# What the demo and the commands write: never linked, so that they land in the sandbox.
OUTPUTS = {".git", "judgealign-demo", "mlflow.db", "mlruns", "mlartifacts"}
TIMEOUT_S = {"judgealign demo": 1800.0}
DEFAULT_TIMEOUT_S = 900.0

BLOCKS = readme_commands.read_blocks(readme_commands.README.read_text(encoding="utf-8"))
PRELUDE, COMMANDS = readme_commands.commands(BLOCKS)


def test_every_block_is_run_or_says_why_not() -> None:
    assert [b for b in BLOCKS if b.kind == "skip" and not b.reason] == []
    assert any(b.kind == "setup" for b in BLOCKS), "the set-up block is not marked"
    assert PRELUDE == ["source .venv/bin/activate"]
    texts = [c.text for c in COMMANDS]
    assert "judgealign demo" in texts and "judgealign ui" in texts
    assert texts.index("judgealign demo") < texts.index("judgealign ui")


def test_the_parser_joins_continuations_and_honours_markers() -> None:
    text = "\n".join(
        [
            "## Usage",
            "<!-- readme-test: skip: needs a key -->",
            "```bash",
            "export KEY=...",
            "```",
            "",
            "```bash",
            "judgealign report a.yaml b.csv --map x=y \\",
            "    --json r.json   # agreement",
            "# a comment",
            "judgealign ui",
            "```",
        ]
    )
    blocks = readme_commands.read_blocks(text)
    assert [(b.kind, b.reason) for b in blocks] == [("skip", "needs a key"), ("run", "")]
    _, commands = readme_commands.commands(blocks)
    assert [c.text for c in commands] == [
        "judgealign report a.yaml b.csv --map x=y --json r.json   # agreement",
        "judgealign ui",
    ]
    assert commands[1].long_running and not commands[0].long_running


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The clone's layout, linked: commands see the repository, outputs stay here."""
    folder = tmp_path_factory.mktemp("readme")
    for entry in REPO.iterdir():
        if entry.name not in OUTPUTS:
            (folder / entry.name).symlink_to(entry)
    yield folder


def user_environment(home: Path) -> dict[str, str]:
    """What a user has after the set-up command: a plain shell, nothing judgealign-specific."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(home)),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def shell_line(command: Command) -> str:
    return "set -e; " + "; ".join([*PRELUDE, command.text])


@pytest.mark.slow
@pytest.mark.local_llm
@pytest.mark.timeout(2400)  # the demo alone: minutes on an idle machine, more on a busy one
@pytest.mark.parametrize("command", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command_runs(command: Command, sandbox: Path) -> None:
    # The set-up command installs the local extra; without it the README's offline
    # commands cannot run as written (the other local_llm tests skip the same way).
    pytest.importorskip("llama_cpp", reason="needs the judgealign[local] extra")
    env = user_environment(sandbox)
    if command.long_running:
        _run_server_command(command, sandbox, env)
        return
    timeout = TIMEOUT_S.get(command.text, DEFAULT_TIMEOUT_S)
    started = time.monotonic()
    result = subprocess.run(
        ["/bin/bash", "-c", shell_line(command)],
        cwd=sandbox,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    seconds = time.monotonic() - started
    print(f"{command.text}: exit {result.returncode} in {seconds:.1f} s")
    assert result.returncode == 0, (
        f"README ({command.section}): {command.text}\n"
        f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n"
        f"--- stderr\n{result.stderr[-3000:]}"
    )


def _run_server_command(command: Command, sandbox: Path, env: dict[str, str]) -> None:
    started = ui_support.start(["/bin/bash", "-c", shell_line(command)], cwd=sandbox, env=env)
    try:
        assert started.url is not None, f"{command.text} did not start:\n{started.text()}"
        with urllib.request.urlopen(started.url, timeout=30) as page:
            assert page.status == 200
    finally:
        code = ui_support.stop(started, signal.SIGINT)
        # The MLflow server it started (named by the store's path) must be gone with it;
        # one left behind is killed here, whatever failed.
        left = ui_support.wait_gone(str(sandbox / "mlflow.db"))
    assert code == 0, f"{command.text} did not stop cleanly on Ctrl-C:\n{started.text()}"
    assert left == []
