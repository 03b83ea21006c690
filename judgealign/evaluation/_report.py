"""The result of :func:`judgealign.agreement`: how one judge agrees with SME labels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from judgealign.evaluation._text import (
    id_line,
    indent,
    interval_text,
    json_ready,
    kappa_name,
    number_text,
    table,
)
from judgealign.judges._labels import Label, Weighting

if TYPE_CHECKING:
    from judgealign.evaluation._panel import JudgeAmongRaters

__all__ = ["AgreementReport", "LabelMetrics"]


@dataclass(frozen=True)
class LabelMetrics:
    """Precision, recall and F1 of one label, taking the SME labels as the truth.

    Attributes:
        precision: of the pairs the judge gave this label, the share the SME agreed with.
        recall: of the pairs the SME gave this label, the share the judge found.
        f1: the harmonic mean of precision and recall.
        support: how many scored pairs the SME gave this label.
    """

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


@dataclass(frozen=True)
class AgreementReport:
    """How one judge's verdicts agree with SME labels.

    Undefined numbers are ``nan`` (``None`` in :meth:`to_dict`) and ``notes`` says why.
    Kappa is undefined when the SME and the judge both used one and the same label
    throughout: there is no variation to measure agreement beyond chance.

    Attributes:
        n: pairs scored (records where the judge gave a verdict).
        n_failed: records where the judge gave no verdict; excluded from every metric.
        accuracy: share of scored pairs where the judge matches the SME.
        kappa: Cohen's kappa, quadratic-weighted when ``kappa_weighting == "quadratic"``.
        kappa_weighting: ``"quadratic"`` for ordered labels, else ``"none"``.
        labels: the labels, in the order used by ``confusion`` and the kappa weights.
        confusion: counts; rows are the SME's labels, columns the judge's.
        per_label: precision, recall, F1 and support of each label.
        accuracy_ci: bootstrap percentile interval of the accuracy.
        kappa_ci: bootstrap percentile interval of kappa; resamples in which kappa is
            undefined are skipped (counted in ``notes``).
        confidence: the intervals' confidence level.
        n_bootstrap: how many resamples of the scored pairs were drawn.
        disagreeing_ids: ids where the judge and the SME differ, in input order.
        failed_ids: ids where the judge gave no verdict, in input order.
        notes: explanations of undefined or skipped values.
        excluded_ids: ids left out because the judge holds the record in its memory (an
            aligned judge's own expert record is no held-out evidence), in input order.
        panel: on panel records, the raters' agreement with each other and the judge's
            with them (the judge as one more rater); else ``None``.
    """

    n: int
    n_failed: int
    accuracy: float
    kappa: float
    kappa_weighting: Weighting
    labels: tuple[Label, ...]
    confusion: tuple[tuple[int, ...], ...]
    per_label: Mapping[Label, LabelMetrics]
    accuracy_ci: tuple[float, float]
    kappa_ci: tuple[float, float]
    confidence: float
    n_bootstrap: int
    disagreeing_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    notes: tuple[str, ...] = ()
    excluded_ids: tuple[str, ...] = ()
    panel: JudgeAmongRaters | None = None

    @property
    def n_excluded(self) -> int:
        """How many records were left out because the judge holds them in memory."""
        return len(self.excluded_ids)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; ``nan`` becomes ``None`` and per-label keys become text."""
        data: dict[str, Any] = {
            "n": self.n,
            "n_failed": self.n_failed,
            "accuracy": self.accuracy,
            "accuracy_ci": list(self.accuracy_ci),
            "kappa": self.kappa,
            "kappa_ci": list(self.kappa_ci),
            "kappa_weighting": self.kappa_weighting,
            "confidence": self.confidence,
            "n_bootstrap": self.n_bootstrap,
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
            "per_label": {str(k): m.to_dict() for k, m in self.per_label.items()},
            "disagreeing_ids": list(self.disagreeing_ids),
            "failed_ids": list(self.failed_ids),
            "n_excluded": self.n_excluded,
            "excluded_ids": list(self.excluded_ids),
            "notes": list(self.notes),
        }
        if self.panel is not None:
            data["panel"] = self.panel.to_dict()
        return json_ready(data)

    def format(self) -> str:
        """A plain-text summary: metrics with intervals, confusion matrix, per-label table."""
        excluded = f", {self.n_excluded} excluded (in memory)" if self.excluded_ids else ""
        lines = [
            f"Agreement with SME labels: {self.n} scored, {self.n_failed} failed{excluded}",
            f"  accuracy  {interval_text(self.accuracy, self.accuracy_ci)}",
            f"  kappa     {interval_text(self.kappa, self.kappa_ci)}"
            f"  ({kappa_name(self.kappa_weighting)})",
            f"  intervals: {self.confidence:.0%} bootstrap percentile, "
            f"{self.n_bootstrap} resamples",
            "",
            "Confusion matrix (rows = SME, columns = judge)",
            *indent(table(self._confusion_rows())),
            "",
            *indent(table(self._per_label_rows())),
            "",
            id_line("Disagreeing ids", self.disagreeing_ids),
            id_line("Failed ids", self.failed_ids),
        ]
        if self.excluded_ids:
            lines.append(id_line("Excluded ids (in the judge's memory)", self.excluded_ids))
        lines += [f"Note: {note}" for note in self.notes]
        if self.panel is not None:
            lines += ["", self.panel.format()]
        return "\n".join(lines)

    def _confusion_rows(self) -> list[list[str]]:
        header = ["SME \\ judge", *(str(label) for label in self.labels)]
        body = [
            [str(label), *(str(count) for count in row)]
            for label, row in zip(self.labels, self.confusion, strict=True)
        ]
        return [header, *body]

    def _per_label_rows(self) -> list[list[str]]:
        rows = [["label", "precision", "recall", "f1", "support"]]
        for label, m in self.per_label.items():
            scores = (number_text(m.precision), number_text(m.recall), number_text(m.f1))
            rows.append([str(label), *scores, str(m.support)])
        return rows
