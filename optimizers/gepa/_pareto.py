"""Pareto-front parent selection and system-aware merge planning over the candidate pool.

A candidate is on the front of a validation record when no candidate scores higher on it.
The *front* of the pool is the union of those per-record winners with dominated ones
pruned: a candidate is dropped when every record it wins is also won by another survivor.
Parents are sampled among survivors, weighted by how many records they win, so a
candidate that is the only one solving a few records keeps being explored (the paper's
answer to greedy selection stalling in a local optimum).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from optimizers.gepa._state import Candidate, prompts_key

__all__ = [
    "MergePlan",
    "instance_winners",
    "pareto_front",
    "plan_merge",
    "select_parent",
    "stratified_subsample",
]

_TIE = 1e-12


def instance_winners(candidates: Sequence[Candidate]) -> dict[str, set[str]]:
    """Validation record id -> ids of the candidates with the best score on it."""
    winners: dict[str, set[str]] = {}
    for rid in candidates[0].val_scores if candidates else ():
        best = max(c.val_scores[rid] for c in candidates)
        winners[rid] = {c.id for c in candidates if c.val_scores[rid] >= best - _TIE}
    return winners


def pareto_front(candidates: Sequence[Candidate]) -> list[str]:
    """Ids of the non-dominated per-record winners, in pool order."""
    winners = instance_winners(candidates)
    survivors: set[str] = {c.id for c in candidates}
    if winners:
        survivors = set[str]().union(*winners.values())
    order = sorted(
        (c for c in candidates if c.id in survivors),
        key=lambda c: (c.aggregate, candidates.index(c)),
    )
    for candidate in order:
        fronts = [ids for ids in winners.values() if candidate.id in ids]
        if all(len((ids & survivors) - {candidate.id}) > 0 for ids in fronts):
            survivors.discard(candidate.id)
    return [c.id for c in candidates if c.id in survivors]


def select_parent(candidates: Sequence[Candidate], rng: random.Random) -> tuple[str, list[str]]:
    """Sample a parent from the front, weighted by records won; returns (parent, front)."""
    front = pareto_front(candidates)
    winners = instance_winners(candidates)
    weights = [max(1, sum(cid in ids for ids in winners.values())) for cid in front]
    return rng.choices(front, weights=weights, k=1)[0], front


@dataclass(frozen=True)
class MergePlan:
    """Two front candidates, one of their eligible common ancestors, and the merged prompts.

    Attributes:
        first: the earlier candidate's id.
        second: the later candidate's id.
        ancestor: the common ancestor the changes are measured against.
        prompts: per component, the text of whichever side changed it (the better side
            when both did, the ancestor's when neither did).
    """

    first: str
    second: str
    ancestor: str
    prompts: dict[str, str]

    @property
    def key(self) -> str:
        """``first+second``: the pair, as it is named in rejections."""
        return f"{self.first}+{self.second}"

    @property
    def tried_key(self) -> str:
        """The pair and the merged prompts: each such merge is tried once."""
        return f"{self.key}:{prompts_key(self.prompts)}"


def plan_merge(
    candidates: Sequence[Candidate], tried: Sequence[str], rng: random.Random
) -> MergePlan | None:
    """Pick an untried, useful merge of two front candidates, or ``None`` when none exists.

    A pair qualifies when neither descends from the other and they share an *eligible*
    ancestor: one that scores no better than either and against which at least one
    prompt was changed by exactly one of them (otherwise merging adds nothing). The
    merged prompts must be new to the pool and untried for that pair. A pair is drawn
    uniformly among those that qualify, then its common ancestor among the eligible ones,
    weighted by validation score (uniformly when all score 0), as GEPA does.
    """
    by_id = {c.id: c for c in candidates}
    front = pareto_front(candidates)
    known = {prompts_key(c.prompts) for c in candidates}
    done = set(tried)
    pairs: list[list[MergePlan]] = []
    for i, first in enumerate(front):
        for second in front[i + 1 :]:
            plans = [
                plan
                for plan in _plan_pair(by_id, first, second)
                if prompts_key(plan.prompts) not in known and plan.tried_key not in done
            ]
            if plans:
                pairs.append(plans)
    if not pairs:
        return None
    plans = rng.choice(pairs)
    weights = [by_id[plan.ancestor].aggregate for plan in plans]
    if sum(weights) <= 0:
        weights = [1.0] * len(plans)
    return rng.choices(plans, weights=weights, k=1)[0]


def _plan_pair(by_id: dict[str, Candidate], first: str, second: str) -> list[MergePlan]:
    """One plan per eligible common ancestor of ``first`` and ``second``, oldest first."""
    up_first, up_second = _ancestors(by_id, first), _ancestors(by_id, second)
    if first in up_second or second in up_first:
        return []
    a, b = by_id[first], by_id[second]
    floor = min(a.aggregate, b.aggregate)
    common = [c for c in by_id.values() if c.id in up_first & up_second]
    plans: list[MergePlan] = []
    for ancestor in common:
        if ancestor.aggregate > floor + _TIE:
            continue
        prompts = _combine(ancestor, a, b)
        if prompts is not None:
            plans.append(MergePlan(first, second, ancestor.id, prompts))
    return plans


def _combine(ancestor: Candidate, a: Candidate, b: Candidate) -> dict[str, str] | None:
    """Per prompt, the text of whichever side changed it from ``ancestor`` (the better
    side's when both did); ``None`` when that adds nothing to either side."""
    prompts: dict[str, str] = {}
    useful = False
    for name, base in ancestor.prompts.items():
        changed_a, changed_b = a.prompts[name] != base, b.prompts[name] != base
        if changed_a and changed_b:
            prompts[name] = (a if a.aggregate >= b.aggregate else b).prompts[name]
        else:
            prompts[name] = a.prompts[name] if changed_a else b.prompts[name]
            useful = useful or (changed_a != changed_b)
    if not useful or prompts in (a.prompts, b.prompts):
        return None
    return prompts


def _ancestors(by_id: dict[str, Candidate], candidate_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(by_id[candidate_id].parents)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(by_id[current].parents)
    return seen


def stratified_subsample(
    first: Candidate, second: Candidate, size: int, rng: random.Random
) -> list[str]:
    """Up to ``size`` validation ids, drawn in turn from where the first wins, where the
    second wins, and where they tie, so the merge is tested on what each side is good at."""
    groups: list[list[str]] = [[], [], []]
    for rid, score in first.val_scores.items():
        other = second.val_scores[rid]
        groups[0 if score > other + _TIE else 1 if other > score + _TIE else 2].append(rid)
    for group in groups:
        rng.shuffle(group)
    picked: list[str] = []
    while len(picked) < size and any(groups):
        for group in groups:
            if group and len(picked) < size:
                picked.append(group.pop(0))
    return picked
