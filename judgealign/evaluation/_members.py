"""A jury's members and the jury side by side: each one's agreement with the experts.

A jury's feedback keeps every member's verdict in ``metadata["jury"]["members"]``, so one
evaluation of the jury gives the agreement of the jury and of each member on the same
records, without calling any member again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.evaluation._metrics import agreement
from judgealign.evaluation._report import AgreementReport
from judgealign.evaluation._text import interval_text, table
from judgealign.judges._feedback import Feedback

__all__ = ["member_agreement", "members_table"]


def member_agreement(
    feedback: Sequence[Feedback], sme_labels: Sequence[Any], **options: Any
) -> dict[str, AgreementReport]:
    """The agreement of the jury and of each member with ``sme_labels``.

    Args:
        feedback: the jury's feedback, one per record (from ``jury.evaluate``).
        sme_labels: the experts' labels (or panel records), as for
            :func:`judgealign.agreement`.
        **options: passed to :func:`judgealign.agreement` (``ids``, ``labels``,
            ``n_bootstrap``, ...).

    Returns:
        ``{jury name: report, member name: report, ...}``, the jury first.

    Raises:
        ConfigurationError: the feedback is not a jury's.
    """
    if not feedback:
        raise ConfigurationError("feedback is empty; evaluate the jury on some records first.")
    entries: list[list[dict[str, Any]]] = []
    for index, item in enumerate(feedback):
        jury = item.metadata.get("jury")
        if not isinstance(jury, dict):
            raise ConfigurationError(
                f"feedback[{index}] has no jury metadata; pass the feedback of a jury made "
                "by make_jury (jury.evaluate(records))."
            )
        entries.append(cast("list[dict[str, Any]]", cast("dict[str, Any]", jury)["members"]))
    reports = {feedback[0].name: agreement(feedback, sme_labels, **options)}
    for position, first in enumerate(entries[0]):
        name = str(first["name"])
        verdicts = [
            Feedback(name=name, value=row[position]["value"], error=row[position]["error"])
            for row in entries
        ]
        reports[name] = agreement(verdicts, sme_labels, **options)
    return reports


def members_table(reports: dict[str, AgreementReport]) -> str:
    """The reports of :func:`member_agreement` as one text table."""
    rows = [["scorer", "scored", "failed", "accuracy", "kappa"]]
    for name, report in reports.items():
        rows.append(
            [
                name,
                str(report.n),
                str(report.n_failed),
                interval_text(report.accuracy, report.accuracy_ci),
                interval_text(report.kappa, report.kappa_ci),
            ]
        )
    return "\n".join(table(rows))
