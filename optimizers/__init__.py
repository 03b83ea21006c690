"""Prompt optimizers (GEPA, metaprompt) that climb any scorer, an aligned judge included."""

from __future__ import annotations

__all__: list[str] = []
