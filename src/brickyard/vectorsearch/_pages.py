"""2 MiB pages under an ANN index's big buffers (Linux transparent huge pages).

An HNSW walk jumps between vectors that lie far apart in memory. With 4 KiB pages nearly every hop
misses the TLB and waits on a page-table walk as well as on the cache line: at 100k x 384 that is about
a third of a query's time on the machines we measured (``docs/vectorsearch.md``). Asking the kernel for
huge pages on the vector and neighbour arrays (``madvise(MADV_HUGEPAGE)``, then ``MADV_COLLAPSE`` to
convert the pages already touched, Linux 6.1+) removes most of those misses without changing a single
result.

This is a hint. Where the kernel has transparent huge pages switched off (``never``), is older, or the
platform is not Linux, the calls fail quietly and the index works as before, only slower.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import sys
import threading
from typing import Any

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
HUGE = 2 << 20
COLLAPSE_TRIES = 3  # EAGAIN is the kernel's word for a transient failure (a page it could not lock or charge)
SHORT_OF_MEMORY = frozenset({errno.EAGAIN, errno.ENOMEM})

_libc: Any = None
_libc_lock = threading.Lock()


def _madvise() -> Any:
    global _libc
    with _libc_lock:
        if _libc is None:
            if not sys.platform.startswith("linux"):
                _libc = False
            else:
                try:
                    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                    libc.madvise.restype = ctypes.c_int
                    _libc = libc
                except (OSError, AttributeError):
                    _libc = False
        return _libc.madvise if _libc else None


def back_with_huge_pages(address: int, nbytes: int) -> bool:
    """Ask for 2 MiB pages on the whole huge pages inside ``[address, address + nbytes)``; True when the
    kernel collapsed them (False: unsupported, switched off, the buffer is under 2 MiB, or the kernel
    found no free 2 MiB blocks right now)."""
    return _advise(address, nbytes)[1] == 0


def _advise(address: int, nbytes: int) -> tuple[bool, int]:
    """(advised, errno of the collapse or 0): ``advised`` says the range was marked for huge pages, so
    the kernel's background collapser takes it even when the immediate collapse could not."""
    madvise = _madvise()
    start = (address + HUGE - 1) & ~(HUGE - 1)
    end = (address + nbytes) & ~(HUGE - 1)
    if madvise is None or end <= start:
        return False, errno.EINVAL
    if madvise(start, end - start, MADV_HUGEPAGE) != 0:
        return False, ctypes.get_errno()
    code = errno.EAGAIN
    for _ in range(COLLAPSE_TRIES):
        if madvise(start, end - start, MADV_COLLAPSE) == 0:
            return True, 0
        code = ctypes.get_errno()
        if code != errno.EAGAIN:
            break
    return True, code


class HugePages:
    """Keeps a set of growing buffers on huge pages: ``refresh`` re-advises a buffer when it moved
    (a vector's reallocation) or grew by a sixteenth since the last time, so a stream of small upserts
    costs nothing and a big load is covered at once."""

    GROWTH = 16

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, int]] = {}
        self._collapsed: dict[str, int] = {}
        self._advised: dict[str, int] = {}
        self.short_of_memory = False  # the last collapse the kernel refused for want of free 2 MiB blocks

    @property
    def collapsed(self) -> int:
        """Bytes the kernel confirmed as huge-page backed at the last advice of each buffer."""
        return sum(self._collapsed.values())

    @property
    def advised(self) -> int:
        """Bytes marked for huge pages (collapsed now, or later by the kernel's background collapser)."""
        return sum(self._advised.values())

    def refresh(self, buffers: dict[str, tuple[int, int]]) -> None:
        for name, (address, nbytes) in buffers.items():
            last = self._seen.get(name)
            if last is not None and last[0] == address and nbytes - last[1] < max(HUGE, last[1] // self.GROWTH):
                continue
            self._seen[name] = (address, nbytes)
            advised, code = _advise(address, nbytes)
            self._advised[name] = nbytes if advised else 0
            self._collapsed[name] = nbytes if advised and code == 0 else 0
            self.short_of_memory = code in SHORT_OF_MEMORY

    def forget(self) -> None:
        self._seen.clear()
        self._collapsed.clear()
        self._advised.clear()
