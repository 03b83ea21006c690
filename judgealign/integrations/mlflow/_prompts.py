"""MLflow's prompt registry as a prompt store, and promoting a version only if it is better.

:class:`MlflowPromptStore` has the methods of the ``optimizers`` package's ``PromptStore``
protocol (``load``, ``register``, ``set_alias``), so
``optimizers.set_prompt_store(MlflowPromptStore())`` makes ``optimize_prompts`` read
``prompts:/qa/1``, ``prompts:/qa@production`` and ``prompts:/qa@latest`` from MLflow and
register optimized versions there. It satisfies the protocol structurally: judgealign
never imports ``optimizers``. Its extra ``set_version_tags`` lets ``optimize_prompts``
tag a version it registered with the scores that justified it.

Creating the store also makes candidates reach a ``predict_fn`` written the MLflow way:
``PromptVersion.template`` answers with the candidate in effect in the current context
(see :mod:`judgealign.prompts._overrides`), so ``mlflow.genai.load_prompt(...).format(...)``
formats the candidate being evaluated, per thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from judgealign.core._errors import ConfigurationError
from judgealign.integrations.mlflow import _client as _mlflow
from judgealign.prompts._evaluate import score_templates
from judgealign.prompts._overrides import prompt_override
from judgealign.prompts._template import PromptTemplate

__all__ = ["MlflowPromptStore", "Promotion", "RegistryPrompt", "promote_if_improved"]

_TAG = "judgealign."


RegistryPrompt = PromptTemplate
"""A prompt version from MLflow's registry: the same class as ``optimizers.PromptTemplate``."""


