"""GEPA's run state: the candidate pool, the evaluation cache, counters and the checkpoint.

Everything a resumed run needs lives in :class:`RunState` and is written as one JSON file
(``gepa_state.json`` in ``run_dir``) after every iteration. Record ids are positions in the
caller's data (``train:3``, ``val:0``), so a checkpoint only makes sense for the same data;
:func:`fingerprint` tells the two apart.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from judgealign._errors import ConfigurationError
from judgealign._io import atomic_write_text
from optimizers._base import EvaluationResultRecord

__all__ = [
    "STATE_FILE",
    "Candidate",
    "Rejection",
    "RunState",
    "fingerprint",
    "load_state",
    "prompts_key",
    "save_state",
]

STATE_FILE = "gepa_state.json"
_VERSION = 1

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
            ``unchanged``, ``duplicate``, ``empty``, ``no_budget_for_validation``, ...).
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
    component_cursor: int = 0
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
            **{name: getattr(self, name) for name in _COUNTERS},
            **{name: len(getattr(self, name)) for name in _LOGS},
        }

    def rewind(self, snapshot: dict[str, Any]) -> None:
        """Undo an unfinished iteration's scheduling, keeping the cache and metric calls.

        A resumed run then replays the same iteration (same parent, same minibatch), and
        every evaluation it already paid for comes from the cache.
        """
        self.rng.setstate(snapshot["rng"])
        self.epoch_queue = list(snapshot["epoch_queue"])
        self.tried_merges = list(snapshot["tried_merges"])
        for name in _COUNTERS:
            setattr(self, name, snapshot[name])
        for name in _LOGS:
            del getattr(self, name)[snapshot[name] :]

    def rewound(self, snapshot: dict[str, Any]) -> RunState:
        """A copy of this state rewound to ``snapshot`` (see :meth:`rewind`), for a
        checkpoint taken mid-iteration; this state is unchanged and the cache is shared."""
        twin = copy.copy(self)
        twin.rng = random.Random()
        for name in _LOGS:
            setattr(twin, name, list(getattr(self, name)))
        twin.rewind(snapshot)
        return twin

    def lineage(self, candidate_id: str) -> list[str]:
        """Ids from the seed to ``candidate_id``, following first parents."""
        chain = [candidate_id]
        while parents := self.candidate(chain[-1]).parents:
            chain.append(parents[0])
        return chain[::-1]


_COUNTERS = (
    "iteration",
    "component_cursor",
    "merges_due",
    "merge_attempts",
    "since_best",
    "stalled",
)
_LOGS = ("candidates", "rejected", "history", "reflection_failures")


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


def save_state(run_dir: Path, state: RunState, stamp: dict[str, str]) -> None:
    """Write ``state`` to ``run_dir/gepa_state.json`` atomically."""
    version, internal, gauss = state.rng.getstate()
    payload: dict[str, Any] = {
        "version": _VERSION,
        "fingerprint": stamp,
        "candidates": [c.to_dict() for c in state.candidates],
        "cache": {
            key: {rid: _record_to_json(r) for rid, r in records.items()}
            for key, records in state.cache.items()
        },
        "rng_state": [version, list(internal), gauss],
        "rejected": [asdict(r) for r in state.rejected],
    }
    for name in _PLAIN_FIELDS:
        payload[name] = getattr(state, name)
    atomic_write_text(run_dir / STATE_FILE, json.dumps(payload, ensure_ascii=False, default=str))


_PLAIN_FIELDS = (
    "metric_calls",
    "iteration",
    "epoch_queue",
    "component_cursor",
    "merges_due",
    "merge_attempts",
    "tried_merges",
    "history",
    "reflection_failures",
    "reflection_calls",
    "reflection_tokens",
    "since_best",
    "stalled",
)


def load_state(run_dir: Path, stamp: dict[str, str]) -> RunState | None:
    """The state saved in ``run_dir``, or ``None`` when there is none.

    Raises:
        ConfigurationError: when the file is unreadable or belongs to another run (other
            target prompts, data, seed or validation split).
    """
    path = run_dir / STATE_FILE
    if not path.exists():
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        saved = payload["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigurationError(
            f"{path} is not a readable GEPA checkpoint ({exc}); delete it or use another run_dir"
        ) from exc
    different = sorted(k for k in stamp if saved.get(k) != stamp[k])
    if different:
        raise ConfigurationError(
            f"run_dir {str(run_dir)!r} holds a GEPA run for different "
            f"{' and '.join(d.replace('_', ' ') for d in different)} "
            "(the split depends on seed, val_fraction and val_data). Pass the same inputs "
            f"to resume, or use a new run_dir (or delete {path}) to start over."
        )
    return _state_from_json(payload)


def _state_from_json(payload: dict[str, Any]) -> RunState:
    state = RunState()
    state.candidates = [_candidate_from_json(c) for c in payload["candidates"]]
    state.cache = {
        key: {rid: _record_from_json(r) for rid, r in records.items()}
        for key, records in payload["cache"].items()
    }
    version, internal, gauss = payload["rng_state"]
    state.rng.setstate((version, tuple(internal), gauss))
    state.rejected = [Rejection(**r) for r in payload["rejected"]]
    for name in _PLAIN_FIELDS:
        setattr(state, name, payload[name])
    return state


def _candidate_from_json(data: dict[str, Any]) -> Candidate:
    return Candidate(
        id=data["id"],
        prompts=dict(data["prompts"]),
        parents=tuple(data["parents"]),
        val_scores={k: float(v) for k, v in data["val_scores"].items()},
        origin=data["origin"],
        iteration=int(data["iteration"]),
        metric_calls=int(data["metric_calls"]),
    )


def _record_to_json(record: EvaluationResultRecord) -> dict[str, Any]:
    # Traces are dropped: they can be large and are not needed to resume. Values that are
    # not JSON (custom objects) come back as their string form.
    return {
        "inputs": _jsonable(record.inputs),
        "outputs": _jsonable(record.outputs),
        "expectations": _jsonable(record.expectations),
        "score": record.score,
        "rationales": dict(record.rationales),
        "individual_scores": dict(record.individual_scores),
        "error": record.error,
    }


def _record_from_json(data: dict[str, Any]) -> EvaluationResultRecord:
    return EvaluationResultRecord(
        inputs=data["inputs"],
        outputs=data["outputs"],
        expectations=data["expectations"],
        score=float(data["score"]),
        rationales=data["rationales"],
        individual_scores=data["individual_scores"],
        error=data["error"],
    )


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)
