"""``judgealign guidelines``: read and edit the guidelines of an aligned judge file.

Edits are written back to the same file (atomically). No model is called and no record
is re-embedded: an edited guideline only loses its stored vector, which the next
``align`` recomputes when it needs it for de-duplication.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from judgealign.cli._output import echo, plural

if TYPE_CHECKING:
    from judgealign.memalign._aligned import AlignedJudge

__all__ = ["guidelines_group"]

_FILE = click.argument("judge_file", type=click.Path(path_type=Path))


def _load(path: Path) -> AlignedJudge:
    from judgealign.cli._specs import read_spec
    from judgealign.core._errors import ConfigurationError
    from judgealign.memalign._aligned import AlignedJudge

    data = read_spec(path)
    if data.get("format") != "judgealign/aligned-judge":
        raise ConfigurationError(
            f"{str(path)!r} is not an aligned judge file; make one with 'judgealign align'."
        )
    return AlignedJudge.from_dict(data, source=f"file {str(path)!r}")


def _edit(path: Path, change: Callable[[AlignedJudge], Any], done: str) -> None:
    aligned = _load(path)
    guideline = change(aligned)
    aligned.save(path)
    echo(f"{done} {guideline.id}: {guideline.text}")
    echo(f"{path} now has {plural(len(aligned.guidelines), 'guideline')}")


@click.group("guidelines")
def guidelines_group() -> None:
    """List, add, edit, pin and remove the guidelines of an aligned judge file."""


@guidelines_group.command("list")
@_FILE
@click.option("--json", "as_json", is_flag=True, help="Print the guidelines as JSON.")
def list_command(judge_file: Path, as_json: bool) -> None:
    """List the guidelines in JUDGE_FILE, in the order the judge sees them."""
    aligned = _load(judge_file)
    if as_json:
        import json

        echo(json.dumps([g.to_dict() for g in aligned.guidelines], indent=2, ensure_ascii=False))
        return
    from judgealign.cli._align import echo_guidelines

    echo(
        f"{judge_file}: judge {aligned.name!r}, {len(aligned.guidelines)} guidelines, "
        f"{len(aligned.record_ids)} expert records"
    )
    echo_guidelines(aligned, width=10_000)


@guidelines_group.command("add")
@_FILE
@click.argument("text")
@click.option("--pin", is_flag=True, help="Keep it through consolidation and unalign.")
@click.option(
    "--source", "sources", multiple=True, metavar="RECORD_ID", help="A record it is based on."
)
def add_command(judge_file: Path, text: str, pin: bool, sources: tuple[str, ...]) -> None:
    """Add a guideline written by a person (at the end of the list)."""
    _edit(
        judge_file,
        lambda j: j.add_guideline(text, pinned=pin, source_ids=list(sources)),
        "added",
    )


@guidelines_group.command("edit")
@_FILE
@click.argument("guideline_id")
@click.argument("text")
def edit_command(judge_file: Path, guideline_id: str, text: str) -> None:
    """Replace the text of guideline GUIDELINE_ID (its sources and pin are kept)."""
    _edit(judge_file, lambda j: j.edit_guideline(guideline_id, text), "edited")


@guidelines_group.command("remove")
@_FILE
@click.argument("guideline_id")
def remove_command(judge_file: Path, guideline_id: str) -> None:
    """Remove guideline GUIDELINE_ID."""
    _edit(judge_file, lambda j: j.remove_guideline(guideline_id), "removed")


@guidelines_group.command("pin")
@_FILE
@click.argument("guideline_id")
@click.option("--unpin", is_flag=True, help="Unpin instead.")
def pin_command(judge_file: Path, guideline_id: str, unpin: bool) -> None:
    """Pin guideline GUIDELINE_ID so consolidation and unalign keep it."""
    _edit(
        judge_file,
        lambda j: j.pin_guideline(guideline_id, not unpin),
        "unpinned" if unpin else "pinned",
    )
