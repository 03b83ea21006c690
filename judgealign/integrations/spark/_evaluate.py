"""``evaluate_spark``: judge every row of a Spark DataFrame into a result struct column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.spark._session import check_dataframe
from judgealign.integrations.spark._udf import check_shippable, to_spark_udf
from judgealign.judges._judge import Judge
from judgealign.memalign._aligned import AlignedJudge
from judgealign.models.rate_limit import RateLimit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["evaluate_spark"]

# Spark types a judged field cannot be (the worker receives every other type as JSON).
_UNJUDGEABLE = ("binary",)
# Types of an expectations column: the judge needs a mapping.
_MAPPINGS = ("struct", "map")


def evaluate_spark(
    df: DataFrame,
    judge: Judge | AlignedJudge,
    *,
    inputs_col: str | None = "inputs",
    outputs_col: str | None = "outputs",
    expectations_col: str | None = "expectations",
    trace_col: str | None = "trace",
    conversation_col: str | None = "conversation",
    output_col: str | None = None,
    concurrency_per_task: int = 8,
    rate_limit: RateLimit | None = None,
    cache_dir: str | None = None,
) -> DataFrame:
    """Judge every row of ``df``; returns ``df`` with a result struct column added.

    The struct holds ``value`` (typed like the judge's verdicts), ``rationale``,
    ``error`` (a row that cannot be judged gets its reason here; the task never fails for
    it), ``model``, ``prompt_tokens``, ``completion_tokens``, ``cost_usd``,
    ``latency_ms`` and ``cached``. Each executor keeps this call's verdicts in a local
    cache, so a retried task (or a second action on the returned DataFrame) reuses the
    verdicts it already paid for: those rows say ``cached=True`` and carry the usage of
    the request that paid for them, so summing ``cost_usd`` counts every verdict once.

    Args:
        df: the rows to judge.
        judge: a judge made with a model URI, or an aligned judge.
        inputs_col: the column for ``{{ inputs }}`` (any type but binary; structs, maps
            and arrays reach the judge as dicts and lists).
        outputs_col: the column for ``{{ outputs }}``.
        expectations_col: the column for ``{{ expectations }}`` (a struct or a map).
        trace_col: the column for ``{{ trace }}`` (a struct with request and response).
        conversation_col: the column for ``{{ conversation }}`` (an array of structs with
            role and content).
        output_col: the result column's name; the judge's name by default.
        concurrency_per_task: records judged at once by each task.
        rate_limit: the provider's global limit, split evenly across the running tasks.
        cache_dir: where executors keep the verdict cache (their temp directory by default).

    Only the columns of the variables the judge's instructions use are read.

    Raises:
        MissingExtraError: pyspark is not installed.
        ConfigurationError: ``df`` is not a Spark DataFrame, a column the judge needs is
            missing or of the wrong type, the judge cannot be shipped to executors (a
            model object instead of a URI, a key in its parameters), or the provider's key
            is set neither on the driver nor in ``spark.executorEnv``; all before any task
            starts.
    """
    frame = check_dataframe(df)
    check_shippable(judge)
    given = {
        "inputs": inputs_col,
        "outputs": outputs_col,
        "expectations": expectations_col,
        "trace": trace_col,
        "conversation": conversation_col,
    }
    columns = {v: _checked_column(frame, judge, v, given[v]) for v in judge.variables}
    session = frame.sparkSession
    check_provider_key(judge, session)
    udf = to_spark_udf(
        judge,
        concurrency_per_task=concurrency_per_task,
        rate_limit=rate_limit,
        spark=session,
        running_tasks=_running_tasks(frame),
        cache_dir=cache_dir,
    )
    return frame.withColumn(output_col or judge.name, udf(**columns))


def _checked_column(frame: DataFrame, judge: Any, variable: str, name: str | None) -> str:
    option = f"{variable}_col"
    if name is None:
        raise ConfigurationError(
            f"Judge {judge.name!r} reads {{{{ {variable} }}}}; pass {option}='<column>'."
        )
    try:
        field = frame.select(name).schema.fields[0]
    except Exception:
        raise ConfigurationError(
            f"Column {name!r} ({option}, for the judge's {{{{ {variable} }}}}) is not in the "
            f"DataFrame; its columns are {', '.join(frame.columns)}. Pass {option}= with "
            "one of them."
        ) from None
    kind = field.dataType.typeName()
    if kind in _UNJUDGEABLE:
        raise ConfigurationError(
            f"Column {name!r} ({option}) is {kind}; a judge reads text and data, not bytes. "
            f"Decode it first, e.g. F.col({name!r}).cast('string')."
        )
    if variable == "expectations" and kind not in _MAPPINGS:
        raise ConfigurationError(
            f"Column {name!r} (expectations_col) is {kind}; expectations must be a struct or "
            f"a map, e.g. F.struct(F.col({name!r}).alias('expected_answer'))."
        )
    return name


def check_provider_key(judge: Judge | AlignedJudge, session: Any) -> None:
    """Refuse a model whose provider key is on neither the driver nor in
    ``spark.executorEnv`` (executors would fail every row)."""
    import os

    from judgealign.models._litellm import missing_provider_keys

    missing = missing_provider_keys(judge.model_uri)
    unset = [
        key
        for key in missing
        if not os.environ.get(key) and not session.conf.get(f"spark.executorEnv.{key}", None)
    ]
    if unset:
        raise ConfigurationError(
            f"Judge {judge.name!r} uses {judge.model_uri}, which needs {', '.join(unset)}, set "
            "neither here nor for the executors. Set it in the executors' environment "
            f"(spark.executorEnv.{unset[0]}=..., the cluster's environment variables, or a "
            "Databricks secret reference) before starting the session."
        )


def _running_tasks(frame: DataFrame) -> int | None:
    """How many tasks judge at once: the partitions, at most the session's cores."""
    try:
        partitions = frame.rdd.getNumPartitions()
        cores = frame.sparkSession.sparkContext.defaultParallelism
    except Exception:  # Spark Connect has no RDDs; use the session's parallelism
        return None
    return max(1, min(partitions, cores))
