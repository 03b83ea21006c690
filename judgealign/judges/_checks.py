"""Checks of what ``make_judge`` is given: each bad argument is a ``ConfigurationError``
that names the argument and the fix, raised before any model call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from judgealign.core._errors import (
    ConfigurationError,
)
from judgealign.core._templates import placeholders
from judgealign.judges._rendering import TEMPLATE_VARIABLES
from judgealign.judges._values import ValueSpec


def check_mlflow_only_options(include_timing_in_conversation: bool, model_api: str) -> None:
    if include_timing_in_conversation:
        raise ConfigurationError(
            "include_timing_in_conversation=True is not supported: judgealign renders "
            "{{ conversation }} without turn timings. Remove the argument."
        )
    if str(getattr(model_api, "value", model_api)).lower() != "default":
        raise ConfigurationError(
            f"model_api={model_api!r} is not supported: judgealign's judges use chat "
            "completions through litellm. Remove the argument (or pass 'default')."
        )


def with_headers(
    params: Mapping[str, Any] | None, extra_headers: Mapping[str, str] | None
) -> Mapping[str, Any] | None:
    if not extra_headers:
        return params
    bad = [k for k, v in extra_headers.items() if not isinstance(k, str) or not isinstance(v, str)]  # pyright: ignore[reportUnnecessaryIsInstance]
    if bad:
        raise ConfigurationError(f"extra_headers must map strings to strings; fix {bad!r}.")
    if params and "extra_headers" in params:
        raise ConfigurationError(
            "extra_headers was given both as an argument and in inference_params; give it once."
        )
    return {**(params or {}), "extra_headers": dict(extra_headers)}


def check_label_scores(
    label_scores: Mapping[str, float] | None, spec: ValueSpec
) -> dict[str, float] | None:
    if label_scores is None:
        return None
    if spec.kind != "label":
        raise ConfigurationError(
            "label_scores applies only to Literal judges; remove it or declare "
            "feedback_value_type=Literal[...]."
        )
    if not isinstance(label_scores, Mapping):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"label_scores must be a dict of label -> score in [0, 1], got {label_scores!r}."
        )
    for label, score in label_scores.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)):  # pyright: ignore[reportUnnecessaryIsInstance]
            raise ConfigurationError(
                f"label_scores[{label!r}]={score!r} must be a number in [0, 1], "
                f"e.g. label_scores={{{label!r}: 1.0, ...}}."
            )
    missing = [c for c in spec.choices if c not in label_scores]
    extra = [k for k in label_scores if k not in spec.choices]
    bad = [k for k, v in label_scores.items() if not 0.0 <= float(v) <= 1.0]
    if missing or extra or bad:
        raise ConfigurationError(
            f"label_scores must give every label ({', '.join(spec.choices)}) a score in "
            f"[0, 1]; missing: {missing}, unknown: {extra}, out of range: {bad}."
        )
    return {k: float(v) for k, v in label_scores.items()}


def check_params(params: object) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            f"inference_params must be a dict of model parameters such as "
            f"{{'temperature': 0}}, got {type(params).__name__}."
        )
    return dict(cast(Mapping[str, Any], params))


def check_base_url(base_url: object) -> str | None:
    if base_url is not None and not isinstance(base_url, str):
        raise ConfigurationError(
            f"base_url={base_url!r} must be a string, the endpoint root or its chat-completions "
            "URL, for example 'http://localhost:8000/v1' or "
            "'http://localhost:8000/v1/chat/completions', or None for the provider's default."
        )
    return base_url


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(
            f"name={name!r} must be a non-empty string, for example name='correctness'."
        )
    return name.strip()


def check_instructions(instructions: object) -> str:
    if not isinstance(instructions, str) or not instructions.strip():
        raise ConfigurationError("instructions must be a non-empty string.")
    names = placeholders(instructions)
    unknown = [n for n in names if n not in TEMPLATE_VARIABLES]
    allowed = ", ".join("{{ " + v + " }}" for v in TEMPLATE_VARIABLES)
    if unknown:
        raise ConfigurationError(
            f"instructions use unknown template variable(s) {', '.join(unknown)}. "
            f"Allowed: {allowed}."
        )
    if not names:
        raise ConfigurationError(
            "instructions must refer to the record through at least one template variable, "
            f"for example 'Is {{{{ outputs }}}} a correct answer to {{{{ inputs }}}}?'. "
            f"Allowed: {allowed}."
        )
    return instructions


def check_conversation(conversation: Any) -> None:
    ok = isinstance(conversation, Sequence) and not isinstance(conversation, str)
    if ok:
        items = cast(Sequence[Any], conversation)
        ok = all(isinstance(m, Mapping) and "role" in m and "content" in m for m in items)
    if not ok:
        raise ConfigurationError(
            "conversation must be a list of messages like "
            "[{'role': 'user', 'content': '...'}, {'role': 'assistant', 'content': '...'}]."
        )
