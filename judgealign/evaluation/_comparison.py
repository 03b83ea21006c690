"""Base versus aligned judge on the same held-out records: :func:`compare_judges`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from judgealign.core._errors import ConfigurationError
from judgealign.core._events import announce
from judgealign.evaluation._leakage import leak_warning, refuse_all_leaked
from judgealign.evaluation._metrics import agreement
from judgealign.evaluation._report import AgreementReport
from judgealign.evaluation._text import (
    id_line,
    indent,
    interval_text,
    json_ready,
    kappa_name,
    signed,
    table,
)
from judgealign.judges._feedback import Feedback
from judgealign.judges._labels import MISSING, Label, RawLabel, normalize_label, record_field
from judgealign.judges._memorised import is_memorised

__all__ = ["JudgeComparison", "SupportsEvaluate", "compare_judges"]


@dataclass(frozen=True)
class JudgeComparison:
    """A base and an aligned judge scored against the same SME labels.

    Attributes:
        base: the base judge's agreement.
        aligned: the aligned judge's agreement.
        accuracy_delta: ``aligned.accuracy - base.accuracy``.
        kappa_delta: ``aligned.kappa - base.kappa`` (``nan`` when either is undefined).
        fixed_ids: ids the base judge got wrong and the aligned judge gets right.
        broken_ids: ids the base judge got right and the aligned judge gets wrong.
            Ids where either judge gave no verdict are in neither list; see the reports'
            ``failed_ids``.
        excluded_ids: ids left out of both reports because a judge holds the record in its
            memory (see :meth:`judgealign.AlignedJudge.memorised`).
    """

    base: AgreementReport
    aligned: AgreementReport
    accuracy_delta: float
    kappa_delta: float
    fixed_ids: tuple[str, ...]
    broken_ids: tuple[str, ...]
    excluded_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None``."""
        data: dict[str, Any] = {
            "base": self.base.to_dict(),
            "aligned": self.aligned.to_dict(),
            "accuracy_delta": self.accuracy_delta,
            "kappa_delta": self.kappa_delta,
            "fixed_ids": list(self.fixed_ids),
            "broken_ids": list(self.broken_ids),
            "n_excluded": len(self.excluded_ids),
            "excluded_ids": list(self.excluded_ids),
        }
        return json_ready(data)

    def format(self) -> str:
        """A plain-text side-by-side table of both judges, the deltas and fixed/broken ids."""
        base, aligned = self.base, self.aligned
        kappa = f"kappa ({kappa_name(base.kappa_weighting)})"
        rows = [
            ["", "base", "aligned", "delta"],
            ["scored", str(base.n), str(aligned.n), f"{aligned.n - base.n:+d}"],
            ["failed", str(base.n_failed), str(aligned.n_failed), ""],
            [
                "accuracy",
                *self._pair(base.accuracy, base.accuracy_ci, aligned.accuracy, aligned.accuracy_ci),
                signed(self.accuracy_delta),
            ],
            [
                kappa,
                *self._pair(base.kappa, base.kappa_ci, aligned.kappa, aligned.kappa_ci),
                signed(self.kappa_delta),
            ],
        ]
        lines = [
            f"Base vs aligned judge ({base.confidence:.0%} bootstrap intervals)",
            *indent(table(rows)),
            "",
            id_line("Fixed by alignment", self.fixed_ids),
            id_line("Broken by alignment", self.broken_ids),
        ]
        if self.excluded_ids:
            lines.append(id_line("Excluded (in the judge's memory)", self.excluded_ids))
        lines += [f"Note (base): {note}" for note in base.notes]
        lines += [f"Note (aligned): {note}" for note in aligned.notes]
        return "\n".join(lines)

    @staticmethod
    def _pair(
        first: float, first_ci: tuple[float, float], second: float, second_ci: tuple[float, float]
    ) -> list[str]:
        return [interval_text(first, first_ci), interval_text(second, second_ci)]


class SupportsEvaluate(Protocol):
    """Anything that judges a batch of records, like :class:`judgealign.Judge`.

    It may also carry ``value_spec`` (with ``coerce``), used to coerce SME labels to the
    judge's value type, so that an SME's ``"yes"`` matches a boolean judge's ``True``.
    """

    def evaluate(self, records: Sequence[Any], /, *, max_workers: int) -> Sequence[Feedback]:
        """Return one :class:`Feedback` per record, in record order."""
        ...


