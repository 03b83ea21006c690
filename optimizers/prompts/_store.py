"""Where prompts are registered: the :class:`PromptStore` protocol and the in-process store.

Prompt templates and candidate swapping are judgealign's (``judgealign.prompts``), so that
prompts from MLflow's registry and from this one behave alike; ``candidate_prompts`` is
judgealign's ``overriding_prompts`` under the name optimizers has always used.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

from judgealign import ConfigurationError
from judgealign.optimize_support import PromptTemplate, PromptUsage, overriding_prompts

__all__ = [
    "InMemoryPromptStore",
    "PromptStore",
    "PromptTemplate",
    "PromptUsage",
    "candidate_prompts",
]

candidate_prompts = overriding_prompts


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
