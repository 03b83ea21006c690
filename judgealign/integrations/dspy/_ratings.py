"""SME ratings as a DSPy metric: the expert's verdict wherever the expert gave one.

Teams often hold ratings of their system's outputs (excellent / fair / poor, each with a
rationale) before they optimize anything. :func:`ratings_metric` scores a prediction with
those ratings directly: when the program's output for an example is one an expert rated
for the same inputs, the rating's label (through ``label_scores``) is the score and the
expert's rationale is the feedback GEPA reflects on. Any other output is scored by the
``fallback`` (typically a judge aligned on the same ratings); without one, it scores 0
with feedback saying that no expert rated it: an unrated output is never given a guessed
score.

Matching compares the example's inputs and the prediction's outputs (mapped as for
:func:`~judgealign.integrations.dspy.as_dspy_metric`) with each record's ``inputs`` and
``outputs`` after normalising text: Unicode NFKC, runs of whitespace as one space, ends
trimmed. Case is kept (an expert may rate ``"LIMA"`` and ``"Lima"`` differently); pass
``normalize=`` to match otherwise. A dict with one field matches its value alone, so a
record storing ``inputs="What is...?"`` matches an example with one input field.
Several ratings of one output (several experts) score their mean, with every rationale.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.dspy._combine import as_metric, metric_outcome
from judgealign.integrations.dspy._fields import FieldMap, FieldSpec
from judgealign.integrations.dspy._outcome import (
    FeedbackMetric,
    MetricOutcome,
    check_label_score_values,
    feedback_per_predictor,
)
from judgealign.judges._loaders import load_jsonl, load_records
from judgealign.judges._records import LabeledRecord, canonical_json

__all__ = ["RatingsMetric", "ratings_metric"]

_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """The default text normalisation: NFKC, whitespace runs as one space, trimmed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass(frozen=True)
class _Rated:
    """The experts' ratings of one (inputs, outputs) pair."""

    score: float
    feedback: str


