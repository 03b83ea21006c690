"""Judges accepted by ``mlflow.genai.evaluate`` as they are, without importing mlflow early.

``mlflow.genai.evaluate(scorers=[judge])`` checks every scorer with
``mlflow.genai.scorers.validation.validate_scorers``, which accepts only MLflow's own
``Scorer`` class. When judgealign's judge module loads, it asks for that function to
convert judgealign judges first (through ``as_scorer``, exactly what
``judgealign.mlflow_integration.evaluate`` does). If mlflow's module is already loaded
the function is wrapped now; otherwise an import hook wraps it right after mlflow loads
it, before ``mlflow.genai.evaluation`` binds the name. mlflow itself is never imported
here, so ``import judgealign`` stays cheap.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, cast

__all__ = ["accept_judges_in_mlflow"]

_TARGET = "mlflow.genai.scorers.validation"
_USERS = ("mlflow.genai.evaluation.base",)  # modules that bind validate_scorers by name
_MARK = "_judgealign_accepts_judges"
_lock = threading.Lock()
_installed = False


def accept_judges_in_mlflow() -> None:
    """Make ``mlflow.genai.evaluate`` accept judgealign judges (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    module = sys.modules.get(_TARGET)
    if module is not None:
        _wrap(module)
    else:
        sys.meta_path.insert(0, _AfterImport())


def _is_judgealign_judge(value: object) -> bool:
    module = type(value).__module__
    return module in ("judgealign.judges._judge", "judgealign.memalign._aligned")


def _convert(scorers: Any) -> Any:
    if not isinstance(scorers, list):
        return scorers
    items = cast("list[Any]", scorers)
    if not any(_is_judgealign_judge(s) for s in items):
        return items
    from judgealign.integrations.mlflow._client import as_scorer

    return [as_scorer(s) if _is_judgealign_judge(s) else s for s in items]


def _wrap(module: ModuleType) -> None:
    original: Callable[..., Any] | None = getattr(module, "validate_scorers", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def validate_scorers(scorers: Any, *args: Any, **kwargs: Any) -> Any:
        return original(_convert(scorers), *args, **kwargs)

    setattr(validate_scorers, _MARK, True)
    module.validate_scorers = validate_scorers  # type: ignore[attr-defined]
    for name in _USERS:
        user = sys.modules.get(name)
        if user is not None and getattr(user, "validate_scorers", None) is original:
            user.validate_scorers = validate_scorers  # type: ignore[attr-defined]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds mlflow's validation module as usual, and wraps it once it has run."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader: Any = spec.loader if spec is not None else None
        if spec is None or loader is None or not hasattr(loader, "exec_module"):
            return None
        run: Callable[[ModuleType], None] = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            _wrap(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)

        loader.exec_module = exec_module
        return spec
