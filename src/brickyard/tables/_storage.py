"""Where managed data lives in the workspace directory, and how it is retired."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..core.ids import new_id


def managed_path(root: Path, parts: list[str], sid: str, in_use: callable) -> Path:  # type: ignore[valid-type]
    """``root/<catalog>/<schema>/<name>``; a directory left behind by a dropped object is moved to the
    trash first, and a name reused while the old directory still belongs to a live object gets a suffix."""
    path = root.joinpath(*parts)
    if path.exists():
        if in_use(str(path)):
            path = path.with_name(f"{path.name}-{sid[-8:]}")
        else:
            retire(root.parent, path)
    return path


def retire(home: Path, path: Path) -> None:
    """Move ``path`` into ``home/trash`` (then delete it); never fails the caller."""
    if not path.exists():
        return
    trash = home / "trash"
    trash.mkdir(parents=True, exist_ok=True)
    target = trash / f"{path.name}-{new_id()}"
    try:
        os.replace(path, target)
        shutil.rmtree(target, ignore_errors=True)
    except OSError:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive OS lock (flock) beside ``path``; released by the kernel if the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(str(path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
