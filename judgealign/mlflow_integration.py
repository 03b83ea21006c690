"""judgealign with MLflow: runs, traces as expert feedback, scorers, judges and prompts.

Importing this module does not import mlflow; each function imports it when called. The
tracking store is the one the user set (``MLFLOW_TRACKING_URI``, ``mlflow.set_tracking_uri``)
or, with none, MLflow's local default: ``mlflow.db`` in the working directory.

* **Tracking.** :class:`MlflowTracker` records ``evaluate``, ``align`` and
  ``optimize_prompts`` runs (parameters without secrets, agreement metrics, scores per
  iteration, guidelines, the agreement report, a confusion matrix and an optimization
  curve) from one background writer. Install it with :func:`use_mlflow_tracking` or
  ``judgealign.set_tracker`` / ``use_tracker``.
* **Traces as feedback.** :func:`records_from_traces` turns HUMAN feedback named like the
  judge into records for ``align`` (which also accepts traces directly);
  :func:`log_verdicts` and :func:`score_traces` write verdicts back as LLM_JUDGE feedback.
* **Judges inside MLflow.** :func:`as_scorer` makes a judge an MLflow scorer for
  ``mlflow.genai.evaluate``; :func:`evaluate` does that for you.
* **Persistence.** :func:`log_judge` / :func:`load_judge` save a judge or aligned judge
  as a versioned, self-contained run artifact; :func:`register_scorer` lists it on
  MLflow's "Judges" page (``judge.register()`` does both).
* **Prompt registry.** :class:`MlflowPromptStore` backs ``optimizers.optimize_prompts``
  with MLflow prompts (candidates reach ``mlflow.genai.load_prompt`` per thread);
  :func:`promote_if_improved` moves an alias only when held-out scores improve.

Example::

    import optimizers
    from judgealign.mlflow_integration import MlflowPromptStore, use_mlflow_tracking

    optimizers.set_prompt_store(MlflowPromptStore())
    with use_mlflow_tracking("qa-judges"):
        aligned = judge.align(records_from_traces(traces, judge=judge))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from judgealign.integrations.mlflow._client import configured_tracking_uri
from judgealign.integrations.mlflow._feedback import (
    as_scorer,
    evaluate,
    log_verdicts,
    records_from_traces,
    score_traces,
)
from judgealign.integrations.mlflow._judges import (
    LoggedJudge,
    get_scorer,
    list_judge_versions,
    load_judge,
    log_judge,
    register_scorer,
)
from judgealign.integrations.mlflow._prompts import (
    MlflowPromptStore,
    Promotion,
    RegistryPrompt,
    promote_if_improved,
)
from judgealign.integrations.mlflow._tracker import MlflowTracker, RunHandle
from judgealign.tracking._tracker import use_tracker

__all__ = [
    "LoggedJudge",
    "MlflowPromptStore",
    "MlflowTracker",
    "Promotion",
    "RegistryPrompt",
    "RunHandle",
    "as_scorer",
    "configured_tracking_uri",
    "evaluate",
    "get_scorer",
    "list_judge_versions",
    "load_judge",
    "log_judge",
    "log_verdicts",
    "promote_if_improved",
    "records_from_traces",
    "register_scorer",
    "score_traces",
    "use_mlflow_tracking",
]


@contextmanager
def use_mlflow_tracking(
    experiment: str | None = None, *, tracking_uri: str | None = None
) -> Iterator[MlflowTracker]:
    """Track to MLflow inside the block (this context only), then flush.

    Args:
        experiment: the experiment name; the current experiment if omitted.
        tracking_uri: the store; the one in effect if omitted.

    Yields:
        The :class:`MlflowTracker`.
    """
    tracker = MlflowTracker(experiment, tracking_uri=tracking_uri)
    with use_tracker(tracker):
        try:
            yield tracker
        finally:
            tracker.close()