def compare_judges(
    base: SupportsEvaluate,
    aligned: SupportsEvaluate,
    records: Sequence[Any],
    *,
    max_workers: int = 8,
    labels: Sequence[RawLabel] | None = None,
    ordinal: bool | None = None,
    seed: int = 0,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> JudgeComparison:
    """Run a base and an aligned judge on labelled records and compare their agreement.

    Each record's SME label is ``record["label"]`` (or ``record.label``) and its id is
    ``record["id"]`` (or ``record.id``, else its position). When a judge has a
    ``value_spec`` with ``coerce``, the SME labels are coerced with it first, so ``"yes"``
    matches ``True``; a ``Literal`` judge's choices become the default label order.

    Records a judge holds in its memory (an aligned judge's ``memorised``, or feedback
    marked ``memorised_record_id``) are no held-out evidence: they are left out of both
    reports, with a warning that says how many, and listed in ``excluded_ids``. Those
    known before judging are not sent to either judge.

    Args:
        base: the judge before alignment.
        aligned: the judge after alignment.
        records: held-out labelled records (never the records used for alignment).
        max_workers: passed to each judge's ``evaluate``.
        labels: the label order (see :func:`agreement`).
        ordinal: whether the labels are ordered (see :func:`agreement`).
        seed: the bootstrap seed, shared by both reports.
        n_bootstrap: bootstrap resamples per report.
        confidence: the intervals' confidence level.

    Returns:
        The :class:`JudgeComparison`.

    Raises:
        ConfigurationError: when records are empty or lack labels, every record is in a
            judge's memory, a label does not fit a judge's value type, or a judge returns
            the wrong number of feedbacks.
    """
    items = list(records)
    if not items:
        raise ConfigurationError("compare_judges got no records; pass labelled held-out records.")
    ids = [_record_id(item, i) for i, item in enumerate(items)]
    sme = [_record_label(item, key) for item, key in zip(items, ids, strict=True)]
    held = _held_in_memory((base, aligned), items)
    if len(held) == len(items):
        raise refuse_all_leaked(len(items), "compare_judges")  # before any paid call
    kept = [i for i in range(len(items)) if i not in held]
    feedback = {
        role: _evaluate(judge, role, [items[i] for i in kept], max_workers)
        for role, judge in (("base", base), ("aligned", aligned))
    }
    # Verdicts computed earlier, or by a judge that cannot say what it holds, are marked.
    flagged = {kept[n] for fbs in feedback.values() for n, fb in enumerate(fbs) if is_memorised(fb)}
    excluded = _exclude(sorted(held | flagged), ids)
    scored = [n for n, i in enumerate(kept) if i not in flagged]
    keys = [ids[kept[n]] for n in scored]
    expert = [sme[kept[n]] for n in scored]

    def score(role: str, judge: SupportsEvaluate) -> AgreementReport:
        spec = getattr(judge, "value_spec", None)
        return agreement(
            [feedback[role][n] for n in scored],
            _coerce_labels(spec, expert, keys, role),
            ids=keys,
            labels=_spec_labels(spec) if labels is None else labels,
            ordinal=ordinal,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )

    comparison = _comparison(score("base", base), score("aligned", aligned), keys, excluded)
    announce("comparison", comparison=comparison)  # instant unless someone observes
    return comparison


def _held_in_memory(judges: Sequence[object], items: list[Any]) -> set[int]:
    """Positions of the records a judge says it holds in memory (``memorised``)."""
    held: set[int] = set()
    for judge in judges:
        memorised = getattr(judge, "memorised", None)
        if callable(memorised):
            matches = cast("list[str | None]", memorised(items))
            held |= {i for i, match in enumerate(matches) if match is not None}
    return held


def _exclude(positions: list[int], ids: list[str]) -> tuple[str, ...]:
    """The ids at ``positions``, after warning about them; refuses when all are there."""
    if len(positions) == len(ids):
        raise refuse_all_leaked(len(ids), "compare_judges")
    excluded = tuple(ids[i] for i in positions)
    if excluded:
        warnings.warn(leak_warning(excluded, len(ids), "both reports"), UserWarning, stacklevel=3)
    return excluded


def _record_id(record: object, position: int) -> str:
    value = record_field(record, "id")
    return str(position) if value is MISSING or value is None else str(value)


def _record_label(record: object, key: str) -> object:
    value = record_field(record, "label")
    if value is MISSING or value is None:
        raise ConfigurationError(
            f"record {key!r} has no 'label' (key or attribute); compare_judges needs the SME "
            "label of every record."
        )
    return value


def _evaluate(
    judge: SupportsEvaluate, role: str, items: list[Any], max_workers: int
) -> list[Feedback]:
    feedback = list(judge.evaluate(items, max_workers=max_workers))
    if len(feedback) != len(items):
        raise ConfigurationError(
            f"The {role} judge's evaluate() returned {len(feedback)} feedbacks for "
            f"{len(items)} records; it must return one per record, in order."
        )
    return feedback


def _spec_labels(spec: object) -> list[RawLabel] | None:
    """A Literal judge's choices, in declared order; None for other judges."""
    choices = getattr(spec, "choices", None)
    if isinstance(choices, tuple) and choices:
        return [str(choice) for choice in cast("tuple[object, ...]", choices)]
    return None


def _coerce_labels(spec: object, sme: list[object], ids: list[str], role: str) -> list[Label]:
    """SME labels as the judge's type when it declares a ``value_spec.coerce``."""
    coerce = getattr(spec, "coerce", None)
    coerced: list[Label] = []
    for key, value in zip(ids, sme, strict=True):
        if callable(coerce):
            try:
                value = coerce(value)
            except ValueError as err:
                describe = getattr(spec, "describe", None)
                wanted = f" (expected {describe()})" if callable(describe) else ""
                raise ConfigurationError(
                    f"The SME label {value!r} of record {key!r} does not fit the {role} "
                    f"judge's value type{wanted}: {err}. Fix the label or the judge's "
                    "feedback_value_type."
                ) from err
        coerced.append(normalize_label(value, f"the SME label of record {key!r}"))
    return coerced


def _comparison(
    base: AgreementReport, aligned: AgreementReport, ids: list[str], excluded: tuple[str, ...]
) -> JudgeComparison:
    before, after = _outcomes(base, ids), _outcomes(aligned, ids)
    return JudgeComparison(
        base=base,
        aligned=aligned,
        accuracy_delta=aligned.accuracy - base.accuracy,
        kappa_delta=aligned.kappa - base.kappa,
        fixed_ids=tuple(k for k in ids if before[k] is False and after[k] is True),
        broken_ids=tuple(k for k in ids if before[k] is True and after[k] is False),
        excluded_ids=excluded,
    )


def _outcomes(report: AgreementReport, ids: list[str]) -> dict[str, bool | None]:
    """Per id: True when the judge agreed, False when it disagreed, None when it failed."""
    failed, wrong = set(report.failed_ids), set(report.disagreeing_ids)
    return {k: None if k in failed else k not in wrong for k in ids}
