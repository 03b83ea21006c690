"""Prompt templates, a versioned prompt registry, and per-thread candidate swapping.

An optimizer evaluates a candidate by running the user's ``predict_fn`` while the
candidate is *swapped in*: inside :func:`candidate_prompts`, every
:class:`PromptTemplate` of a swapped name (whenever and however it was loaded) reads the
candidate text. The swap lives in a :class:`contextvars.ContextVar`, so two threads (or
two asyncio tasks) evaluating different candidates each see their own; worker threads
inherit it when started with ``contextvars.copy_context().run``. Nothing is patched
process-wide.

The registry is a small :class:`PromptStore` protocol. The default store keeps prompts in
the process and reaches MLflow's registry when MLflow is configured;
:func:`set_prompt_store` installs another one (such as an MLflow-backed store).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, overload, runtime_checkable

from judgealign import ConfigurationError
from judgealign.prompts._overrides import single_brace
from optimizers.prompts._steps import record_step
from optimizers.prompts._templates import format_template, template_variables

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


class PromptUsage:
    """Which swapped prompt names were read while a candidate was in effect.

    Shared by every thread that runs inside the same :func:`candidate_prompts` block.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()

    def record(self, name: str) -> None:
        """Note that the prompt ``name`` was loaded or read."""
        with self._lock:
            self._names.add(name)

    @property
    def accessed(self) -> frozenset[str]:
        """The swapped prompt names read so far."""
        with self._lock:
            return frozenset(self._names)


@dataclass(frozen=True)
class _Swap:
    templates: Mapping[str, str]
    usage: PromptUsage


_SWAP: ContextVar[_Swap | None] = ContextVar("optimizers_candidate_prompts", default=None)


def _swapped_text(name: str) -> str | None:
    swap = _SWAP.get()
    if swap is None or name not in swap.templates:
        return None
    swap.usage.record(name)
    return swap.templates[name]


@contextmanager
def candidate_prompts(templates: Mapping[str, str]) -> Iterator[PromptUsage]:
    """Swap candidate templates in, by prompt name, for the current context only.

    Inside the block, ``load_prompt(...)`` of a swapped name, and ``.template`` /
    ``.format()`` of any :class:`PromptTemplate` of that name, give the candidate text.
    Blocks nest; an inner block's templates win.

    Args:
        templates: prompt name -> candidate template.

    Yields:
        A :class:`PromptUsage` recording which swapped names were read.

    Example:
        >>> with candidate_prompts({"qa": "Answer briefly: {{ question }}"}) as usage:
        ...     answer = predict_fn(question="2+2?")
        >>> "qa" in usage.accessed
    """
    outer = _SWAP.get()
    merged = {**(outer.templates if outer else {}), **templates}
    usage = PromptUsage()
    token = _SWAP.set(_Swap(templates=merged, usage=usage))
    try:
        yield usage
    finally:
        _SWAP.reset(token)


@dataclass(frozen=True)
class PromptTemplate:
    """One version of a registered prompt.

    It answers what MLflow's ``PromptVersion`` answers in user code: ``name``,
    ``version``, ``uri``, ``template``, ``tags``, ``aliases``, ``commit_message``,
    ``response_format``, ``model_config``, ``variables``, ``format(**values)`` and
    ``to_single_brace_format()``.

    Attributes:
        name: the prompt's name in the registry.
        stored_template: the text as registered.
        version: the registry version (``None`` for a prompt that is not registered).
        commit_message: the note given at registration, if any.
        tags: the version's tags.
        aliases: the aliases that pointed at this version when it was loaded.
        response_format: the response format given at registration (kept, not used).
        model_config: the model configuration given at registration (kept, not used).
    """

    name: str
    stored_template: str = field(repr=False)
    version: int | None = None
    commit_message: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: {}, compare=False, repr=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    response_format: Any = field(default=None, compare=False, repr=False)
    model_config: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def template(self) -> str:
        """The text in effect: the candidate being evaluated, else :attr:`stored_template`."""
        swapped = _swapped_text(self.name)
        return self.stored_template if swapped is None else swapped

    @property
    def uri(self) -> str:
        """``prompts:/<name>/<version>``, or the bare name of an unregistered prompt."""
        return self.name if self.version is None else f"prompts:/{self.name}/{self.version}"

    @property
    def variables(self) -> frozenset[str]:
        """The template's ``{{ variable }}`` names."""
        return frozenset(template_variables(self.stored_template))

    def format(self, **values: object) -> str:
        """Fill in every variable of the text in effect.

        Inside an evaluation, the call is recorded as one of the record's prompt steps
        (see :mod:`optimizers.prompts._steps`).

        Raises:
            KeyError: when a variable has no value.
        """
        text = format_template(self.template, values)
        record_step(self.name, values)
        return text

    def to_single_brace_format(self) -> str:
        """The text in effect with ``{{ variable }}`` written ``{variable}`` (``str.format``
        style, as MLflow's ``PromptVersion.to_single_brace_format``)."""
        return single_brace(self.template)


