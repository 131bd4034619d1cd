"""Giving memory back to the operating system after a large piece of work.

glibc keeps freed memory in its heaps (one per thread that allocated) for reuse, so a process that once
embedded 20,000 chunks keeps that peak as resident memory for good. ``trim()`` asks glibc to return what its
heaps hold free (``malloc_trim``); elsewhere (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def trim() -> bool:
    """Return the C heap's free memory to the system; True when it could be asked."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
