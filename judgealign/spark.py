"""judgealign on Apache Spark (the ``[spark]`` extra): judge a DataFrame, measure agreement.

* :func:`evaluate_spark` adds a result struct column (verdict, rationale, error, model,
  tokens, cost, latency) judged on executors, under a shared :class:`judgealign.RateLimit`.
* :func:`to_spark_udf` gives the same UDF for ``df.withColumn(...)``.
* :func:`agreement_spark` computes the agreement report from distributed counts.
* :func:`align_spark` aligns a judge with a DataFrame of labelled records, distillation
  batches running on executors.
* :func:`local_session` starts a local session whose workers run this interpreter.

Importing this module does not import pyspark; each function does, on first call, and
raises :class:`judgealign.MissingExtraError` (``pip install 'judgealign[spark]'``) when it
is absent.
"""

from __future__ import annotations

from judgealign.integrations.spark import (
    JudgeUDF,
    agreement_spark,
    align_spark,
    evaluate_spark,
    local_session,
    result_schema,
    to_spark_udf,
)

__all__ = [
    "JudgeUDF",
    "agreement_spark",
    "align_spark",
    "evaluate_spark",
    "local_session",
    "result_schema",
    "to_spark_udf",
]
