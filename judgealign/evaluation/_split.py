"""A reproducible train/held-out split of labelled records: :func:`split_records`.

Standard library only: a seeded shuffle per class and a largest-remainder allocation of the
held-out share (importing scikit-learn for this cost several seconds on a cold start).
"""

from __future__ import annotations

import math
import random
import warnings
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from judgealign.core._errors import ConfigurationError
from judgealign.judges._labels import MISSING, is_number, record_field

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
    held_out = _pick_held_out(strata or [0] * len(items), n_test, random.Random(seed))
    train = [item for i, item in enumerate(items) if i not in held_out]
    return train, [item for i, item in enumerate(items) if i in held_out]


def _pick_held_out(strata: Sequence[int], n_test: int, rng: random.Random) -> set[int]:
    """Indices to hold out: each class gives its proportional share (largest remainder),
    at least one record when it has two or more, chosen by a seeded shuffle."""
    sizes = Counter(strata)
    exact = {c: n_test * size / len(strata) for c, size in sizes.items()}
    quota = {c: math.floor(share) for c, share in exact.items()}
    by_remainder = sorted(sizes, key=lambda c: (quota[c] - exact[c], c))
    for c in by_remainder[: n_test - sum(quota.values())]:
        quota[c] += 1
    if len(sizes) > 1:
        _keep_every_class_in_both_parts(quota, sizes)
    chosen: set[int] = set()
    for c in sorted(sizes):
        members = [i for i, s in enumerate(strata) if s == c]
        rng.shuffle(members)
        chosen.update(members[: quota[c]])
    return chosen


def _keep_every_class_in_both_parts(quota: dict[int, int], sizes: Counter[int]) -> None:
    for c in sorted(sizes):
        if quota[c] == 0:
            donor = max((d for d in quota if quota[d] > 1), key=lambda d: quota[d], default=None)
            if donor is not None:
                quota[donor] -= 1
                quota[c] = 1
        elif quota[c] == sizes[c]:
            taker = max(
                (d for d in quota if quota[d] < sizes[d] - 1),
                key=lambda d: sizes[d] - quota[d],
                default=None,
            )
            if taker is not None:
                quota[c] -= 1
                quota[taker] += 1


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
    counts = Counter(strata)
    return min(counts.values()) >= 2 and len(counts) <= min(n_test, n_train)