class RatingsMetric(FeedbackMetric):
    """A DSPy metric that scores with stored SME ratings (see :func:`ratings_metric`).

    Attributes:
        name: the metric's name.
        label_scores: what each label is worth.
        fallback: the metric for outputs no expert rated, or ``None``.
        fields: how examples and predictions are matched to the records.
        feedback_per_predictor: whether the feedback may depend on ``pred_name`` (only
            through a fallback whose feedback does).
    """

    def __init__(
        self,
        ratings: Mapping[tuple[str, str], _Rated],
        *,
        label_scores: Mapping[str, float],
        fallback: Callable[..., Any] | None,
        fields: FieldMap,
        normalize: Callable[[str], str],
        name: str,
    ) -> None:
        self._ratings = dict(ratings)
        self._rated_inputs = {key[0] for key in self._ratings}
        self.label_scores = dict(label_scores)
        self.fallback = fallback
        self.fields = fields
        self._normalize = normalize
        self.name = name
        self.feedback_per_predictor = fallback is not None and feedback_per_predictor(fallback)
        self._lock = threading.Lock()
        self._counts = {"rated": 0, "fallback": 0, "unrated": 0}

    def __repr__(self) -> str:
        return f"RatingsMetric(name={self.name!r}, rated_outputs={len(self._ratings)})"

    @property
    def counts(self) -> dict[str, int]:
        """Predictions scored so far by an expert's rating, by the fallback, and left
        unrated (scored 0)."""
        with self._lock:
            return dict(self._counts)

    def check_example(self, example: Any) -> None:
        """Raise unless ``example`` can be scored (called before any model call): without
        a fallback, some expert must have rated an output for its inputs.

        Raises:
            ConfigurationError: naming the example and the fix.
        """
        given = self.fields.example_fields(example)
        if self.fallback is not None:
            check = getattr(self.fallback, "check_example", None)
            if callable(check):
                check(example)
            return
        if self._key(given["inputs"]) not in self._rated_inputs:
            raise ConfigurationError(
                f"ratings_metric {self.name!r}: no SME rating has the inputs of the example "
                f"{example!r:.120}, so every prediction for it would score 0; rate outputs "
                "for it, leave it out, or pass fallback=<a judge aligned on these ratings>"
            )

    def evaluate(
        self,
        gold: Any,
        pred: Any,
        trace: Any = None,
        *,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> MetricOutcome:
        """The experts' verdict on ``pred``, else the fallback's, else 0 with the reason.

        Raises:
            ConfigurationError: the example or prediction lacks a mapped field.
        """
        fields = self.fields.fields(gold, pred)
        rated = self._ratings.get((self._key(fields["inputs"]), self._key(fields["outputs"])))
        if rated is not None:
            self._count("rated")
            return MetricOutcome(rated.score, rated.feedback)
        if self.fallback is None:
            self._count("unrated")
            text = (
                f"{self.name}: no SME rated this output for these inputs and no fallback "
                "scores it, so it counts as 0 (not a verdict on its quality); pass "
                "fallback=<a judge aligned on these ratings> to score unrated outputs"
            )
            return MetricOutcome(0.0, text, text)
        self._count("fallback")
        return metric_outcome(
            self.fallback, gold, pred, trace, pred_name, pred_trace, label_scores=self.label_scores
        )

    def _count(self, what: str) -> None:
        with self._lock:
            self._counts[what] += 1

    def _key(self, value: Any) -> str:
        return match_key(value, self._normalize)


def match_key(value: Any, normalize: Callable[[str], str]) -> str:
    """What a record's or a prediction's field is matched by (see the module docstring)."""
    if isinstance(value, Mapping) and len(cast("Mapping[Any, Any]", value)) == 1:
        value = next(iter(cast("Mapping[Any, Any]", value).values()))
    return canonical_json(_normalized(value, normalize))


def _normalized(value: Any, normalize: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return normalize(value)
    if isinstance(value, Mapping):
        table = cast("Mapping[Any, Any]", value)
        return {str(k): _normalized(v, normalize) for k, v in table.items()}
    if isinstance(value, list | tuple):
        return [_normalized(v, normalize) for v in cast("Iterable[Any]", value)]
    return value


def ratings_metric(
    records: Iterable[LabeledRecord | Mapping[str, Any]] | str | Path,
    *,
    label_scores: Mapping[str, float],
    fallback: Any = None,
    inputs: FieldSpec = None,
    outputs: FieldSpec = None,
    normalize: Callable[[str], str] = normalize_text,
    name: str = "sme_ratings",
) -> RatingsMetric:
    """A DSPy metric from stored SME ratings (see the module docstring).

    Args:
        records: the ratings: ``LabeledRecord`` objects or a ``LoadResult`` (from
            ``load_records`` / ``load_jsonl`` / ...), dicts as ``load_records`` takes them
            (``inputs``, ``outputs``, ``label``, ``rationale``), or a JSON Lines path.
            Each needs ``inputs``, ``outputs`` and a label found in ``label_scores``.
        label_scores: what each label is worth, in [0, 1], e.g. ``{"excellent": 1,
            "fair": 0.5, "poor": 0}``. Labels match exactly, then by trimmed,
            case-insensitive text.
        fallback: scores outputs no expert rated: a judge (wrapped with the same field
            mapping and ``label_scores``) or a DSPy metric. ``None``: they score 0, with
            feedback saying so.
        inputs: the example fields matched against each record's ``inputs`` (default:
            its input fields; see :class:`FieldMap`).
        outputs: the prediction fields matched against each record's ``outputs``.
        normalize: how text is normalised before matching.
        name: the metric's name.

    Raises:
        ConfigurationError: no records; a record the loader rejects (a missing label,
            ...), without ``inputs`` or ``outputs``, or whose label is not in
            ``label_scores``; a ``label_scores`` value outside [0, 1]; a fallback that
            is neither a judge nor a metric.
    """
    scores = _checked_label_scores(label_scores, name)
    loaded = _load(records, name)
    ratings: dict[tuple[str, str], list[tuple[float, LabeledRecord]]] = {}
    for record in loaded:
        score = _score_of(record, scores, name)
        key = (match_key(record.inputs, normalize), match_key(record.outputs, normalize))
        ratings.setdefault(key, []).append((score, record))
    fields = FieldMap(inputs, outputs, None, owner=f"ratings_metric({name!r})")
    metric = None
    if fallback is not None:  # a judge reads the fields the ratings are matched by
        user = f"ratings_metric {name!r} fallback"
        metric = as_metric(fallback, user, fields=fields, label_scores=scores)
    return RatingsMetric(
        {key: _rated(group) for key, group in ratings.items()},
        label_scores=scores,
        fallback=metric,
        fields=fields,
        normalize=normalize,
        name=name,
    )


def _load(records: object, name: str) -> list[LabeledRecord]:
    kind = type(records).__name__
    try:  # every record must load: a rating silently dropped would change the scores
        if isinstance(records, str | Path):
            loaded = list(load_jsonl(records, strict=True))
        elif isinstance(records, Iterable) and not isinstance(records, bytes | Mapping):
            loaded = list(load_records(list(cast("Iterable[Any]", records)), strict=True))
        else:
            raise ConfigurationError(
                f"records must be a list of rated records (dicts or LabeledRecord), a "
                f"LoadResult or a JSON Lines path, got {kind}"
            )
    except ConfigurationError as exc:
        raise ConfigurationError(f"ratings_metric {name!r}: {exc}") from None
    if not loaded:
        raise ConfigurationError(f"ratings_metric {name!r}: records is empty; give SME ratings")
    for record in loaded:
        for field in ("inputs", "outputs"):
            if getattr(record, field) in (None, "", {}):
                raise ConfigurationError(
                    f"ratings_metric {name!r}: record {record.id!r} has no {field}; a rating "
                    "must carry the inputs and the output it rated"
                )
    return loaded


def _checked_label_scores(label_scores: Any, name: str) -> dict[str, float]:
    if not isinstance(label_scores, Mapping) or not label_scores:
        raise ConfigurationError(
            f"ratings_metric {name!r}: label_scores must map each SME label to a score, "
            'e.g. {"excellent": 1.0, "fair": 0.5, "poor": 0.0}'
        )
    table = cast("Mapping[Any, Any]", label_scores)
    check_label_score_values(table, f"ratings_metric {name!r}")
    return {str(k): float(v) for k, v in table.items()}


def _score_of(record: LabeledRecord, scores: Mapping[str, float], name: str) -> float:
    label = str(record.label)
    if label in scores:
        return scores[label]
    wanted = label.strip().casefold()
    for known, score in scores.items():
        if known.strip().casefold() == wanted:
            return score
    raise ConfigurationError(
        f"ratings_metric {name!r}: record {record.id!r} has the label {record.label!r}, which "
        f"is not in label_scores ({sorted(scores)}); add it, e.g. label_scores="
        f"{{..., {label!r}: <0..1>}}, or fix the record"
    )


def _rated(group: list[tuple[float, LabeledRecord]]) -> _Rated:
    score = sum(s for s, _ in group) / len(group)
    lines = [_said(record) for _, record in group]
    return _Rated(score, lines[0] if len(lines) == 1 else "\n".join(f"- {t}" for t in lines))


def _said(record: LabeledRecord) -> str:
    who = f"SME {record.annotator}" if record.annotator else "An SME"
    why = record.rationale.strip() or "(no rationale given)"
    return f"{who} rated this output {record.label!r}: {why}"
