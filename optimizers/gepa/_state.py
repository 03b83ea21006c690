"""GEPA's run state: the candidate pool, the evaluation cache and the counters.

Everything a resumed run needs lives in :class:`RunState` (see
:mod:`optimizers.gepa._checkpoint` for how it is saved). Record ids are positions in the
caller's data (``train:3``, ``val:0``), so a checkpoint only makes sense for the same data;
:func:`fingerprint` tells the two apart.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from optimizers._base import EvaluationResultRecord

__all__ = [
    "COUNTERS",
    "LOGS",
    "Candidate",
    "Rejection",
    "RunState",
    "fingerprint",
    "prompts_key",
]

Origin = Literal["seed", "reflection", "merge"]


@dataclass(frozen=True)
class Candidate:
    """One set of prompts in the pool.

    Attributes:
        id: ``c0`` for the seed, then ``c1``, ``c2``, ... in order of admission.
        prompts: prompt name -> template.
        parents: ids of the candidates it was derived from (two for a merge).
        val_scores: validation record id -> score.
        origin: how it was made.
        iteration: the iteration that admitted it (0 for the seed).
        metric_calls: metric calls spent when it was admitted.
    """

    id: str
    prompts: dict[str, str]
    parents: tuple[str, ...]
    val_scores: dict[str, float]
    origin: Origin
    iteration: int
    metric_calls: int

    @property
    def aggregate(self) -> float:
        """The mean validation score."""
        return sum(self.val_scores.values()) / len(self.val_scores) if self.val_scores else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (also used in the optimizer's ``details``)."""
        data = asdict(self)
        data["parents"] = list(self.parents)
        data["val_aggregate"] = self.aggregate
        return data


@dataclass(frozen=True)
class Rejection:
    """A proposal that did not enter the pool, and why.

    Attributes:
        iteration: the iteration it was proposed in.
        parent: the candidate it was derived from (``a+b`` for a merge).
        component: the prompt that was rewritten (``None`` for a merge).
        reason: a short machine-readable reason (``template_variables``, ``not_better``,
            ``unchanged``, ``duplicate``, ``empty``, ``truncated`` (the reply was cut by the
            token limit), ``no_budget_for_validation``, ...).
        detail: a human-readable explanation.
        prompt: the proposed text, when there was one.
    """

    iteration: int
    parent: str
    component: str | None
    reason: str
    detail: str
    prompt: str | None = None


@dataclass
class RunState:
    """The mutable state of one GEPA run (only the engine's thread touches it)."""

    candidates: list[Candidate] = field(default_factory=lambda: [])
    cache: dict[str, dict[str, EvaluationResultRecord]] = field(default_factory=lambda: {})
    metric_calls: int = 0
    iteration: int = 0
    rng: random.Random = field(default_factory=random.Random)
    epoch_queue: list[str] = field(default_factory=lambda: [])
    next_component: dict[str, int] = field(default_factory=lambda: {})
    """Candidate id -> how many reflections it has had: its next component, round-robin."""
    merges_due: int = 0
    merge_attempts: int = 0
    tried_merges: list[str] = field(default_factory=lambda: [])
    rejected: list[Rejection] = field(default_factory=lambda: [])
    history: list[dict[str, Any]] = field(default_factory=lambda: [])
    reflection_failures: list[dict[str, Any]] = field(default_factory=lambda: [])
    reflection_calls: int = 0
    reflection_tokens: int = 0
    since_best: int = 0
    stalled: int = 0

    def candidate(self, candidate_id: str) -> Candidate:
        """The pool member with this id."""
        return next(c for c in self.candidates if c.id == candidate_id)

    def best(self) -> Candidate:
        """The highest validation aggregate; the earliest wins ties (so the seed, if equal)."""
        return max(self.candidates, key=lambda c: (c.aggregate, -self.candidates.index(c)))

    def snapshot(self) -> dict[str, Any]:
        """The scheduling state at the start of an iteration (see :meth:`rewind`)."""
        return {
            "rng": self.rng.getstate(),
            "epoch_queue": list(self.epoch_queue),
            "tried_merges": list(self.tried_merges),
            "next_component": dict(self.next_component),
            **{name: getattr(self, name) for name in COUNTERS},
            **{name: len(getattr(self, name)) for name in LOGS},
        }

    def rewind(self, snapshot: dict[str, Any]) -> None:
        """Undo an unfinished iteration's scheduling, keeping the cache and metric calls.

        A resumed run then replays the same iteration (same parent, same minibatch), and
        every evaluation it already paid for comes from the cache.
        """
        self.rng.setstate(snapshot["rng"])
        self.epoch_queue = list(snapshot["epoch_queue"])
        self.tried_merges = list(snapshot["tried_merges"])
        self.next_component = dict(snapshot["next_component"])
        for name in COUNTERS:
            setattr(self, name, snapshot[name])
        for name in LOGS:
            del getattr(self, name)[snapshot[name] :]

    def rewound(self, snapshot: dict[str, Any]) -> RunState:
        """A copy of this state rewound to ``snapshot`` (see :meth:`rewind`), for a
        checkpoint taken mid-iteration; this state is unchanged and the cache is shared."""
        twin = copy.copy(self)
        twin.rng = random.Random()
        for name in LOGS:
            setattr(twin, name, list(getattr(self, name)))
        twin.rewind(snapshot)
        return twin

    def lineage(self, candidate_id: str) -> list[str]:
        """Ids from the seed to ``candidate_id``, following first parents."""
        chain = [candidate_id]
        while parents := self.candidate(chain[-1]).parents:
            chain.append(parents[0])
        return chain[::-1]


COUNTERS = (
    "iteration",
    "merges_due",
    "merge_attempts",
    "since_best",
    "stalled",
)
LOGS = ("candidates", "rejected", "history", "reflection_failures")
"""The append-only lists of a run (an unfinished iteration's entries are cut on rewind)."""


def prompts_key(prompts: dict[str, str]) -> str:
    """A stable key for a set of prompts (the evaluation cache is keyed by it)."""
    return _digest(prompts)[:24]


def fingerprint(
    *,
    prompts: dict[str, str],
    train: Any,
    val: Any,
    split: dict[str, Any],
) -> dict[str, str]:
    """Hashes of what a checkpoint depends on: the prompts, the data and the split."""
    return {
        "target_prompts": _digest(prompts),
        "data": _digest({"train": train, "val": val}),
        "split": _digest(split),
    }


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
