"""Every proposal of a prompt optimization, scored or rejected, and why.

The optimizers keep a history (metaprompt: one ``IterationRecord`` per proposal; GEPA: one
event per iteration, with its rejections in ``details["rejected_candidates"]``). A curve of
one score per iteration hides the proposals that were never scored: a rewrite that lost a
template variable, an unusable reply, a failed reflection call. :func:`proposals` lists
them all, in order, for the command's table, its JSON and its plot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Proposal", "proposals"]

ORIGINAL = "original"
NEW_BEST = "new best"
NOT_BETTER = "not better"
REJECTED = "rejected"

# GEPA's machine-readable reasons, in words, for when a rejection carries no detail.
_GEPA_REASONS = {
    "skipped_perfect": "the parent already scored perfectly on the minibatch",
    "not_better": "did not beat its parent on the minibatch",
    "merge_not_better": "the merge did not beat its parents",
    "template_variables": "changed the template variables",
    "unchanged": "same text as its parent",
    "duplicate": "same as an earlier candidate",
    "empty": "the reply held no prompt",
    "reflection_failed": "the reflection model failed",
    "no_budget_for_validation": "no budget left to score it on the validation records",
}


@dataclass(frozen=True)
class Proposal:
    """One prompt the optimizer considered.

    Attributes:
        step: the iteration it belongs to (0: the original prompt).
        score: its score on the ranking data, or ``None`` when it was never scored there.
        best: the best score so far, after it.
        outcome: ``original``, ``new best``, ``not better`` or ``rejected``.
        reason: why it was not kept (empty for the original and a new best).
    """

    step: int
    score: float | None
    best: float | None
    outcome: str
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def proposals(result: Any) -> list[Proposal]:
    """The original prompt and every proposal of ``result`` (a ``PromptOptimizationResult``).

    Scores are the ones the optimizer ranked on; a proposal it rejected before scoring has
    no score, and its reason says why.
    """
    details: Mapping[str, Any] = getattr(result, "details", None) or {}
    initial = getattr(result, "initial_eval_score", None)
    best = float(initial) if isinstance(initial, (int, float)) else None
    rows = [Proposal(0, best, best, ORIGINAL)]
    rejections = _gepa_rejections(details)
    history: list[Any] = list(details.get("history") or [])
    for raw in history:
        entry = _as_mapping(raw)
        if entry is None:
            continue
        step = entry.get("iteration")
        if not isinstance(step, int) or (step == 0 and entry.get("accepted") is not None):
            continue  # metaprompt's own record of the original prompt
        score, outcome, reason = _judge(entry, rejections.get(step, []))
        if score is not None and outcome == NEW_BEST:
            best = score if best is None else max(best, score)
        rows.append(Proposal(step, score, best, outcome, reason))
    return rows


def _judge(entry: Mapping[str, Any], rejected: list[str]) -> tuple[float | None, str, str]:
    """``(score, outcome, reason)`` of one history entry (metaprompt or GEPA)."""
    if "outcome" in entry:  # GEPA
        outcome = str(entry["outcome"])
        if outcome == "accepted":
            return _number(entry.get("child_val")), NEW_BEST, ""
        reason = rejected.pop(0) if rejected else _GEPA_REASONS.get(outcome, outcome)
        kind = NOT_BETTER if outcome in ("not_better", "merge_not_better") else REJECTED
        return None, kind, reason
    score = _number(entry.get("score"))
    note = str(entry.get("note") or "")
    if score is None:
        return None, REJECTED, note or "not scored"
    if entry.get("accepted"):
        return score, NEW_BEST, ""
    return score, NOT_BETTER, note


def _gepa_rejections(details: Mapping[str, Any]) -> dict[int, list[str]]:
    """GEPA's rejection details by iteration, in the order they happened."""
    found: dict[int, list[str]] = {}
    rejected: list[Any] = list(details.get("rejected_candidates") or [])
    for raw in rejected:
        entry = _as_mapping(raw)
        if entry is None or not isinstance(entry.get("iteration"), int):
            continue
        reason = str(entry.get("reason") or "")
        detail = str(entry.get("detail") or "") or _GEPA_REASONS.get(reason, reason)
        found.setdefault(int(entry["iteration"]), []).append(detail)
    return found


def _as_mapping(raw: Any) -> Mapping[str, Any] | None:
    value: Any = raw.to_dict() if hasattr(raw, "to_dict") else raw
    return value if isinstance(value, Mapping) else None  # pyright: ignore[reportUnknownVariableType]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
