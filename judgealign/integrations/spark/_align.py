"""``align_spark``: align a judge with labelled records held in a Spark DataFrame.

The reflection calls, one per distillation batch, are what an align pays for and waits
on; they run on executors, one Spark task per batch. Everything else is the in-process
align, on the driver: the records are read (in id order, so the result does not depend on
partitioning), batched, embedded and stored, and the distilled guidelines are merged into
one memory. With the same records, settings and model replies the aligned judge is the one
``judge.align`` gives.

A ``rate_limit`` covers the driver's calls whole and gives each of the distillation
tasks that run at once its share; a Python worker keeps its share for the run, so the
tasks it runs one after another are paced together.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.spark._session import check_dataframe
from judgealign.judges._judge import Judge
from judgealign.memalign._aligned import AlignedJudge

# The seam that lets distillation batches run elsewhere (memalign's, for integrations).
from judgealign.memalign._distill import DistillItem, distill_batches_with, run_distill_batch
from judgealign.memalign._optimizer import MemAlignOptimizer
from judgealign.models._chat import ChatModel
from judgealign.models._litellm import LiteLLMModel
from judgealign.models.rate_limit import RateLimit, use_rate_limit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["align_spark"]

_models: dict[str, LiteLLMModel] = {}
_models_lock = threading.Lock()
# A worker's share of each recent run's rate limit, by run id (a few runs are kept).
_limits: OrderedDict[str, RateLimit] = OrderedDict()
_KEPT_LIMITS = 8

# (run id, requests per minute, tokens per minute, max concurrency) of one task's share.
_Share = tuple[str, float | None, float | None, int | None]


def align_spark(
    df: DataFrame,
    judge: Judge | AlignedJudge,
    optimizer: MemAlignOptimizer | None = None,
    *,
    id_col: str = "id",
    columns: Mapping[str, str] | None = None,
    rate_limit: RateLimit | None = None,
) -> AlignedJudge:
    """Align ``judge`` with the labelled records of ``df``; distillation runs on executors.

    Args:
        df: one labelled record per row: ``id``, ``label``, the judge's fields
            (``inputs``, ``outputs``, ``expectations``...) and optionally ``rationale``.
        judge: the judge to align (an aligned judge is updated, as ``judge.align`` does).
        optimizer: the alignment settings; ``MemAlignOptimizer()`` by default. Its
            reflection model must be a model URI (the executors rebuild it).
        id_col: the id column; records are aligned in id order.
        columns: other column names, as ``load_records`` takes them
            (``{"label": "human_verdict"}``).
        rate_limit: the provider's global limit: the driver's calls (the judge's, in
            ``learn_from="disagreements"`` mode) run under it, and each distillation task
            running at once gets ``1/n`` of it (``n``: the batches, at most the session's
            default parallelism).

    Returns:
        The aligned judge, built on the driver.

    Raises:
        MissingExtraError: pyspark is not installed.
        ConfigurationError: ``df`` is not a Spark DataFrame or lacks ``id_col``; the
            session has no SparkContext (Spark Connect); the reflection model is not a
            model URI or carries an ``api_key``.
    """
    frame = check_dataframe(df)
    if id_col not in frame.columns:
        raise ConfigurationError(
            f"Column {id_col!r} (id_col) is not in the DataFrame; its columns are "
            f"{', '.join(frame.columns)}. Records need stable ids to be aligned."
        )
    session = frame.sparkSession
    _require_context(session)
    rows = [row.asDict(recursive=True) for row in frame.orderBy(id_col).collect()]
    records = _with_columns([_record(row, id_col) for row in rows], columns)
    aligner = optimizer or MemAlignOptimizer()
    runner = partial(_run_on_executors, session, rate_limit)
    with use_rate_limit(rate_limit), distill_batches_with(runner):
        return aligner.align(judge, records)


def _record(row: dict[str, Any], id_col: str) -> dict[str, Any]:
    record = {key: value for key, value in row.items() if value is not None}
    record["id"] = str(row[id_col])
    return record


def _with_columns(
    records: list[dict[str, Any]], columns: Mapping[str, str] | None
) -> list[dict[str, Any]]:
    if not columns:
        return records
    renamed = {column: field for field, column in columns.items()}
    return [{renamed.get(k, k): v for k, v in record.items()} for record in records]


def _require_context(session: SparkSession) -> None:
    try:
        session.sparkContext  # noqa: B018  # Spark Connect raises here
    except Exception:
        raise ConfigurationError(
            "align_spark runs distillation batches as Spark tasks, which needs a classic "
            "session with a SparkContext; on Spark Connect (e.g. Databricks serverless), "
            "collect the records and call judge.align in-process."
        ) from None


def _run_on_executors(
    session: SparkSession,
    rate_limit: RateLimit | None,
    model: ChatModel,
    system: str,
    batches: Sequence[Sequence[DistillItem]],
) -> list[Any]:
    """One Spark task per batch; results in batch order."""
    spec = model.portable_spec() if isinstance(model, LiteLLMModel) else None
    if spec is None:
        raise ConfigurationError(
            f"align_spark rebuilds the reflection model on executors, so it must be a model "
            f"URI without an api_key (got {model!r}); give MemAlignOptimizer("
            "reflection_model='provider:/name') and the provider's key in the executors' "
            "environment (spark.executorEnv.<KEY>)."
        )
    if not batches:
        return []
    payload = [
        (i, [(item.record_id, dict(item.payload)) for item in batch])
        for i, batch in enumerate(batches)
    ]
    context = session.sparkContext
    share = _task_share(rate_limit, min(len(payload), int(context.defaultParallelism)))
    tasks = context.parallelize(payload, len(payload))
    done = tasks.map(partial(_distill_on_executor, spec, system, share)).collect()
    return [result for _, result in sorted(done, key=lambda pair: pair[0])]


def _task_share(rate_limit: RateLimit | None, running: int) -> _Share | None:
    if rate_limit is None:
        return None
    share = rate_limit.share(max(1, running))
    rpm, tpm = share.requests_per_minute, share.tokens_per_minute
    return (uuid.uuid4().hex, rpm, tpm, share.max_concurrency)


def _worker_limit(share: _Share | None) -> RateLimit | None:
    """This worker's limit for the run: made by its first task, paced across the next."""
    if share is None:
        return None
    run_id, rpm, tpm, cap = share
    with _models_lock:
        limit = _limits.get(run_id)
        if limit is None:
            limit = _limits[run_id] = RateLimit(rpm, tpm, max_concurrency=cap)
            while len(_limits) > _KEPT_LIMITS:
                _limits.popitem(last=False)
        return limit


def _distill_on_executor(
    spec: dict[str, Any],
    system: str,
    share: _Share | None,
    numbered: tuple[int, list[tuple[str, dict[str, Any]]]],
) -> tuple[int, Any]:
    """Runs in an executor's Python worker: the model is built once per worker."""
    index, items = numbered
    key = repr(sorted(spec.items()))
    with _models_lock:
        model = _models.get(key)
        if model is None:
            model = _models[key] = LiteLLMModel(**spec)
    batch = [DistillItem(record_id, payload) for record_id, payload in items]
    with use_rate_limit(_worker_limit(share)):
        return index, run_distill_batch(model, system, batch)
