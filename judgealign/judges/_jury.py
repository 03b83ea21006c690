"""Juries: several judges that vote, usable wherever one judge is.

``make_jury([judge_a, judge_b, judge_c], rule="majority")`` returns a :class:`Jury`: it
is called on one record like a judge (``jury(inputs=..., outputs=...)``), evaluates many
(``jury.evaluate(records)``), has a ``name``, a ``value_spec`` and ``normalize``, so
``agreement``, the loaders, the optimizers (as a scorer) and the CLI take it as they take
a judge. Each verdict's ``metadata["jury"]`` keeps every member's value, rationale and
error, and how far the members disagreed; ``usage`` metadata sums the members' calls, so
the cost of a jury verdict is the cost of all its members' calls.

Rules:

* ``"majority"``: the label with the most votes (members' weights, 1 each by default).
  A tie goes to the tied label voted first in member order and is flagged
  (``metadata["jury"]["tied"]``). Members must share one value type.
* ``"mean"``: the weighted mean of numeric or boolean verdicts (``True`` is 1), as a
  ``float`` in the members' common range (``[0, 1]`` for booleans).
* weights, a mapping of member name to weight or a sequence in member order: a weighted
  majority (``rule=weights``), or a weighted mean with ``rule="mean", weights=...``.

Members that fail on a record are left out of its vote and listed in the metadata; a
record on which every member failed is an error feedback naming each member's error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

from judgealign.core._errors import ConfigurationError
from judgealign.core._threads import ContextThreadPool
from judgealign.core._usage import Usage
from judgealign.judges._batch import EvaluationResult, batch_records, usage_metadata
from judgealign.judges._feedback import AssessmentSource, AssessmentSourceType, Feedback
from judgealign.judges._protocol import SupportsJudging
from judgealign.judges._records import label_key
from judgealign.judges._values import ValueSpec
from judgealign.models.rate_limit import RateLimit, use_rate_limit

__all__ = ["Jury", "make_jury"]

Rule = Literal["majority", "mean"]


_Member = SupportsJudging


def make_jury(
    judges: Sequence[Any],
    rule: Rule | Mapping[str, float] | Sequence[float] = "majority",
    *,
    weights: Mapping[str, float] | Sequence[float] | None = None,
    name: str | None = None,
) -> Jury:
    """A jury of ``judges`` that votes by ``rule`` (see the module docstring).

    Args:
        judges: two or more judges or aligned judges, with distinct names.
        rule: ``"majority"``, ``"mean"``, or weights (a weighted majority).
        weights: members' weights for ``"majority"`` or ``"mean"`` (by name or in order).
        name: the jury's name (its feedback's ``name``); defaults to ``"jury"``.

    Raises:
        ConfigurationError: fewer than two judges, repeated names, members whose value
            types differ (majority) or are not numeric (mean), or bad weights.
    """
    members = list(judges)
    if len(members) < 2:
        raise ConfigurationError(
            f"make_jury needs two or more judges, got {len(members)}; a single judge is "
            "used as it is."
        )
    for index, member in enumerate(members):
        if not callable(member) or not hasattr(member, "value_spec"):
            raise ConfigurationError(
                f"judges[{index}] ({type(member).__name__}) is not a judge; pass judges "
                "made by make_judge or aligned judges."
            )
    names = [str(m.name) for m in members]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigurationError(
            f"jury members must have distinct names; {repeated} repeat. Give each judge its "
            "own name (make_judge(name=...))."
        )
    if not isinstance(rule, str):
        rule, weights = "majority", rule
    if rule not in ("majority", "mean"):
        raise ConfigurationError(
            f"rule={rule!r} must be 'majority', 'mean', or weights such as "
            "{'judge_a': 2, 'judge_b': 1}."
        )
    chosen = cast("_Member", members)
    return Jury(cast("list[_Member]", chosen), rule, _weights(names, weights), name=name or "jury")


def _weights(
    names: Sequence[str], weights: Mapping[str, float] | Sequence[float] | None
) -> tuple[float, ...]:
    if weights is None:
        return tuple(1.0 for _ in names)
    if isinstance(weights, Mapping):
        unknown = sorted(set(weights) - set(names))
        missing = [n for n in names if n not in weights]
        if unknown or missing:
            raise ConfigurationError(
                f"weights must name every member once: unknown {unknown}, missing {missing}; "
                f"the members are {list(names)}."
            )
        values: list[object] = [weights[n] for n in names]
    else:
        values = list(weights)
        if len(values) != len(names):
            raise ConfigurationError(
                f"weights has {len(values)} values for {len(names)} members; give one per "
                "member, in order, or a mapping {name: weight}."
            )
    checked: list[float] = []
    for name, value in zip(names, values, strict=True):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigurationError(
                f"the weight of {name!r} is {value!r}; weights are numbers >= 0."
            )
        checked.append(float(value))
    if not any(checked):
        raise ConfigurationError("weights are all 0; give at least one member a weight > 0.")
    return tuple(checked)


class Jury:
    """Judges voting by a rule; made by :func:`make_jury`, used like a judge."""

    def __init__(
        self, members: Sequence[_Member], rule: Rule, weights: Sequence[float], *, name: str
    ) -> None:
        self.members = tuple(members)
        self.rule: Rule = rule
        self.weights = tuple(weights)
        self.name = name
        self.value_spec = _jury_spec(self.members, rule)

    def __repr__(self) -> str:
        names = ", ".join(m.name for m in self.members)
        return f"Jury(name={self.name!r}, rule={self.rule!r}, members=[{names}])"

    @property
    def model_uri(self) -> str:
        """``jury:`` and the members' model URIs."""
        return "jury:" + ",".join(m.model_uri for m in self.members)

    @property
    def usage(self) -> Usage:
        """The members' usage so far, summed."""
        total = Usage(calls=0)
        for member in self.members:
            total = total + cast("Usage", getattr(member, "usage", Usage(calls=0)))
        return total

    def __call__(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> Feedback:
        """Judge one record with every member (at once) and combine their verdicts."""
        fields: dict[str, Any] = {
            "inputs": inputs,
            "outputs": outputs,
            "expectations": expectations,
            "trace": trace,
            "conversation": conversation,
        }
        # Members run in the caller's context: under its rate limit and prompt overrides.
        with ContextThreadPool(max_workers=len(self.members)) as pool:
            calls = [pool.submit(_safe_call, member, fields) for member in self.members]
            verdicts = [call.result() for call in calls]
        return self.combine(verdicts)

    def evaluate(
        self,
        records: Iterable[Any],
        *,
        max_workers: int = 8,
        progress: bool | None = None,
        rate_limit: RateLimit | None = None,
    ) -> EvaluationResult:
        """Every member evaluates the records; one combined :class:`Feedback` per record.

        ``rate_limit`` (:class:`judgealign.RateLimit`) paces every member's calls to one
        shared provider limit, as ``Judge.evaluate`` does for one judge.
        """
        items = batch_records(records, max_workers)
        with use_rate_limit(rate_limit):
            results = [
                m.evaluate(items, max_workers=max_workers, progress=progress) for m in self.members
            ]
        combined = tuple(self.combine([result[i] for result in results]) for i in range(len(items)))
        usage = Usage(calls=0)
        for result in results:
            usage = usage + result.usage
        return EvaluationResult(feedback=combined, usage=usage)

    def collect_fields(
        self,
        *,
        inputs: Any = None,
        outputs: Any = None,
        expectations: Mapping[str, Any] | None = None,
        trace: Any = None,
        conversation: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The fields every member reads, checked by each member."""
        fields: dict[str, Any] = {}
        for member in self.members:
            fields |= member.collect_fields(
                inputs=inputs,
                outputs=outputs,
                expectations=expectations,
                trace=trace,
                conversation=conversation,
            )
        return fields

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: the rule, the weights and each member's own."""
        return {
            "format": "judgealign/jury",
            "name": self.name,
            "rule": self.rule,
            "weights": list(self.weights),
            "members": [m.to_dict() for m in self.members],
        }

    def normalize(self, value: Any) -> float | None:
        """A verdict mapped to [0, 1] for the optimizers (the members' rule for majority)."""
        if value is None:
            return None
        if self.rule == "majority":
            return self.members[0].normalize(value)
        low, high = self.value_spec.low, self.value_spec.high
        if low is None or high is None or high == low:
            return float(value)
        return (float(value) - low) / (high - low)

    def memorised(self, records: Iterable[Any]) -> list[str | None]:
        """For each record, the id of a member's stored expert record it repeats, else
        ``None``: a record any member holds in memory is no held-out evidence."""
        items = list(records)
        found: list[str | None] = [None] * len(items)
        for member in self.members:
            check = getattr(member, "memorised", None)
            if callable(check):
                matches = cast("list[str | None]", check(items))
                found = [f if f is not None else m for f, m in zip(found, matches, strict=True)]
        return found

    def combine(self, verdicts: Sequence[Feedback]) -> Feedback:
        """The jury's feedback from one feedback per member, in member order."""
        usage = Usage(calls=0)
        for feedback in verdicts:
            usage = usage + _usage(feedback)
        ok = [
            (m, w, f) for m, w, f in zip(self.members, self.weights, verdicts, strict=True) if f.ok
        ]
        base = usage_metadata(self.model_uri, usage)
        members = [
            _member_entry(m, w, f)
            for m, w, f in zip(self.members, self.weights, verdicts, strict=True)
        ]
        source = AssessmentSource(
            source_type=AssessmentSourceType.LLM_JUDGE, source_id=self.model_uri
        )
        if not ok:
            errors = "; ".join(
                f"{m.name}: {f.error}" for m, f in zip(self.members, verdicts, strict=True)
            )
            return Feedback(
                name=self.name,
                error=f"every jury member failed ({errors})",
                source=source,
                metadata={**base, "jury": {"rule": self.rule, "members": members}},
            )
        value, tied, disagreement = _majority(ok) if self.rule == "majority" else _mean(ok)
        voted = ", ".join(f"{m.name}: {f.value!r}" for m, _, f in ok)
        return Feedback(
            name=self.name,
            value=value,
            rationale=f"{self.rule} of {len(ok)} of {len(self.members)} members ({voted}).",
            source=source,
            metadata={
                **base,
                "jury": {
                    "rule": self.rule,
                    "members": members,
                    "tied": tied,
                    "disagreement": disagreement,
                },
            },
        )


def _safe_call(member: _Member, fields: Mapping[str, Any]) -> Feedback:
    try:
        return member(**fields)
    except ConfigurationError:
        raise  # misuse (a missing field): the same for every member, so say it once
    except Exception as exc:  # one member's crash is that member's failure on this record
        return Feedback(name=member.name, error=f"{type(exc).__name__}: {exc}")


def _usage(feedback: Feedback) -> Usage:
    meta = feedback.metadata
    if "prompt_tokens" not in meta:
        return Usage(calls=0)
    return Usage(
        prompt_tokens=int(meta["prompt_tokens"]),
        completion_tokens=int(meta["completion_tokens"]),
        cost_usd=meta.get("cost_usd"),
        latency_ms=float(meta.get("latency_ms", 0.0)),
        calls=int(meta.get("model_calls", 1)),
    )


def _member_entry(member: _Member, weight: float, feedback: Feedback) -> dict[str, Any]:
    return {
        "name": member.name,
        "model": member.model_uri,
        "weight": weight,
        "value": feedback.value,
        "rationale": feedback.rationale,
        "error": feedback.error,
    }


def _majority(ok: Sequence[tuple[_Member, float, Feedback]]) -> tuple[Any, bool, float]:
    votes: dict[str, float] = {}
    first: dict[str, Any] = {}
    for _, weight, feedback in ok:
        key = label_key(cast("Any", feedback.value))
        votes[key] = votes.get(key, 0.0) + weight
        first.setdefault(key, feedback.value)
    top = max(votes.values())
    winners = [key for key in first if votes[key] == top]  # in member order
    total = sum(votes.values())
    disagreement = 1.0 - top / total if total else 0.0
    return first[winners[0]], len(winners) > 1, disagreement


def _mean(ok: Sequence[tuple[_Member, float, Feedback]]) -> tuple[Any, bool, float]:
    values = [(float(cast("Any", f.value)), w) for _, w, f in ok]
    total = sum(w for _, w in values)
    if total == 0:  # every member with a verdict has weight 0: an unweighted mean
        values = [(v, 1.0) for v, _ in values]
        total = float(len(values))
    mean = sum(v * w for v, w in values) / total
    spread = math.sqrt(sum(w * (v - mean) ** 2 for v, w in values) / total)
    return mean, False, spread


def _jury_spec(members: Sequence[_Member], rule: Rule) -> ValueSpec:
    specs = [m.value_spec for m in members]
    if rule == "majority":
        for member, spec in zip(members[1:], specs[1:], strict=True):
            if spec != specs[0]:
                raise ConfigurationError(
                    f"a majority vote needs one value type: {members[0].name!r} gives "
                    f"{specs[0].describe()} but {member.name!r} gives {spec.describe()}. Use "
                    "judges of one feedback_value_type, or rule='mean' for numbers."
                )
        return specs[0]
    for member, spec in zip(members, specs, strict=True):
        if spec.kind not in ("bool", "int", "float"):
            raise ConfigurationError(
                f"rule='mean' needs numeric or boolean verdicts; {member.name!r} gives "
                f"{spec.describe()}. Use rule='majority' for labels."
            )
    ranges = {(0.0, 1.0) if s.kind == "bool" else (s.low, s.high) for s in specs}
    if len(ranges) > 1:
        raise ConfigurationError(
            "rule='mean' needs members on one scale; their ranges differ: "
            f"{sorted(ranges, key=str)}."
        )
    low, high = ranges.pop()
    return ValueSpec(kind="float", low=low, high=high)
