"""judgealign: build LLM judges, align them with experts, optimize prompts with them.

Importing this package does not import litellm, mlflow or faiss; they load on first use.
"""

from __future__ import annotations

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
from judgealign._usage import Usage

__version__ = "0.1.0"

__all__ = [
    "TEMPLATE_VARIABLES",
    "AgreementReport",
    "AlignedJudge",
    "AlignmentResult",
    "AssessmentSource",
    "AssessmentSourceType",
    "ChatModel",
    "Completion",
    "ConfigurationError",
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
    "RecordProblem",
    "ResponseCache",
    "RetryPolicy",
    "Usage",
    "agreement",
    "compare_judges",
    "default_embedder",
    "forbid_network",
    "get_default_retry_policy",
    "load_dataframe",
    "load_jsonl",
    "load_records",
    "make_judge",
    "network_allowed",
    "resolve_embedder",
    "resolve_model",
    "set_default_retry_policy",
    "set_network_allowed",
    "split_records",
]