class MlflowPromptStore:
    """A prompt store on MLflow's prompt registry (see the module docstring).

    Uses the tracking URI in effect when each call is made.

    Args:
        tags: tags added to every version this store registers.
    """

    def __init__(self, *, tags: Mapping[str, str] | None = None) -> None:
        self._tags = dict(tags or {})
        _mlflow.install_template_override(prompt_override)

    def load(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> RegistryPrompt:
        """The prompt ``name`` at ``version``, at ``alias``, or its latest version.

        Raises:
            ConfigurationError: when the name, version or alias does not exist.
        """
        where = f"version {version}" if version is not None else f"alias {alias or 'latest'!r}"
        try:
            found = _mlflow.load_prompt(name, version=version, alias=alias)
        except Exception as exc:
            raise ConfigurationError(
                f"Cannot load prompt {name!r} at {where} from MLflow: {exc}"
            ) from exc
        if found is None:
            raise ConfigurationError(f"MLflow has no prompt {name!r} at {where}.")
        return _from_mlflow(found)

    def register(
        self,
        name: str,
        template: str,
        *,
        commit_message: str | None = None,
        tags: Mapping[str, str] | None = None,
        response_format: Any = None,
        model_config: Mapping[str, Any] | None = None,
    ) -> RegistryPrompt:
        """Register ``template`` as the next version of ``name`` (version 1 if new)."""
        merged = {**self._tags, **(tags or {})}
        created = _mlflow.register_prompt(
            name,
            template,
            commit_message=commit_message,
            tags=merged,
            response_format=response_format,
            model_config=model_config,
        )
        return _from_mlflow(created)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        _mlflow.set_prompt_alias(name, alias, version)

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        """Set tags on one version (``optimize_prompts`` records its scores this way)."""
        _mlflow.set_prompt_version_tags(name, version, tags)

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at, or ``None`` when the alias does not exist."""
        try:
            return self.load(name, alias=alias).version
        except ConfigurationError:
            return None


def _from_mlflow(version: Any) -> RegistryPrompt:
    return RegistryPrompt(
        name=str(version.name),
        stored_template=_mlflow.stored_text(version),
        version=int(version.version),
        commit_message=version.commit_message,
        tags=dict(version.tags or {}),
        aliases=tuple(version.aliases or ()),
        response_format=getattr(version, "response_format", None),
        model_config=getattr(version, "model_config", None),
    )


# -- promotion ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Promotion:
    """Whether an alias was moved to the candidate versions, and on what evidence.

    Attributes:
        alias: the alias.
        candidates: prompt name -> candidate version.
        baselines: prompt name -> the version compared against (``None``: no baseline).
        candidate_score: the candidates' score.
        baseline_score: the baselines' score (``None`` without a baseline).
        promoted: whether the alias now points at the candidates.
        evidence: ``"held_out"`` (scored here on the given records), ``"reported"``
            (the optimization result's initial and final scores) or ``"none"`` (nothing
            to compare: no baseline, or the candidate is the baseline).
        reason: why, in one sentence.
    """

    alias: str
    candidates: Mapping[str, int]
    baselines: Mapping[str, int | None]
    candidate_score: float | None
    baseline_score: float | None
    promoted: bool
    evidence: str
    reason: str


def promote_if_improved(
    candidate: Any,
    *,
    alias: str = "production",
    data: Sequence[Mapping[str, Any]] | None = None,
    predict_fn: Callable[..., Any] | None = None,
    scorers: Sequence[Callable[..., Any]] | None = None,
    baseline: Mapping[str, int] | int | None = None,
    min_improvement: float = 0.0,
    label_scores: Mapping[str, float] | None = None,
    store: MlflowPromptStore | None = None,
    max_workers: int = 4,
) -> Promotion:
    """Point ``alias`` at the candidate prompt versions only if they score higher.

    The candidates are compared with the baselines: by default the versions ``alias``
    points at now, else the versions just before the candidates. With ``data``,
    ``predict_fn`` and ``scorers``, both sides are scored on those held-out records (the
    candidate texts swapped in, exactly as during optimization). Without them, the
    candidate must be an ``optimize_prompts`` result and its initial and final scores
    are used: held-out scores only if ``optimize_prompts`` was given ``val_data``.
    The scores are recorded as tags on the candidate versions either way.

    Args:
        candidate: a prompt URI (``"prompts:/qa/3"``), a :class:`RegistryPrompt`, or an
            ``optimize_prompts`` result (all its optimized prompts move together).
        alias: the alias to move.
        data: held-out records ``{"inputs": {...}, "expectations": {...}}``.
        predict_fn: the application, as in ``optimize_prompts``.
        scorers: the judges (or callables) that score it.
        baseline: the version to beat (one prompt) or prompt name -> version.
        min_improvement: the candidates must beat the baselines by more than this.
        label_scores: scores of labels that scorers return, e.g. ``{"good": 1.0}``.
        store: the store to use; a new :class:`MlflowPromptStore` by default.
        max_workers: records scored at once.

    Raises:
        ConfigurationError: no candidate version, or no evidence to decide on.
    """
    store = store or MlflowPromptStore()
    candidates = _candidate_versions(candidate, store)
    baselines = _baseline_versions(candidates, baseline, alias, store)
    new: float | None = None
    old: float | None = None
    evidence = "none"
    if all(baselines.get(name) == version for name, version in candidates.items()):
        promoted, reason = False, "the candidate versions are the baseline versions"
    else:
        if data is not None and predict_fn is not None and scorers:
            evidence = "held_out"
            scoring = _Scoring(data, predict_fn, scorers, label_scores, max_workers)
            new, old = _held_out(candidates, baselines, store, scoring)
        elif any(v is not None for v in baselines.values()):
            evidence = "reported"
            new, old = _reported(candidate)
        promoted, reason = _decide(new, old, min_improvement)
    tags = {f"{_TAG}promotion.{alias}": "promoted" if promoted else "rejected"}
    for key, value in ((f"{_TAG}heldout_score", new), (f"{_TAG}baseline_score", old)):
        if value is not None and evidence == "held_out":
            tags[key] = f"{value:.6g}"
    for name, version in candidates.items():
        store.set_version_tags(name, version, tags)
        if promoted:
            store.set_alias(name, alias, version)
    return Promotion(alias, candidates, baselines, new, old, promoted, evidence, reason)


def _candidate_versions(candidate: Any, store: MlflowPromptStore) -> dict[str, int]:
    prompts: list[Any]
    if isinstance(candidate, str):
        name, _, version = candidate.removeprefix("prompts:/").partition("/")
        if not version.isdigit():
            raise ConfigurationError(
                f"candidate={candidate!r} must name a version, e.g. 'prompts:/{name}/2'."
            )
        prompts = [store.load(name, version=int(version))]
    elif hasattr(candidate, "optimized_prompts"):
        prompts = list(candidate.optimized_prompts)
    else:
        prompts = [candidate]
    versions = {str(p.name): p.version for p in prompts}
    if not versions or any(not isinstance(v, int) for v in versions.values()):
        raise ConfigurationError(f"No registered prompt version to promote in {candidate!r}.")
    return {k: int(v) for k, v in versions.items()}


def _baseline_versions(
    candidates: Mapping[str, int],
    baseline: Mapping[str, int] | int | None,
    alias: str,
    store: MlflowPromptStore,
) -> dict[str, int | None]:
    if isinstance(baseline, int):
        if len(candidates) != 1:
            raise ConfigurationError("baseline=<int> needs one candidate prompt; pass a dict.")
        return {name: baseline for name in candidates}
    chosen: dict[str, int | None] = {}
    for name, version in candidates.items():
        given = (baseline or {}).get(name)
        current = given if given is not None else store.alias_version(name, alias)
        if current is None and version > 1:
            current = version - 1
        chosen[name] = current
    return chosen


@dataclass(frozen=True)
class _Scoring:
    data: Sequence[Mapping[str, Any]]
    predict_fn: Callable[..., Any]
    scorers: Sequence[Callable[..., Any]]
    label_scores: Mapping[str, float] | None
    max_workers: int


def _held_out(
    candidates: Mapping[str, int],
    baselines: Mapping[str, int | None],
    store: MlflowPromptStore,
    scoring: _Scoring,
) -> tuple[float, float | None]:
    def texts(versions: Mapping[str, int | None]) -> dict[str, str]:
        return {
            name: store.load(name, version=version).stored_template
            for name, version in versions.items()
            if version is not None
        }

    def score(templates: Mapping[str, str]) -> float:
        outcome = score_templates(
            scoring.predict_fn,
            scoring.data,
            scoring.scorers,
            templates,
            label_scores=scoring.label_scores,
            max_workers=scoring.max_workers,
        )
        return outcome.score

    old = texts(baselines)
    return score(texts(candidates)), score(old) if old else None


def _reported(candidate: Any) -> tuple[float, float]:
    final = getattr(candidate, "final_eval_score", None)
    initial = getattr(candidate, "initial_eval_score", None)
    if final is None or initial is None:
        raise ConfigurationError(
            "promote_if_improved needs evidence: pass held-out data=, predict_fn= and "
            "scorers=, or an optimize_prompts result that has initial and final scores."
        )
    return float(final), float(initial)


def _decide(new: float | None, old: float | None, min_improvement: float) -> tuple[bool, str]:
    if old is None or new is None:
        return True, "there is no baseline version to beat"
    if new > old + min_improvement:
        return True, f"the candidates scored {new:.4g}, above the baseline's {old:.4g}"
    return False, (
        f"the candidates scored {new:.4g}, not above the baseline's {old:.4g}"
        + (f" by more than {min_improvement:g}" if min_improvement else "")
    )
