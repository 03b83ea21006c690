"""The ``judgealign`` command (sub-commands arrive with the CLI issue)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``judgealign`` console script."""
    parser = argparse.ArgumentParser(
        prog="judgealign",
        description="Build LLM judges, align them with expert feedback, optimize prompts.",
    )
    parser.add_argument("--version", action="version", version="judgealign 0.1.0")
    parser.parse_args(argv)
    parser.print_help()
    return 0
