"""Prompt templates, a versioned prompt registry, and per-thread candidate swapping.

An optimizer evaluates a candidate by running the user's ``predict_fn`` while the
candidate is *swapped in*: inside :func:`candidate_prompts`, every
:class:`PromptTemplate` of a swapped name (whenever and however it was loaded) reads the
candidate text. The swap lives in a :class:`contextvars.ContextVar`, so two threads (or
two asyncio tasks) evaluating different candidates each see their own; worker threads
inherit it when started with ``contextvars.copy_context().run``. Nothing is patched
process-wide.

The registry is a small :class:`PromptStore` protocol. The default store lives in the
process; :func:`set_prompt_store` installs another one (such as an MLflow-backed store).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from judgealign import ConfigurationError
from optimizers._steps import record_step
from optimizers._templates import format_template, template_variables

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

    Attributes:
        name: the prompt's name in the registry.
        stored_template: the text as registered.
        version: the registry version (``None`` for a prompt that is not registered).
        commit_message: the note given at registration, if any.
    """

    name: str
    stored_template: str = field(repr=False)
    version: int | None = None
    commit_message: str | None = None

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
        (see :mod:`optimizers._steps`).

        Raises:
            KeyError: when a variable has no value.
        """
        text = format_template(self.template, values)
        record_step(self.name, values)
        return text


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
        """Store ``template`` as the next version of ``name`` (version 1 for a new name)."""
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
                return versions[-1]
            if not 1 <= version <= len(versions):
                raise ConfigurationError(
                    f"Prompt {name!r} has no version {version}; versions are 1..{len(versions)}."
                )
            return versions[version - 1]

    def register(
        self, name: str, template: str, *, commit_message: str | None = None
    ) -> PromptTemplate:
        """Store ``template`` as the next version of ``name``."""
        with self._lock:
            versions = self._versions.setdefault(name, [])
            prompt = PromptTemplate(name, template, len(versions) + 1, commit_message)
            versions.append(prompt)
            return prompt

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        self.load(name, version=version)
        with self._lock:
            self._aliases[(name, alias)] = version


_store_lock = threading.Lock()
_store: PromptStore = InMemoryPromptStore()


def get_prompt_store() -> PromptStore:
    """The store that :func:`register_prompt` and :func:`load_prompt` use."""
    with _store_lock:
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
    with _store_lock:
        previous, _store = _store, store
    return previous


def register_prompt(
    name: str, template: str, *, commit_message: str | None = None
) -> PromptTemplate:
    """Register ``template`` as the next version of the prompt ``name``.

    Args:
        name: letters, digits, ``_``, ``.`` and ``-``.
        template: the text, with ``{{ variable }}`` placeholders.
        commit_message: an optional note kept with the version.

    Raises:
        ConfigurationError: on an invalid name or a template that is not a string.
    """
    if not isinstance(name, str) or not _NAME.match(name):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(
            f"Invalid prompt name {name!r}: use letters, digits, '_', '.' and '-' only."
        )
    if not isinstance(template, str) or not template.strip():  # pyright: ignore[reportUnnecessaryIsInstance]
        raise ConfigurationError(f"The template of prompt {name!r} must be a non-empty string.")
    return get_prompt_store().register(name, template, commit_message=commit_message)


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


def load_prompt(uri: str) -> PromptTemplate:
    """Load a prompt by URI; inside :func:`candidate_prompts`, its text is the candidate.

    Args:
        uri: ``prompts:/name/3``, ``prompts:/name@alias``, ``prompts:/name@latest`` or
            a plain ``name``.

    Raises:
        ConfigurationError: on a malformed URI or an unknown name, version or alias.
    """
    name, version, alias = parse_prompt_uri(uri)
    prompt = get_prompt_store().load(name, version=version, alias=alias)
    _swapped_text(name)  # loading a swapped prompt counts as using it
    return prompt