@runtime_checkable
class PromptStore(Protocol):
    """Where prompts are registered and loaded (the in-process store, MLflow, ...)."""

    def load(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> PromptTemplate:
        """The prompt ``name`` at ``version``, at ``alias``, or its latest version.

        Raises:
            ConfigurationError: when the name, version or alias does not exist.
        """
        ...

    def register(
        self, name: str, template: str, *, commit_message: str | None = None
    ) -> PromptTemplate:
        """Store ``template`` as the next version of ``name`` (version 1 for a new name).

        :func:`register_prompt` also passes ``tags``, ``response_format`` and
        ``model_config`` keywords, each only when the caller gave it.
        """
        ...

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        ...


class InMemoryPromptStore:
    """The default :class:`PromptStore`: versions and aliases kept in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, list[PromptTemplate]] = {}
        self._aliases: dict[tuple[str, str], int] = {}

    def load(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> PromptTemplate:
        """The prompt ``name`` at ``version``, at ``alias``, or its latest version."""
        with self._lock:
            versions = self._versions.get(name)
            if not versions:
                raise ConfigurationError(
                    f"No prompt named {name!r} is registered. Register it first with "
                    f"register_prompt({name!r}, template)."
                )
            if alias is not None and alias != "latest":
                version = self._aliases.get((name, alias))
                if version is None:
                    raise ConfigurationError(f"Prompt {name!r} has no alias {alias!r}.")
            if version is None:
                version = len(versions)
            if not 1 <= version <= len(versions):
                raise ConfigurationError(
                    f"Prompt {name!r} has no version {version}; versions are 1..{len(versions)}."
                )
            aliases = tuple(
                sorted(a for (n, a), v in self._aliases.items() if (n, v) == (name, version))
            )
            return replace(versions[version - 1], aliases=aliases)

    def register(
        self,
        name: str,
        template: str,
        *,
        commit_message: str | None = None,
        tags: Mapping[str, str] | None = None,
        response_format: Any = None,
        model_config: Mapping[str, Any] | None = None,
    ) -> PromptTemplate:
        """Store ``template`` as the next version of ``name``, with its tags and settings."""
        with self._lock:
            versions = self._versions.setdefault(name, [])
            prompt = PromptTemplate(
                name,
                template,
                len(versions) + 1,
                commit_message,
                tags=dict(tags or {}),
                response_format=response_format,
                model_config=None if model_config is None else dict(model_config),
            )
            versions.append(prompt)
            return prompt

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        self.load(name, version=version)
        with self._lock:
            self._aliases[(name, alias)] = version

    def has(self, name: str) -> bool:
        """Whether a prompt ``name`` is registered here."""
        with self._lock:
            return bool(self._versions.get(name))


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
    _swapped_text(name)  # loading a swapped prompt counts as using it
    return prompt


def _version_number(version: str | int) -> int:
    text = str(version).strip()
    if not text.isdigit():
        raise ConfigurationError(f"version={version!r} must be a version number such as 3.")
    return int(text)
