"""Judging and measuring agreement at cluster scale on Apache Spark.

The only package of judgealign that imports pyspark (always inside functions, so that
importing it without the ``[spark]`` extra gives a clear error only when a function is
called). The public names are re-exported by :mod:`judgealign.spark`.
"""

from __future__ import annotations

from judgealign.integrations.spark._agreement import agreement_spark
from judgealign.integrations.spark._align import align_spark
from judgealign.integrations.spark._evaluate import evaluate_spark
from judgealign.integrations.spark._session import local_session
from judgealign.integrations.spark._udf import JudgeUDF, result_schema, to_spark_udf

__all__ = [
    "JudgeUDF",
    "agreement_spark",
    "align_spark",
    "evaluate_spark",
    "local_session",
    "result_schema",
    "to_spark_udf",
]
