"""Metaprompting: a reflection model rewrites the prompts from evidence of how they score.

Three modes:

* ``zero_shot`` (no data): one reflection call rewrites the prompts following prompt-writing
  practice and the user's guidelines.
* ``few_shot``: score the prompts, show the reflection model a sample of scored examples
  with the scorers' rationales, ask for a diagnosis and then a rewrite; keep the rewrite
  only if it scores higher.
* ``iterative``: the same, repeated from the best prompts so far, with examples stratified
  by outcome and the history of attempts and scores shown to the reflection model, until
  ``max_iterations``, a ``stopping_condition`` or a ``score_threshold``.

Every candidate keeps the original template variables (or is rejected), and a candidate
that does not beat the best so far is not adopted. With ``val_data``, candidates are
ranked on it while the examples shown come from ``train_data``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from judgealign import (
    ChatModel,
    Completion,
    ConfigurationError,
    Message,
    ModelError,
    resolve_model,
)
from judgealign.optimize_support import (
    REFLECTION_MAX_TOKENS,
    ContextThreadPool,
    MeteredModel,
    complete_structured,
    raise_limit_hint,
    redact,
    repair_template,
    template_variables,
    truncation_note,
    with_reply_limit,
)
from optimizers._base import (
    BasePromptOptimizer,
    EvalFn,
    EvaluationResultRecord,
    PromptOptimizerOutput,
)
from optimizers._unit_score import check_unit_scores
from optimizers.metaprompt._history import IterationRecord, LabelFn
from optimizers.metaprompt._text import (
    FOCUS,
    REVISE_TASK,
    SYSTEM,
    ZERO_SHOT_TASK,
    ReplyProblem,
    answer_block,
    context_blocks,
    examples_block,
    history_block,
    parse_reply,
    prompts_block,
    repair_request,
    reply_schema,
    scores_block,
)

__all__ = ["IterationRecord", "MetaPromptOptimizer"]

Mode = Literal["zero_shot", "few_shot", "iterative"]


@dataclass(frozen=True)
class _Best:
    prompts: dict[str, str]
    score: float
    per_scorer: dict[str, float]
    train_records: list[EvaluationResultRecord]


@dataclass(frozen=True)
class _Proposal:
    prompts: dict[str, str] | None
    diagnosis: str = ""
    note: str = ""
    error: ModelError | None = None


def pass_fail(record: EvaluationResultRecord) -> str:
    """The default outcome label: ``error``, ``pass`` (score >= 0.5) or ``fail``."""
    if record.error and record.outputs is None:
        return "error"
    return "pass" if record.score >= 0.5 else "fail"


class MetaPromptOptimizer(BasePromptOptimizer):
    """Improve prompts by asking a reflection model to diagnose failures and rewrite.

    Args:
        reflection_model: a model URI (``"openai:/gpt-4o"``) or a ``ChatModel``.
        lm_kwargs: completion parameters for a URI reflection model (``temperature``,
            ``max_tokens``, ...), as in MLflow.
        guidelines: requirements every rewrite must respect, in your words.
        mode: ``zero_shot``, ``few_shot`` or ``iterative``; by default zero-shot without
            data and iterative with it.
        max_iterations: reflection rounds in iterative mode (few-shot does one).
        num_examples: scored examples shown per round (stratified by outcome).
        candidates_per_iteration: rewrites proposed and evaluated concurrently per round.
        stopping_condition: ``f(history) -> bool``; stops the run when true.
        score_threshold: stop once the best mean score reaches this value.
        label_fn: maps a scored record to an outcome label for stratified sampling;
            default :func:`pass_fail`.
        seed: seeds example sampling and the focus of each attempt.
        max_workers: threads for concurrent candidates.
        max_field_chars: each example field shown is cut to this many characters.
        target_model: the name of the model that will run the prompts, shown to the
            reflection model.
        timeout: seconds per reflection call.

    Raises:
        ConfigurationError: on an invalid option or model.
    """

    supports_val_data: ClassVar[bool] = True

    def __init__(
        self,
        reflection_model: str | ChatModel,
        lm_kwargs: Mapping[str, Any] | None = None,
        guidelines: str | None = None,
        *,
        mode: Mode | None = None,
        max_iterations: int = 3,
        num_examples: int = 6,
        candidates_per_iteration: int = 1,
        stopping_condition: Callable[[Sequence[IterationRecord]], bool] | None = None,
        score_threshold: float | None = None,
        label_fn: LabelFn | None = None,
        seed: int = 0,
        max_workers: int = 4,
        max_field_chars: int = 600,
        target_model: str | None = None,
        timeout: float | None = None,
    ) -> None:
        if mode not in (None, "zero_shot", "few_shot", "iterative"):
            raise ConfigurationError(
                f"mode={mode!r} must be 'zero_shot', 'few_shot', 'iterative' or None."
            )
        for option, value in (
            ("max_iterations", max_iterations),
            ("num_examples", num_examples),
            ("candidates_per_iteration", candidates_per_iteration),
            ("max_workers", max_workers),
            ("max_field_chars", max_field_chars),
        ):
            if value < 1:
                raise ConfigurationError(f"{option}={value} must be at least 1.")
        if lm_kwargs and not isinstance(reflection_model, str):
            raise ConfigurationError(
                "lm_kwargs apply to a reflection model given as a URI; set the parameters "
                f"on your {type(reflection_model).__name__} itself instead."
            )
        # A reflection reply is whole rewritten prompts: its own default reply limit.
        self.model = with_reply_limit(
            resolve_model(reflection_model, params=lm_kwargs), REFLECTION_MAX_TOKENS
        )
        self.guidelines = guidelines
        self.mode = mode
        self.max_iterations = max_iterations
        self.num_examples = num_examples
        self.candidates_per_iteration = candidates_per_iteration
        self.stopping_condition = stopping_condition
        self.score_threshold = score_threshold
        self.label_fn: LabelFn = label_fn or pass_fail
        self.seed = seed
        self.max_workers = max_workers
        self.max_field_chars = max_field_chars
        self.target_model = target_model
        self.timeout = timeout
        self._history: list[IterationRecord] = []
        self._run_info: dict[str, Any] = {}
        self._meter = MeteredModel(self.model)

    @property
    def history(self) -> list[IterationRecord]:
        """The steps of the last run, starting with the original prompts."""
        return list(self._history)

    def optimize(
        self,
        eval_fn: EvalFn,
        train_data: Sequence[dict[str, Any]],
        target_prompts: dict[str, str],
        enable_tracking: bool = True,
        *,
        val_data: Sequence[dict[str, Any]] | None = None,
    ) -> PromptOptimizerOutput:
        """Rewrite ``target_prompts``; see the class docstring for the modes.

        Raises:
            ConfigurationError: few-shot or iterative mode without ``train_data``.
            ModelError: the reflection model failed on every call.
        """
        mode = self.mode or ("iterative" if train_data else "zero_shot")
        self._history, self._run_info = [], {"mode": mode}
        self._meter = MeteredModel(self.model)  # counts every request, failed ones too
        if mode == "zero_shot":
            return self._zero_shot(target_prompts)
        if not train_data:
            raise ConfigurationError(f"mode={mode!r} needs train_data (and scorers).")
        rounds = 1 if mode == "few_shot" else self.max_iterations
        return self._search(eval_fn, list(train_data), list(val_data or []), target_prompts, rounds)

    # -- zero-shot ------------------------------------------------------------------------

    def _zero_shot(self, prompts: dict[str, str]) -> PromptOptimizerOutput:
        sections = [
            ZERO_SHOT_TASK,
            prompts_block(prompts),
            *context_blocks(self.guidelines, self.target_model),
        ]
        proposal = self._reflect(prompts, "\n\n".join([*sections, answer_block(prompts)]))
        if proposal.error is not None:
            raise proposal.error
        candidate = proposal.prompts or prompts
        self._history = [
            IterationRecord(0, prompts, None, accepted=True, note="original"),
            IterationRecord(
                1,
                candidate,
                None,
                accepted=candidate != prompts,
                diagnosis=proposal.diagnosis,
                note=proposal.note,
            ),
        ]
        self._run_info.update(ranked_on=None, stopped_because="zero-shot: one rewrite")
        return PromptOptimizerOutput(optimized_prompts=candidate, details=self._details())

    # -- few-shot and iterative -----------------------------------------------------------

    def _search(
        self,
        eval_fn: EvalFn,
        train: list[dict[str, Any]],
        val: list[dict[str, Any]],
        prompts: dict[str, str],
        rounds: int,
    ) -> PromptOptimizerOutput:
        rng = random.Random(self.seed)
        best = self._with_train_records(eval_fn, self._rank(eval_fn, prompts, train, val), train)
        initial = best
        self._history = [
            IterationRecord(0, prompts, best.score, best.per_scorer, True, "", "original")
        ]
        self._run_info.update(ranked_on="val_data" if val else "train_data", stopped_because="")
        errors: list[ModelError] = []
        attempts = 0
        for iteration in range(1, rounds + 1):
            reason = self._stop_reason(best)
            if reason:
                self._run_info["stopped_because"] = reason
                break
            best = self._round(eval_fn, train, val, best, iteration, rng, errors)
            attempts += self.candidates_per_iteration
        else:
            self._run_info["stopped_because"] = f"ran {rounds} iteration(s)"
        if errors and len(errors) == attempts:
            raise errors[-1]
        return PromptOptimizerOutput(
            optimized_prompts=best.prompts,
            initial_eval_score=initial.score,
            final_eval_score=best.score,
            initial_eval_score_per_scorer=initial.per_scorer,
            final_eval_score_per_scorer=best.per_scorer,
            details=self._details(),
        )

    def _round(
        self,
        eval_fn: EvalFn,
        train: list[dict[str, Any]],
        val: list[dict[str, Any]],
        best: _Best,
        iteration: int,
        rng: random.Random,
        errors: list[ModelError],
    ) -> _Best:
        examples = _select_examples(best.train_records, self.label_fn, self.num_examples, rng)
        focuses = [rng.choice(FOCUS) for _ in range(self.candidates_per_iteration)]
        texts = [self._revise_text(best, examples, focus) for focus in focuses]

        def attempt(text: str) -> tuple[_Proposal, _Best | None]:
            proposal = self._reflect(best.prompts, text)
            if proposal.prompts is None or proposal.prompts == best.prompts:
                return proposal, None
            return proposal, self._rank(eval_fn, proposal.prompts, train, val)

        # Each proposal's reflection and scoring run under the caller's rate limit.
        with ContextThreadPool(min(self.max_workers, len(texts))) as pool:
            outcomes = list(pool.map(attempt, texts))
        winner = best
        for proposal, scored in outcomes:
            if proposal.error is not None:
                errors.append(proposal.error)
            better = scored is not None and scored.score > winner.score
            if better and scored is not None:
                winner = scored
            self._history.append(_iteration_record(iteration, proposal, scored, better))
        return self._with_train_records(eval_fn, winner, train)

    @staticmethod
    def _rank(
        eval_fn: EvalFn,
        prompts: dict[str, str],
        train: list[dict[str, Any]],
        val: list[dict[str, Any]],
    ) -> _Best:
        """Score ``prompts`` on the ranking data (val, else train)."""
        ranked = eval_fn(prompts, val or train)
        check_unit_scores(ranked, "eval_fn")  # before any reflection call on the originals
        score, per_scorer = _means(ranked)
        return _Best(prompts, score, per_scorer, [] if val else ranked)

    @staticmethod
    def _with_train_records(eval_fn: EvalFn, best: _Best, train: list[dict[str, Any]]) -> _Best:
        """``best`` with its training records, which the next round's examples come from."""
        if best.train_records:
            return best
        records = eval_fn(best.prompts, train)
        check_unit_scores(records, "eval_fn")
        return replace(best, train_records=records)

    def _stop_reason(self, best: _Best) -> str:
        if self.stopping_condition is not None and self.stopping_condition(list(self._history)):
            return "stopping_condition returned True"
        if self.score_threshold is not None and best.score >= self.score_threshold:
            return f"score {best.score:.4g} reached score_threshold {self.score_threshold}"
        if best.train_records and all(r.score >= 1.0 for r in best.train_records):
            return "every training record already scores 1.0"
        return ""

    # -- talking to the reflection model (wording: _metaprompt_text) ----------------------

    def _revise_text(
        self, best: _Best, examples: list[tuple[str, EvaluationResultRecord]], focus: str
    ) -> str:
        score, per_scorer = _means(best.train_records)  # what the examples come from
        sections = [
            prompts_block(best.prompts),
            scores_block(score, per_scorer, best.train_records, self.label_fn),
            history_block(self._history, self.max_field_chars),
            examples_block(examples, len(best.train_records), self.max_field_chars),
            *context_blocks(self.guidelines, self.target_model),
            REVISE_TASK.format(focus=focus),
            answer_block(best.prompts),
        ]
        return "\n\n".join(s for s in sections if s)

    def _reflect(self, current: dict[str, str], task: str) -> _Proposal:
        messages: list[Message] = [
            Message(role="system", content=SYSTEM),
            Message(role="user", content=task),
        ]
        try:
            reply = self._complete(messages, current)
            try:
                proposed, diagnosis = _parse_whole(reply, current)
            except ReplyProblem as problem:
                messages += [
                    Message(role="assistant", content=reply.text),
                    Message(role="user", content=repair_request(problem, current)),
                ]
                again = self._complete(messages, current)
                proposed, diagnosis = _parse_whole(again, current, hint=self.model.uri)
        except ModelError as exc:
            return _Proposal(None, note=redact(f"reflection failed: {exc}"), error=exc)
        except ReplyProblem as problem:
            return _Proposal(None, note=f"unusable reply: {problem}")
        candidate, rejected = _safe(current, proposed)
        note = f"template variables changed: {'; '.join(rejected)}" if rejected else ""
        return _Proposal(candidate, diagnosis, note)

    def _complete(self, messages: Sequence[Message], prompts: dict[str, str]) -> Completion:
        # The structured-output rung is negotiated per endpoint (see judgealign.models._structured):
        # a server that refuses the json_schema request is asked with a lower rung.
        spec = reply_schema(prompts)["json_schema"]
        return complete_structured(
            self._meter, messages, spec["name"], spec["schema"], self.timeout
        )

    # -- reporting ------------------------------------------------------------------------

    def _details(self) -> dict[str, Any]:
        scored = [r for r in self._history if r.accepted and r.score is not None]
        return {
            **self._run_info,
            "history": [r.to_dict() for r in self._history],
            "best_iteration": scored[-1].iteration if scored else None,
            "reflection_calls": self._meter.total.calls,
            "reflection_tokens": self._meter.total.total_tokens,
        }

    def summary(self) -> str:
        """A printable account of the last run: each attempt, its score, what was kept."""
        if not self._history:
            return "MetaPromptOptimizer: not run yet."
        info = self._run_info
        lines = [
            f"MetaPromptOptimizer ({info.get('mode')}, ranked on "
            f"{info.get('ranked_on') or 'nothing'}): {info.get('stopped_because', '')}",
            f"{'iter':>4}  {'score':>7}  {'kept':<4}  note",
        ]
        for r in self._history:
            score = "-" if r.score is None else f"{r.score:.3f}"
            lines.append(
                f"{r.iteration:>4}  {score:>7}  {'yes' if r.accepted else 'no':<4}  {r.note}"
            )
        scores = [
            (r.iteration, r.score) for r in self._history if r.accepted and r.score is not None
        ]
        if scores:
            (_, first), (last_iteration, last) = scores[0], scores[-1]
            lines.append(
                f"best: iteration {last_iteration}, score {last:.3f} "
                f"({last - first:+.3f} over the original)"
            )
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------


