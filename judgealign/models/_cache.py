"""An optional on-disk cache of model replies (sqlite), off unless a model is given one."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResponseCache", "cache_key"]


def cache_key(model: str, messages: Any, response_format: Any, params: dict[str, Any]) -> str:
    """A hash of everything that determines a reply. Secrets must not be in ``params``."""
    payload = json.dumps(
        {"model": model, "messages": messages, "format": response_format, "params": params},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Replies keyed by :func:`cache_key`, stored in one sqlite file.

    Args:
        path: the sqlite file; created with its folder when missing.

    Only successful replies are stored. A cache hit costs no tokens and is marked
    ``cached`` in the usage.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER, completion_tokens INTEGER)"
        )

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r})"

    def get(self, key: str) -> tuple[str, int, int] | None:
        """The stored reply text and token counts, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM replies WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1] or 0), int(row[2] or 0))

    def put(self, key: str, text: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Store one reply."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?)",
                (key, text, prompt_tokens, completion_tokens),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()
