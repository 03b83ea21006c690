"""Optimize a classification prompt with an aligned judge as the objective.

The script ties the two halves of the project together. It aligns a judge with a few
expert verdicts (MemAlign), then hands that aligned judge to a prompt optimizer (GEPA or
metaprompting) as the score to climb, and finally checks the optimized prompt on records
the optimizer never saw.

1. **Task.** By default the script writes ``support_tickets.jsonl`` to ``--out`` (a new
   temporary folder unless you name one): 24 customer messages, each labelled
   ``billing``, ``technical`` or ``other``. With ``--data`` it reads any JSONL in the
   same shape (``inputs.question``, ``label`` = the expected answer, optional
   ``inputs.task``), such as the BIG-Bench-Hard extract in
   ``../shared/data/bbh/``; ``--task`` keeps one task, ``--limit`` the first N records.
   The records are split (seeded) into a part to optimize on and a held-out part.
2. **Objective.** A boolean judge asks whether a reply gives the expected answer. It is
   aligned on expert verdicts about example replies. For the built-in task these are 12
   hand-written verdicts (written to ``support_feedback.jsonl``). Their point: the replies
   go to a program that reads them verbatim, so only the bare label counts, not a sentence
   that contains it. A base judge tends to accept such sentences; the aligned one learns
   not to. With ``--data`` the verdicts are derived from the training records by a fixed
   rule (see :func:`derive_feedback`), or read from ``--feedback PATH``.
3. **Prompt.** A deliberately weak template is registered as ``prompts:/classify/<n>``;
   ``predict_fn(question)`` loads it, fills in the question and asks the model.
4. **Optimization.** ``optimize_prompts`` runs GEPA (``--optimizer gepa``, the default) or
   the metaprompt optimizer (``--optimizer metaprompt``) with the aligned judge as scorer.
5. **Report.** The objective score before and after, the optimized template, and the
   held-out accuracy of the initial and the optimized prompt, measured two ways: exact
   match with the expected answer (trimmed, case-insensitive, a final full stop ignored)
   and the aligned judge's verdict.

Every model role (the classifier, the judge, the reflection model of the aligner and of
the optimizer) uses ``--model``, any litellm model URI, unless ``--reflection-model``
names a stronger one for reflection. The default is ``$JUDGEALIGN_MODEL``, else the local
model ``local:/smollm2``, which needs no network but is small: expect modest gains.

    python examples/optimize_with_aligned_judge.py
    python examples/optimize_with_aligned_judge.py --model openai:/gpt-4o-mini
    python examples/optimize_with_aligned_judge.py --optimizer metaprompt --iterations 4
    python examples/optimize_with_aligned_judge.py --model openai:/gpt-4o-mini \\
        --data ../shared/data/bbh/bbh_prompt_opt.jsonl --task causal_judgement --limit 60

Exit status: 0 on success, 2 on a configuration or model error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from judgealign import (
    AlignedJudge,
    ChatModel,
    ConfigurationError,
    JudgeAlignError,
    LabeledRecord,
    MemAlignOptimizer,
    Message,
    load_jsonl,
    make_judge,
    resolve_model,
    split_records,
)
from optimizers import (
    BasePromptOptimizer,
    GepaPromptOptimizer,
    MetaPromptOptimizer,
    PromptOptimizationResult,
    load_prompt,
    make_eval_fn,
    optimize_prompts,
    register_prompt,
    template_variables,
)

PROMPT_NAME = "classify"
TASK_FILE = "support_tickets.jsonl"
FEEDBACK_FILE = "support_feedback.jsonl"
TASK_NAME = "support_triage"
JUDGE_INSTRUCTIONS = (
    "Does the reply in {{ outputs }} give the expected answer in {{ expectations }} to the "
    "question in {{ inputs }}? Answer true if it does, false otherwise."
)
SAMPLE_PROMPT = "Customer message:\n{{ question }}\n\nWhat is this message about?"
GENERIC_PROMPT = "{{ question }}"

# (customer message, category): written for this example.
SAMPLE_TASK = [
    ("I was charged twice for my March subscription. Can you refund one payment?", "billing"),
    ("Why did my invoice go up from $20 to $35 this month?", "billing"),
    ("Please update the credit card on file; the old one expired.", "billing"),
    ("I cancelled last week but was still billed for the annual plan.", "billing"),
    ("Can I get a receipt with our company VAT number on it?", "billing"),
    ("The discount code SPRING10 was not applied to my order total.", "billing"),
    ("How do I switch from monthly to yearly billing?", "billing"),
    ("There is a charge from you on my bank statement that I don't recognise.", "billing"),
    ("The app crashes every time I open the settings page on Android 14.", "technical"),
    ("I can't log in: the password reset email never arrives.", "technical"),
    ("Sync between my laptop and my phone stopped working yesterday.", "technical"),
    ("Exporting a report to PDF gives me a blank file.", "technical"),
    ("Your API has returned error 502 for every request since this morning.", "technical"),
    ("Since the last update, notifications no longer show up on my iPhone.", "technical"),
    ("Uploading files larger than 10 MB fails with 'network error'.", "technical"),
    ("The dashboard takes over a minute to load in Firefox.", "technical"),
    ("Do you have any job openings for support engineers in Lisbon?", "other"),
    ("I just wanted to say your onboarding videos are excellent. Thanks!", "other"),
    ("Could I visit your office to meet the team next week?", "other"),
    ("Are you planning a Spanish version of the documentation?", "other"),
    ("Who should I contact about a partnership with our podcast?", "other"),
    ("What are your opening hours over the holidays?", "other"),
    ("Please take me off your marketing newsletter.", "other"),
    ("Is your company carbon neutral?", "other"),
]

VERBATIM = (
    "The router reads the reply verbatim: a sentence around the label is not a label, and "
    "the ticket gets lost."
)

# (customer message, category, the classifier's reply, expert verdict, rationale): written
# for this example. None of these messages is in SAMPLE_TASK, so nothing leaks into the
# held-out records.
SAMPLE_FEEDBACK = [
    (
        "My card was declined at renewal, but the money still left my account.",
        "billing",
        "billing",
        "yes",
        "Correct category, given as the bare label the ticket router expects.",
    ),
    (
        "The search bar returns no results, even for exact titles.",
        "technical",
        "technical",
        "yes",
        "Correct, and nothing but the label.",
    ),
    (
        "Can you send me your brand guidelines for a press article?",
        "other",
        "Other",
        "yes",
        "Correct; capitalisation does not matter to the router.",
    ),
    (
        "I was billed in dollars instead of euros.",
        "billing",
        "This message is about billing.",
        "no",
        "Right category, but " + VERBATIM[0].lower() + VERBATIM[1:],
    ),
    (
        "The mobile app logs me out every few minutes.",
        "technical",
        "The category is technical, since the user cannot stay logged in.",
        "no",
        "The correct category is buried in an explanation. " + VERBATIM,
    ),
    (
        "The export button is greyed out although I pay for the Pro plan.",
        "technical",
        "billing or technical",
        "no",
        "Two labels are a hedge, not a decision; the router needs exactly one.",
    ),
    (
        "Do you sponsor student hackathons?",
        "other",
        "technical",
        "no",
        "Wrong: a sponsorship request is not a problem with the product, so it is other.",
    ),
    (
        "I need copies of last year's invoices for our accountant.",
        "billing",
        "billing.",
        "yes",
        "Correct; a final full stop does not matter.",
    ),
    (
        "Two-factor codes arrive after they have already expired.",
        "technical",
        "Category: technical",
        "no",
        "Right category, but the 'Category:' prefix is extra text. " + VERBATIM,
    ),
    (
        "Your pricing page lists a plan that I can't find at checkout.",
        "billing",
        "payment",
        "no",
        "'payment' is not one of the labels (billing, technical, other); a synonym cannot "
        "be routed.",
    ),
    (
        "Will you be at the Web Summit this year?",
        "other",
        "other",
        "yes",
        "Correct.",
    ),
    (
        "The invoice PDF won't download; the link gives a 404.",
        "technical",
        "technical",
        "yes",
        "Correct: the invoice itself is fine, the download is broken, so it is technical.",
    ),
]


@dataclass(frozen=True)
class Example:
    """One labelled question of the task whose prompt is optimized."""

    id: str
    task: str
    question: str
    answer: str

    def row(self) -> dict[str, Any]:
        """The record shape ``optimize_prompts`` and the evaluator take."""
        return {
            "inputs": {"question": self.question},
            "expectations": {"expected_response": self.answer},
        }


# -- data ---------------------------------------------------------------------------------


def sample_folder(out: Path | None) -> Path:
    """``out`` (created if missing), else a new temporary folder: never the working folder,
    which is often a clone of this repository."""
    if out is None:
        return Path(tempfile.mkdtemp(prefix="judgealign-example-"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_sample(folder: Path) -> tuple[Path, Path]:
    """Write the built-in task and expert feedback files; return their paths."""
    task_lines = [
        {
            "id": f"ticket-{n:02d}",
            "inputs": {"task": TASK_NAME, "question": message},
            "outputs": None,
            "label": category,
        }
        for n, (message, category) in enumerate(SAMPLE_TASK)
    ]
    feedback_lines = [
        {
            "id": f"feedback-{n:02d}",
            "inputs": {"question": message},
            "outputs": reply,
            "expectations": {"expected_response": category},
            "label": verdict,
            "rationale": rationale,
            "annotator": "support-lead",
        }
        for n, (message, category, reply, verdict, rationale) in enumerate(SAMPLE_FEEDBACK)
    ]
    task_path, feedback_path = folder / TASK_FILE, folder / FEEDBACK_FILE
    for path, lines in ((task_path, task_lines), (feedback_path, feedback_lines)):
        text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        path.write_text(text, encoding="utf-8")
    return task_path, feedback_path


def load_examples(path: Path, *, task: str | None, limit: int | None) -> list[Example]:
    """Read the task records, keep ``task`` (when given) and then the first ``limit``.

    Raises:
        ConfigurationError: the file cannot be read or holds no usable record.
    """
    loaded = load_jsonl(path)
    if loaded.problems:
        print(f"{path}: {loaded.format()}")
    examples: list[Example] = []
    for record in loaded:
        raw: Any = record.inputs
        inputs = cast("dict[str, Any]", raw) if isinstance(raw, dict) else {}
        question = inputs.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ConfigurationError(
                f"Record {record.id!r} of {path} has no inputs.question string; every record "
                'needs {"inputs": {"question": "..."}, "label": "<expected answer>"}.'
            )
        record_task = str(inputs.get("task") or "")
        examples.append(Example(record.id, record_task, question, str(record.label).strip()))
    if task is not None:
        known = sorted({e.task for e in examples})
        examples = [e for e in examples if e.task == task]
        if not examples:
            raise ConfigurationError(f"No record of {path} has task {task!r}; tasks: {known}.")
    examples = examples[:limit] if limit is not None else examples
    if len(examples) < 4:
        raise ConfigurationError(
            f"{path} gave {len(examples)} usable records; the example needs at least 4 "
            "(to optimize on and to hold out). Raise --limit or pick another --task."
        )
    return examples


def derive_feedback(train: Sequence[Example], count: int) -> list[LabeledRecord]:
    """Expert verdicts on made-up replies to the first ``count`` training records.

    The rule, the same as the built-in experts': a reply is correct only when it is the
    expected answer alone. The records take turns at three kinds of reply:

    * the expected answer itself: labelled ``yes``;
    * the expected answer inside a sentence: labelled ``no`` (a program reads the reply);
    * another answer seen for the same task: labelled ``no`` (a task with a single
      answer in the data gets the expected answer instead).
    """
    answers: dict[str, list[str]] = {}
    for example in train:
        seen = answers.setdefault(example.task, [])
        if example.answer not in seen:
            seen.append(example.answer)
    records: list[LabeledRecord] = []
    for n, example in enumerate(train[:count]):
        others = [a for a in answers[example.task] if a != example.answer]
        if n % 3 == 1:
            reply = f"After weighing the options, I would say the answer is {example.answer}."
            label = "no"
            rationale = (
                "Contains the expected answer, but wrapped in a sentence. The grader compares "
                "the whole reply with the answer, so a reply must be the answer alone."
            )
        elif n % 3 == 2 and others:
            reply = others[0]
            label = "no"
            rationale = f"Answers {others[0]}, but the expected answer is {example.answer}."
        else:
            reply = example.answer
            label = "yes"
            rationale = "Gives exactly the expected answer, and nothing else."
        records.append(
            LabeledRecord(
                id=f"{example.id}-verdict",
                inputs={"question": example.question},
                outputs=reply,
                expectations={"expected_response": example.answer},
                label=label,
                rationale=rationale,
                annotator="derived-rule",
            )
        )
    return records


# -- the application under optimization ---------------------------------------------------


def make_predict_fn(model: ChatModel) -> Callable[[str], str]:
    """The classifier: the latest ``classify`` prompt, filled in, sent to ``model``.

    While an optimizer evaluates a candidate, ``load_prompt`` (and ``format``) give the
    candidate's text instead of the registered one.
    """

    def predict_fn(question: str) -> str:
        prompt = load_prompt(f"prompts:/{PROMPT_NAME}@latest").format(question=question)
        return model.complete([Message(role="user", content=prompt)]).text.strip()

    return predict_fn


def normalise(answer: object) -> str:
    """An answer as exact match compares it: trimmed, case-folded, final full stop dropped."""
    text = "" if answer is None else str(answer).strip()
    return text.removesuffix(".").strip().casefold()


@dataclass(frozen=True)
class HeldOutScores:
    """Accuracy of one prompt on the held-out records."""

    exact_match: float
    judge: float


def held_out_scores(
    predict_fn: Callable[[str], str],
    judge: AlignedJudge,
    template: str,
    held_out: Sequence[Example],
    workers: int,
) -> HeldOutScores:
    """Run ``template`` on the held-out records; score by exact match and by ``judge``."""
    evaluate = make_eval_fn(predict_fn, [judge], max_workers=workers)
    results = evaluate({PROMPT_NAME: template}, [e.row() for e in held_out])
    exact = [
        normalise(r.outputs) == normalise(e.answer) for r, e in zip(results, held_out, strict=True)
    ]
    return HeldOutScores(
        exact_match=sum(exact) / len(exact),
        judge=sum(r.score for r in results) / len(results),
    )


# -- the command --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        help=f"a JSONL of questions with expected answers (default: write {TASK_FILE} "
        "to --out and use it)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for the built-in sample files (default: a new temporary folder)",
    )
    parser.add_argument("--task", help="keep only the records whose inputs.task is this")
    parser.add_argument("--limit", type=int, help="keep only the first N records (after --task)")
    parser.add_argument(
        "--feedback",
        type=Path,
        help="a JSONL of expert verdicts on replies (id, inputs, outputs, expectations, "
        "label yes/no, rationale) to align the judge with (default: the built-in verdicts, "
        "or verdicts derived from the training records when --data is given)",
    )
    parser.add_argument(
        "--feedback-size",
        type=int,
        default=12,
        help="how many training records verdicts are derived from (with --data)",
    )
    parser.add_argument(
        "--prompt",
        help="the initial template, with {{ question }} (default: a deliberately weak one)",
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("JUDGEALIGN_MODEL", "local:/smollm2"),
        help="a litellm model URI (default: $JUDGEALIGN_MODEL or local:/smollm2)",
    )
    parser.add_argument(
        "--reflection-model",
        help="the model that distills guidelines and rewrites the prompt (default: --model)",
    )
    parser.add_argument(
        "--embedding-model",
        help="an embedder, e.g. hashing or openai:/text-embedding-3-small "
        "(default: the local embedder)",
    )
    parser.add_argument("--optimizer", choices=("gepa", "metaprompt"), default="gepa")
    parser.add_argument(
        "--max-metric-calls", type=int, default=60, help="GEPA's budget of scored records"
    )
    parser.add_argument("--iterations", type=int, default=3, help="metaprompt rounds")
    parser.add_argument(
        "--max-tokens", type=int, default=64, help="the longest reply of the classifier"
    )
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    return parser.parse_args(argv)


def build_optimizer(args: argparse.Namespace, reflection: str | ChatModel) -> BasePromptOptimizer:
    """GEPA or the metaprompt optimizer, as ``--optimizer`` says."""
    if args.optimizer == "metaprompt":
        return MetaPromptOptimizer(
            reflection_model=reflection,
            max_iterations=args.iterations,
            seed=args.seed,
            max_workers=args.workers,
        )
    return GepaPromptOptimizer(
        reflection_model=reflection, max_metric_calls=args.max_metric_calls, seed=args.seed
    )


def initial_template(args: argparse.Namespace) -> str:
    """The starting prompt: ``--prompt``, or a weak default for the data source."""
    template = args.prompt or (SAMPLE_PROMPT if args.data is None else GENERIC_PROMPT)
    if template_variables(template) != {"question"}:
        raise ConfigurationError(
            f"--prompt {template!r} must use {{{{ question }}}} and no other variable."
        )
    return template


def align_objective(
    args: argparse.Namespace,
    judge_model: str | ChatModel,
    reflection: str | ChatModel,
    feedback_file: Path | None,
    train: Sequence[Example],
) -> AlignedJudge:
    """The objective: a judge aligned with the verdicts of ``feedback_file`` (or derived)."""
    judge = make_judge(name="expected_answer", instructions=JUDGE_INSTRUCTIONS, model=judge_model)
    if feedback_file is not None:
        verdicts = list(load_jsonl(feedback_file, judge=judge, strict=True))
        source = str(feedback_file)
    else:
        verdicts = derive_feedback(train, args.feedback_size)
        source = "derived from the training records"
    aligner = MemAlignOptimizer(
        reflection_model=reflection,
        embedding_model=args.embedding_model,
        max_workers=args.workers,
    )
    aligned: AlignedJudge = judge.align(verdicts, optimizer=aligner)
    print(f"\nJudge aligned on {len(verdicts)} expert verdicts ({source}).")
    if not aligned.guidelines:
        print("No guideline was distilled; the judge still sees the verdicts as examples.")
    for number, guideline in enumerate(aligned.guidelines, start=1):
        print(f"  guideline {number}: {guideline.text}")
    return aligned


def run(args: argparse.Namespace, model: ChatModel | None) -> int:
    """Everything but the error handling of :func:`main`."""
    if args.data is None:
        data, sample_feedback = write_sample(sample_folder(args.out))
        feedback_file: Path | None = args.feedback or sample_feedback
    else:
        data, feedback_file = args.data, args.feedback
    examples = load_examples(data, task=args.task, limit=args.limit)
    train, held_out = split_records(
        examples,
        test_size=args.test_size,
        seed=args.seed,
        stratify_by=lambda e: (e.task, e.answer),
    )
    # The classifier's replies are capped at --max-tokens; the judge's and the reflection
    # model's are not (a cut-off verdict or prompt would be unusable).
    chat = model or resolve_model(args.model, params={"max_tokens": args.max_tokens})
    judge_model: str | ChatModel = model or args.model
    reflection: str | ChatModel = model or args.reflection_model or args.model
    print(
        f"{len(examples)} records from {data}: {len(train)} to optimize on, "
        f"{len(held_out)} held out; model {chat.uri}"
    )

    # The prompt, and one reply to it: a cheap check that the model answers at all.
    start = initial_template(args)
    prompt = register_prompt(PROMPT_NAME, start, commit_message="initial, deliberately weak")
    predict_fn = make_predict_fn(chat)
    first = train[0]
    print(f"Reply to the initial prompt for {first.id} (expected {first.answer!r}):")
    print(_indent(predict_fn(first.question) or "(empty)"))

    aligned = align_objective(args, judge_model, reflection, feedback_file, train)

    # The optimization.
    optimizer = build_optimizer(args, reflection)
    print(f"\nOptimizing {prompt.uri} with {type(optimizer).__name__}...")
    result: PromptOptimizationResult = optimize_prompts(
        predict_fn=predict_fn,
        train_data=[e.row() for e in train],
        prompt_uris=[prompt.uri],
        optimizer=optimizer,
        scorers=[aligned],
        max_workers=args.workers,
    )
    optimized = result.optimized_prompts[0]
    report_optimization(result, start)

    # The held-out check.
    before = held_out_scores(predict_fn, aligned, start, held_out, args.workers)
    after = (
        held_out_scores(predict_fn, aligned, optimized.template, held_out, args.workers)
        if result.improved
        else before
    )
    title = f"Held-out accuracy ({len(held_out)} records)"
    print(f"\n{title:<32}{'initial':>9}{'optimized':>11}")
    print(f"  {'exact match':<30}{before.exact_match:>9.3f}{after.exact_match:>11.3f}")
    print(f"  {'aligned judge':<30}{before.judge:>9.3f}{after.judge:>11.3f}")
    return 0


def report_optimization(result: PromptOptimizationResult, start: str) -> None:
    """Print the objective before and after, and the template that came out."""
    initial, final = result.initial_eval_score, result.final_eval_score
    shown = (
        f"initial {initial:.3f} -> final {final:.3f}"
        if initial is not None and final is not None
        else "not measured"
    )
    calls = result.details.get("metric_calls")
    print(f"Objective (aligned judge, mean on the records candidates are ranked on): {shown}")
    print(f"{calls} records scored; ", end="")
    optimized = result.optimized_prompts[0]
    if result.improved:
        print(f"registered the better prompt as {optimized.uri}")
    else:
        print("no better prompt was found; the initial one is kept")
    print(f"\nInitial template:\n{_indent(start)}")
    print(f"Optimized template:\n{_indent(optimized.template)}")


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def main(argv: Sequence[str] | None = None, *, model: ChatModel | None = None) -> int:
    """Align a judge, optimize the ``classify`` prompt against it, report held-out accuracy.

    Args:
        argv: the command-line arguments (default: ``sys.argv[1:]``).
        model: a :class:`ChatModel` that plays every model role (tests pass a scripted
            one); overrides ``--model`` and ``--reflection-model``.

    Returns:
        0 on success, 2 when the library reports a configuration or model error.
    """
    args = parse_args(argv)
    try:
        return run(args, model)
    except JudgeAlignError as exc:
        # Model errors can span lines (provider tracebacks); the first one says what failed.
        print(f"error: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
