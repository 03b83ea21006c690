"""Judge files for the ``judgealign`` command: specs, saved judges and aligned judges.

A *judge spec* is a small YAML or JSON file (YAML needs PyYAML, which comes with mlflow)::

    name: support_quality
    instructions: Is {{ outputs }} an acceptable reply to {{ inputs }}?
    feedback_value_type: bool          # bool | int | float | str | [label, label, ...]
    model: openai:/gpt-4o-mini         # optional; --model wins, then JUDGEALIGN_MODEL
    description: ...                   # optional
    value_range: [1, 5]                # optional, int and float judges
    label_scores: {good: 1, poor: 0}   # optional, label judges
    inference_params: {temperature: 0} # optional
    base_url: http://localhost:8000/v1 # optional

A file written by ``Judge.save`` or ``AlignedJudge.save`` is accepted wherever a spec is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from judgealign.cli import _models as _cli_models

if TYPE_CHECKING:
    from judgealign.judges._judge import Judge
    from judgealign.memalign._aligned import AlignedJudge
    from judgealign.models._chat import ChatModel

__all__ = ["SPEC_KEYS", "load_judge", "model_from_spec", "read_spec", "value_type"]

SPEC_KEYS = (
    "name",
    "instructions",
    "feedback_value_type",
    "model",
    "description",
    "value_range",
    "label_scores",
    "inference_params",
    "base_url",
)
_TYPES: dict[str, type] = {
    "bool": bool,
    "boolean": bool,
    "int": int,
    "integer": int,
    "float": float,
    "number": float,
    "str": str,
    "string": str,
}
_LITERAL = re.compile(r"^\s*Literal\[(?P<body>.*)\]\s*$")


def read_spec(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.json``, ``.yaml`` or ``.yml`` file.

    Raises:
        ConfigurationError: missing or unreadable file, bad syntax, not a mapping, or a
            YAML file without PyYAML installed.
    """
    from judgealign.core._errors import ConfigurationError

    target = Path(path).expanduser()
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigurationError(f"Cannot read the judge file {str(target)!r}: {reason}.") from None
    if target.suffix.lower() in (".yaml", ".yml"):
        data = _yaml(text, target)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"The judge file {str(target)!r} is not valid JSON ({exc.msg}, line "
                f"{exc.lineno}). Judge specs are .json, .yaml or .yml files."
            ) from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"The judge file {str(target)!r} must hold a mapping of fields.")
    return cast("dict[str, Any]", data)


