"""One server per workspace home: an OS file lock (``flock``) on ``<home>/server.lock``, held for the life of
the ``brickyard serve`` process. The kernel drops it when the process ends, however it ends (kill -9
included), so it never goes stale; the file's text (who holds it) is only for the message.

Why one: a server keeps each vector index open in memory and writes its full-text index under a writer
lock of its own, so two servers on one home would each apply the other's writes to nothing and fail
theirs (tantivy's lock). Other processes may still open the home while a server runs: the CLI commands
work through the metastore (SQLite's or PostgreSQL's transactions) and Delta's optimistic commits, and
leave background work (resuming deployments) to the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from .errors import InvalidState

__all__ = ["HomeInUse", "HomeLock", "holder"]

LOCK_NAME = "server.lock"


class HomeInUse(InvalidState):
    """Another server holds this home."""


def _describe(info: dict[str, Any], home: Path) -> str:
    who = f"pid {info.get('pid', '?')}"
    if info.get("url"):
        who += f", {info['url']}"
    if info.get("started"):
        who += ", since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
    return (f"another Brickyard server ({who}) is serving {home}; two servers on one home would break its "
            "vector indexes. Stop that one first, or give this one another --home")


class HomeLock:
    """The exclusive server lock of ``home``; :meth:`acquire` raises :class:`HomeInUse` if it is held."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, **info: Any) -> HomeLock:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        for attempt in range(10):  # holder() takes a shared lock for an instant: do not mistake it for a server
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 9:
                    os.close(fd)
                    raise HomeInUse(_describe(holder(self.home) or {}, self.home)) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.time(), **info}).encode(), 0)
        self._fd = fd
        return self

    def update(self, **info: Any) -> None:
        """Rewrite what the lock file says about its holder (the URL once the port is known)."""
        if self._fd is None:
            return
        current = _read(self._fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps({**current, **info}).encode(), 0)

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> HomeLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read(fd: int) -> dict[str, Any]:
    with contextlib.suppress(ValueError, OSError):
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
        if isinstance(data, dict):
            return data
    return {}


def holder(home: Path) -> dict[str, Any] | None:
    """What the server holding ``home`` wrote about itself, or None if no server holds it."""
    path = Path(home) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
