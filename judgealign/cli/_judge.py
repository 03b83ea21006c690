"""``judgealign judge`` (score records) and ``judgealign report`` (agreement with experts)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from judgealign.cli._common import (
    Session,
    base_url_option,
    columns_option,
    limit_option,
    model_option,
    workers_option,
    write_json,
)
from judgealign.cli._output import echo, echo_table, shorten

if TYPE_CHECKING:
    from judgealign.evaluation._report import AgreementReport
    from judgealign.judges._feedback import Feedback
    from judgealign.judges._records import LoadResult

__all__ = [
    "agreement_of",
    "echo_problems",
    "held_out_only",
    "judge_command",
    "report_command",
    "verdict_text",
]

_JUDGE_HELP = (
    "Overrides the judge file's model (default: the file's, $JUDGEALIGN_MODEL, local:/smollm2)."
)


def verdict_text(feedback: Feedback) -> str:
    """A verdict for a table: the value, or ``ERROR``."""
    if feedback.error is not None:
        return "ERROR"
    value = feedback.value
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def echo_problems(loaded: LoadResult, source: Path) -> None:
    """Say how many records were rejected or merged, and the first reasons."""
    if loaded.problems:
        echo(f"{len(loaded.problems)} record(s) of {source} were skipped:", indent=2)
        for problem in loaded.problems[:3]:
            echo(f"- {shorten(problem, 110)}", indent=4)
    if loaded.duplicates:
        echo(f"{len(loaded.duplicates)} id(s) appeared more than once and were merged.", indent=2)


def agreement_of(
    judge: Any, feedback: Sequence[Feedback], records: Sequence[Any], *, n_bootstrap: int = 1000
) -> AgreementReport:
    """The judge's agreement with the records' expert labels."""
    from judgealign.evaluation._api import agreement
    from judgealign.evaluation._panel import is_panel

    choices = list(judge.value_spec.choices) or None
    return agreement(
        feedback,
        list(records) if is_panel(records) else [r.label for r in records],
        ids=[r.id for r in records],
        labels=choices,
        n_bootstrap=n_bootstrap,
    )


@click.command("judge")
@click.argument("judge_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@model_option(_JUDGE_HELP)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Write one JSON line per record (id, value, rationale, error) to this file.",
)
@click.option(
    "--show", type=click.IntRange(min=0), default=20, show_default=True, help="Rows to print."
)
@columns_option
@limit_option
@workers_option
@base_url_option
def judge_command(
    judge_file: Path,
    data: Path,
    model: str | None,
    output: Path | None,
    show: int,
    columns: tuple[str, ...],
    limit: int | None,
    workers: int,
    base_url: str | None,
) -> None:
    """Score the records in DATA (.jsonl, .json or .csv) with the judge in JUDGE_FILE.

    JUDGE_FILE is a judge spec (YAML or JSON: name, instructions, feedback_value_type,
    model), or a file saved by a judge or an aligned judge. When every record has a
    "label", the agreement with those labels is printed too.
    """
    from judgealign.cli._data import apply_columns, parse_columns, read_rows
    from judgealign.judges._loaders import read_records

    session = Session()
    rows = apply_columns(read_rows(data, limit=limit), parse_columns(columns))
    judge = session.judge(judge_file, model=model, base_url=base_url)
    labelled = bool(rows) and all(
        any(row.get(key) is not None for key in ("label", "ratings", "rater")) for row in rows
    )
    records: Sequence[Any] = rows
    if labelled:
        loaded = read_records(rows, judge=judge)
        echo_problems(loaded, data)
        records = list(loaded)
    if not records:
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(f"{str(data)!r} holds no records to judge.")
    echo(f"Judging {len(records)} records from {data} with {judge.name!r} on {judge.model_uri}")
    result = session.evaluate(judge, records, label="judging", workers=workers)
    ids = [_record_id(r, i) for i, r in enumerate(records)]
    _echo_verdicts(ids, records, result.feedback, show=show, labelled=labelled)
    if output is not None:
        from judgealign.cli._data import write_jsonl

        write_jsonl(output, [_verdict_row(i, fb) for i, fb in zip(ids, result, strict=True)])
        echo(f"verdicts written to {output}")
    if labelled:
        echo()
        echo(agreement_of(judge, result.feedback, records).format())
    errors = f", {len(result.errors)} failed" if result.errors else ""
    echo(f"\n{len(records)} records{errors}; {session.summary()}")


@click.command("report")
@click.argument("judge_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@model_option(_JUDGE_HELP)
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the report here.")
@click.option(
    "--plot", type=click.Path(path_type=Path), help="Write the confusion matrix here (PNG)."
)
@click.option(
    "--kappa-plot",
    type=click.Path(path_type=Path),
    help="On panel data (several raters per record), write the raters' and the judge's "
    "pairwise kappa matrix here (PNG).",
)
@click.option(
    "--bootstrap",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for the intervals (0: none).",
)
@columns_option
@limit_option
@workers_option
@base_url_option
def report_command(
    judge_file: Path,
    data: Path,
    model: str | None,
    json_path: Path | None,
    plot: Path | None,
    kappa_plot: Path | None,
    bootstrap: int,
    columns: tuple[str, ...],
    limit: int | None,
    workers: int,
    base_url: str | None,
) -> None:
    """Report how the judge in JUDGE_FILE agrees with the expert labels in DATA.

    Prints accuracy and Cohen's kappa with bootstrap intervals, the confusion matrix,
    per-label precision and recall, and the ids where the judge and the experts differ.
    On panel data (records with "ratings", or a long-form file with one row per id and
    rater) the judge is scored against the resolved labels and, as one more rater, its
    mean kappa with the raters is set beside theirs with each other.
    """
    from judgealign.cli._data import load_labelled, parse_columns

    session = Session()
    judge = session.judge(judge_file, model=model, base_url=base_url)
    loaded = load_labelled(data, judge=judge, columns=parse_columns(columns), limit=limit)
    echo_problems(loaded, data)
    records, held = held_out_only(judge, list(loaded))
    echo(f"Judging {len(records)} labelled records from {data} with {judge.name!r}")
    result = session.evaluate(judge, records, label="judging", workers=workers)
    report = agreement_of(judge, result.feedback, records, n_bootstrap=bootstrap)
    report = replace(report, excluded_ids=(*held, *report.excluded_ids))
    echo()
    echo(report.format())
    if json_path is not None:
        payload = {
            "judge": judge.name,
            "model": judge.model_uri,
            "data": str(data),
            "agreement": report.to_dict(),
        }
        echo(f"\nreport written to {write_json(json_path, payload)}")
    if plot is not None:
        from judgealign.cli._plots import confusion_factory, save_png

        title = f"{judge.name} vs experts (n={report.n})"
        echo(f"confusion matrix written to {save_png(confusion_factory(report, title), plot)}")
    if kappa_plot is not None:
        _write_kappa_plot(report, judge.name, kappa_plot)
    echo(f"\n{session.summary()}")


def _write_kappa_plot(report: AgreementReport, name: str, path: Path) -> None:
    if report.panel is None:
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(
            "--kappa-plot needs panel data: records with ratings from two or more raters "
            '(a "ratings" list, or long form with a "rater" column).'
        )
    from judgealign.cli._plots import kappa_factory, save_png

    title = f"{name} among the raters (n={report.panel.panel.n_units})"
    echo(f"kappa matrix written to {save_png(kappa_factory(report.panel, title), path)}")


def held_out_only(judge: Any, records: list[Any]) -> tuple[list[Any], tuple[str, ...]]:
    """The records an aligned judge does not hold in memory, and the ids of those it
    holds (left out, with a warning; none left is an error). Other judges hold none."""
    memorised = getattr(judge, "memorised", None)
    if not callable(memorised) or not records:
        return records, ()
    from judgealign.evaluation._leakage import leak_warning, refuse_all_leaked

    matches = cast("list[str | None]", memorised(records))
    held = tuple(_record_id(r, i) for i, r in enumerate(records) if matches[i] is not None)
    if len(held) == len(records):
        raise refuse_all_leaked(len(records), "report")
    if held:
        warnings.warn(leak_warning(held, len(records), "the report"), UserWarning, stacklevel=2)
    return [r for r, m in zip(records, matches, strict=True) if m is None], held


def _record_id(record: Any, position: int) -> str:
    if isinstance(record, dict):
        value = cast("dict[str, Any]", record).get("id")
    else:
        value = getattr(record, "id", None)
    return str(value) if value is not None else str(position)


def _echo_verdicts(
    ids: Sequence[str],
    records: Sequence[Any],
    feedback: Sequence[Feedback],
    *,
    show: int,
    labelled: bool,
) -> None:
    if show == 0:
        return
    header = ["id", "verdict", *(["expert"] if labelled else []), "rationale"]
    rows = [header]
    for rid, record, fb in list(zip(ids, records, feedback, strict=True))[:show]:
        expert = [_label_text(record.label)] if labelled else []
        why = fb.error if fb.error is not None else fb.rationale
        rows.append([shorten(rid, 16), verdict_text(fb), *expert, shorten(why or "", 70)])
    echo()
    echo_table(rows)
    if len(ids) > show:
        echo(f"... {len(ids) - show} more (--show N, or --output FILE for all)", indent=2)


def _label_text(label: object) -> str:
    if isinstance(label, bool):
        return "yes" if label else "no"
    return str(label)


def _verdict_row(rid: str, feedback: Feedback) -> dict[str, Any]:
    return {
        "id": rid,
        "name": feedback.name,
        "value": feedback.value,
        "rationale": feedback.rationale,
        "error": feedback.error,
    }
