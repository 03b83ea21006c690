"""``judgealign suggest``: which unlabelled records the experts should label next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from judgealign.cli._common import (
    Session,
    base_url_option,
    columns_option,
    limit_option,
    model_option,
    workers_option,
)
from judgealign.cli._output import echo, echo_table, shorten

__all__ = ["suggest_command"]


@click.command("suggest")
@click.argument("judge_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=1),
    default=20,
    show_default=True,
    help="How many records to suggest.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Times the judge judges each record; its disagreement is the uncertainty.",
)
@click.option(
    "--temperature",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Sampling temperature of those judgments.",
)
@click.option(
    "--labelled",
    type=click.Path(path_type=Path),
    help="Records already labelled (.jsonl, .json, .csv), to prefer records unlike "
    "them (default: an aligned judge's memory).",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Write the suggestions as JSON Lines for the labellers: each record with an "
    "empty label and rationale to fill, and why it was chosen.",
)
@model_option("Overrides the judge file's model.")
@columns_option
@limit_option
@workers_option
@base_url_option
def suggest_command(
    judge_file: Path,
    data: Path,
    count: int,
    samples: int,
    temperature: float,
    labelled: Path | None,
    output: Path | None,
    model: str | None,
    columns: tuple[str, ...],
    limit: int | None,
    workers: int,
    base_url: str | None,
) -> None:
    """Rank the unlabelled records in DATA for the experts, with the judge in JUDGE_FILE.

    The judge judges each record --samples times at --temperature; records it disagrees
    with itself on come first, then records far from those already labelled, and no two
    near-duplicates in one batch. With --output, the file is ready to hand to labellers:
    fill in "label" and "rationale" and align on it.
    """
    from judgealign.cli._data import apply_columns, parse_columns, read_rows
    from judgealign.evaluation._suggest import suggest_labels

    session = Session()
    rows = apply_columns(read_rows(data, limit=limit), parse_columns(columns))
    judge = session.judge(judge_file, model=model, base_url=base_url)
    samplers = [
        session.judge(
            judge_file,
            model=model,
            base_url=base_url,
            params={"temperature": temperature, "seed": k},
        )
        for k in range(samples)
    ]
    known = read_rows(labelled) if labelled is not None else None
    echo(
        f"Ranking {len(rows)} records from {data}: {samples} judgments each with "
        f"{judge.name!r} on {judge.model_uri}"
    )
    with session.progress.phase("judging", total=len(rows) * samples):
        result = suggest_labels(
            judge,
            rows,
            count,
            labelled=known,
            samplers=samplers,
            max_workers=workers,
        )
    _echo_suggestions(result)
    if output is not None:
        from judgealign.cli._data import write_jsonl

        write_jsonl(output, result.to_rows())
        echo(f"\n{len(result)} suggestions written to {output}")
    echo(f"\n{session.summary()}")


def _echo_suggestions(result: Any) -> None:
    rows = [["rank", "id", "uncertainty", "novelty", "verdicts"]]
    for item in result:
        verdicts = ", ".join("ERROR" if v is None else str(v) for v in item.verdicts)
        rows.append(
            [
                str(item.rank),
                shorten(item.id, 20),
                f"{item.uncertainty:.2f}",
                f"{item.novelty:.2f}",
                shorten(verdicts, 40),
            ]
        )
    echo()
    echo_table(rows)
    if result.failed_ids:
        echo(
            f"{len(result.failed_ids)} record(s) the judge failed on every time, not ranked: "
            + ", ".join(result.failed_ids[:10]),
            indent=2,
        )
    if result.near_duplicates:
        echo(
            f"{len(result.near_duplicates)} near-duplicate(s) of suggested records skipped.",
            indent=2,
        )
