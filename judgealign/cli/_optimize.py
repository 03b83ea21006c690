"""``judgealign optimize``: improve a prompt file against a judge on a dataset.

The application under optimization is the prompt itself: each record's ``inputs`` fill
the prompt's ``{{ variables }}``, the filled prompt goes to ``--model`` as one user
message, and the judge scores the reply (``inputs`` and ``outputs``). The demo runs the
same code (:func:`run_optimization`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

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
    from judgealign.models._chat import ChatModel
    from optimizers import PromptOptimizationResult

__all__ = [
    "OptimizeSettings",
    "echo_optimization",
    "expected_calls",
    "optimization_summary",
    "optimize_command",
    "read_prompt",
    "run_optimization",
    "training_rows",
]

OptimizerName = Literal["metaprompt", "gepa"]


@dataclass(frozen=True)
class OptimizeSettings:
    """How to optimize.

    Attributes:
        optimizer: ``metaprompt`` (iterative rewrite from scored examples) or ``gepa``.
        iterations: metaprompt rounds.
        budget: GEPA's cap on scored records (metric calls).
        workers: records scored at once.
        seed: the optimizer's seed.
    """

    optimizer: OptimizerName = "metaprompt"
    iterations: int = 2
    budget: int = 40
    workers: int = 4
    seed: int = 0


def read_prompt(path: Path) -> tuple[str, str]:
    """``(name, template)`` of a prompt file; the name comes from the file name.

    Raises:
        ConfigurationError: unreadable, empty, or without a ``{{ variable }}``.
    """
    from judgealign.core._errors import ConfigurationError
    from optimizers import template_variables

    try:
        template = path.expanduser().read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(f"Cannot read the prompt file {str(path)!r}: {reason}.") from None
    if not template_variables(template):
        raise ConfigurationError(
            f"The prompt in {str(path)!r} has no {{{{ variable }}}}: write where the record's "
            "inputs go, e.g. 'Answer the customer: {{ message }}'."
        )
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", path.stem).strip("_.-") or "prompt"
    return name, template


def training_rows(rows: Sequence[Mapping[str, Any]], template: str) -> list[dict[str, Any]]:
    """Rows for ``optimize_prompts``: ``inputs`` as given, else the template's variables
    taken from the row's own keys."""
    from optimizers import template_variables

    names = template_variables(template)
    shaped: list[dict[str, Any]] = []
    for row in rows:
        inputs = row.get("inputs")
        if not isinstance(inputs, Mapping):
            inputs = {n: row[n] for n in names if n in row}
        item: dict[str, Any] = {"inputs": dict(inputs)}  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(row.get("expectations"), Mapping):
            item["expectations"] = row["expectations"]
        shaped.append(item)
    return shaped


def make_predict_fn(prompt_uri: str, model: ChatModel) -> Callable[..., str]:
    """The application: fill the prompt in effect with the inputs and ask ``model``."""

    def predict(**inputs: Any) -> str:
        from optimizers import load_prompt

        text = load_prompt(prompt_uri).format(**inputs)
        return model.complete([{"role": "user", "content": text}]).text.strip()

    return predict


def expected_calls(records: int, settings: OptimizeSettings) -> int | None:
    """About how many model calls a run makes (``None`` when it cannot be told)."""
    if settings.optimizer != "metaprompt":
        return None
    per_round = 2 * records  # one reply and one judgment per record
    return 2 + per_round + settings.iterations * (1 + per_round)


def run_optimization(
    *,
    name: str,
    template: str,
    rows: list[dict[str, Any]],
    judge: Any,
    app_model: ChatModel,
    reflection_model: ChatModel,
    settings: OptimizeSettings,
) -> PromptOptimizationResult:
    """Register the prompt and optimize it with ``judge`` as the only scorer."""
    from optimizers import (
        BasePromptOptimizer,
        GepaPromptOptimizer,
        MetaPromptOptimizer,
        optimize_prompts,
        register_prompt,
    )

    prompt = register_prompt(name, template, commit_message="judgealign optimize: the original")
    optimizer: BasePromptOptimizer
    if settings.optimizer == "gepa":
        optimizer = GepaPromptOptimizer(
            reflection_model, max_metric_calls=settings.budget, seed=settings.seed, progress=False
        )
    else:
        optimizer = MetaPromptOptimizer(
            reflection_model,
            mode="iterative",
            max_iterations=settings.iterations,
            num_examples=4,
            seed=settings.seed,
            max_workers=settings.workers,
        )
    return optimize_prompts(
        predict_fn=make_predict_fn(prompt.uri, app_model),
        train_data=rows,
        prompt_uris=[prompt.uri],
        optimizer=optimizer,
        scorers=[judge],
        max_workers=settings.workers,
    )


