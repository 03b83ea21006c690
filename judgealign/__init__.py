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
    from judgealign._agreement import (
        AgreementReport,
        JudgeComparison,
        LabelMetrics,
        agreement,
        compare_judges,
        split_records,
    )
    from judgealign._aligned import AlignedJudge
    from judgealign._alignment import AlignmentResult, MemAlignOptimizer
    from judgealign._cache import ResponseCache
    from judgealign._chat import ChatModel, Completion, Message
    from judgealign._distill import FailedBatch
    from judgealign._embeddings import (
        Embedder,
        HashingEmbedder,
        LiteLLMEmbedder,
        MiniLMEmbedder,
        default_embedder,
        resolve_embedder,
    )
    from judgealign._errors import (
        ConfigurationError,
        ContextLengthError,
        JudgeAlignError,
        MissingExtraError,
        ModelCallError,
        ModelError,
        ModelOutputError,
        NetworkForbiddenError,
    )
    from judgealign._feedback import AssessmentSource, AssessmentSourceType, Feedback
    from judgealign._judge import TEMPLATE_VARIABLES, EvaluationResult, Judge, make_judge
    from judgealign._litellm import LiteLLMModel
    from judgealign._loaders import load_dataframe, load_jsonl, load_records
    from judgealign._memory import Guideline
    from judgealign._models import resolve_model
    from judgealign._network import forbid_network, network_allowed, set_network_allowed
    from judgealign._records import DuplicateRecord, LabeledRecord, LoadResult, RecordProblem
    from judgealign._retry import RetryPolicy, get_default_retry_policy, set_default_retry_policy
    from judgealign._tracking import (
        NoOpTracker,
        Tracker,
        TrackingWarning,
        get_tracker,
        set_tracker,
        use_tracker,
    )
    from judgealign._usage import Usage

# Each public name and the private module that defines it; imported on first access.
_EXPORTS: dict[str, str] = {
    "AgreementReport": "judgealign._agreement",
    "JudgeComparison": "judgealign._agreement",
    "LabelMetrics": "judgealign._agreement",
    "agreement": "judgealign._agreement",
    "compare_judges": "judgealign._agreement",
    "split_records": "judgealign._agreement",
    "AlignedJudge": "judgealign._aligned",
    "AlignmentResult": "judgealign._alignment",
    "MemAlignOptimizer": "judgealign._alignment",
    "ResponseCache": "judgealign._cache",
    "ChatModel": "judgealign._chat",
    "Completion": "judgealign._chat",
    "Message": "judgealign._chat",
    "FailedBatch": "judgealign._distill",
    "Embedder": "judgealign._embeddings",
    "HashingEmbedder": "judgealign._embeddings",
    "LiteLLMEmbedder": "judgealign._embeddings",
    "MiniLMEmbedder": "judgealign._embeddings",
    "default_embedder": "judgealign._embeddings",
    "resolve_embedder": "judgealign._embeddings",
    "ConfigurationError": "judgealign._errors",
    "ContextLengthError": "judgealign._errors",
    "JudgeAlignError": "judgealign._errors",
    "MissingExtraError": "judgealign._errors",
    "ModelCallError": "judgealign._errors",
    "ModelError": "judgealign._errors",
    "ModelOutputError": "judgealign._errors",
    "NetworkForbiddenError": "judgealign._errors",
    "AssessmentSource": "judgealign._feedback",
    "AssessmentSourceType": "judgealign._feedback",
    "Feedback": "judgealign._feedback",
    "TEMPLATE_VARIABLES": "judgealign._judge",
    "EvaluationResult": "judgealign._judge",
    "Judge": "judgealign._judge",
    "make_judge": "judgealign._judge",
    "LiteLLMModel": "judgealign._litellm",
    "load_dataframe": "judgealign._loaders",
    "load_jsonl": "judgealign._loaders",
    "load_records": "judgealign._loaders",
    "Guideline": "judgealign._memory",
    "resolve_model": "judgealign._models",
    "forbid_network": "judgealign._network",
    "network_allowed": "judgealign._network",
    "set_network_allowed": "judgealign._network",
    "DuplicateRecord": "judgealign._records",
    "LabeledRecord": "judgealign._records",
    "LoadResult": "judgealign._records",
    "RecordProblem": "judgealign._records",
    "RetryPolicy": "judgealign._retry",
    "get_default_retry_policy": "judgealign._retry",
    "set_default_retry_policy": "judgealign._retry",
    "Usage": "judgealign._usage",
    "NoOpTracker": "judgealign._tracking",
    "Tracker": "judgealign._tracking",
    "TrackingWarning": "judgealign._tracking",
    "get_tracker": "judgealign._tracking",
    "set_tracker": "judgealign._tracking",
    "use_tracker": "judgealign._tracking",
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
    "JudgeComparison",
    "LabelMetrics",
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
    "RecordProblem",
    "ResponseCache",
    "RetryPolicy",
    "TEMPLATE_VARIABLES",
    "Tracker",
    "TrackingWarning",
    "Usage",
    "agreement",
    "compare_judges",
    "default_embedder",
    "forbid_network",
    "get_default_retry_policy",
    "get_tracker",
    "load_dataframe",
    "load_jsonl",
    "load_records",
    "make_judge",
    "network_allowed",
    "resolve_embedder",
    "resolve_model",
    "set_default_retry_policy",
    "set_network_allowed",
    "set_tracker",
    "split_records",
    "use_tracker",
]


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
