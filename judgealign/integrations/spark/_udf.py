"""The judge as a Spark pandas UDF, and the driver-side checks that come before it.

The judge travels as its saved definition (``to_dict``; an aligned judge's memory and
float32 vectors included), broadcast once so that each executor fetches it once; the
Python worker rebuilds it on first use and keeps it for later tasks. Secrets never
travel: executors read the provider's key from their own environment.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.spark._session import require_pyspark
from judgealign.integrations.spark._worker import (
    RESULT_FIELDS,
    TaskSettings,
    judge_batches,
    payload_of,
)
from judgealign.judges._judge import Judge
from judgealign.judges._rendering import TEMPLATE_VARIABLES
from judgealign.memalign._aligned import AlignedJudge
from judgealign.models._litellm import LiteLLMModel
from judgealign.models.rate_limit import RateLimit

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession

__all__ = ["JudgeUDF", "result_schema", "to_spark_udf"]

_VALUE_TYPES = {"bool": "boolean", "int": "bigint", "float": "double", "str": "string"}


def result_schema(judge: Judge | AlignedJudge) -> str:
    """The DDL of the result struct for ``judge`` (the value typed like its verdicts)."""
    value = _VALUE_TYPES.get(judge.value_spec.kind, "string")
    return (
        f"struct<value:{value},rationale:string,error:string,model:string,"
        "prompt_tokens:bigint,completion_tokens:bigint,cost_usd:double,latency_ms:double,"
        "cached:boolean,memorised_record_id:string>"
    )


@dataclass(frozen=True)
class JudgeUDF:
    """A judge as a Spark UDF: call it with the columns of the judge's template variables
    (``judge_udf(inputs="question", outputs="answer")``) to get the result struct column.

    Attributes:
        judge_name: the judge's name.
        variables: the template variables the judge reads (the call's keywords).
        settings: what every task receives (concurrency, rate-limit share, cache).
    """

    judge_name: str
    variables: tuple[str, ...]
    settings: TaskSettings
    _udf: Any

    def __call__(self, **columns: str | Column) -> Column:
        """The result struct column for the given columns, one per template variable.

        Raises:
            ConfigurationError: a variable the judge reads has no column, or a keyword is
                not one of its variables.
        """
        from pyspark.sql import functions as F

        unknown = sorted(set(columns) - set(self.variables))
        missing = [v for v in self.variables if columns.get(v) is None]
        if unknown or missing:
            raise ConfigurationError(
                f"Judge {self.judge_name!r} reads {', '.join(self.variables)}; call its UDF "
                f"with one column each, e.g. udf({', '.join(v + '=...' for v in self.variables)})"
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + "."
            )
        # Every cell travels as JSON text {"v": value}: strings, numbers, structs, maps
        # and arrays alike, decoded to str / dict / list in the worker.
        cells = [F.to_json(F.struct(_column(columns[v]).alias("v"))) for v in self.variables]
        return self._udf(*cells)


def to_spark_udf(
    judge: Judge | AlignedJudge,
    *,
    concurrency_per_task: int = 8,
    rate_limit: RateLimit | None = None,
    spark: SparkSession | None = None,
    running_tasks: int | None = None,
    cache_dir: str | None = None,
) -> JudgeUDF:
    """The judge as a UDF returning the result struct (see ``evaluate_spark``).

    Args:
        judge: a judge whose model is a model URI (it is rebuilt on executors from its
            saved definition).
        concurrency_per_task: records judged at once by one task.
        rate_limit: the provider's global limit; each running task gets ``1/running_tasks``
            of it.
        spark: the session (the active one by default).
        running_tasks: how many tasks run at once; the session's default parallelism (its
            total cores) by default.
        cache_dir: where executors keep this run's verdict cache (their temp directory by
            default).

    Raises:
        MissingExtraError: pyspark is not installed.
        ConfigurationError: the judge cannot be shipped, or an argument is invalid.
    """
    require_pyspark("judge.to_spark_udf")
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    check_shippable(judge)
    concurrency = _positive_int("concurrency_per_task", concurrency_per_task)
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"rate_limit={rate_limit!r} must be a RateLimit, e.g. "
            "RateLimit(requests_per_minute=600), or None."
        )
    session = spark or SparkSession.getActiveSession()
    if session is None:
        raise ConfigurationError(
            "No active Spark session: create one first (SparkSession.builder...getOrCreate(), "
            "or judgealign.spark.local_session()) or pass spark=."
        )
    tasks = running_tasks or _default_parallelism(session)
    share = rate_limit.share(_positive_int("running_tasks", tasks)) if rate_limit else None
    payload, key = payload_of(judge)
    settings = TaskSettings(
        judge_key=key,
        run_id=uuid.uuid4().hex,
        variables=tuple(v for v in TEMPLATE_VARIABLES if v in judge.variables),
        concurrency=concurrency,
        requests_per_minute=share.requests_per_minute if share else None,
        tokens_per_minute=share.tokens_per_minute if share else None,
        cache_dir=cache_dir,
    )
    shipped = _ship(session, payload)

    import pandas as pd

    def judge_udf(batches: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
        columns = ([list(series) for series in batch] for batch in batches)
        for result in judge_batches(shipped(), settings, columns):
            yield pd.DataFrame(result, columns=list(RESULT_FIELDS))

    # Spark picks the UDF's kind (iterator of column tuples -> iterator of frames) from
    # these hints; given as objects because this module does not import pandas at load.
    judge_udf.__annotations__ = {
        "batches": Iterator[tuple[pd.Series, ...]],
        "return": Iterator[pd.DataFrame],
    }
    # Its overloads do not cover a closure whose hints are set at run time.
    pandas_udf: Any = getattr(F, "pandas_udf")  # noqa: B009
    udf: Any = pandas_udf(judge_udf, result_schema(judge))
    # Nondeterministic: Spark must call it once per row (never twice for two fields).
    return JudgeUDF(judge.name, settings.variables, settings, udf.asNondeterministic())


def check_shippable(judge: object) -> None:
    """Refuse, on the driver, a judge that executors could not rebuild or call."""
    if not isinstance(judge, (Judge, AlignedJudge)):
        raise ConfigurationError(
            f"judge must be a judge made by make_judge (or an aligned judge), got "
            f"{type(judge).__name__}."
        )
    if not isinstance(judge.model, LiteLLMModel):
        raise ConfigurationError(
            f"Judge {judge.name!r} uses a {type(judge.model).__name__} object as its model; "
            "on Spark the judge is rebuilt on executors from its saved definition, which "
            "holds a model URI only. Make the judge with model='provider:/name' (and "
            "base_url=...) instead."
        )
    base = judge.base_judge if isinstance(judge, AlignedJudge) else judge
    secrets = [k for k in base.inference_params if k not in _shipped_params(base)]
    if secrets:
        raise ConfigurationError(
            f"Judge {judge.name!r} carries {', '.join(sorted(secrets))} in inference_params; "
            "secrets are never shipped to executors. Remove it and give executors the "
            "provider's key in their environment instead (e.g. "
            "spark.executorEnv.OPENAI_API_KEY, or the cluster's environment variables / "
            "Databricks secrets)."
        )


def _shipped_params(judge: Judge) -> Mapping[str, Any]:
    return cast("Mapping[str, Any]", judge.to_dict()["inference_params"])


def _ship(session: SparkSession, payload: bytes) -> Any:
    """A function returning the payload on executors: a broadcast where the session has
    a SparkContext (each executor fetches it once), else the bytes in the closure (Spark
    Connect, e.g. Databricks serverless, has no broadcast)."""
    try:
        broadcast = session.sparkContext.broadcast(payload)
    except Exception:  # Spark Connect raises on sparkContext
        return lambda: payload
    return lambda: broadcast.value


def _default_parallelism(session: SparkSession) -> int:
    try:
        return int(session.sparkContext.defaultParallelism)
    except Exception:  # Spark Connect: no SparkContext; count the cores the cluster says
        value = session.conf.get("spark.default.parallelism", None)
        return int(value) if value else 1


def _column(value: str | Column) -> Column:
    from pyspark.sql import functions as F

    return F.col(value) if isinstance(value, str) else value


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}={value!r} must be an integer >= 1.")
    return value
