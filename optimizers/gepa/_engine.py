"""The GEPA loop: select a Pareto parent, reflect on a train minibatch, gate, admit.

One iteration either tries a merge (when one is due) or a reflective mutation:

1. sample a parent from the Pareto front and the next train minibatch;
2. evaluate the parent on it (cached pairs are free);
3. show the reflection model the parent's results and ask for a better version of a
   prompt (of each prompt the ``component_selector`` below chooses);
4. keep the proposal only if it preserves the template variables, then evaluate it on the
   same minibatch and accept it only if its sum strictly beats the parent's;
5. score an accepted child on the whole validation set and add it to the pool.

Before anything is evaluated, the worst-case cost of the whole iteration (parent and child
minibatch, child validation) is checked against the remaining budget; an iteration that
might not fit is not started, so ``max_metric_calls`` is never exceeded.

Which prompt (component) is rewritten: each candidate keeps a round-robin turn over its
components, which a child inherits from its parent. ``"round_robin"`` (the GEPA paper's and
the ``gepa`` library's default) takes the component whose turn it is. ``"adaptive"`` (ours,
the default) rates each component by how often its proposals have been accepted so far in
the run, ``(accepted + 1) / (tried + 2)``, and rewrites every component tied for the best
rate in the same iteration: the proposals share the parent's minibatch evaluation, their
reflection calls and evaluations run concurrently, and each child is gated and admitted on
its own, exactly as if each had had an iteration of its own with that parent and
minibatch. So the first iteration of a multi-prompt run tries every prompt at once, a
component whose rewrites keep failing the gate (a predictor that cannot change the score,
say) is left alone, and it is tried again once the others' rate falls to its own. Failed
reflection calls and skipped iterations (a perfect parent minibatch) count as no evidence.
When the budget cannot pay for every tied component (each may cost a minibatch and the
validation set), the first ones in turn are tried.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from judgealign import ChatModel, Completion, ConfigurationError, Message, ModelError
from judgealign.optimize_support import (
    ContextThreadPool,
    raise_limit_hint,
    redact,
    repair_template,
    template_variables,
    truncation_note,
)
from optimizers._base import EvaluationResultRecord
from optimizers.gepa._checkpoint import Checkpoint
from optimizers.gepa._eval import BudgetedEvaluator
from optimizers.gepa._pareto import plan_merge, select_parent, stratified_subsample
from optimizers.gepa._reflect import build_reflection_messages, parse_proposal
from optimizers.gepa._state import Candidate, Rejection, RunState, prompts_key

__all__ = ["ComponentSelector", "DataSplit", "Engine", "EngineSettings", "StopReason"]

StopReason = Literal["budget", "patience", "score_threshold", "perfect_score", "timeout", "stalled"]
"""Why a run stopped. ``perfect_score``: the best validation mean is 1, nothing can beat it.
``stalled``: many iterations in a row spent no metric call (every proposal was rejected
before evaluation, the reflection model kept failing, or every minibatch was perfect)."""

ComponentSelector = Literal["adaptive", "round_robin"]
"""How the engine picks the prompt a reflection rewrites (see the module)."""

# Reflection outcomes that say nothing about whether a component can be improved.
_NO_EVIDENCE = frozenset({"skipped_perfect", "reflection_failed"})

_log = logging.getLogger("optimizers.gepa")
_RAISE_LIMIT = (
    "GepaPromptOptimizer(reflection_model=LiteLLMModel(<uri>, params={'max_tokens': {max_tokens}}))"
)
_MAX_STALLED = 20
_MERGE_SUBSAMPLE = 5
_EPS = 1e-9


@dataclass(frozen=True)
class DataSplit:
    """Records by id and which ids are for reflection (train) and for selection (val).

    Attributes:
        records: record id -> record.
        train_ids: ids minibatches are drawn from.
        val_ids: ids every admitted candidate is scored on.
        source: ``val_data`` (given), ``split`` (carved from the train data) or ``shared``
            (a single record served as both).
    """

    records: dict[str, dict[str, Any]]
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    source: Literal["val_data", "split", "shared"]


@dataclass(frozen=True)
class EngineSettings:
    """The loop's options (validated by ``GepaPromptOptimizer``)."""

    max_metric_calls: int
    minibatch_size: int
    use_merge: bool
    max_merge_attempts: int
    patience: int | None
    score_threshold: float | None
    timeout_s: float | None
    show_val_in_reflection: bool
    reflection_prompt: str
    component_selector: ComponentSelector = "adaptive"


