"""Identifiers and time: one place for ids, so tests can see their shape."""

from __future__ import annotations

import os
import time
import uuid

__all__ = ["new_id", "new_uuid", "now_ms"]


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (what Databricks puts in ``created_at``)."""
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A 32-hex-digit id that sorts by creation time (48-bit ms timestamp + 80 random bits)."""
    return f"{now_ms():012x}{os.urandom(10).hex()}"


def new_uuid() -> str:
    return str(uuid.uuid4())
