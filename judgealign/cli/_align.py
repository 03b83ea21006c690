"""``judgealign align``: expert-labelled records -> an aligned judge file and a report.

The records are split (seeded, stratified by label) into a part to align on and a
held-out part; both judges are scored on the held-out part only, so the reported gain is
not measured on the records the judge learned from. The demo uses the same steps
(:func:`align_and_compare`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from judgealign.cli._common import (
    FixedVerdicts,
    Session,
    base_url_option,
    columns_option,
    limit_option,
    model_option,
    workers_option,
    write_json,
)
from judgealign.cli._output import echo, plural, shorten

if TYPE_CHECKING:
    from judgealign.evaluation._comparison import JudgeComparison
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._judge import Judge
    from judgealign.judges._records import LabeledRecord
    from judgealign.memalign._aligned import AlignedJudge
    from judgealign.memalign._optimizer import MemAlignOptimizer

__all__ = [
    "AlignmentRun",
    "align_and_compare",
    "align_command",
    "alignment_summary",
    "echo_guidelines",
    "make_optimizer",
]

_LOCAL_BATCH_TOKENS = 2500  # the embedded model's context is 4096 tokens, reply included


@dataclass(frozen=True)
class AlignmentRun:
    """What :func:`align_and_compare` produced.

    Attributes:
        aligned: the aligned judge.
        comparison: base vs aligned on the held-out records (``None`` without any).
        base_result: the base judge's verdicts on the held-out records.
        aligned_result: the aligned judge's verdicts on the held-out records.
    """

    aligned: AlignedJudge
    comparison: JudgeComparison | None
    base_result: EvaluationResult | None
    aligned_result: EvaluationResult | None


def make_optimizer(
    session: Session,
    judge_uri: str,
    *,
    reflection_model: str | None,
    embedding_model: str | None,
    retrieval_k: int | None,
    workers: int,
    base_url: str | None = None,
) -> MemAlignOptimizer:
    """A MemAlign optimizer whose distillation batches fit the reflection model.

    The reflection model is built on its own (the judge's model by default), so that a
    judge's short ``max_tokens`` does not cut the distilled guidelines. ``retrieval_k``
    ``None`` shows 2 examples per judgment to a local model (prompt tokens are its main
    cost) and 5 to others.
    """
    from judgealign.memalign._optimizer import MemAlignOptimizer

    uri = reflection_model or judge_uri
    reflection = session.model(uri, base_url=base_url)
    local = uri.startswith("local")
    return MemAlignOptimizer(
        reflection_model=reflection,
        embedding_model=embedding_model,
        retrieval_k=retrieval_k if retrieval_k is not None else (2 if local else 5),
        max_workers=workers,
        max_guidelines=12,
        batch_token_budget=_LOCAL_BATCH_TOKENS if local else 16_000,
        max_records_per_batch=12 if local else 50,
    )


def align_and_compare(
    session: Session,
    judge: Judge | AlignedJudge,
    train: list[LabeledRecord],
    held_out: list[LabeledRecord],
    optimizer: MemAlignOptimizer,
    *,
    workers: int,
    on_base: Any = None,
    on_aligned: Any = None,
) -> AlignmentRun:
    """Score the base judge on ``held_out``, align on ``train``, score the aligned judge,
    and compare. ``on_base(result)`` is called after the base scoring and
    ``on_aligned(aligned)`` after alignment (to report progress)."""
    from judgealign.evaluation._comparison import compare_judges
    from judgealign.memalign._aligned import AlignedJudge

    base = judge.copy() if isinstance(judge, AlignedJudge) else judge
    base_result = None
    if held_out:
        base_result = session.evaluate(base, held_out, label="base judge", workers=workers)
        if on_base is not None:
            on_base(base_result)
    # Recorded under the filters in effect, never a process-wide "always": worker threads
    # (the local model's loader among them) enter and leave catch_warnings too, and one
    # leaving after this block would reinstate "always" for good (ResourceWarnings at exit).
    with session.progress.phase("aligning"), warnings.catch_warnings(record=True) as caught:
        aligned = optimizer.align(judge, train)
    reported = set(aligned.last_alignment.warnings if aligned.last_alignment else ())
    for warning in caught:  # the alignment's own warnings are printed with its result
        if str(warning.message) not in reported:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )
    if on_aligned is not None:
        on_aligned(aligned)
    if base_result is None:
        return AlignmentRun(aligned, None, None, None)
    aligned_result = session.evaluate(aligned, held_out, label="aligned judge", workers=workers)
    comparison = compare_judges(
        FixedVerdicts(base_result, base.value_spec),
        FixedVerdicts(aligned_result, aligned.value_spec),
        held_out,
    )
    return AlignmentRun(aligned, comparison, base_result, aligned_result)


def echo_guidelines(aligned: AlignedJudge, *, indent: int = 2, width: int = 150) -> None:
    """Print the aligned judge's guidelines, numbered, with their ids and sources."""
    if not aligned.guidelines:
        echo("(no guidelines: the judge learned from examples only)", indent=indent)
    for number, guideline in enumerate(aligned.guidelines, start=1):
        pin = " [pinned]" if guideline.pinned else ""
        sources = f"  (from {', '.join(guideline.source_ids[:6])}" + (
            ", ...)" if len(guideline.source_ids) > 6 else ")"
        )
        echo(f"{number}. {shorten(guideline.text, width)}{pin}", indent=indent)
        echo(f"   id {guideline.id}{sources if guideline.source_ids else ''}", indent=indent)


def alignment_summary(aligned: AlignedJudge) -> dict[str, Any]:
    """A JSON-ready account of the latest alignment and the resulting memory."""
    result = aligned.last_alignment
    summary: dict[str, Any] = {
        "records_in_memory": len(aligned.record_ids),
        "pending_record_ids": list(aligned.pending_record_ids),
        "embedder": aligned.embedder_id,
        "settings": aligned.optimizer.settings(),
        "guidelines": [g.to_dict() for g in aligned.guidelines],
    }
    if result is not None:
        summary.update(
            records_added=len(result.records_added),
            records_updated=len(result.records_updated),
            records_rejected=[str(p) for p in result.problems],
            guidelines_added=list(result.guidelines_added),
            reflection_calls=result.usage.calls,
            failed_batches=len(result.failed_batches),
            warnings=list(result.warnings),
        )
    return summary


@click.command("align")
@click.argument("judge_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path), required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("aligned_judge.json"),
    show_default=True,
    help="Where to write the aligned judge.",
)
@click.option(
    "--experiment",
    metavar="NAME",
    help="Read the records from expert feedback on this MLflow experiment's traces.",
)
@model_option("Overrides the judge file's model.")
@click.option(
    "--reflection-model", metavar="URI", help="Distills guidelines (default: the judge's model)."
)
@click.option(
    "--embedding-model",
    metavar="SPEC",
    help="Embedder for retrieval: hashing, local:/minilm or a provider URI (default: local).",
)
@click.option(
    "--retrieval-k",
    type=click.IntRange(min=0),
    help="Expert examples shown per judgment (default: 2 for a local model, else 5).",
)
@click.option(
    "--test-size",
    type=click.FloatRange(min=0, max=1, max_open=True),
    default=0.3,
    show_default=True,
    help="Share of records held out to measure base vs aligned (0: align on all, no report).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--report", "report_path", type=click.Path(path_type=Path), help="Write the report (JSON) here."
)
@columns_option
@limit_option
@workers_option
@base_url_option
def align_command(
    judge_file: Path,
    data: Path | None,
    output: Path,
    experiment: str | None,
    model: str | None,
    reflection_model: str | None,
    embedding_model: str | None,
    retrieval_k: int | None,
    test_size: float,
    seed: int,
    report_path: Path | None,
    columns: tuple[str, ...],
    limit: int | None,
    workers: int,
    base_url: str | None,
) -> None:
    """Align the judge in JUDGE_FILE with the expert labels in DATA.

    DATA is a .jsonl, .json or .csv file of records with "inputs" and/or "outputs", a
    "label" and, best, a "rationale". JUDGE_FILE may be an aligned judge: it then learns
    the new and changed records only.
    """
    from judgealign.core._errors import ConfigurationError
    from judgealign.memalign._aligned import AlignedJudge

    if (data is None) == (experiment is None):
        raise ConfigurationError("Give either a DATA file or --experiment NAME (not both).")
    session = Session()
    judge = session.judge(judge_file, model=model, base_url=base_url)
    records = _labelled_records(judge, data, experiment, columns, limit)
    train, held_out = _split(records, test_size, seed)
    echo(
        f"{len(records)} labelled records: {len(train)} to align, {len(held_out)} held out; "
        f"judge {judge.name!r} on {judge.model_uri}"
    )
    if embedding_model is None and isinstance(judge, AlignedJudge):
        embedding_model = judge.embedder_id  # keep comparing vectors made the same way
    optimizer = make_optimizer(
        session,
        judge.model_uri,
        reflection_model=reflection_model,
        embedding_model=embedding_model,
        retrieval_k=retrieval_k,
        workers=workers,
        base_url=base_url,
    )
    run = align_and_compare(session, judge, train, held_out, optimizer, workers=workers)
    _echo_run(run, output)
    if report_path is not None:
        payload = {
            "judge": judge.name,
            "model": judge.model_uri,
            "records": {"train": [r.id for r in train], "held_out": [r.id for r in held_out]},
            "alignment": alignment_summary(run.aligned),
            "comparison": None if run.comparison is None else run.comparison.to_dict(),
        }
        echo(f"report written to {write_json(report_path, payload)}")
    echo(session.summary())


def _labelled_records(
    judge: Judge | AlignedJudge,
    data: Path | None,
    experiment: str | None,
    columns: tuple[str, ...],
    limit: int | None,
) -> list[LabeledRecord]:
    """The expert records from DATA, else from the MLflow experiment."""
    from judgealign.cli._data import load_labelled, parse_columns
    from judgealign.cli._judge import echo_problems

    if data is not None:
        loaded = load_labelled(data, judge=judge, columns=parse_columns(columns), limit=limit)
    else:
        from judgealign.cli._tracking import records_from_experiment

        loaded = records_from_experiment(str(experiment), judge=judge, limit=limit)
    echo_problems(loaded, data or Path(str(experiment)))
    return list(loaded)


def _split(
    records: list[LabeledRecord], test_size: float, seed: int
) -> tuple[list[LabeledRecord], list[LabeledRecord]]:
    """Train and held-out records (all to train when ``test_size`` is 0)."""
    from judgealign.evaluation._split import split_records

    if test_size == 0:
        return records, []
    return split_records(records, test_size=test_size, seed=seed)


def _echo_run(run: AlignmentRun, output: Path) -> None:
    """What alignment did, the guidelines, the comparison; then save the aligned judge."""
    aligned = run.aligned
    if aligned.last_alignment is not None:
        echo(aligned.last_alignment.format(), indent=2)
    echo(f"\n{plural(len(aligned.guidelines), 'guideline')}:")
    echo_guidelines(aligned)
    if run.comparison is not None:
        echo()
        echo(run.comparison.format())
    echo(f"\naligned judge written to {aligned.save(output)}")