def optimization_summary(result: PromptOptimizationResult, original: str) -> dict[str, Any]:
    """A JSON-ready account of a run; ``curve`` lists every proposal, scored or not."""
    from judgealign.cli._optimization_view import proposals

    prompt = result.optimized_prompts[0]
    return {
        "optimizer": result.optimizer_name,
        "initial_score": result.initial_eval_score,
        "final_score": result.final_eval_score,
        "improved": result.improved,
        "prompt_uri": prompt.uri,
        "original_prompt": original,
        "optimized_prompt": prompt.stored_template,
        "curve": [p.to_dict() for p in proposals(result)],
        "metric_calls": result.details.get("metric_calls"),
    }


def echo_optimization(summary: Mapping[str, Any], *, records: int) -> None:
    """Print the score change, one row per proposal (why it was not kept, when it was
    not) and the resulting prompt."""
    initial, final = summary["initial_score"], summary["final_score"]
    change = "improved" if summary["improved"] else "no better prompt found; kept the original"
    if initial is not None and final is not None:
        echo(f"score on {records} records: {initial:.3f} -> {final:.3f} ({change})", indent=2)
    rows = [["step", "score", "best so far", "outcome"]]
    for point in summary["curve"]:
        score = "-" if point["score"] is None else f"{point['score']:.3f}"
        best = "-" if point["best"] is None else f"{point['best']:.3f}"
        outcome = point["outcome"] + (f": {point['reason']}" if point["reason"] else "")
        rows.append([str(point["step"]), score, best, shorten(outcome, 90)])
    if len(rows) > 1:
        echo_table(rows, indent=4)
    echo(f"prompt ({summary['prompt_uri']}):", indent=2)
    echo(summary["optimized_prompt"], indent=4)


@click.command("optimize")
@click.argument("prompt_file", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--judge",
    "judge_file",
    required=True,
    type=click.Path(path_type=Path),
    help="The objective: a judge spec, saved judge or aligned judge file.",
)
@model_option("The model that runs the prompt (default: $JUDGEALIGN_MODEL or local:/smollm2).")
@click.option("--judge-model", metavar="URI", help="Overrides the judge file's model.")
@click.option(
    "--reflection-model",
    metavar="URI",
    help="The model that rewrites the prompt (default: --model).",
)
@click.option(
    "--optimizer",
    type=click.Choice(["metaprompt", "gepa"]),
    default="metaprompt",
    show_default=True,
)
@click.option("--iterations", type=click.IntRange(min=1), default=2, show_default=True)
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="GEPA: the most records scored in total.",
)
@click.option("--max-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("judgealign-optimize"),
    show_default=True,
    help="Folder for optimized_prompt.txt, optimization.json and optimization.png.",
)
@columns_option
@limit_option
@workers_option
@base_url_option
def optimize_command(
    prompt_file: Path,
    data: Path,
    judge_file: Path,
    model: str | None,
    judge_model: str | None,
    reflection_model: str | None,
    optimizer: OptimizerName,
    iterations: int,
    budget: int,
    max_tokens: int,
    out: Path,
    columns: tuple[str, ...],
    limit: int | None,
    workers: int,
    base_url: str | None,
) -> None:
    """Optimize the prompt in PROMPT_FILE so that the judge rates its replies higher.

    DATA holds one record per line with "inputs" (the prompt's variables); the prompt is
    filled in, sent to --model, and the judge scores the reply.
    """
    from judgealign.cli import _models as _cli_models
    from judgealign.cli._data import apply_columns, parse_columns, read_rows
    from judgealign.cli._plots import curve_factory, save_png

    session = Session()
    name, template = read_prompt(prompt_file)
    rows = training_rows(
        apply_columns(read_rows(data, limit=limit), parse_columns(columns)), template
    )
    judge = session.judge(judge_file, model=judge_model, base_url=base_url)
    app_uri = model or _cli_models.default_model_uri()
    app = session.model(app_uri, params={"max_tokens": max_tokens}, base_url=base_url)
    # Its own model, without the application's max_tokens: a rewrite is a whole prompt.
    reflection = session.model(reflection_model or app_uri, base_url=base_url)
    settings = OptimizeSettings(optimizer, iterations, budget, workers)
    echo(
        f"Optimizing {prompt_file} ({app.uri}) against judge {judge.name!r} on {len(rows)} records"
    )
    with session.progress.phase("optimizing", expected_calls(len(rows), settings)):
        result = run_optimization(
            name=name,
            template=template,
            rows=rows,
            judge=judge,
            app_model=app,
            reflection_model=reflection,
            settings=settings,
        )
    summary = optimization_summary(result, template)
    echo_optimization(summary, records=len(rows))
    out.mkdir(parents=True, exist_ok=True)
    (out / "optimized_prompt.txt").write_text(summary["optimized_prompt"] + "\n", encoding="utf-8")
    write_json(out / "optimization.json", summary)
    written = ["optimized_prompt.txt", "optimization.json"]
    curve = curve_factory(result, f"{result.optimizer_name}: {judge.name} score")
    if curve is not None:
        save_png(curve, out / "optimization.png")
        written.append("optimization.png")
    echo(f"wrote {', '.join(str(out / w) for w in written)}")
    echo(f"{session.summary()}")
