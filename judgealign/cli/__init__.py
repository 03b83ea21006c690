"""The ``judgealign`` command line: one module per command."""

from judgealign.cli._main import main

__all__ = ["main"]
