"""``MemAlignOptimizer``: MLflow's alignment optimizer, backed by the MemAlign engine.

The settings, the memory update and retrieval are the engine's
(:mod:`judgealign.memalign._engine`); this class adds ``align(judge, records)``, which
makes an :class:`AlignedJudge` of a plain judge. It sits above the aligned judge so that
the aligned judge (which uses the engine) never imports its own factory.
"""

from __future__ import annotations

from judgealign.judges._judge import Judge
from judgealign.memalign._aligned import AlignedJudge
from judgealign.memalign._engine import (
    AlignmentResult,
    EmbedView,
    LearnFrom,
    MemAlignEngine,
    RecordsLike,
    render_view,
)
from judgealign.models.rate_limit import RateLimit

__all__ = ["AlignmentResult", "EmbedView", "LearnFrom", "MemAlignOptimizer", "render_view"]


class MemAlignOptimizer(MemAlignEngine):
    __doc__ = MemAlignEngine.__doc__

    def align(
        self,
        judge: Judge | AlignedJudge,
        records: RecordsLike | None = None,
        *,
        traces: RecordsLike | None = None,
        rate_limit: RateLimit | None = None,
    ) -> AlignedJudge:
        """Align ``judge`` with expert-labelled ``records``.

        A plain :class:`Judge` gets a new :class:`AlignedJudge`. An aligned judge is
        updated in place (new and changed records only) and returned; this optimizer's
        settings then become its settings.

        Args:
            judge: the judge to align.
            records: :class:`LabeledRecord` objects, dicts read by ``load_records``, or
                MLflow traces with HUMAN feedback named like the judge.
            traces: MLflow's keyword for ``records``.
            rate_limit: the provider's limit for every chat call the alignment makes, in
                whatever thread (see :meth:`judgealign.Judge.align`).

        Returns:
            The aligned judge; its ``last_alignment`` says what changed.

        Raises:
            ConfigurationError: no usable record, or an embedder that does not match the
                aligned judge's memory.
        """
        aligned = judge if isinstance(judge, AlignedJudge) else AlignedJudge(judge, optimizer=self)
        return aligned.align(records, optimizer=self, traces=traces, rate_limit=rate_limit)
