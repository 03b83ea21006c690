"""The versioned prompt registry: register, alias and load prompts in the current store.

Templates, stores and candidate swapping live in :mod:`optimizers.prompts._store`; their
names are re-exported here. The default store keeps prompts in the process and reaches
MLflow's registry when MLflow is configured; :func:`set_prompt_store` installs another
one (such as an MLflow-backed store).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

from judgealign import ConfigurationError
from judgealign.optimize_support import prompt_override
from optimizers.prompts._store import (
    InMemoryPromptStore,
    PromptStore,
    PromptTemplate,
    PromptUsage,
    candidate_prompts,
)

__all__ = [
    "InMemoryPromptStore",
    "PromptStore",
    "PromptTemplate",
    "PromptUsage",
    "candidate_prompts",
    "get_prompt_store",
    "load_prompt",
    "parse_prompt_uri",
    "register_prompt",
    "set_prompt_alias",
    "set_prompt_store",
]

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_URI = re.compile(
    r"^(?:prompts:/)?(?P<name>[A-Za-z0-9_.\-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_.\-]+))?$"
)


_store_lock = threading.Lock()
_store: PromptStore | None = None  # None: the automatic store, made on first use


def get_prompt_store() -> PromptStore:
    """The store that :func:`register_prompt` and :func:`load_prompt` use.

    Unless :func:`set_prompt_store` installed one, it is the automatic store: prompts
    registered in this process stay here, and when MLflow is configured (a tracking URI
    set, or ``mlflow.db`` in the working directory) other prompts are read from and
    registered in MLflow's registry (see :class:`optimizers.prompts._auto.AutoPromptStore`).
    """
    global _store
    with _store_lock:
        if _store is None:
            from optimizers.prompts._auto import AutoPromptStore

            _store = AutoPromptStore(InMemoryPromptStore())
        return _store


def set_prompt_store(store: PromptStore) -> PromptStore:
    """Use ``store`` for every later registration and load; returns the previous store.

    Raises:
        ConfigurationError: when ``store`` lacks ``load``, ``register`` or ``set_alias``.
    """
    global _store
    if not isinstance(store, PromptStore):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"{store!r} is not a prompt store: it needs load(), register() and set_alias()."
        )
    previous = get_prompt_store()
    with _store_lock:
        _store = store
    return previous


def register_prompt(
    name: str,
    template: str | Sequence[Mapping[str, Any]],
    commit_message: str | None = None,
    tags: Mapping[str, str] | None = None,
    response_format: Any = None,
    model_config: Mapping[str, Any] | None = None,
) -> PromptTemplate:
    """Register ``template`` as the next version of the prompt ``name``.

    The arguments are ``mlflow.genai.register_prompt``'s; ``tags``, ``response_format``
    and ``model_config`` are kept on the version.

    Args:
        name: letters, digits, ``_``, ``.`` and ``-``.
        template: the text, with ``{{ variable }}`` placeholders.
        commit_message: an optional note kept with the version.
        tags: string tags kept on the version.
        response_format: kept on the version for your application; not used here.
        model_config: kept on the version for your application; not used here.

    Raises:
        ConfigurationError: on an invalid name, tags that are not strings, or a template
            that is not a non-empty string (chat-style message lists included: see the
            message for what to do instead).
    """
    if not isinstance(name, str) or not _NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"Invalid prompt name {name!r}: use letters, digits, '_', '.' and '-' only."
        )
    if isinstance(template, (list, tuple)):
        raise ConfigurationError(
            f"Prompt {name!r}: judgealign's prompts are text templates, while MLflow also "
            "stores chat prompts (lists of role/content messages); write the messages as one "
            "text template with {{ variables }}, e.g. 'System: ...\\nUser: {{ question }}'."
        )
    if not isinstance(template, str) or not template.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(f"The template of prompt {name!r} must be a non-empty string.")
    extras = _registration_extras(name, tags, response_format, model_config)
    register: Any = get_prompt_store().register
    return register(name, template, commit_message=commit_message, **extras)


def _registration_extras(
    name: str,
    tags: Mapping[str, str] | None,
    response_format: Any,
    model_config: Mapping[str, Any] | None,
) -> dict[str, Any]:
    # Passed only when given, so a custom store written for the two-argument protocol
    # keeps working for callers that do not use them.
    extras: dict[str, Any] = {}
    if tags:
        bad = [k for k, v in tags.items() if not isinstance(k, str) or not isinstance(v, str)]  # pyright: ignore[reportUnnecessaryIsInstance]
        if bad:
            raise ConfigurationError(
                f"Prompt {name!r}: tags must map strings to strings; fix the tag(s) {bad!r}."
            )
        extras["tags"] = dict(tags)
    if response_format is not None:
        extras["response_format"] = response_format
    if model_config is not None:
        extras["model_config"] = dict(model_config)
    return extras


def set_prompt_alias(name: str, alias: str, version: int) -> None:
    """Point ``alias`` of the prompt ``name`` at ``version`` (``mlflow.genai.set_prompt_alias``).

    ``load_prompt(f"prompts:/{name}@{alias}")`` then loads that version.

    Raises:
        ConfigurationError: on an unknown prompt or version, or an invalid alias.
    """
    if not isinstance(alias, str) or not _NAME.match(alias) or alias == "latest":  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"Invalid alias {alias!r}: use letters, digits, '_', '.' and '-'; 'latest' is "
            "reserved for the newest version."
        )
    get_prompt_store().set_alias(name, alias, int(version))


def parse_prompt_uri(uri: str) -> tuple[str, int | None, str | None]:
    """Split a prompt URI into ``(name, version, alias)``.

    Accepted: ``prompts:/name/3``, ``prompts:/name@alias``, ``prompts:/name@latest``,
    ``prompts:/name`` and a plain ``name`` (the last three mean the latest version).

    Raises:
        ConfigurationError: on anything else.
    """
    match = _URI.match(uri.strip()) if isinstance(uri, str) else None  # pyright: ignore[reportUnnecessaryIsInstance]
    if match is None:
        raise ConfigurationError(
            f"Malformed prompt URI {uri!r}. Use 'prompts:/<name>/<version>', "
            "'prompts:/<name>@<alias>' (including '@latest') or a plain prompt name."
        )
    version = match["version"]
    alias = match["alias"]
    return match["name"], int(version) if version else None, None if alias == "latest" else alias


@overload
def load_prompt(
    name_or_uri: str,
    version: str | int | None = None,
    allow_missing: Literal[False] = False,
    link_to_model: bool = True,
    model_id: str | None = None,
    cache_ttl_seconds: float | None = None,
) -> PromptTemplate: ...


@overload
def load_prompt(
    name_or_uri: str,
    version: str | int | None = None,
    allow_missing: bool = False,
    link_to_model: bool = True,
    model_id: str | None = None,
    cache_ttl_seconds: float | None = None,
) -> PromptTemplate | None: ...


def load_prompt(
    name_or_uri: str,
    version: str | int | None = None,
    allow_missing: bool = False,
    link_to_model: bool = True,
    model_id: str | None = None,
    cache_ttl_seconds: float | None = None,
) -> PromptTemplate | None:
    """Load a prompt by URI or name; inside :func:`candidate_prompts`, its text is the candidate.

    The arguments are ``mlflow.genai.load_prompt``'s. ``link_to_model``, ``model_id``
    and ``cache_ttl_seconds`` are accepted and have no effect: the in-process registry
    links no models and has nothing to cache.

    Args:
        name_or_uri: ``prompts:/name/3``, ``prompts:/name@alias``, ``prompts:/name@latest``
            or a plain ``name``.
        version: with a plain name, the version to load (default: the latest).
        allow_missing: return ``None`` instead of raising when the prompt, version or
            alias does not exist.
        link_to_model: accepted for MLflow compatibility; no effect.
        model_id: accepted for MLflow compatibility; no effect.
        cache_ttl_seconds: accepted for MLflow compatibility; no effect.

    Raises:
        ConfigurationError: on a malformed URI, a version given twice, or (unless
            ``allow_missing``) an unknown name, version or alias.
    """
    del link_to_model, model_id, cache_ttl_seconds
    name, uri_version, alias = parse_prompt_uri(name_or_uri)
    if version is not None:
        if uri_version is not None or alias is not None or "@" in name_or_uri:
            raise ConfigurationError(
                f"load_prompt({name_or_uri!r}, version={version!r}): give the version either "
                "in the URI or as version= with a plain prompt name, not both."
            )
        uri_version = _version_number(version)
    try:
        prompt = get_prompt_store().load(name, version=uri_version, alias=alias)
    except ConfigurationError:
        if allow_missing:
            return None
        raise
    prompt_override(name)  # loading a swapped prompt counts as using it
    return prompt


def _version_number(version: str | int) -> int:
    text = str(version).strip()
    if not text.isdigit():
        raise ConfigurationError(f"version={version!r} must be a version number such as 3.")
    return int(text)
