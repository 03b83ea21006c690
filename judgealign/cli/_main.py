"""The ``judgealign`` command.

Sub-commands (each in its own ``_cli_*`` module)::

    judgealign demo          the whole loop on a task that ships with judgealign
    judgealign judge         score records with a judge file
    judgealign report        a judge's agreement with expert labels
    judgealign align         expert labels -> an aligned judge file and a report
    judgealign guidelines    list, add, edit, pin, remove an aligned judge's guidelines
    judgealign optimize      improve a prompt file against a judge
    judgealign suggest       which unlabelled records the experts should label next
    judgealign ui            MLflow's UI on the store the other commands write to

Importing this module imports click and nothing heavy; each command imports what it
needs when it runs, so ``judgealign --help`` answers at once.

Errors: a judgealign error (bad file, bad option, missing extra, missing key, failed
model), a missing or unreadable file, or a provider's authentication error is printed as
one ``error: ...`` line (plus indented detail lines, such as an install command), with exit
code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import click

from judgealign import __version__
from judgealign.cli._align import align_command
from judgealign.cli._demo import demo_command
from judgealign.cli._guidelines import guidelines_group
from judgealign.cli._judge import judge_command, report_command
from judgealign.cli._optimize import optimize_command
from judgealign.cli._output import readable_warnings
from judgealign.cli._suggest import suggest_command
from judgealign.cli._ui import ui_command

__all__ = ["ERROR_EXIT_CODE", "CommandFailed", "cli", "describe_failure", "main"]

ERROR_EXIT_CODE = 2
_AUTH_ERRORS = frozenset({"AuthenticationError", "PermissionDeniedError"})


class CommandFailed(click.ClickException):
    """A failure the user can fix, shown as ``error: ...`` with exit code 2."""

    exit_code = ERROR_EXIT_CODE

    def show(self, file: Any = None) -> None:
        """Print the message: the first line after ``error:``, the rest indented."""
        first, *rest = self.format_message().strip().splitlines() or [""]
        click.echo(click.style("error: ", fg="red", bold=True) + first, err=True, file=file)
        for line in rest:
            click.echo("  " + line.strip(), err=True, file=file)


def describe_failure(exc: BaseException) -> str | None:
    """The message to show for ``exc``, or ``None`` when it is a bug (keep the traceback)."""
    from judgealign.core._errors import JudgeAlignError

    if isinstance(exc, JudgeAlignError):
        return str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    if type(exc).__name__ in _AUTH_ERRORS:
        return (
            f"The model provider rejected the credentials ({type(exc).__name__}: {exc}). "
            "Check the API key environment variable (e.g. OPENAI_API_KEY)."
        )
    return None


class _Group(click.Group):
    """Runs sub-commands with readable warnings and turns user errors into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        with readable_warnings():
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except Exception as exc:
                message = describe_failure(exc)
                if message is None:
                    raise
                raise CommandFailed(message) from exc


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="judgealign")
def cli() -> None:
    """Build LLM judges, align them with expert feedback, and optimize prompts with them.

    Start with `judgealign demo`: it runs the whole loop offline on a small task that
    ships with judgealign. Models are litellm URIs (openai:/gpt-4o-mini, ...) or
    local:/smollm2, the embedded offline model; JUDGEALIGN_MODEL sets the default.
    """
    # MLflow logs at INFO by default (database creation, evaluation banners) into the
    # middle of the command's output; its warnings and errors still show. A user's
    # explicit MLFLOW_LOGGING_LEVEL wins.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


cli.add_command(demo_command)
cli.add_command(judge_command)
cli.add_command(report_command)
cli.add_command(align_command)
cli.add_command(guidelines_group)
cli.add_command(optimize_command)
cli.add_command(suggest_command)
cli.add_command(ui_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``judgealign`` console script; returns the exit code."""
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="judgealign",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    return result if isinstance(result, int) else 0