class Engine:
    """Runs GEPA iterations on a :class:`RunState` until a stop condition holds."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        model: ChatModel,
        evaluator: BudgetedEvaluator,
        state: RunState,
        split: DataSplit,
        checkpoint: Checkpoint | None,
    ) -> None:
        self._settings = settings
        self._model = model
        self._eval = evaluator
        self._state = state
        self._split = split
        self._checkpoint = checkpoint
        self._snapshot = state.snapshot()
        if checkpoint is not None:
            # Paid-for results reach the disk at once: a killed run repeats no finished call.
            evaluator.after_store = self._save_midway
        pool = list(split.train_ids)
        if settings.show_val_in_reflection:
            pool += [rid for rid in split.val_ids if rid not in pool]
        self._sample_pool = pool

    def run(self, seed_prompts: dict[str, str]) -> StopReason:
        """Score the seed (unless resuming), iterate, checkpoint; return why it stopped."""
        started = time.monotonic()
        self._snapshot = self._state.snapshot()
        try:
            if not self._state.candidates:
                self._score_seed(seed_prompts)
                self._save()
            while (reason := self._stop_reason(started)) is None:
                self._snapshot = self._state.snapshot()
                if not self._iterate():
                    self._state.rewind(self._snapshot)
                    reason = "budget"
                    break
                self._save()
        except BaseException:
            self._state.rewind(self._snapshot)
            try:
                self._save()
            except OSError as exc:  # keep the original error; the checkpoint is best effort here
                _log.error("GEPA could not save its checkpoint after a failure: %s", exc)
            raise
        self._save()
        return reason

    def _score_seed(self, prompts: dict[str, str]) -> None:
        val_ids = self._split.val_ids
        if self._eval.cost(prompts, val_ids) > self._eval.remaining:
            raise ConfigurationError(
                f"max_metric_calls={self._settings.max_metric_calls} cannot even score the "
                f"target prompts on the {len(val_ids)} validation records; give at least "
                f"{len(val_ids) + 2 * self._settings.minibatch_size + len(val_ids)} for one "
                "proposal to be tried and admitted, or use less validation data"
            )
        records = self._eval.evaluate(prompts, val_ids)
        self._admit(prompts, (), records, origin="seed", iteration=0)

    def _stop_reason(self, started: float) -> StopReason | None:
        s, state = self._settings, self._state
        if s.score_threshold is not None and state.best().aggregate >= s.score_threshold:
            return "score_threshold"
        if state.best().aggregate >= 1.0 - _EPS:
            return "perfect_score"
        if self._eval.remaining <= 0:
            return "budget"
        if s.patience is not None and state.since_best >= s.patience:
            return "patience"
        if s.timeout_s is not None and time.monotonic() - started >= s.timeout_s:
            return "timeout"
        if state.stalled >= _MAX_STALLED:
            return "stalled"
        return None

    def _iterate(self) -> bool:
        """One iteration; ``False`` when it could not be afforded (nothing was spent)."""
        state = self._state
        best_before, calls_before = state.best().aggregate, state.metric_calls
        state.iteration += 1
        merged = self._merge() if self._merge_due() else None
        events = [merged] if merged is not None else self._reflect()
        if not events:
            return False
        state.history.extend(events)
        improved = state.best().aggregate > best_before + _EPS
        state.since_best = 0 if improved else state.since_best + 1
        state.stalled = 0 if state.metric_calls > calls_before else state.stalled + 1
        for event in events:
            _log.info("GEPA iteration %d: %s", state.iteration, _describe(event))
        return True

    # -- reflective mutation -------------------------------------------------------------

    def _reflect(self) -> list[dict[str, Any]]:
        """One reflective mutation per chosen component, all from the same parent and
        minibatch; an empty list when not even one could be afforded (nothing spent)."""
        state, val_ids = self._state, self._split.val_ids
        parent_id, front = select_parent(state.candidates, state.rng)
        parent = state.candidate(parent_id)
        ids = self._next_minibatch()
        names, turn = list(parent.prompts), state.next_component.get(parent_id, 0)
        order = [names[(turn + k) % len(names)] for k in range(len(names))]
        # Each child is new, so all of its minibatch and validation records are misses;
        # records in both (tiny data, show_val_in_reflection) are paid for once.
        per_child = len(set(ids) | set(val_ids))
        affordable = (self._eval.remaining - self._eval.cost(parent.prompts, ids)) // per_child
        components = self._pick_components(order)[: max(0, affordable)]
        if not components:
            return []
        state.next_component[parent_id] = turn + max(map(order.index, components)) + 1
        before = self._eval.evaluate(parent.prompts, ids)
        base: dict[str, Any] = {
            "iteration": state.iteration,
            "kind": "reflection",
            "parent": parent_id,
            "pareto_front": front,
            "minibatch": ids,
            "parent_scores": [r.score for r in before],
        }
        if all(r.score >= 1.0 - _EPS for r in before):
            return [{**base, "component": components[0], "outcome": "skipped_perfect"}]
        events = [{**base, "component": c} for c in components]
        # Each reflection sees the feedback about its own component when eval_fn has it.
        shown = [self._eval.for_component(parent.prompts, c, ids, before) for c in components]
        proposals = self._propose(parent, components, shown)
        tried: list[tuple[dict[str, Any], dict[str, str]]] = []
        for event, proposal in zip(events, proposals, strict=True):
            if isinstance(proposal, Rejection):
                event["outcome"] = proposal.reason
            else:
                tried.append((event, {**parent.prompts, event["component"]: proposal}))
        afters = self._eval.evaluate_many([child for _, child in tried], ids)
        passed: list[tuple[dict[str, Any], dict[str, str]]] = []
        for (event, child), after in zip(tried, afters, strict=True):
            event["child_scores"] = [r.score for r in after]
            if _sum(after) > _sum(before) + _EPS:
                passed.append((event, child))
                continue
            detail = (
                f"minibatch sum {_sum(after):.3f} does not beat the parent's {_sum(before):.3f}"
            )
            self._reject(
                parent_id, event["component"], "not_better", detail, child[event["component"]]
            )
            event["outcome"] = "not_better"
        self._admit_children(parent_id, passed)
        return events

    def _pick_components(self, order: list[str]) -> list[str]:
        """The components to rewrite this iteration, in the parent's round-robin order
        (``order`` starts at its turn): one for ``round_robin``; for ``adaptive``, every
        component tied for the best acceptance rate (proposed together, see the module)."""
        if self._settings.component_selector == "round_robin" or len(order) == 1:
            return order[:1]
        tried: dict[str, int] = dict.fromkeys(order, 0)
        accepted: dict[str, int] = dict.fromkeys(order, 0)
        for event in self._state.history:
            outcome, name = event.get("outcome"), event.get("component")
            if event.get("kind") != "reflection" or name not in tried or outcome in _NO_EVIDENCE:
                continue
            tried[name] += 1
            accepted[name] += outcome == "accepted"
        rates = {n: Fraction(accepted[n] + 1, tried[n] + 2) for n in order}
        best = max(rates.values())
        return [n for n in order if rates[n] == best]

    def _propose(
        self,
        parent: Candidate,
        components: list[str],
        records: list[list[EvaluationResultRecord]],
    ) -> list[str | Rejection]:
        """One proposal (or the reason there is none) per component, from the minibatch
        results shown for it; the reflection calls run concurrently, the bookkeeping on
        this thread in order."""
        messages = [
            build_reflection_messages(
                self._settings.reflection_prompt,
                component_name=component,
                current_prompt=parent.prompts[component],
                records=shown,
            )
            for component, shown in zip(components, records, strict=True)
        ]
        replies = _ask_all(self._model, messages)
        return [
            self._proposal(parent, component, reply)
            for component, reply in zip(components, replies, strict=True)
        ]

    def _proposal(
        self, parent: Candidate, component: str, reply: Completion | ModelError
    ) -> str | Rejection:
        state = self._state
        state.reflection_calls += 1
        if isinstance(reply, ModelError):
            state.reflection_failures.append(
                {"iteration": state.iteration, "error": redact(f"{type(reply).__name__}: {reply}")}
            )
            _log.warning("GEPA iteration %d: reflection model failed: %s", state.iteration, reply)
            # Counted in reflection_failures, not among rejected candidates: none was made.
            detail = redact(str(reply))
            return Rejection(state.iteration, parent.id, component, "reflection_failed", detail)
        state.reflection_tokens += reply.usage.total_tokens
        cut = truncation_note(reply)
        if cut is not None:  # a cut prompt is not a candidate, however it parses
            how = _RAISE_LIMIT.replace("<uri>", repr(self._model.uri))
            detail = f"{cut}. {raise_limit_hint(reply, how)}"
            _log.warning("GEPA rejected a proposal for %r: %s", component, detail)
            return self._reject(parent.id, component, "truncated", detail, reply.text)
        return self._check_proposal(parent, component, parse_proposal(reply.text))

    def _check_proposal(self, parent: Candidate, component: str, text: str) -> str | Rejection:
        original = parent.prompts[component]
        if not text:
            return self._reject(parent.id, component, "empty", "the reply held no prompt", text)
        repaired = repair_template(original, text)
        if repaired is None:
            want, got = template_variables(original), template_variables(text)
            detail = (
                f"template variables changed: lost {sorted(want - got) or 'none'}, "
                f"added {sorted(got - want) or 'none'}"
            )
            _log.warning("GEPA rejected a proposal for %r: %s", component, detail)
            return self._reject(parent.id, component, "template_variables", detail, text)
        if repaired == original:
            return self._reject(parent.id, component, "unchanged", "same text as the parent", text)
        child_key = prompts_key({**parent.prompts, component: repaired})
        twin = next(
            (c for c in self._state.candidates if prompts_key(c.prompts) == child_key), None
        )
        if twin is not None:
            return self._reject(parent.id, component, "duplicate", f"same as {twin.id}", text)
        return repaired

    def _next_minibatch(self) -> list[str]:
        state, pool = self._state, self._sample_pool
        picked: list[str] = []
        while len(picked) < min(self._settings.minibatch_size, len(pool)):
            if not state.epoch_queue:
                order = list(pool)
                state.rng.shuffle(order)
                state.epoch_queue = order
            rid = state.epoch_queue.pop(0)
            if rid not in picked:
                picked.append(rid)
        return picked

    # -- merge ---------------------------------------------------------------------------

    def _merge_due(self) -> bool:
        s, state = self._settings, self._state
        return s.use_merge and state.merges_due > 0 and state.merge_attempts < s.max_merge_attempts

    def _merge(self) -> dict[str, Any] | None:
        state, val_ids = self._state, self._split.val_ids
        plan = plan_merge(state.candidates, state.tried_merges, state.rng)
        if plan is None or self._eval.cost(plan.prompts, val_ids) > self._eval.remaining:
            return None
        state.tried_merges.append(plan.tried_key)
        state.merge_attempts += 1
        state.merges_due -= 1
        first, second = state.candidate(plan.first), state.candidate(plan.second)
        subsample = stratified_subsample(first, second, _MERGE_SUBSAMPLE, state.rng)
        merged = _sum(self._eval.evaluate(plan.prompts, subsample))
        bar = max(sum(c.val_scores[rid] for rid in subsample) for c in (first, second))
        event: dict[str, Any] = {
            "iteration": state.iteration,
            "kind": "merge",
            "parents": [plan.first, plan.second],
            "ancestor": plan.ancestor,
            "subsample": subsample,
            "merged_sum": merged,
            "parents_best_sum": bar,
        }
        if merged < bar - _EPS:
            detail = f"subsample sum {merged:.3f} is below the better parent's {bar:.3f}"
            self._reject(plan.key, None, "merge_not_better", detail, None)
            return {**event, "outcome": "merge_not_better"}
        parents = (plan.first, plan.second)
        return {**event, **self._admit_merge(plan.prompts, parents, plan.key)}

    # -- pool ----------------------------------------------------------------------------

    def _admit_children(
        self, parent_id: str, passed: list[tuple[dict[str, Any], dict[str, str]]]
    ) -> None:
        """Score the children that passed the minibatch gate on the validation set (at
        once) and add them to the pool, in order; their events get the outcome."""
        val_ids = self._split.val_ids
        scored = self._eval.evaluate_many([child for _, child in passed], val_ids)
        for (event, child), records in zip(passed, scored, strict=True):
            candidate = self._admit(
                child, (parent_id,), records, origin="reflection", iteration=self._state.iteration
            )
            if self._settings.use_merge:
                self._state.merges_due += 1
            event.update(outcome="accepted", child=candidate.id, child_val=candidate.aggregate)

    def _admit_merge(
        self, prompts: dict[str, str], parents: tuple[str, ...], label: str
    ) -> dict[str, Any]:
        """Score a merge that passed its subsample on the validation set, if the budget
        still allows (a reflection's children have their validation paid for up front)."""
        val_ids = self._split.val_ids
        if self._eval.cost(prompts, val_ids) > self._eval.remaining:
            detail = "validation scoring would exceed max_metric_calls"
            self._reject(label, None, "no_budget_for_validation", detail, None)
            return {"outcome": "no_budget_for_validation"}
        records = self._eval.evaluate(prompts, val_ids)
        child = self._admit(
            prompts, parents, records, origin="merge", iteration=self._state.iteration
        )
        return {"outcome": "accepted", "child": child.id, "child_val": child.aggregate}

    def _admit(
        self,
        prompts: dict[str, str],
        parents: tuple[str, ...],
        records: list[EvaluationResultRecord],
        *,
        origin: Literal["seed", "reflection", "merge"],
        iteration: int,
    ) -> Candidate:
        state = self._state
        candidate = Candidate(
            id=f"c{len(state.candidates)}",
            prompts=dict(prompts),
            parents=parents,
            val_scores={rid: r.score for rid, r in zip(self._split.val_ids, records, strict=True)},
            origin=origin,
            iteration=iteration,
            metric_calls=state.metric_calls,
        )
        state.candidates.append(candidate)
        # A child goes on where its parents' round-robin stands (the further one for a
        # merge), so the component just rewritten is not the next one rewritten again.
        turns = [state.next_component.get(p, 0) for p in parents]
        state.next_component[candidate.id] = max(turns, default=0)
        return candidate

    def _reject(
        self, parent: str, component: str | None, reason: str, detail: str, prompt: str | None
    ) -> Rejection:
        rejection = Rejection(self._state.iteration, parent, component, reason, detail, prompt)
        self._state.rejected.append(rejection)
        return rejection

    def _save(self) -> None:
        if self._checkpoint is not None:
            self._checkpoint.save(self._state)

    def _save_midway(self) -> None:
        """Checkpoint mid-iteration: the cache and metric calls as they are now, the
        scheduling as at the start of the iteration (a resumed run replays it from the
        cache, as after a failure)."""
        if self._checkpoint is not None:
            self._checkpoint.save(self._state.rewound(self._snapshot))


def _ask_all(model: ChatModel, conversations: list[list[Message]]) -> list[Completion | ModelError]:
    """Each conversation's reply (or its model error), the calls made concurrently, each in
    a copy of the caller's context (so a rate limit set there holds)."""

    def ask(messages: list[Message]) -> Completion | ModelError:
        try:
            return model.complete(messages)
        except ModelError as exc:
            return exc

    if len(conversations) == 1:
        return [ask(conversations[0])]
    with ContextThreadPool(len(conversations), thread_name_prefix="gepa-reflect") as pool:
        futures = [pool.submit(ask, m) for m in conversations]
    return [future.result() for future in futures]


def _sum(records: list[EvaluationResultRecord]) -> float:
    return sum(r.score for r in records)


def _describe(event: dict[str, Any]) -> str:
    if event["kind"] == "merge":
        return f"merge {'+'.join(event['parents'])} -> {event['outcome']}"
    child = f" {event['child']}" if "child" in event else ""
    return f"{event['parent']}[{event['component']}] -> {event['outcome']}{child}"
