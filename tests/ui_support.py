"""Start ``judgealign ui`` (or any long-running README command) as a user would, and stop it.

The command runs in its own process group, like a job started from a shell; stopping it
sends the signal a terminal sends (SIGINT for Ctrl-C) or a service manager sends (SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

URL_LINE = re.compile(r"MLflow UI: (http://\S+)")


@dataclass
class Started:
    """A running command: its process, the URL it printed and everything it printed."""

    process: subprocess.Popen[str]
    url: str | None = None
    output: list[str] = field(default_factory=lambda: [])

    def text(self) -> str:
        return "".join(self.output)


def start(
    args: Sequence[str] | str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 240.0,
    shell: bool = False,
    ignore_sigint: bool = False,
) -> Started:
    """Start ``args`` and wait until it prints ``MLflow UI: <url>`` (or exits).

    ``ignore_sigint`` starts it the way a non-interactive shell starts a ``&`` job: with
    SIGINT ignored."""
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env=dict(env),
        shell=shell,
        executable="/bin/bash" if shell else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_ignore_sigint if ignore_sigint else None,
    )
    started = Started(process)
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            started.output.append(line)
            found = URL_LINE.search(line)
            if found and started.url is None:
                started.url = found.group(1)
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(timeout)
    return started


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop(started: Started, sig: int = signal.SIGINT, timeout: float = 60.0) -> int | None:
    """Send ``sig`` to the command's process group; its exit code, or ``None`` if it hung
    (then the group is killed so that no server outlives the test)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(started.process.pid, sig)
    try:
        return started.process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(started.process.pid, signal.SIGKILL)
        started.process.wait()
        return None


def processes_mentioning(text: str) -> list[int]:
    """Ids of live processes whose command line contains ``text`` (servers left behind)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def wait_gone(text: str, timeout: float = 30.0) -> list[int]:
    """Wait until no process mentions ``text``; the ones still there after ``timeout``
    are returned, and killed so that no server outlives the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = processes_mentioning(text)
        if not left:
            return []
        time.sleep(0.3)
    left = processes_mentioning(text)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return left
