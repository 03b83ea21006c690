"""The shell commands of the README, as a newcomer would copy them.

Every ```` ```bash ```` block of ``README.md`` is read. A block may be preceded by a marker
comment saying how the test treats it:

* ``<!-- readme-test: setup: WHY -->``: the set-up. ``.ci/run`` runs it from nothing; the
  test suite does not rebuild a virtual environment, but its ``source ...`` lines (the
  activation) are run before every other command, as the README tells users to.
* ``<!-- readme-test: skip: WHY -->``: not runnable offline (a provider key, the package
  index) or the command that runs this suite; the reason is required.

Every other block is run, line by line (a trailing ``\\`` continues a command).
Commands that serve until stopped (``judgealign ui``) are started and stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Block", "Command", "README", "commands", "read_blocks"]

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = re.compile(r"<!--\s*readme-test:\s*(setup|skip)\s*(?::\s*(.*?))?\s*-->")
LONG_RUNNING = ("judgealign ui",)


@dataclass
class Block:
    """One ```` ```bash ```` block: its commands, the section it is in, and its marker."""

    section: str
    line: int
    commands: list[str] = field(default_factory=lambda: [])
    lines: list[int] = field(default_factory=lambda: [])  # where each command starts
    kind: str = "run"  # "run", "setup" or "skip"
    reason: str = ""


@dataclass(frozen=True)
class Command:
    """A command to run, where it comes from, and whether it serves until stopped."""

    text: str
    section: str
    line: int

    @property
    def long_running(self) -> bool:
        return self.text.startswith(LONG_RUNNING)

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.text.split()[0]}:{' '.join(self.text.split()[1:3])}"


def read_blocks(text: str) -> list[Block]:
    """Every bash block of ``text`` (a README), in order."""
    blocks: list[Block] = []
    section = ""
    marker: re.Match[str] | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        elif MARKER.search(line):
            marker = MARKER.search(line)
        elif line.strip() == "```bash":
            block = Block(section, i + 1)
            if marker is not None:
                block.kind, block.reason = marker.group(1), marker.group(2) or ""
            i = _read_commands(lines, i + 1, block)
            blocks.append(block)
        if line.strip() and not MARKER.search(line):
            marker = None  # a marker applies to the block right after it only
        i += 1
    return blocks


def _read_commands(lines: list[str], start: int, block: Block) -> int:
    current, first = "", 0
    i = start
    while i < len(lines) and lines[i].strip() != "```":
        stripped = lines[i].rstrip()
        if current:
            current += " " + stripped.strip()
        elif stripped and not stripped.lstrip().startswith("#"):
            current, first = stripped.strip(), i + 1
        if current.endswith("\\"):
            current = current[:-1].rstrip()
        elif current:
            block.commands.append(current)
            block.lines.append(first)
            current = ""
        i += 1
    return i


def commands(blocks: list[Block]) -> tuple[list[str], list[Command]]:
    """``(prelude, commands)``: the set-up's activation lines and every command to run."""
    prelude: list[str] = []
    runnable: list[Command] = []
    for block in blocks:
        if block.kind == "setup":
            prelude += [c for c in block.commands if c.startswith("source ")]
        elif block.kind == "run":
            for line, text in zip(block.lines, block.commands, strict=True):
                runnable.append(Command(text, block.section, line))
    return prelude, runnable