def _yaml(text: str, target: Path) -> Any:
    from judgealign.core._errors import ConfigurationError

    try:
        import yaml  # pyright: ignore[reportMissingModuleSource]
    except ImportError:
        raise ConfigurationError(
            f"Reading the YAML judge spec {str(target)!r} needs PyYAML: pip install pyyaml "
            "(or write the spec as JSON)."
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(
            f"The judge file {str(target)!r} is not valid YAML: {_yaml_problem(exc)}."
        ) from None


def _yaml_problem(exc: Any) -> str:
    """One line from a PyYAML error (its own text spans several lines with a caret)."""
    problem = str(getattr(exc, "problem", None) or "").strip()
    if not problem:
        return " ".join(str(exc).split())
    where = _yaml_mark(getattr(exc, "problem_mark", None))
    context = str(getattr(exc, "context", None) or "").strip()
    if context:
        since = _yaml_mark(getattr(exc, "context_mark", None))
        context = f" ({context}{', which starts' + since if since else ''})"
    return f"{problem}{where}{context}"


def _yaml_mark(mark: Any) -> str:
    if mark is None:
        return ""
    return f" at line {int(mark.line) + 1}, column {int(mark.column) + 1}"


def value_type(value: object) -> Any:
    """A spec's ``feedback_value_type`` as a Python type (``Literal[...]`` for labels)."""
    from judgealign.core._errors import ConfigurationError
    from judgealign.judges._values import ValueSpec

    if value is None:
        return bool
    labels: list[object] | None = None
    if isinstance(value, list):
        labels = list(cast("list[object]", value))
    elif isinstance(value, str) and (match := _LITERAL.match(value)):
        labels = [part.strip().strip("'\"") for part in match["body"].split(",") if part.strip()]
    elif isinstance(value, str) and value.strip().lower() in _TYPES:
        return _TYPES[value.strip().lower()]
    if labels and all(isinstance(label, str) and label.strip() for label in labels):
        return ValueSpec(kind="label", choices=tuple(str(label) for label in labels)).python_type
    raise ConfigurationError(
        f"feedback_value_type {value!r} is not supported: use bool, int, float, str or a "
        "list of labels such as [excellent, fair, poor]."
    )


def model_from_spec(data: Mapping[str, Any], override: str | None) -> str:
    """The model URI to use: ``--model``, else the file's, else the default."""
    if override:
        return override
    saved = _judge_fields(data).get("model")
    return saved if isinstance(saved, str) and saved else _cli_models.default_model_uri()


def _judge_fields(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """The judge's own fields: the spec itself, or an aligned file's base judge."""
    if data.get("format") == "judgealign/aligned-judge":
        content: Any = data.get("content")
        if not isinstance(content, dict):
            return {}
        base: Any = cast("dict[str, Any]", content).get("base_judge")
        return cast("dict[str, Any]", base) if isinstance(base, dict) else {}
    return data


def load_judge(
    path: str | Path,
    *,
    model: str | None = None,
    base_url: str | None = None,
    wrap: Any = None,
    params: Mapping[str, Any] | None = None,
) -> Judge | AlignedJudge:
    """The judge a file describes, its model built by ``_cli_models.make_model``.

    Args:
        path: a judge spec, a saved judge or a saved aligned judge.
        model: a model URI that overrides the file's.
        base_url: an endpoint root that overrides the file's.
        wrap: ``wrap(chat_model) -> chat_model``, e.g. to count calls.
        params: inference parameters laid over the file's (e.g. a sampling temperature).

    Raises:
        ConfigurationError: an unreadable file, an unknown field, a bad value type.
    """
    from judgealign.judges._judge import Judge
    from judgealign.memalign._aligned import AlignedJudge

    data = read_spec(path)
    uri = model_from_spec(data, model)
    saved = _judge_fields(data)
    spec_url = saved.get("base_url") if isinstance(saved.get("base_url"), str) else None
    url = base_url or spec_url
    saved_params = cast(
        "dict[str, Any] | None",
        saved.get("inference_params") if isinstance(saved.get("inference_params"), dict) else None,
    )
    merged = {**(saved_params or {}), **params} if params else saved_params
    chat: ChatModel = _cli_models.make_model(uri, params=merged, base_url=url)
    if wrap is not None:
        chat = wrap(chat)
    kind = data.get("format")
    if kind == "judgealign/aligned-judge":
        return AlignedJudge.from_dict(data, model=chat, source=f"file {str(path)!r}")
    if kind == "judgealign/judge":
        return Judge.from_dict(data, model=chat)
    return _from_spec(data, chat, url, path)


def _from_spec(
    data: Mapping[str, Any], chat: ChatModel, base_url: str | None, path: str | Path
) -> Judge:
    from judgealign.core._errors import ConfigurationError
    from judgealign.judges._judge import make_judge

    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ConfigurationError(
            f"The judge spec {str(path)!r} has unknown field(s) {unknown}; fields are "
            f"{', '.join(SPEC_KEYS)}."
        )
    for key in ("name", "instructions"):
        if not isinstance(data.get(key), str):
            raise ConfigurationError(f"The judge spec {str(path)!r} needs a text field {key!r}.")
    raw_range: Any = data.get("value_range")
    value_range: Any = raw_range
    if isinstance(raw_range, list):
        value_range = tuple(cast("list[Any]", raw_range))
    return make_judge(
        name=data["name"],
        instructions=data["instructions"],
        model=chat,
        feedback_value_type=value_type(data.get("feedback_value_type")),
        description=data.get("description"),
        inference_params=data.get("inference_params"),
        value_range=value_range,
        label_scores=data.get("label_scores"),
        base_url=base_url,
    )
