"""Keeping secrets out of messages, logs, files and reprs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["is_secret_name", "redact", "secret_values"]

_SECRET_NAME = re.compile(r"(api[_-]?key|token|secret|password|credential|auth)", re.I)
_MIN_SECRET_LEN = 6
_MASK = "[REDACTED]"


def is_secret_name(name: str) -> bool:
    """Whether a parameter or environment variable name looks like it holds a secret."""
    return bool(_SECRET_NAME.search(name))


def secret_values(extra: Iterable[str] = ()) -> list[str]:
    """Secrets currently in the environment plus ``extra``, longest first."""
    found = {v for k, v in os.environ.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    found.update(v for v in extra if v and len(v) >= _MIN_SECRET_LEN)
    return sorted(found, key=len, reverse=True)


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """Replace every known secret value in ``text`` with a mask.

    Also masks anything shaped like a bearer token or an ``sk-`` style key, since
    provider error messages sometimes echo part of the key.
    """
    for secret in secret_values(extra):
        text = text.replace(secret, _MASK)
    text = re.sub(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}", r"\1" + _MASK, text)
    return re.sub(r"\bsk-[A-Za-z0-9_\-]{6,}", _MASK, text)
