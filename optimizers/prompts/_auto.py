"""The default prompt store: prompts of this process, and MLflow's registry when configured.

Code written for MLflow registers its prompts with ``mlflow.genai.register_prompt`` and
hands their ``prompts:/`` URIs to ``optimize_prompts``. With only the imports changed,
those prompts must still be found, and the optimized version must land next to them. So
a prompt name lives in one place: the process, if it was registered here before; else
MLflow's registry, when the user configured MLflow (see
``judgealign.integrations.mlflow._client.configured_tracking_uri``). Without MLflow
configured, everything stays in the process and mlflow is never imported.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from judgealign.mlflow_integration import configured_tracking_uri
from optimizers.prompts._store import InMemoryPromptStore, PromptTemplate

__all__ = ["AutoPromptStore"]


class AutoPromptStore:
    """Prompts registered in this process, and MLflow's registry when MLflow is configured.

    Args:
        local: the in-process store.
    """

    def __init__(self, local: InMemoryPromptStore) -> None:
        self.local = local
        self._lock = threading.Lock()
        self._mlflow: Any = None

    def mlflow_store(self) -> Any:
        """The MLflow-backed store when MLflow is configured now, else ``None``."""
        if configured_tracking_uri() is None:
            return None
        with self._lock:
            if self._mlflow is None:
                from judgealign.mlflow_integration import MlflowPromptStore

                self._mlflow = MlflowPromptStore()
            return self._mlflow

    def _home(self, name: str) -> Any:
        """Where ``name`` lives: the process if registered here, else MLflow if configured."""
        if self.local.has(name):
            return self.local
        return self.mlflow_store() or self.local

    def load(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> PromptTemplate:
        """The prompt ``name`` at ``version``, at ``alias``, or its latest version.

        Raises:
            ConfigurationError: when the name, version or alias does not exist.
        """
        return self._home(name).load(name, version=version, alias=alias)

    def register(self, name: str, template: str, **options: Any) -> PromptTemplate:
        """Store ``template`` as the next version of ``name`` where ``name`` lives."""
        return self._home(name).register(name, template, **options)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``alias`` of ``name`` at ``version``."""
        self._home(name).set_alias(name, alias, version)

    def set_version_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        """Tag a version kept in MLflow (in-process versions keep their registration tags)."""
        home = self._home(name)
        if home is not self.local:
            home.set_version_tags(name, version, tags)
