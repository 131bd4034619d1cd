"""Pieces of user SQL shown back in error messages."""

from __future__ import annotations

from typing import Any

__all__ = ["shown"]


def shown(node: Any, width: int = 80) -> str:
    """``node`` rendered as SQL, cut to ``width`` characters, for an error message. sqlglot parses some trees it
    cannot render (``X''``, an empty hex string, raises ValueError), and a message must never turn the user's
    400 into a 500, so any rendering failure falls back to the node's kind."""
    try:
        return str(node.sql())[:width]
    except Exception:  # noqa: BLE001 - whatever the renderer raises, the message still gets written
        return type(node).__name__.upper()
