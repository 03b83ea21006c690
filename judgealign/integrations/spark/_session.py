"""Finding pyspark and Java, and a local session that judges with this interpreter.

Each problem is reported before Spark starts a JVM or a task: pyspark missing (the
``[spark]`` extra), Java missing or older than Spark needs, or an argument that is not a
Spark DataFrame.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from judgealign.core._errors import ConfigurationError, MissingExtraError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["check_dataframe", "java_problem", "local_session", "require_pyspark"]

# Spark 4 runs on Java 17 or 21.
_MIN_JAVA = 17


def require_pyspark(feature: str) -> None:
    """Raise a clear error when pyspark (the ``[spark]`` extra) is not installed."""
    try:
        import pyspark  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError as exc:
        raise MissingExtraError(feature, "spark", f"pyspark ({exc})") from None


def check_dataframe(df: object, name: str = "df") -> DataFrame:
    """``df`` as a Spark DataFrame, or an error that says what to pass instead."""
    require_pyspark("Judging a Spark DataFrame")
    from pyspark.sql import DataFrame

    if not isinstance(df, DataFrame):
        hint = (
            " For a pandas DataFrame, call judge.evaluate(df) in-process, or convert it "
            "with spark.createDataFrame(df)."
            if hasattr(df, "columns")
            else ""
        )
        raise ConfigurationError(
            f"{name} must be a Spark DataFrame, got {type(df).__name__}.{hint}"
        )
    return df


def java_problem(java_home: str | None = None, path: str | None = None) -> str | None:
    """Why Spark cannot start a JVM here (no Java, or one older than 17), else ``None``."""
    home = java_home if java_home is not None else os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java", path=path)
    fix = (
        "install Java 17 (e.g. `apt-get install -y openjdk-17-jre-headless`, or a JDK from "
        "your platform) and put it on PATH or point JAVA_HOME at it"
    )
    if not java or not os.path.exists(java):
        where = f"JAVA_HOME={home!r} has no bin/java" if home else "no `java` on PATH"
        return f"Spark needs Java {_MIN_JAVA} or later, and {where}: {fix}."
    try:
        shown = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.SubprocessError) as exc:
        return (
            f"Spark needs Java {_MIN_JAVA} or later; running {java} -version failed ({exc}): {fix}."
        )
    major = _java_major(shown)
    if major is not None and major < _MIN_JAVA:
        return f"Spark needs Java {_MIN_JAVA} or later; {java} is Java {major}: {fix}."
    return None


def _java_major(version_text: str) -> int | None:
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if match is None:
        return None
    first = int(match[1])
    return int(match[2] or 0) if first == 1 else first  # "1.8.0" is Java 8


def local_session(master: str = "local[*]", **conf: Any) -> SparkSession:
    """A Spark session for this machine whose Python workers run this interpreter (so
    they import the same judgealign), with the UI off; Java is checked first.

    Sets ``PYSPARK_PYTHON`` to this interpreter when it is not set.

    Args:
        master: the Spark master, ``local[*]`` (every core) or ``local[2]``.
        **conf: more Spark settings, e.g. ``{"spark.driver.memory": "4g"}``.

    Raises:
        MissingExtraError: pyspark is not installed.
        ConfigurationError: Java is missing or older than 17.
    """
    require_pyspark("A local Spark session")
    problem = java_problem()
    if problem is not None:
        raise ConfigurationError(problem)
    from pyspark.sql import SparkSession

    # PySpark starts Python workers with PYSPARK_PYTHON (else `python3` from PATH, which
    # may be another interpreter without judgealign); a value the user set wins.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder: Any = SparkSession.builder.master(master).appName("judgealign")
    settings = {
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        **{key: str(value) for key, value in conf.items()},
    }
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
