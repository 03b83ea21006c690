"""What every ``judgealign`` command shares: the run session, common options, JSON output.

:class:`Session` builds every model of one command through ``_cli_models.make_model``,
wrapped so that each call is counted (for the progress bar and the closing summary).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from judgealign.cli import _models as _cli_models
from judgealign.cli._models import CallCounter
from judgealign.cli._output import Progress
from judgealign.models._metering import MeteredModel

if TYPE_CHECKING:
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._judge import Judge
    from judgealign.memalign._aligned import AlignedJudge
    from judgealign.models._chat import ChatModel

__all__ = [
    "FixedVerdicts",
    "Session",
    "base_url_option",
    "columns_option",
    "ensure_some_verdicts",
    "limit_option",
    "model_option",
    "workers_option",
    "write_json",
]

F = TypeVar("F", bound=Callable[..., Any])


def model_option(help_text: str) -> Callable[[F], F]:
    """``--model URI``."""
    return click.option("--model", "model", metavar="URI", help=help_text)


def base_url_option(function: F) -> F:
    """``--base-url URL``: an OpenAI-compatible endpoint root for the models."""
    return click.option(
        "--base-url",
        metavar="URL",
        help="An OpenAI-compatible endpoint root for the models, e.g. http://localhost:8000/v1.",
    )(function)


def columns_option(function: F) -> F:
    """``--map FIELD=COLUMN[,COLUMN...]`` (repeatable)."""
    return click.option(
        "--map",
        "columns",
        multiple=True,
        metavar="FIELD=COL[,COL]",
        help="Which columns hold a record field, e.g. --map inputs=question,context --map "
        "outputs=answer --map label=verdict (inputs and expectations become a dict of the "
        "columns).",
    )(function)


def limit_option(function: F) -> F:
    """``--limit N``: only the first N records."""
    return click.option(
        "--limit", type=click.IntRange(min=1), metavar="N", help="Use only the first N records."
    )(function)


def workers_option(function: F) -> F:
    """``--workers N``: concurrent model calls."""
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        help="How many model calls run at once.",
    )(function)


class Session:
    """One command run: builds counted models, shows progress, times the run.

    Args:
        progress: show progress bars (``None``: when stderr is a terminal).
    """

    def __init__(self, *, progress: bool | None = None) -> None:
        self.counter = CallCounter()
        self.progress = Progress(self.counter, enabled=progress)
        self._lap = (0, 0.0)

    def model(
        self, uri: str, *, params: dict[str, Any] | None = None, base_url: str | None = None
    ) -> ChatModel:
        """The model ``uri``, built by ``_cli_models.make_model`` and counted."""
        return self.wrap(_cli_models.make_model(uri, params=params, base_url=base_url))

    def wrap(self, model: ChatModel) -> ChatModel:
        """``model`` with its calls counted."""
        return MeteredModel(model, self.counter)

    def judge(
        self,
        path: str | Path,
        *,
        model: str | None = None,
        base_url: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Judge | AlignedJudge:
        """The judge in a spec, saved-judge or aligned-judge file, its calls counted;
        ``params`` are laid over the file's inference parameters."""
        from judgealign.cli._specs import load_judge

        return load_judge(path, model=model, base_url=base_url, wrap=self.wrap, params=params)

    def evaluate(
        self, judge: Judge | AlignedJudge, records: Sequence[Any], *, label: str, workers: int
    ) -> EvaluationResult:
        """``judge.evaluate(records)`` under a progress bar; fails if every record failed."""
        with self.progress.phase(label, total=len(records)):
            result = judge.evaluate(records, max_workers=workers, progress=False)
        ensure_some_verdicts(result, f"{judge.name} judgment")
        return result

    def summary(self) -> str:
        """``N model calls in S s``."""
        return f"{self.counter.calls} model calls in {self.progress.elapsed:.1f} s"

    def lap(self) -> str:
        """``N model calls, S s`` since the previous lap (or the start)."""
        calls, elapsed = self.counter.calls, self.progress.elapsed
        last_calls, last_elapsed = self._lap
        self._lap = (calls, elapsed)
        return f"{calls - last_calls} model calls, {elapsed - last_elapsed:.1f} s"


def ensure_some_verdicts(result: Sequence[Any], what: str) -> None:
    """Raise the first error when every feedback in ``result`` failed (a set-up problem
    such as a missing key or an unreachable server, not a bad record)."""
    from judgealign.core._errors import ModelCallError

    if result and all(getattr(fb, "error", None) for fb in result):
        raise ModelCallError(f"Every {what} failed; the first error: {result[0].error}")


class FixedVerdicts:
    """Verdicts already computed, shaped like a judge for ``compare_judges``."""

    def __init__(self, result: EvaluationResult, value_spec: Any) -> None:
        self.result = result
        self.value_spec = value_spec

    def evaluate(self, records: Sequence[Any], /, *, max_workers: int = 1) -> EvaluationResult:
        """The stored verdicts (one per record, in order)."""
        return self.result


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically; returns ``path``."""
    from judgealign.core._files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(path, text)
