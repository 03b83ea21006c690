"""Prompt templates, the store protocol with its in-memory store, and candidate swapping.

An optimizer evaluates a candidate by running the user's ``predict_fn`` while the
candidate is *swapped in*: inside :func:`candidate_prompts`, every
:class:`PromptTemplate` of a swapped name (whenever and however it was loaded) reads the
candidate text. The swap lives in a :class:`contextvars.ContextVar`, so two threads (or
two asyncio tasks) evaluating different candidates each see their own; worker threads
inherit it when started with ``contextvars.copy_context().run``. Nothing is patched
process-wide.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from judgealign import ConfigurationError
from judgealign.optimize_support import format_template, single_brace, template_variables
from optimizers.prompts._steps import record_step

__all__ = [
    "InMemoryPromptStore",
    "PromptStore",
    "PromptTemplate",
    "PromptUsage",
    "candidate_prompts",
    "swapped_text",
]


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


def swapped_text(name: str) -> str | None:
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
        swapped = swapped_text(self.name)
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
