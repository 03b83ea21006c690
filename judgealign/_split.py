"""A reproducible train/held-out split of labelled records: :func:`split_records`.

scikit-learn and numpy are imported on first use, so that importing judgealign stays fast.
"""

from __future__ import annotations

import importlib
import math
import warnings
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from judgealign._errors import ConfigurationError
from judgealign._labels import MISSING, is_number, record_field

__all__ = ["split_records"]

R = TypeVar("R")


def split_records(
    records: Sequence[R],
    *,
    test_size: float = 0.3,
    seed: int = 0,
    stratify_by: Callable[[R], Hashable] | None = None,
) -> tuple[list[R], list[R]]:
    """Split records into a train set and a held-out set, reproducibly.

    The same records, ``test_size`` and ``seed`` always give the same split. Both parts
    keep the input order. The split is stratified by ``stratify_by(record)`` when given,
    else by each record's ``label`` (key or attribute) when every record has one. When a
    class has fewer than 2 members, or there are more classes than records in a part, the
    split falls back to unstratified and warns.

    Args:
        records: dicts or objects.
        test_size: share of records held out, strictly between 0 and 1 (rounded up).
        seed: the random seed.
        stratify_by: a function giving each record's class.

    Returns:
        ``(train, held_out)``: disjoint lists that together hold every record.

    Raises:
        ConfigurationError: when ``test_size`` is outside (0, 1) or leaves a part empty.
    """
    items = list(records)
    n_test = _held_out_count(len(items), test_size)
    strata = _strata(items, stratify_by)
    if strata is not None and not _can_stratify(strata, n_test, len(items) - n_test):
        warnings.warn(
            "split_records: a class has fewer than 2 records, or there are more classes than "
            "records in one part; the split is not stratified.",
            UserWarning,
            stacklevel=2,
        )
        strata = None
    split = _sklearn("sklearn.model_selection").train_test_split
    train, test = split(
        list(range(len(items))), test_size=n_test, random_state=seed, shuffle=True, stratify=strata
    )
    train_idx: list[int] = sorted(train)
    test_idx: list[int] = sorted(test)
    return [items[i] for i in train_idx], [items[i] for i in test_idx]


def _held_out_count(n: int, test_size: float) -> int:
    if not is_number(test_size) or not 0 < test_size < 1:
        raise ConfigurationError(
            f"test_size={test_size!r} must be a fraction strictly between 0 and 1, for example 0.3."
        )
    n_test = math.ceil(test_size * n)
    if n_test >= n or n_test < 1:
        raise ConfigurationError(
            f"split_records got {n} records; test_size={test_size!r} would leave the train "
            "or held-out part empty. Pass at least 2 records or change test_size."
        )
    return n_test


def _strata(items: Sequence[R], stratify_by: Callable[[R], Hashable] | None) -> list[int] | None:
    if stratify_by is None:
        keys: list[object] = [record_field(item, "label") for item in items]
        if any(key is MISSING for key in keys):
            return None
    else:
        keys = [stratify_by(item) for item in items]
    codes: dict[object, int] = {}
    try:
        return [codes.setdefault(key, len(codes)) for key in keys]
    except TypeError as err:
        raise ConfigurationError(
            "split_records could not group records by label: the labels must be hashable "
            "(str, int, bool). Pass stratify_by returning a hashable class."
        ) from err


def _can_stratify(strata: Sequence[int], n_test: int, n_train: int) -> bool:
    import numpy as np

    counts = np.bincount(np.asarray(strata))
    return int(counts.min()) >= 2 and counts.size <= min(n_test, n_train)


def _sklearn(module: str) -> Any:
    """Import a scikit-learn module on first use (it has no type stubs: Any stops here)."""
    return importlib.import_module(module)
