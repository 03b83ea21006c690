"""``judgealign demo``: the whole loop on a small task that ships with judgealign.

A support lead labelled 60 replies of a cloud-storage support assistant as acceptable or
not, with rationales (``judgealign/resources/demo``). The demo builds a judge from a
generic instruction, scores it on held-out records, aligns it on the rest, compares base
and aligned on the held-out records, optimizes the assistant's prompt with the aligned
judge as the objective, and writes every artifact to ``--out`` (and to MLflow).

The run is budgeted for the embedded 135M model on two CPU cores, where the cost is
mostly prompt tokens (a few dozen per second on one busy core; the judge's shared
instructions are cached between calls): short judge rationales (``max_tokens`` 64 in the
demo's judge file), two retrieved examples per judgment, distillation batches that fit
the model's 4k context, and few optimization questions. By default about 70 calls, with
``--fast`` about 35; ``--records``, ``--questions``, ``--iterations`` and
``--retrieval-k`` size it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from judgealign.cli import _models as _cli_models
from judgealign.cli._common import Session
from judgealign.cli._output import echo, invoked_as, plural, step

if TYPE_CHECKING:
    from judgealign.cli._align import AlignmentRun
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._judge import Judge
    from judgealign.judges._records import LabeledRecord
    from judgealign.memalign._aligned import AlignedJudge

__all__ = ["DemoSettings", "demo_command", "run_demo"]

STEPS = 5
FAST = {"records": 24, "questions": 3, "iterations": 1}


@dataclass(frozen=True)
class DemoSettings:
    """The knobs of a demo run (see ``judgealign demo --help``)."""

    model: str
    reflection_model: str | None = None
    embedding_model: str | None = None
    records: int = 60
    test_size: float = 1 / 3
    questions: int = 4
    iterations: int = 2
    optimizer: str = "metaprompt"
    retrieval_k: int = 2
    workers: int = 4
    seed: int = 0
    max_tokens: int = 96
    mlflow: bool = True

    def expected_calls(self) -> int:
        """About how many model calls the run makes (for the progress display)."""
        held_out = round(self.records * self.test_size)
        optimize = 2 + 2 * self.questions + self.iterations * (1 + 2 * self.questions)
        return 2 * held_out + 4 + optimize


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("judgealign-demo"),
    show_default=True,
    help="Folder for the artifacts.",
)
@click.option(
    "--model",
    metavar="URI",
    help="Any litellm model, e.g. openai:/gpt-4o-mini (default: $JUDGEALIGN_MODEL or "
    "local:/smollm2, the embedded offline model).",
)
@click.option(
    "--reflection-model",
    metavar="URI",
    help="Distills guidelines and rewrites the prompt (default: --model).",
)
@click.option(
    "--embedding-model",
    metavar="SPEC",
    help="hashing, local:/minilm or a provider URI (default: local).",
)
@click.option("--fast", is_flag=True, help="A smaller run: 24 records, 3 questions, 1 iteration.")
@click.option("--records", type=click.IntRange(12, 60), help="How many of the 60 records to use.")
@click.option(
    "--questions", type=click.IntRange(1, 8), help="Questions scoring each prompt (of 8)."
)
@click.option("--iterations", type=click.IntRange(min=1), help="Prompt optimization rounds.")
@click.option(
    "--optimizer",
    type=click.Choice(["metaprompt", "gepa"]),
    default="metaprompt",
    show_default=True,
)
@click.option(
    "--retrieval-k",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Expert examples shown per judgment (each adds about 150 prompt tokens).",
)
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--mlflow/--no-mlflow", default=True, show_default=True, help="Also record the run in MLflow."
)
def demo_command(
    out: Path,
    model: str | None,
    reflection_model: str | None,
    embedding_model: str | None,
    fast: bool,
    records: int | None,
    questions: int | None,
    iterations: int | None,
    optimizer: str,
    retrieval_k: int,
    workers: int,
    seed: int,
    mlflow: bool,
) -> None:
    """Build, evaluate, align and use a judge on a small task that ships with judgealign.

    Runs offline on the embedded model by default. Prints base vs aligned agreement on
    held-out records, optimizes a prompt with the aligned judge, and writes the aligned
    judge, a JSON report and PNG plots to --out (and to MLflow's local store).
    """
    settings = DemoSettings(
        model=model or _cli_models.default_model_uri(),
        reflection_model=reflection_model,
        embedding_model=embedding_model,
        optimizer=optimizer,
        retrieval_k=retrieval_k,
        workers=workers,
        seed=seed,
        mlflow=mlflow,
    )
    if fast:
        settings = replace(settings, **FAST)
    overrides = {"records": records, "questions": questions, "iterations": iterations}
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    run_demo(settings, out)


def run_demo(settings: DemoSettings, out: Path) -> dict[str, Any]:
    """Run the demo and write its artifacts; returns the report."""
    from judgealign.cli._tracking import TrackingTarget, make_tracker, tracking

    # A model that cannot run (no key, no local extra) fails here, before an MLflow run
    # (and a new mlflow.db in the user's folder) is created for a demo that never starts.
    for uri in (settings.model, settings.reflection_model):
        if uri is not None:
            _cli_models.check_model_ready(uri)
    session = Session()
    target = (
        make_tracker("judgealign-demo")
        if settings.mlflow
        else TrackingTarget(None, "off (--no-mlflow)")
    )
    with tracking(target) as tracker:
        if tracker is None:
            report, artifacts, aligned = _run_steps(session, settings, out)
        else:
            with tracker.start_run("judgealign-demo", tags={"judgealign.operation": "demo"}):
                report, artifacts, aligned = _run_steps(session, settings, out)
                from judgealign.cli._demo_files import log_demo_run

                log_demo_run(tracker, report, aligned, artifacts)
    echo()
    echo(click.style(f"Artifacts in {out}", bold=True))
    width = max(len(name) for name, _ in artifacts.lines())
    for name, what in artifacts.lines():
        echo(f"{name:<{width}}  {what}", indent=2)
    echo(f"MLflow: {target.where}")
    echo(f"\nDone: {session.summary()}.")
    echo(f"Next: {invoked_as()} guidelines list {out / 'aligned_judge.json'}")
    return report


def _run_steps(
    session: Session, settings: DemoSettings, out: Path
) -> tuple[dict[str, Any], Any, Any]:
    from judgealign.cli._demo_files import DEMO_DIR, JUDGE_FILE, copy_inputs, write_artifacts

    judge = session.judge(DEMO_DIR / JUDGE_FILE, model=settings.model)
    _echo_header(settings, judge.model_uri, out)
    inputs = copy_inputs(out)
    train, held_out = _step_records(judge, inputs, settings)
    step(2, STEPS, f"The base judge on the {len(held_out)} held-out records")
    run = _step_align(session, settings, judge, train, held_out)
    assert run.comparison is not None and run.base_result and run.aligned_result
    echo(run.comparison.format(), indent=2)
    _echo_lap(session)
    step(5, STEPS, "Optimizing the support assistant's prompt with the aligned judge")
    optimization, curve = _step_optimize(session, run, inputs, settings)
    _echo_lap(session)
    report = _report(session, settings, judge.model_uri, (train, held_out), run, optimization)
    artifacts = write_artifacts(
        out,
        report=report,
        aligned=run.aligned,
        comparison=run.comparison,
        held_out=held_out,
        verdicts=(run.base_result, run.aligned_result),
        optimized_prompt=optimization["optimized_prompt"],
        curve=curve,
    )
    return report, artifacts, run.aligned


def _step_align(
    session: Session,
    settings: DemoSettings,
    judge: Judge | AlignedJudge,
    train: list[LabeledRecord],
    held_out: list[LabeledRecord],
) -> AlignmentRun:
    """Steps 2 to 4: the base judge on held-out records, aligning, and both compared."""
    from judgealign.cli._align import align_and_compare, make_optimizer

    optimizer = make_optimizer(
        session,
        settings.model,
        reflection_model=settings.reflection_model,
        embedding_model=settings.embedding_model,
        retrieval_k=settings.retrieval_k,
        workers=settings.workers,
    )

    def before_alignment(result: EvaluationResult) -> None:
        _echo_base(judge, held_out, result)
        _echo_lap(session)
        step(3, STEPS, f"Aligning the judge on the {len(train)} other records")

    def after_alignment(aligned: AlignedJudge) -> None:
        _echo_alignment(aligned)
        _echo_lap(session)
        step(4, STEPS, f"Base vs aligned judge on the {len(held_out)} held-out records")

    return align_and_compare(
        session,
        judge,
        train,
        held_out,
        optimizer,
        workers=settings.workers,
        on_base=before_alignment,
        on_aligned=after_alignment,
    )


def _report(
    session: Session,
    settings: DemoSettings,
    judge_model: str,
    split: tuple[list[LabeledRecord], list[LabeledRecord]],
    run: AlignmentRun,
    optimization: dict[str, Any],
) -> dict[str, Any]:
    """The demo's report.json: settings, split, what alignment did, comparison, cost."""
    from judgealign.cli._align import alignment_summary

    train, held_out = split
    assert run.comparison is not None
    return {
        "task": "Nimbus Drive support replies, judged by the support lead",
        "settings": {**asdict(settings), "judge_model": judge_model},
        "records": {"train": [r.id for r in train], "held_out": [r.id for r in held_out]},
        "alignment": alignment_summary(run.aligned),
        "comparison": run.comparison.to_dict(),
        "optimization": optimization,
        "usage": {
            "model_calls": session.counter.calls,
            "seconds": round(session.progress.elapsed, 1),
        },
    }


def _step_records(
    judge: Judge | Any, inputs: Path, settings: DemoSettings
) -> tuple[list[LabeledRecord], list[LabeledRecord]]:
    from judgealign.cli._data import load_labelled
    from judgealign.evaluation._split import split_records

    step(1, STEPS, "The expert's records")
    records = list(
        load_labelled(inputs / "support_feedback.jsonl", judge=judge, limit=settings.records)
    )
    train, held_out = split_records(records, test_size=settings.test_size, seed=settings.seed)
    accepted = sum(1 for r in records if r.label is True)
    echo(
        f"{len(records)} replies labelled by the support lead ({accepted} acceptable, "
        f"{len(records) - accepted} not): {len(train)} to align on, {len(held_out)} held out",
        indent=2,
    )
    echo(f"judge {judge.name!r}: {judge.instructions}", indent=2)
    return train, held_out


def _echo_base(judge: Any, held_out: list[LabeledRecord], result: EvaluationResult) -> None:
    from judgealign.cli._judge import agreement_of

    report = agreement_of(judge, result.feedback, held_out, n_bootstrap=0)
    echo(
        f"accuracy {report.accuracy:.3f}, Cohen's kappa {report.kappa:.3f}; it disagrees with "
        f"the expert on {len(report.disagreeing_ids)} of {report.n} records"
        + (f" and failed on {report.n_failed}" if report.n_failed else ""),
        indent=2,
    )


def _echo_lap(session: Session) -> None:
    echo(click.style(f"({session.lap()})", dim=True), indent=2)


def _echo_alignment(aligned: AlignedJudge) -> None:
    from judgealign.cli._align import echo_guidelines

    result = aligned.last_alignment
    if result is not None:
        echo(result.format(), indent=2)
    echo(
        f"{plural(len(aligned.guidelines), 'guideline')} distilled from the expert's rationales:",
        indent=2,
    )
    echo_guidelines(aligned, indent=4)


def _step_optimize(
    session: Session, run: AlignmentRun, inputs: Path, settings: DemoSettings
) -> tuple[dict[str, Any], Any]:
    from judgealign.cli._data import read_rows
    from judgealign.cli._optimize import (
        OptimizeSettings,
        echo_optimization,
        expected_calls,
        optimization_summary,
        read_prompt,
        run_optimization,
        training_rows,
    )
    from judgealign.cli._plots import curve_factory

    name, template = read_prompt(inputs / "support_prompt.txt")
    rows = training_rows(read_rows(inputs / "questions.jsonl", limit=settings.questions), template)
    app = session.model(settings.model, params={"max_tokens": settings.max_tokens})
    # Its own model, without the application's max_tokens: a rewrite is a whole prompt.
    reflection = session.model(settings.reflection_model or settings.model)
    options = OptimizeSettings(
        optimizer="gepa" if settings.optimizer == "gepa" else "metaprompt",
        iterations=settings.iterations,
        budget=6 * settings.questions,
        workers=settings.workers,
        seed=settings.seed,
    )
    echo(f"prompt {name!r}, {len(rows)} customer messages, {options.optimizer}", indent=2)
    with session.progress.phase("optimizing", expected_calls(len(rows), options)):
        result = run_optimization(
            name=name,
            template=template,
            rows=rows,
            judge=run.aligned,
            app_model=app,
            reflection_model=reflection,
            settings=options,
        )
    summary = optimization_summary(result, template)
    echo_optimization(summary, records=len(rows))
    return summary, curve_factory(result, "Prompt score, judged by the aligned judge")


def _echo_header(settings: DemoSettings, model_uri: str, out: Path) -> None:
    echo(
        click.style("judgealign demo", bold=True)
        + ": align a judge with an expert, then optimize a prompt with it"
    )
    rows = [
        ("model", model_uri),
        ("reflection", settings.reflection_model or "(same model)"),
        ("embedder", settings.embedding_model or "(local default)"),
        ("budget", f"about {settings.expected_calls()} model calls"),
        ("output", str(out)),
    ]
    echo("\n".join(f"  {k:<11}{v}" for k, v in rows))
