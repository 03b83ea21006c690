"""What the ``judgealign`` command prints: tables, steps, warnings and progress bars.

Results go to stdout; progress bars and warnings go to stderr, so ``> file`` keeps only the
results. Progress bars appear only when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import click

from judgealign.cli._models import CallCounter

__all__ = [
    "Progress",
    "echo",
    "echo_table",
    "invoked_as",
    "plural",
    "readable_warnings",
    "shorten",
    "step",
]


def echo(text: str = "", *, indent: int = 0) -> None:
    """Print ``text`` to stdout, every line indented by ``indent`` spaces."""
    pad = " " * indent
    click.echo("\n".join(pad + line if line else line for line in text.split("\n")))


def invoked_as(argv0: str | None = None) -> str:
    """How to run ``judgealign`` again the way the user just did, for "Next:" hints.

    ``judgealign`` when that name on ``PATH`` is the program running; otherwise the path
    the user typed (``.venv/bin/judgealign`` without the venv activated), or
    ``python -m judgealign``.
    """
    import os
    import shutil

    typed = argv0 if argv0 is not None else sys.argv[0]
    if typed.endswith("__main__.py"):
        return "python -m judgealign"
    on_path = shutil.which("judgealign")
    if on_path and os.path.realpath(on_path) == os.path.realpath(shutil.which(typed) or typed):
        return "judgealign"
    return typed if os.sep in typed else "judgealign"


def plural(count: int, noun: str) -> str:
    """``1 guideline``, ``2 guidelines``, ``0 guidelines`` (nouns that take an -s)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def step(number: int, total: int, title: str) -> None:
    """Print a numbered step heading such as ``[2/5] Aligning the judge``."""
    click.echo()
    click.echo(click.style(f"[{number}/{total}] ", bold=True) + click.style(title, bold=True))


def shorten(text: object, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def echo_table(rows: Sequence[Sequence[str]], *, indent: int = 2) -> None:
    """Print rows as left-aligned columns; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    echo("\n".join([lines[0], "-" * max(len(line) for line in lines), *lines[1:]]), indent=indent)


@contextmanager
def readable_warnings(stream: TextIO | None = None) -> Iterator[None]:
    """Show each distinct warning, and each distinct WARNING log record of judgealign and
    the optimizers, once, as ``warning: <message>``, instead of Python's file-and-line
    format (which reads as a crash to a command-line user)."""
    seen: set[str] = set()

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        text = " ".join(str(message).split())
        if text not in seen:
            seen.add(text)
            click.echo(click.style("warning: ", fg="yellow") + text, err=True, file=stream)

    handler = _OnceHandler(show)
    loggers = [logging.getLogger(name) for name in _LIBRARY_LOGGERS]
    saved = [(lg.propagate, lg.level) for lg in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        for logger, (propagate, level) in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.propagate, logger.level = propagate, level


_LIBRARY_LOGGERS = ("judgealign", "optimizers")


class _OnceHandler(logging.Handler):
    """Library log records of WARNING and above, shown like warnings (once each)."""

    def __init__(self, show: Any) -> None:
        super().__init__(logging.WARNING)
        self._show = show

    def emit(self, record: logging.LogRecord) -> None:
        self._show(record.getMessage(), UserWarning, record.pathname, record.lineno)


class Progress:
    """A progress bar over model calls, one phase at a time (only on a terminal).

    Args:
        counter: the counter every model of the command ticks.
        enabled: ``None`` shows bars when stderr is a terminal.
    """

    def __init__(self, counter: CallCounter, *, enabled: bool | None = None) -> None:
        self.counter = counter
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since the command started."""
        return time.perf_counter() - self.started

    @contextmanager
    def phase(self, label: str, total: int | None = None) -> Iterator[None]:
        """Count the model calls made inside the block on a bar labelled ``label``.

        ``total`` is the expected number of calls (``None`` when unknown: the bar then
        shows the count and the rate).
        """
        if not self.enabled:
            yield
            return
        from tqdm import tqdm

        bar: Any = tqdm(
            total=total, desc=f"  {label}", unit="call", leave=False, file=sys.stderr, ncols=80
        )
        self.counter.listen(lambda: bar.update(1))
        try:
            yield
        finally:
            self.counter.listen(None)
            bar.close()
