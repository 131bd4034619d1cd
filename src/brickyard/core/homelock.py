"""Server processes of a workspace home, each holding an OS file lock (``flock``) for its life: the primary
``<home>/server.lock`` (slot 0), and the ones that join it ``<home>/server-N.lock`` (slot N). The kernel drops
a lock when its process ends, however it ends (kill -9 included), so none goes stale; the file's text (who
holds it) is only for messages.

A plain second ``brickyard serve`` on a home is refused: usually a mistake. Joining is deliberate (``serve
--join``, or the processes ``serve --workers N`` starts): every server process keeps its own in-memory search
structures (under its slot), caught up from the shared row stores, metastore and Delta tables; the primary
alone resumes background work (deployments left in progress, interrupted syncs, scheduled scorers). Other
processes may open the home too: the CLI commands work through the metastore (SQLite's or PostgreSQL's
transactions) and Delta's optimistic commits.
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


MAX_SLOTS = 64


def _slot_file(slot: int) -> str:
    return LOCK_NAME if slot == 0 else f"server-{slot}.lock"


def _describe(info: dict[str, Any], home: Path) -> str:
    who = f"pid {info.get('pid', '?')}"
    if info.get("url"):
        who += f", {info['url']}"
    if info.get("started"):
        who += ", since " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
    return (f"another Brickyard server ({who}) is serving {home}. Stop that one first, give this one another "
            "--home, or add this process to it deliberately with --join")


class HomeLock:
    """A server process's slot lock of ``home``; :meth:`acquire` takes the primary slot (raising
    :class:`HomeInUse` if it is held), or with ``join`` the first free slot (the primary's if it is free)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / LOCK_NAME
        self.slot = 0
        self._fd: int | None = None

    def acquire(self, *, join: bool = False, **info: Any) -> HomeLock:
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        if join:  # the first free slot: the primary's too, if its process has gone (it then takes over)
            for slot in range(MAX_SLOTS):
                fd = self._try(slot, attempts=1)
                if fd is not None:
                    return self._hold(fd, slot, info)
            raise InvalidState(f"{MAX_SLOTS - 1} server processes already joined {self.home}")
        fd = self._try(0, attempts=10)  # holder() takes a shared lock for an instant: do not mistake it for a server
        if fd is None:
            raise HomeInUse(_describe(holder(self.home) or {}, self.home))
        return self._hold(fd, 0, info)

    def _try(self, slot: int, *, attempts: int) -> int | None:
        fd = os.open(self.home / _slot_file(slot), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        for attempt in range(attempts):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if attempt < attempts - 1:
                    time.sleep(0.05)
        os.close(fd)
        return None

    def _hold(self, fd: int, slot: int, info: dict[str, Any]) -> HomeLock:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": time.time(), "slot": slot, **info}).encode(), 0)
        self._fd, self.slot, self.path = fd, slot, self.home / _slot_file(slot)
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
