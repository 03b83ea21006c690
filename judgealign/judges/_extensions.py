"""What a judge hands to the pieces above it: the default aligner and the scorer registry.

``judge.align(records)`` aligns with MemAlign unless told otherwise, and
``judge.register()`` saves to MLflow's scorer registry: both are MLflow's API, and both
live in pieces that sit above judges (``judgealign.memalign``, the MLflow integration).
judges cannot import them without a cycle, so the composition root
(``judgealign/__init__.py``) plugs them in here when the package is imported. They are
lazy functions and this module imports nothing at load time, so nothing heavy loads
until they are called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = [
    "default_aligner",
    "dspy_metric",
    "install",
    "install_dspy_metric",
    "install_spark_udf",
    "register_judge",
    "spark_udf",
]

AlignerFactory = Callable[[], Any]
Registrar = Callable[..., Any]

_aligner: AlignerFactory | None = None
_registrar: Registrar | None = None
_dspy_metric: Callable[..., Any] | None = None
_spark_udf: Callable[..., Any] | None = None


def install(*, aligner: AlignerFactory, registrar: Registrar) -> None:
    """Plug in the default aligner's factory and the function that registers a judge."""
    global _aligner, _registrar
    _aligner, _registrar = aligner, registrar


def default_aligner() -> Any:
    """A new default alignment optimizer (``MemAlignOptimizer()`` once installed)."""
    if _aligner is None:  # only if judgealign/__init__.py was bypassed
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(
            "No default alignment optimizer is installed; pass optimizer=MemAlignOptimizer()."
        )
    return _aligner()


def register_judge(judge: Any, *, name: str | None, experiment_id: str | None) -> Any:
    """Save ``judge`` to the scorer registry (MLflow's, once installed)."""
    if _registrar is None:  # only if judgealign/__init__.py was bypassed
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(
            "No scorer registry is installed; use judgealign.mlflow_integration.log_judge."
        )
    return _registrar(judge, name=name, experiment_id=experiment_id)


def install_dspy_metric(factory: Callable[..., Any]) -> None:
    """Plug in ``as_dspy_metric(judge, **options)`` (the DSPy integration sits above judges)."""
    global _dspy_metric
    _dspy_metric = factory


def dspy_metric(judge: Any, **options: Any) -> Any:
    """``judge`` as a DSPy metric (the DSPy integration's, once installed)."""
    if _dspy_metric is None:  # only if judgealign/__init__.py was bypassed
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(
            "No DSPy integration is installed; use judgealign.dspy.as_dspy_metric(judge)."
        )
    return _dspy_metric(judge, **options)


def install_spark_udf(factory: Callable[..., Any]) -> None:
    """Plug in ``to_spark_udf(judge, **options)`` (the Spark integration sits above judges)."""
    global _spark_udf
    _spark_udf = factory


def spark_udf(judge: Any, **options: Any) -> Any:
    """``judge`` as a Spark UDF (the Spark integration's, once installed)."""
    if _spark_udf is None:  # only if judgealign/__init__.py was bypassed
        from judgealign.core._errors import ConfigurationError

        raise ConfigurationError(
            "No Spark integration is installed; use judgealign.spark.to_spark_udf(judge)."
        )
    return _spark_udf(judge, **options)
