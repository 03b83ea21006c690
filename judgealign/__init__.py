"""judgealign: build LLM judges, align them with experts, optimize prompts with them.

Importing the package is cheap: each public name loads its module on first use, so
``import judgealign`` costs milliseconds and litellm, mlflow and faiss load only when a
model, a tracker or an index is first needed.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# litellm downloads its model cost map when it is imported unless this is set, and prints
# "fetch attempt failed" warnings offline. It is imported lazily, by judgealign or by
# MLflow (mlflow.genai.evaluate imports it too), so set it here, before either can: a
# user's explicit value wins.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

if TYPE_CHECKING:
    from judgealign.core._errors import (
        ConfigurationError,
        ContextLengthError,
        JudgeAlignError,
        MissingExtraError,
        ModelCallError,
        ModelError,
        ModelOutputError,
        NetworkForbiddenError,
    )
    from judgealign.core._usage import Usage
    from judgealign.embeddings._hashing import HashingEmbedder
    from judgealign.embeddings._minilm import MiniLMEmbedder
    from judgealign.embeddings._protocol import Embedder
    from judgealign.embeddings._remote import LiteLLMEmbedder
    from judgealign.embeddings._resolve import default_embedder, resolve_embedder
    from judgealign.evaluation._api import (
        AgreementReport,
        JudgeComparison,
        LabelMetrics,
        agreement,
        compare_judges,
        split_records,
    )
    from judgealign.evaluation._members import member_agreement
    from judgealign.evaluation._panel import JudgeAmongRaters
    from judgealign.evaluation._raters import (
        RaterAgreement,
        fleiss_kappa,
        krippendorff_alpha,
        pairwise_kappa,
        rater_agreement,
    )
    from judgealign.evaluation._suggest import LabelSuggestions, suggest_labels
    from judgealign.judges._batch import EvaluationResult
    from judgealign.judges._feedback import AssessmentSource, AssessmentSourceType, Feedback
    from judgealign.judges._judge import Judge, make_judge
    from judgealign.judges._jury import Jury, make_jury
    from judgealign.judges._loaders import load_csv, load_dataframe, load_jsonl, load_records
    from judgealign.judges._protocol import SupportsJudging
    from judgealign.judges._records import (
        DuplicateRecord,
        LabeledRecord,
        LoadResult,
        Rating,
        RecordProblem,
    )
    from judgealign.judges._rendering import TEMPLATE_VARIABLES
    from judgealign.memalign._aligned import AlignedJudge
    from judgealign.memalign._distill import FailedBatch
    from judgealign.memalign._memory import Guideline
    from judgealign.memalign._optimizer import AlignmentResult, MemAlignOptimizer
    from judgealign.models._cache import ResponseCache
    from judgealign.models._chat import ChatModel, Completion, Message
    from judgealign.models._litellm import LiteLLMModel
    from judgealign.models._network import forbid_network, network_allowed, set_network_allowed
    from judgealign.models._resolve import resolve_model
    from judgealign.models._retry import (
        RetryPolicy,
        get_default_retry_policy,
        set_default_retry_policy,
    )
    from judgealign.models.rate_limit import RateLimit
    from judgealign.tracking._tracker import (
        NoOpTracker,
        Tracker,
        TrackingWarning,
        get_tracker,
        set_tracker,
        use_tracker,
    )

# Each public name and the private module that defines it; imported on first access.
_EXPORTS: dict[str, str] = {
    "SupportsJudging": "judgealign.judges._protocol",
    "AgreementReport": "judgealign.evaluation._api",
    "JudgeComparison": "judgealign.evaluation._api",
    "LabelMetrics": "judgealign.evaluation._api",
    "agreement": "judgealign.evaluation._api",
    "compare_judges": "judgealign.evaluation._api",
    "split_records": "judgealign.evaluation._api",
    "AlignedJudge": "judgealign.memalign._aligned",
    "AlignmentResult": "judgealign.memalign._optimizer",
    "MemAlignOptimizer": "judgealign.memalign._optimizer",
    "ResponseCache": "judgealign.models._cache",
    "ChatModel": "judgealign.models._chat",
    "Completion": "judgealign.models._chat",
    "Message": "judgealign.models._chat",
    "FailedBatch": "judgealign.memalign._distill",
    "Embedder": "judgealign.embeddings._protocol",
    "HashingEmbedder": "judgealign.embeddings._hashing",
    "LiteLLMEmbedder": "judgealign.embeddings._remote",
    "MiniLMEmbedder": "judgealign.embeddings._minilm",
    "default_embedder": "judgealign.embeddings._resolve",
    "resolve_embedder": "judgealign.embeddings._resolve",
    "ConfigurationError": "judgealign.core._errors",
    "ContextLengthError": "judgealign.core._errors",
    "JudgeAlignError": "judgealign.core._errors",
    "MissingExtraError": "judgealign.core._errors",
    "ModelCallError": "judgealign.core._errors",
    "ModelError": "judgealign.core._errors",
    "ModelOutputError": "judgealign.core._errors",
    "NetworkForbiddenError": "judgealign.core._errors",
    "AssessmentSource": "judgealign.judges._feedback",
    "AssessmentSourceType": "judgealign.judges._feedback",
    "Feedback": "judgealign.judges._feedback",
    "TEMPLATE_VARIABLES": "judgealign.judges._rendering",
    "EvaluationResult": "judgealign.judges._batch",
    "Judge": "judgealign.judges._judge",
    "make_judge": "judgealign.judges._judge",
    "LiteLLMModel": "judgealign.models._litellm",
    "load_dataframe": "judgealign.judges._loaders",
    "load_jsonl": "judgealign.judges._loaders",
    "load_records": "judgealign.judges._loaders",
    "Guideline": "judgealign.memalign._memory",
    "resolve_model": "judgealign.models._resolve",
    "forbid_network": "judgealign.models._network",
    "network_allowed": "judgealign.models._network",
    "set_network_allowed": "judgealign.models._network",
    "DuplicateRecord": "judgealign.judges._records",
    "LabeledRecord": "judgealign.judges._records",
    "LoadResult": "judgealign.judges._records",
    "RecordProblem": "judgealign.judges._records",
    "RateLimit": "judgealign.models.rate_limit",
    "RetryPolicy": "judgealign.models._retry",
    "get_default_retry_policy": "judgealign.models._retry",
    "set_default_retry_policy": "judgealign.models._retry",
    "Usage": "judgealign.core._usage",
    "NoOpTracker": "judgealign.tracking._tracker",
    "Tracker": "judgealign.tracking._tracker",
    "TrackingWarning": "judgealign.tracking._tracker",
    "get_tracker": "judgealign.tracking._tracker",
    "set_tracker": "judgealign.tracking._tracker",
    "use_tracker": "judgealign.tracking._tracker",
    "load_csv": "judgealign.judges._loaders",
    "Rating": "judgealign.judges._records",
    "Jury": "judgealign.judges._jury",
    "make_jury": "judgealign.judges._jury",
    "member_agreement": "judgealign.evaluation._members",
    "JudgeAmongRaters": "judgealign.evaluation._panel",
    "RaterAgreement": "judgealign.evaluation._raters",
    "fleiss_kappa": "judgealign.evaluation._raters",
    "krippendorff_alpha": "judgealign.evaluation._raters",
    "pairwise_kappa": "judgealign.evaluation._raters",
    "rater_agreement": "judgealign.evaluation._raters",
    "LabelSuggestions": "judgealign.evaluation._suggest",
    "suggest_labels": "judgealign.evaluation._suggest",
}

__version__ = "0.1.0"

__all__ = [
    "AgreementReport",
    "AlignedJudge",
    "AlignmentResult",
    "AssessmentSource",
    "AssessmentSourceType",
    "ChatModel",
    "Completion",
    "ConfigurationError",
    "ContextLengthError",
    "DuplicateRecord",
    "Embedder",
    "EvaluationResult",
    "FailedBatch",
    "Feedback",
    "Guideline",
    "HashingEmbedder",
    "Judge",
    "JudgeAlignError",
    "JudgeAmongRaters",
    "JudgeComparison",
    "Jury",
    "LabelMetrics",
    "LabelSuggestions",
    "LabeledRecord",
    "LiteLLMEmbedder",
    "LiteLLMModel",
    "LoadResult",
    "MemAlignOptimizer",
    "Message",
    "MiniLMEmbedder",
    "MissingExtraError",
    "ModelCallError",
    "ModelError",
    "ModelOutputError",
    "NetworkForbiddenError",
    "NoOpTracker",
    "RateLimit",
    "RaterAgreement",
    "Rating",
    "RecordProblem",
    "ResponseCache",
    "RetryPolicy",
    "SupportsJudging",
    "TEMPLATE_VARIABLES",
    "Tracker",
    "TrackingWarning",
    "Usage",
    "agreement",
    "compare_judges",
    "default_embedder",
    "fleiss_kappa",
    "forbid_network",
    "get_default_retry_policy",
    "get_tracker",
    "krippendorff_alpha",
    "load_csv",
    "load_dataframe",
    "load_jsonl",
    "load_records",
    "make_judge",
    "make_jury",
    "member_agreement",
    "network_allowed",
    "pairwise_kappa",
    "rater_agreement",
    "resolve_embedder",
    "resolve_model",
    "set_default_retry_policy",
    "set_network_allowed",
    "set_tracker",
    "split_records",
    "suggest_labels",
    "use_tracker",
]


# -- wiring: the composition root plugs the pieces above judges into them ------------------
# (ARCHITECTURE.md: judges sit below memalign and the MLflow integration, so they cannot
# import them; these lazy functions are the only places the root reaches up for them.)


def _default_aligner() -> Any:
    from judgealign.memalign._optimizer import MemAlignOptimizer

    return MemAlignOptimizer()


def _register_judge(judge: Any, *, name: str | None, experiment_id: str | None) -> Any:
    from judgealign.integrations.mlflow._judges import register_judge

    return register_judge(judge, name=name, experiment_id=experiment_id)


def _dspy_metric(judge: Any, **options: Any) -> Any:
    from judgealign.integrations.dspy import as_dspy_metric

    return as_dspy_metric(judge, **options)


def _spark_udf(judge: Any, **options: Any) -> Any:
    from judgealign.integrations.spark import to_spark_udf

    return to_spark_udf(judge, **options)


def _wire() -> None:
    from judgealign.integrations.mlflow._hook import accept_judges_in_mlflow
    from judgealign.judges._extensions import install, install_dspy_metric, install_spark_udf

    install(aligner=_default_aligner, registrar=_register_judge)
    install_dspy_metric(_dspy_metric)
    install_spark_udf(_spark_udf)
    # mlflow.genai.evaluate(scorers=[judge]) accepts judges as they are; mlflow itself is
    # not imported here (an import hook waits for it).
    accept_judges_in_mlflow()


_wire()


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562), then cache the name."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