def _means(records: Sequence[EvaluationResultRecord]) -> tuple[float, dict[str, float]]:
    if not records:
        return 0.0, {}
    names = {name for r in records for name in r.individual_scores}
    per_scorer = {
        n: sum(r.individual_scores.get(n, 0.0) for r in records) / len(records)
        for n in sorted(names)
    }
    return sum(r.score for r in records) / len(records), per_scorer


def _iteration_record(
    iteration: int, proposal: _Proposal, scored: _Best | None, accepted: bool
) -> IterationRecord:
    if scored is None:
        note = proposal.note or "no change proposed"
        return IterationRecord(
            iteration, proposal.prompts or {}, None, diagnosis=proposal.diagnosis, note=note
        )
    verdict = "new best" if accepted else "did not beat the best so far"
    note = f"{proposal.note}; {verdict}" if proposal.note else verdict
    return IterationRecord(
        iteration,
        scored.prompts,
        scored.score,
        scored.per_scorer,
        accepted,
        proposal.diagnosis,
        note,
    )


def _select_examples(
    records: Sequence[EvaluationResultRecord], label_fn: LabelFn, k: int, rng: random.Random
) -> list[tuple[str, EvaluationResultRecord]]:
    """Up to ``k`` records, round-robin over outcome labels, worst-scoring label first."""
    groups: dict[str, list[EvaluationResultRecord]] = {}
    for record in records:
        groups.setdefault(str(label_fn(record)), []).append(record)
    for members in groups.values():
        rng.shuffle(members)
    order = sorted(groups, key=lambda g: (sum(r.score for r in groups[g]) / len(groups[g]), g))
    picked: list[tuple[str, EvaluationResultRecord]] = []
    while len(picked) < k and any(groups.values()):
        for label in order:
            if groups[label] and len(picked) < k:
                picked.append((label, groups[label].pop()))
    return picked


def _parse_whole(
    reply: Completion, current: dict[str, str], *, hint: str | None = None
) -> tuple[dict[str, str], str]:
    """``parse_reply`` of a reply; one cut by the token limit is used only if a whole
    object came before the cut, else the problem says it was cut (and, given the model's
    ``hint`` URI, how to raise the limit)."""
    try:
        return parse_reply(reply.text, current)
    except ReplyProblem as problem:
        cut = truncation_note(reply)
        if cut is None:
            raise
        how = (
            " " + raise_limit_hint(reply, _RAISE_LIMIT.replace("<uri>", repr(hint))) if hint else ""
        )
        raise ReplyProblem(
            f"{cut}, and what came before the cut is not usable ({problem}){how}"
        ) from problem


_RAISE_LIMIT = (
    "MetaPromptOptimizer(reflection_model=LiteLLMModel(<uri>, params={'max_tokens': {max_tokens}}))"
)


def _safe(current: dict[str, str], proposed: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Repair each proposed template's variables to match; keep the current one if not.

    Returns the candidate and, per rejected template, what changed (``'task' lost
    {{ letter }}``), so that the history says why a proposal was never scored."""
    candidate = dict(current)
    rejected: list[str] = []
    for name, template in proposed.items():
        repaired = repair_template(current[name], template)
        if repaired is None:
            rejected.append(f"{name!r} {_variable_change(current[name], template)}")
        else:
            candidate[name] = repaired
    return candidate, rejected


def _variable_change(original: str, proposed: str) -> str:
    want, got = template_variables(original), template_variables(proposed)
    parts = [
        f"{verb} {', '.join('{{ ' + v + ' }}' for v in sorted(names))}"
        for verb, names in (("lost", want - got), ("added", got - want))
        if names
    ]
    return " and ".join(parts) or "its variables could not be matched"
